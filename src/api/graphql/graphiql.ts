/**
 * GraphiQL at /graphiql, served whole by svcpath: the page, React, ReactDOM and GraphiQL come
 * from the npm packages this project depends on (react, react-dom, graphiql, versions pinned in
 * package.json), so the IDE works where there is no internet. mercurius's own page cannot: its
 * main.js loads React and GraphiQL from a CDN, at fixed URLs, so it is turned off (`graphiql:
 * false`) and this plugin takes its path.
 *
 * The page's Content-Security-Policy lets it load nothing from another origin.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);

/** Each asset the page loads: the package it comes from and its file there. */
const ASSETS = Object.freeze({
  'react.production.min.js': { pkg: 'react', file: 'umd/react.production.min.js', type: 'text/javascript; charset=utf-8' },
  'react-dom.production.min.js': { pkg: 'react-dom', file: 'umd/react-dom.production.min.js', type: 'text/javascript; charset=utf-8' },
  'graphiql.min.js': { pkg: 'graphiql', file: 'graphiql.min.js', type: 'text/javascript; charset=utf-8' },
  'graphiql.min.css': { pkg: 'graphiql', file: 'graphiql.min.css', type: 'text/css; charset=utf-8' },
});
type AssetName = keyof typeof ASSETS;

/** The page's own script: GraphiQL against /graphql (the page is at /graphiql, so `graphql` resolves beside it). */
const MAIN = `(function () {
  var fetcher = GraphiQL.createFetcher({ url: new URL('graphql', window.location.href).href });
  var query = '# Clusters and their latest snapshots; trace, audit and diff are fields of Snapshot and Query.\\n' +
    '{\\n  clusters {\\n    name\\n    snapshotCount\\n    latest { id version createdAt }\\n  }\\n}\\n';
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultQuery: query, shouldPersistHeaders: false })
  );
})();
`;

const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>svcpath · GraphiQL</title>
  <meta name="robots" content="noindex">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="graphiql/assets/graphiql.min.css">
  <style>body { margin: 0; overflow: hidden; } #graphiql { height: 100vh; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="graphiql/assets/react.production.min.js"></script>
  <script src="graphiql/assets/react-dom.production.min.js"></script>
  <script src="graphiql/assets/graphiql.min.js"></script>
  <script src="graphiql/main.js"></script>
</body>
</html>
`;

/**
 * Nothing from another origin. GraphiQL sets style attributes and injects <style> elements, and
 * its fonts are data: URLs in its CSS.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function assetPath(name: AssetName): string {
  const { pkg, file } = ASSETS[name];
  return join(dirname(require.resolve(`${pkg}/package.json`)), file);
}

export async function graphiqlRoutes(app: FastifyInstance): Promise<void> {
  // Read on first use and kept: 4 MB in all, the same for every request.
  const cache = new Map<AssetName, Promise<Buffer>>();
  const load = (name: AssetName): Promise<Buffer> => {
    let body = cache.get(name);
    if (!body) {
      body = readFile(assetPath(name));
      cache.set(name, body);
    }
    return body;
  };

  app.get('/graphiql', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', CSP).header('cache-control', 'no-cache').send(PAGE));
  app.get('/graphiql/main.js', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(MAIN));
  app.get<{ Params: { file: AssetName } }>(
    '/graphiql/assets/:file',
    {
      schema: {
        hide: true,
        params: { type: 'object', properties: { file: { type: 'string', enum: Object.keys(ASSETS) } }, required: ['file'] },
      },
    },
    async (request, reply) => {
      const name = request.params.file;
      return reply.type(ASSETS[name].type).header('cache-control', 'public, max-age=86400').send(await load(name));
    },
  );
}
