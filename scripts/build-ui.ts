/**
 * Builds the web page (web/) into dist/ui/: index.html, app.js and app.css, bundled by esbuild
 * from the npm packages in package.json, so the page needs nothing from another origin. Run by
 * `npm install` (postinstall) and by `npm run build:ui`; src/api/ui/ui-routes.ts serves the result.
 */
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const UI_DIST = join(root, 'dist', 'ui');

/** Writes the page into `outdir` (default dist/ui) and returns the files written. */
export async function buildUi(outdir: string = UI_DIST): Promise<string[]> {
  await mkdir(outdir, { recursive: true });
  const result = await build({
    entryPoints: { app: join(root, 'web', 'src', 'main.tsx') },
    outdir,
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  });
  await copyFile(join(root, 'web', 'index.html'), join(outdir, 'index.html'));
  return ['index.html', ...Object.keys(result.metafile.outputs).map((f) => f.slice(f.lastIndexOf('/') + 1))];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const files = await buildUi();
  console.log(`web page built into dist/ui: ${files.join(', ')}`);
}
