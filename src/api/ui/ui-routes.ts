/**
 * The web page at /ui/ (built into dist/ui/ by scripts/build-ui.ts at `npm install`): every path
 * under /ui/ answers the page, which reads the view from its URL, so a link to a trace or a diff
 * reloads to the same view; /ui/assets/ holds its script and style sheet. `/` redirects here.
 *
 * The files are public (routeAccess in api/rest/access.ts); what the page asks of /v1 and
 * /graphql is authorized as any client's request. Its Content-Security-Policy lets it load and
 * ask nothing from another origin.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../app-error.ts';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'dist', 'ui');

const ASSETS = Object.freeze({
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
});
type AssetName = keyof typeof ASSETS;

/** Styles are set through the DOM (element.style), which style-src 'self' allows. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export async function uiRoutes(app: FastifyInstance, opts: { dist?: string } = {}): Promise<void> {
  const dist = opts.dist ?? DIST;
  // Read on each request: `npm run build:ui` takes effect without a restart, and the files are small.
  const file = async (name: string): Promise<Buffer> => {
    try {
      return await readFile(join(dist, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      throw new AppError('UNAVAILABLE', `the web page is not built (${name} missing in dist/ui): run npm run build:ui`);
    }
  };
  const page = async () => file('index.html');

  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui/*', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', CSP).header('cache-control', 'no-cache').send(await page()));
  app.get<{ Params: { file: AssetName } }>(
    '/ui/assets/:file',
    {
      schema: {
        hide: true,
        params: { type: 'object', properties: { file: { type: 'string', enum: Object.keys(ASSETS) } }, required: ['file'] },
      },
    },
    async (request, reply) =>
      reply.type(ASSETS[request.params.file]).header('cache-control', 'no-cache').send(await file(request.params.file)),
  );
}
