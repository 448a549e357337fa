/**
 * Runs `nft -c -f` (check only, nothing is loaded) on a text in a fresh network namespace, and tells
 * why it cannot when the machine does not allow it (not root, no nft, no namespaces).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let counter = 0;
let support: { ok: true } | { ok: false; reason: string } | undefined;

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    const out = execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 600_000 });
    return { ok: true, out };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { ok: false, out: err.stderr || err.message };
  }
}

/** Whether `nft -c -f` can be run in a namespace here, and if not, why. */
export function nftSupport(): { ok: true } | { ok: false; reason: string } {
  if (support) return support;
  if (process.platform !== 'linux') return (support = { ok: false, reason: `not Linux (${process.platform})` });
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return (support = { ok: false, reason: 'not running as root' });
  if (!run('nft', ['--version']).ok) return (support = { ok: false, reason: 'nft is not installed (apt-get install -y nftables)' });
  const probe = withNamespace((ns) => run('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']));
  support = probe.ok ? { ok: true } : { ok: false, reason: `cannot use a network namespace: ${probe.out.trim()}` };
  return support;
}

function withNamespace<T extends { ok: boolean; out: string }>(f: (ns: string) => T): T | { ok: false; out: string } {
  const ns = `svcpath-${process.pid}-nftc${counter++}`;
  const made = run('ip', ['netns', 'add', ns]);
  if (!made.ok) return made as { ok: false; out: string };
  try {
    return f(ns);
  } finally {
    run('ip', ['netns', 'delete', ns]);
  }
}

/** `nft -c -f` on `text` in a fresh namespace: ok, or nft's complaint; and how long nft took (ms). */
export function nftCheck(text: string): { ok: boolean; out: string; ms: number } {
  const dir = mkdtempSync(join(tmpdir(), 'svcpath-nft-'));
  const file = join(dir, 'ruleset.nft');
  writeFileSync(file, text);
  try {
    let ms = 0;
    const r = withNamespace((ns) => {
      const t0 = performance.now();
      const out = run('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', file]);
      ms = performance.now() - t0;
      return out;
    });
    return { ...r, ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
