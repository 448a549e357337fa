/**
 * Authentication and authorization for every route, and the refusal of cross-site writes.
 *
 * Each route's needs are one line of ROUTE_ACCESS below; a route missing from it needs `admin`
 * (a test lists every route of the app and fails on one missing, so a new route is a decision).
 * Everything is decided in `onRequest`, before a body is read: an upload refused is never buffered.
 * GraphQL requests are authenticated here; each query and mutation field is authorized in
 * api/graphql/access.ts.
 *
 * Cross-site writes. A browser adds no Authorization: Bearer header to a request another site
 * makes it send without a CORS preflight (which this server never grants), but it may send a form
 * post (urlencoded, multipart or text/plain) or a simple fetch to 127.0.0.1 while requests are
 * anonymous. So a state-changing request without a bearer token is refused when the browser says
 * it is cross-site: `Sec-Fetch-Site` other than same-origin or none, or an `Origin` (or, without
 * one, a `Referer`) naming another host. With tokens configured such a request is refused anyway
 * (401). While requests are anonymous, their Host must be a loopback name, which a page that
 * rebinds its own name to 127.0.0.1 (DNS rebinding) cannot send. GraphQL mutations over GET are
 * refused by mercurius (405); over a form post, by the rules above, or as an unknown content type (415).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../../app-error.ts';
import { allows, authorize, isLoopbackHostHeader } from '../../services/access.ts';
import type { AccessRule, Authenticator, ClusterOwners, Principal } from '../../services/access.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request; null on public routes and in apps built without access control. */
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Every route registered, with what it needs (for the test that no route is left to the default). */
    readonly accessByRoute: ReadonlyArray<{ readonly method: string; readonly url: string; readonly listed: boolean; readonly access: RouteAccess }>;
  }
}

export type RouteAccess =
  | { readonly kind: 'public' }
  /** Authenticated here, each field authorized by the GraphQL layer. */
  | { readonly kind: 'graphql' }
  | ({ readonly kind: 'rule' } & AccessRule);

const PUBLIC: RouteAccess = { kind: 'public' };
const rule = (r: AccessRule): RouteAccess => ({ kind: 'rule', ...r });
const READ_SNAPSHOT = rule({ scope: 'read', snapshots: ['id'] });
const WRITE_UPLOAD = rule({ scope: 'write', upload: 'id' });
const ADMIN = rule({ scope: 'admin' });

/** Every route, by method and path as registered. HEAD follows GET. */
export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = Object.freeze({
  'GET /health': PUBLIC,
  'POST /v1/trace': rule({ scope: 'read' }),
  'GET /v1/clusters': rule({ scope: 'read', filter: 'clusters' }),
  'GET /v1/clusters/:cluster/snapshots': rule({ scope: 'read', cluster: 'cluster' }),
  'POST /v1/clusters/:cluster/snapshots': rule({ scope: 'write', cluster: 'cluster' }),
  'GET /v1/clusters/:cluster/snapshots/latest': rule({ scope: 'read', cluster: 'cluster' }),
  'GET /v1/clusters/:cluster/snapshots/:version': rule({ scope: 'read', cluster: 'cluster' }),
  'GET /v1/snapshots/:id': READ_SNAPSHOT,
  'GET /v1/snapshots/:id/nodes/:node/rules': READ_SNAPSHOT,
  'GET /v1/snapshots/:id/nodes/:node/rules6': READ_SNAPSHOT,
  'GET /v1/snapshots/:id/trace': READ_SNAPSHOT,
  'GET /v1/snapshots/:id/audit': READ_SNAPSHOT,
  'DELETE /v1/snapshots/:id': ADMIN,
  'GET /v1/diff': rule({ scope: 'read', snapshots: ['from', 'to'] }),
  'POST /v1/clusters/:cluster/uploads': rule({ scope: 'write', cluster: 'cluster' }),
  'GET /v1/uploads/:id': WRITE_UPLOAD,
  'PUT /v1/uploads/:id/nodes/:node': WRITE_UPLOAD,
  'PUT /v1/uploads/:id/nodes/:node/rules6': WRITE_UPLOAD,
  'PUT /v1/uploads/:id/nodes/:node/routes': WRITE_UPLOAD,
  'PUT /v1/uploads/:id/manifests': WRITE_UPLOAD,
  'POST /v1/uploads/:id/commit': WRITE_UPLOAD,
  'DELETE /v1/uploads/:id': WRITE_UPLOAD,
  'POST /v1/tokens': ADMIN,
  'GET /v1/tokens': ADMIN,
  'DELETE /v1/tokens/:id': ADMIN,
  'GET /graphql': { kind: 'graphql' },
  'POST /graphql': { kind: 'graphql' },
});

/**
 * Static pages: the OpenAPI UI and document, GraphiQL and its assets, the web page at /ui/ and `/`,
 * which redirects to it (what the pages ask of /v1 and /graphql is authorized as usual).
 */
const PUBLIC_PREFIXES = ['/docs', '/graphiql', '/ui'];

export function routeAccess(method: string, url: string): RouteAccess {
  const m = method === 'HEAD' ? 'GET' : method;
  const listed = ROUTE_ACCESS[`${m} ${url}`];
  if (listed) return listed;
  if (url === '/' || PUBLIC_PREFIXES.some((p) => url === p || url.startsWith(`${p}/`))) return PUBLIC;
  return ADMIN;
}

function describe(access: RouteAccess): string {
  if (access.kind !== 'rule') return '';
  if (access.scope === 'admin') return 'Needs the `admin` scope.';
  const on = access.cluster ? ' on the cluster' : access.snapshots ? (access.snapshots.length === 1 ? " on the snapshot's cluster" : " on both snapshots' clusters") : access.upload ? " on the upload's cluster" : '';
  return `Needs the \`${access.scope}\` scope${on}.${access.filter ? ' Lists only the clusters the token may read.' : ''}`;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Why a request looks like a browser's on behalf of another site, or null. */
export function crossSiteReason(request: FastifyRequest): string | null {
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  const host = request.headers.host ?? '';
  const origin = request.headers.origin;
  if (typeof origin === 'string') return sameHost(origin, host) ? null : `Origin: ${origin}`;
  const referer = request.headers.referer;
  if (typeof referer === 'string' && referer !== '' && !sameHost(referer, host)) return 'Referer from another site';
  return null;
}

function sameHost(url: string, host: string): boolean {
  try {
    return new URL(url).host === host.toLowerCase();
  } catch {
    return false; // 'null', or not a URL
  }
}

export interface AccessOptions {
  readonly authenticator: Authenticator;
  readonly owners: ClusterOwners;
}

async function accessPlugin(app: FastifyInstance, opts: AccessOptions): Promise<void> {
  const { authenticator, owners } = opts;
  app.decorateRequest('principal', null);
  const routes: Array<{ method: string; url: string; listed: boolean; access: RouteAccess }> = [];
  app.decorate('accessByRoute', routes);

  // The OpenAPI document says what each route needs (securitySchemes are set in app.ts).
  app.addHook('onRoute', (route: RouteOptions) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      const key = `${method === 'HEAD' ? 'GET' : method} ${route.url}`;
      routes.push({ method, url: route.url, listed: Object.hasOwn(ROUTE_ACCESS, key), access: routeAccess(method, route.url) });
    }
    const schema = route.schema as Record<string, unknown> | undefined;
    if (!schema || schema.hide) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const access = routeAccess(methods[0], route.url);
    if (access.kind === 'public') {
      schema.security = [];
      return;
    }
    if (access.kind !== 'rule') return;
    const needs = describe(access);
    // A GET's HEAD route shares its schema: say it once.
    const said = typeof schema.description === 'string' ? schema.description : '';
    if (needs && !said.endsWith(needs)) schema.description = said ? `${said}\n\n${needs}` : needs;
    const response = schema.response as Record<string, unknown> | undefined;
    if (response) {
      response[401] ??= { $ref: 'Problem#' };
      response[403] ??= { $ref: 'Problem#' };
    }
  });

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const access = routeAccess(request.method, request.routeOptions.url ?? '');
    if (access.kind === 'public') return;
    try {
      const authorization = request.headers.authorization;
      const bearer = typeof authorization === 'string' && /^bearer /i.test(authorization);
      if (!SAFE_METHODS.has(request.method) && !bearer) {
        const why = crossSiteReason(request);
        if (why) throw new AppError('FORBIDDEN', `cross-site request refused (${why}): a browser page may not change anything here; clients send a bearer token`);
      }
      const principal = await authenticator.authenticate(authorization);
      if (principal.kind === 'anonymous' && authenticator.policy.mode === 'auto' && !isLoopbackHostHeader(request.headers.host ?? 'localhost')) {
        throw new AppError('FORBIDDEN', `anonymous requests are answered only when addressed to a loopback name (localhost, 127.0.0.1), not '${request.headers.host}': send a token`);
      }
      request.principal = principal;
      if (access.kind === 'rule') await authorize(principal, access, { ...fieldsOf(request.query), ...fieldsOf(request.params) }, owners);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      if (e.code === 'UNAUTHENTICATED') void reply.header('www-authenticate', 'Bearer realm="svcpath"');
      if (access.kind !== 'graphql') throw e;
      // A GraphQL client reads `errors`, not problem details.
      return reply.status(e.status).type('application/json').send({ data: null, errors: [{ message: e.message, extensions: { code: e.code } }] });
    }
  });

  app.addHook('preSerialization', async (request: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
    const access = routeAccess(request.method, request.routeOptions.url ?? '');
    const p = request.principal;
    if (access.kind !== 'rule' || access.filter !== 'clusters' || !p) return payload;
    const page = payload as { items?: Array<{ name: string }> };
    if (!Array.isArray(page?.items)) return payload;
    return { ...page, items: page.items.filter((c) => allows(p, 'read', c.name)) };
  });
}

/**
 * The query string's or path's values as the router parsed them: this hook runs for every route,
 * before its schema validates (and types) them.
 */
function fieldsOf(part: unknown): Readonly<Record<string, unknown>> {
  return typeof part === 'object' && part !== null ? Object.fromEntries(Object.entries(part)) : {};
}

export const accessControl = fp(accessPlugin, { name: 'svcpath-access' });
