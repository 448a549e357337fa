/**
 * Debian's chromium driven by playwright-core, for the browser tests: where it is, a loud line when
 * it is not (the tests are then skipped; in CI, where .ci/run installs it, they fail), and pages
 * that may load nothing but the server under test.
 */
import { existsSync } from 'node:fs';
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';

export const CHROMIUM = process.env.SVCPATH_CHROMIUM ?? '/usr/bin/chromium';
export const present = existsSync(CHROMIUM);

/** Says loudly what is not checked without chromium. */
export function sayIfAbsent(what: string): void {
  if (present) return;
  const line = `skipped: no chromium at ${CHROMIUM} (apt-get install chromium): ${what} not checked in a browser`;
  console.log(`\n${'#'.repeat(line.length + 4)}\n# ${line} #\n${'#'.repeat(line.length + 4)}\n`);
}

export async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export interface OfflinePage {
  page: Page;
  /** What the page tried to load from anywhere but `base`. */
  blocked: string[];
  /** Console errors and uncaught exceptions. */
  errors: string[];
}

/** A page that may load only from `base` (and data: URLs); the rest is aborted and recorded. */
export async function offlinePage(browser: Browser, base: string, options: BrowserContextOptions = {}): Promise<OfflinePage> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const blocked: string[] = [];
  const errors: string[] = [];
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${base}/`) || url.startsWith('data:')) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { page, blocked, errors };
}
