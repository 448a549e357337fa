/**
 * Snapshot routes under /v1: upload (JSON or multipart, gzip accepted), list, fetch, raw dump,
 * delete, and traces through a stored snapshot. Handlers only translate HTTP to the service.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Static } from 'typebox';
import { AppError, isDatabaseUnavailable } from '../../app-error.ts';
import type { FormatOption } from '../../engine/index.ts';
import type { CreateResult, SnapshotService } from '../../services/snapshot-types.ts';
import { storedTraceQuery } from '../trace-query.ts';
import { unsupportedMediaType } from './errors.ts';
import { Gathered } from './raw-body.ts';
import {
  auditReportSchema, clusterSchema, createSnapshotResultSchema, diffPageSchema, ENTRIES, port, PORT_RANGE, problem, protocolInput, snapshotPageSchema, snapshotSchema,
  snapshotTraceSchema, snapshotUploadSchema,
} from './schemas.ts';
import { jsonBytes, list, oneOf, ref, refOrBytes } from './schema-kit.ts';

const errors = { 400: problem, 404: problem, 413: problem, 415: problem };
const clusterParams = Type.Object({ cluster: Type.String() });
const idParams = Type.Object({ id: Type.String() });
const nodeParams = Type.Object({ id: Type.String(), node: Type.String() });

type SnapshotUploadBody = Static<typeof snapshotUploadSchema>;

/**
 * Page sizes. A query without `limit` has it filled from `default` by the validator; the handlers
 * read the same default because the type of an optional query field does not know that.
 */
const SNAPSHOT_PAGE = { minimum: 1, maximum: 500, default: 20 } as const;
const DIFF_PAGE = { minimum: 1, maximum: 1000, default: 100 } as const;

/** A dump sent back byte for byte: text to OpenAPI, the stored bytes to the handler. */
const rawText = (description: string) => Type.Unsafe<string | Buffer>({ type: 'string', description });

/**
 * The body of `POST /v1/clusters/:cluster/snapshots` as the route takes it: JSON (validated
 * against SnapshotUpload) or multipart, read part by part in the handler.
 */
const createSnapshotBody = Type.Unsafe<SnapshotUploadBody | Buffer | string | null | undefined>({
  content: {
    'application/json': { schema: ref(snapshotUploadSchema) },
    'multipart/form-data': { schema: { description: 'parts as described above' } },
  },
});

/** A JSON upload: an object that is not a raw body (fastify has validated it against SnapshotUpload). */
function isJsonUpload(body: SnapshotUploadBody | Buffer | string | null | undefined): body is SnapshotUploadBody {
  return body !== null && typeof body === 'object' && !Buffer.isBuffer(body);
}

export interface UploadLimits {
  /** Largest node dump or manifests, after gzip is inflated. */
  readonly partBytes: number;
  /** Largest multipart upload in all, after gzip is inflated. */
  readonly totalBytes: number;
}

interface MultipartPart {
  readonly type: 'file' | 'field';
  readonly fieldname: string;
  readonly value?: unknown;
  readonly file?: Readable;
}

const GZIP_MAGIC = [0x1f, 0x8b];
/** The part name suffix of a dual-stack node's IPv6 dump: `node-a.v6` beside `node-a`. */
const V6_SUFFIX = '.v6';

/**
 * A part's bytes, gzip inflated as a stream when the part starts with gzip's magic number, and
 * refused with 413 as soon as it passes `limit`. The request stream is drained by the caller.
 */
async function readPart(part: MultipartPart, limit: number, name: string): Promise<Buffer> {
  if (part.type === 'field') {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a field part's value is the field's text (@fastify/multipart types it unknown)
    const text = Buffer.from(String(part.value ?? ''), 'utf8');
    if (text.length > limit) throw tooLarge(name, limit);
    return text;
  }
  if (!part.file) return Buffer.alloc(0);
  const it = (part.file as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const head = await it.next();
  if (head.done) return Buffer.alloc(0);
  async function* all(): AsyncGenerator<Buffer> {
    yield head.value;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  // Large parts end in shared memory, copied there a few megabytes a turn (raw-body.ts).
  const body = new Gathered();
  let over: AppError | null = null;
  async function collect(source: AsyncIterable<Buffer>): Promise<void> {
    for await (const b of source) {
      if (body.length + b.length > limit) throw (over = tooLarge(name, limit));
      body.push(b);
    }
  }
  const gzipped = head.value.length >= 2 && head.value[0] === GZIP_MAGIC[0] && head.value[1] === GZIP_MAGIC[1];
  if (!gzipped) await collect(all());
  else {
    try {
      await pipeline(Readable.from(all()), createGunzip(), collect);
    } catch (e) {
      // The pipeline reports the limit as an abort: say what it was.
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- over is an AppError set inside collect(); TypeScript's narrowing cannot see that assignment and calls it never
      if (over) throw over;
      throw new AppError('VALIDATION', `part '${name}' is not valid gzip: ${(e as Error).message}`);
    }
  }
  return body.bytes();
}

function tooLarge(name: string, limit: number): AppError {
  return new AppError('PAYLOAD_TOO_LARGE', `part '${name}' is larger than ${Math.round(limit / 1048576)} MiB (inflated); raise the limit or upload in steps`, { part: name, limit });
}

/**
 * multipart/form-data, for curl from CI, read part by part: each node's dump is checked and stored
 * as it arrives, so the upload is never held whole.
 *   <node name>            a node's dump (file or field), one part per node; gzip allowed
 *   <node name>.v6         a dual-stack node's IPv6 dump (ip6tables-save output), before or after its dump
 *   addresses.<node>       the node's addresses, comma or space separated (before or after its dump)
 *   routes.<node>          the node's `ip route` output (before or after its dump)
 *   format.<node>          auto | iptables-save | iptables-S | nftables;  table.<node>: for iptables -S (before its dump;
 *                          format.<node>.v6 and table.<node>.v6 for its IPv6 dump)
 *   manifests              kubectl get … -o json|yaml output
 *   labels                 a JSON object, or label.<key>=<value> fields
 */
async function streamMultipart(request: FastifyRequest, service: SnapshotService, cluster: string, limits: UploadLimits): Promise<CreateResult> {
  const upload = await service.beginUpload(cluster);
  try {
    const addresses = new Map<string, string[]>();
    const routes = new Map<string, Buffer>();
    const formats = new Map<string, string>();
    const tables = new Map<string, string>();
    const staged = new Set<string>();
    /** IPv6 dumps: sent when their node's dump is staged (or now, when it is). */
    const ipv6 = new Map<string, { part: string; content: Buffer; sent: boolean }>();
    const putIpv6 = async (node: string) => {
      const d = ipv6.get(node)!;
      const key = `${node}.v6`;
      await service.putNodeRules6(upload.id, node, {
        rules: d.content,
        ...(formats.has(key) ? { format: formats.get(key) as FormatOption } : {}),
        ...(tables.has(key) ? { table: tables.get(key) } : {}),
      });
      d.sent = true;
    };
    const labels: Record<string, string> = {};
    let total = 0;
    const parts: AsyncIterable<MultipartPart> = request.parts();
    for await (const part of parts) {
      const name = part.fieldname;
      const content = await readPart(part, Math.min(limits.partBytes, limits.totalBytes - total), name);
      total += content.length;
      const dot = name.indexOf('.');
      const prefix = dot > 0 ? name.slice(0, dot) : '';
      const rest = dot > 0 ? name.slice(dot + 1) : '';
      if (name === 'manifests') await service.putManifests(upload.id, content);
      else if (name === 'labels') {
        let parsed: unknown;
        try {
          parsed = JSON.parse(content.toString('utf8'));
        } catch {
          throw new AppError('VALIDATION', "the 'labels' part must be a JSON object of strings");
        }
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new AppError('VALIDATION', "the 'labels' part must be a JSON object");
        for (const [k, v] of Object.entries(parsed)) Object.defineProperty(labels, k, { value: v, enumerable: true, writable: true, configurable: true });
      } else if (prefix === 'label') labels[rest] = content.toString('utf8');
      else if (prefix === 'addresses') {
        const list = content.toString('utf8').split(/[\s,]+/).filter(Boolean);
        addresses.set(rest, list);
        if (staged.has(rest)) await service.setNodeAddresses(upload.id, rest, list);
      } else if (prefix === 'routes') {
        routes.set(rest, content);
        if (staged.has(rest)) await service.putNodeRoutes(upload.id, rest, content);
      } else if (prefix === 'format' || prefix === 'table') {
        const sent6 = rest.endsWith(V6_SUFFIX) && ipv6.get(rest.slice(0, -V6_SUFFIX.length))?.sent === true;
        if (staged.has(rest) || sent6) throw new AppError('VALIDATION', `send the '${name}' part before the '${rest}' part`);
        (prefix === 'format' ? formats : tables).set(rest, content.toString('utf8').trim());
      } else if (name.endsWith(V6_SUFFIX) && name.length > V6_SUFFIX.length) {
        const node = name.slice(0, -V6_SUFFIX.length);
        if (ipv6.has(node)) throw new AppError('VALIDATION', `part '${name}' appears twice: node ${node} has one IPv6 dump`, { part: name, node });
        ipv6.set(node, { part: name, content, sent: false });
        if (staged.has(node)) await putIpv6(node);
      } else {
        if (staged.has(name)) throw new AppError('VALIDATION', `part '${name}' appears twice: node ${name} has one dump of each family (its IPv6 dump goes in a part '${name}${V6_SUFFIX}')`, { part: name, node: name });
        await service.putNode(upload.id, {
          name, rules: content, addresses: addresses.get(name) ?? [],
          ...(routes.has(name) ? { routes: routes.get(name) } : {}),
          ...(formats.has(name) ? { format: formats.get(name) as FormatOption } : {}),
          ...(tables.has(name) ? { table: tables.get(name) } : {}),
        });
        staged.add(name);
        if (ipv6.has(name)) await putIpv6(name);
      }
    }
    for (const [node, d] of ipv6) {
      if (!d.sent) throw new AppError('VALIDATION', `part '${d.part}' is node ${node}'s IPv6 dump, but no part '${node}' holds its IPv4 dump`, { part: d.part, node });
    }
    const ipv6Key = (key: string) => key.endsWith(V6_SUFFIX) && ipv6.has(key.slice(0, -V6_SUFFIX.length));
    for (const key of [...addresses.keys(), ...routes.keys(), ...[...formats.keys(), ...tables.keys()].filter((k) => !ipv6Key(k))]) {
      if (!staged.has(key)) throw new AppError('VALIDATION', `a part names node '${key}' but no dump part is named '${key}'`);
    }
    // Read whole: the connection may now be quiet while the commit runs (see app.ts).
    request.raw.socket?.setTimeout?.(0);
    return await service.commitUpload(upload.id, labels);
  } catch (e) {
    await service.abortUpload(upload.id).catch(() => {});
    // busboy's own complaints (a body cut short, no boundary) are the client's: say so.
    if ((e as Error)?.constructor === Error && (e as { statusCode?: number }).statusCode === undefined && !isDatabaseUnavailable(e)) {
      throw new AppError('VALIDATION', `malformed multipart body: ${(e as Error).message}`);
    }
    throw e;
  }
}

export async function snapshotRoutes(plain: FastifyInstance, opts: { snapshotService: SnapshotService; limits: UploadLimits }): Promise<void> {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const service = opts.snapshotService;

  app.post('/v1/clusters/:cluster/snapshots', {
    schema: {
      tags: ['snapshots'],
      operationId: 'createSnapshot',
      summary: 'Upload a snapshot: every node\'s rule dump, optionally the manifests',
      description:
        'JSON, or multipart/form-data (one part per node dump named by the node; a dual-stack node\'s IPv6 dump (ip6tables-save output) in a part `<node>.v6`; `addresses.<node>`, `routes.<node>` (ip route output), `format.<node>`, `table.<node>`, `manifests`, `labels` or `label.<key>` parts). In JSON a dual-stack node has `rules` and `rules6`, or `rules` as a list of its two dumps. A part or node given twice is refused (400). Bodies may be gzip-compressed (Content-Encoding: gzip). Uploading the same content again returns the stored snapshot with 200.',
      params: clusterParams,
      body: createSnapshotBody,
      response: { 201: ref(createSnapshotResultSchema), 200: ref(createSnapshotResultSchema), ...errors },
    },
    handler: async (request, reply) => {
      const { cluster } = request.params;
      const body = request.body;
      let result: CreateResult;
      if (request.isMultipart()) result = await streamMultipart(request, service, cluster, opts.limits);
      else if (isJsonUpload(body)) {
        // A node without addresses has none (the service's NodeUpload takes them as a list).
        result = await service.create(cluster, { ...body, nodes: body.nodes.map((n) => ({ ...n, addresses: n.addresses ?? [] })) });
      }
      else {
        // A raw dump sent as text is not an upload of this form: say which forms are.
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', `${unsupportedMediaType(request)}; one node's raw dump goes in the step-wise upload: POST /v1/clusters/${cluster}/uploads, then PUT /v1/uploads/{id}/nodes/{node}`);
      }
      return reply.status(result.created ? 201 : 200).send(result);
    },
  });

  app.get('/v1/clusters', {
    schema: {
      tags: ['snapshots'],
      operationId: 'listClusters',
      summary: 'Clusters with their snapshot counts and latest snapshot',
      response: { 200: Type.Object({ items: Type.Optional(list(ref(clusterSchema))) }) },
    },
    handler: async () => ({ items: await service.listClusters() }),
  });

  app.get('/v1/clusters/:cluster/snapshots', {
    schema: {
      tags: ['snapshots'],
      operationId: 'listSnapshots',
      summary: "A cluster's snapshots, newest first",
      params: clusterParams,
      querystring: Type.Object({
        limit: Type.Optional(Type.Integer(SNAPSHOT_PAGE)),
        cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page' })),
      }, { additionalProperties: false }),
      response: { 200: ref(snapshotPageSchema), ...errors },
    },
    handler: async (request) => {
      const { limit = SNAPSHOT_PAGE.default, cursor } = request.query;
      return service.listSnapshots(request.params.cluster, { limit, cursor });
    },
  });

  app.get('/v1/clusters/:cluster/snapshots/latest', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getLatestSnapshot',
      summary: "A cluster's latest snapshot, or the latest at a time",
      description: 'With `at`, the snapshot that was the latest at that time: "which pod did it reach yesterday at 10:00". Wherever a snapshot id is taken (`/v1/snapshots/{id}/…`, `from` and `to` of a diff, GraphQL `snapshot(id:)`), a reference works too: `CLUSTER@latest`, `CLUSTER@VERSION` or `CLUSTER@TIME`.',
      params: clusterParams,
      querystring: Type.Object({
        at: Type.Optional(Type.String({ format: 'date-time', description: 'ISO 8601, e.g. 2026-12-01T10:00:00Z' })),
      }, { additionalProperties: false }),
      response: { 200: ref(snapshotSchema), ...errors },
    },
    handler: async (request) => service.get(`${request.params.cluster}@${request.query.at ?? 'latest'}`),
  });

  app.get('/v1/clusters/:cluster/snapshots/:version', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getSnapshotVersion',
      summary: "A cluster's snapshot by version",
      params: Type.Object({ cluster: Type.String(), version: Type.Integer({ minimum: 1 }) }),
      response: { 200: ref(snapshotSchema), ...errors },
    },
    handler: async (request) => service.get(`${request.params.cluster}@${request.params.version}`),
  });

  app.get('/v1/snapshots/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getSnapshot',
      summary: 'One snapshot with its nodes',
      description: 'By id, or by reference: `CLUSTER@latest`, `CLUSTER@VERSION`, `CLUSTER@TIME` (ISO 8601: the latest snapshot at that time).',
      params: Type.Object({ id: Type.String({ description: 'a snapshot id, or CLUSTER@latest, CLUSTER@VERSION, CLUSTER@TIME' }) }),
      response: { 200: ref(snapshotSchema), ...errors },
    },
    handler: async (request) => service.get(request.params.id),
  });

  app.get('/v1/snapshots/:id/nodes/:node/rules', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getNodeRules',
      summary: "A node's rule dump, byte for byte as uploaded",
      params: nodeParams,
      produces: ['text/plain'],
      response: { 200: rawText('the dump'), ...errors },
    },
    handler: async (request, reply) => {
      const raw = await service.rawRules(request.params.id, request.params.node);
      return reply.type('text/plain; charset=utf-8').send(raw);
    },
  });

  app.get('/v1/snapshots/:id/nodes/:node/rules6', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getNodeRules6',
      summary: "A dual-stack node's IPv6 dump (ip6tables-save output), byte for byte as uploaded",
      description: '404 when the node was uploaded without one (its only dump is at `…/nodes/{node}/rules`).',
      params: nodeParams,
      produces: ['text/plain'],
      response: { 200: rawText('the IPv6 dump'), ...errors },
    },
    handler: async (request, reply) => {
      return reply.type('text/plain; charset=utf-8').send(await service.rawRules6(request.params.id, request.params.node));
    },
  });

  app.delete('/v1/snapshots/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'deleteSnapshot',
      summary: 'Delete a snapshot (its version number is not reused)',
      params: idParams,
      response: { 204: Type.Null({ description: 'deleted' }), ...errors },
    },
    handler: async (request, reply) => {
      await service.delete(request.params.id);
      return reply.status(204).send(null);
    },
  });

  app.get('/v1/diff', {
    schema: {
      tags: ['diff'],
      operationId: 'diffSnapshots',
      summary: 'What changed from snapshot `from` to snapshot `to`: where traffic goes, rules, manifests',
      description: 'The summary counts every change; the lists are paginated together (`limit` entries of each, `cursor` for the next page). Unchanged frontends are counted, not listed. Computed once per pair and kept.',
      querystring: Type.Object({
        from: Type.String(),
        to: Type.String(),
        node: Type.Optional(Type.String({ description: 'diff only this node' })),
        limit: Type.Optional(Type.Integer(DIFF_PAGE)),
        cursor: Type.Optional(Type.String()),
      }, { additionalProperties: false }),
      response: { 200: refOrBytes(diffPageSchema), ...errors },
    },
    // A page of a diff holds megabytes of paths; the service writes it from the texts it keeps.
    handler: async (request, reply) => {
      const page = await service.diffJson({ ...request.query, limit: request.query.limit ?? DIFF_PAGE.default });
      return reply.type('application/json; charset=utf-8').send(page);
    },
  });

  app.get('/v1/snapshots/:id/audit', {
    schema: {
      tags: ['audit'],
      operationId: 'auditSnapshot',
      summary: 'Where the rules and the manifests disagree, per node',
      description: 'Expected behaviour (traffic policies doing what they say, a Service without endpoints rejecting) is `info`; disagreements between rules and manifests are `error` or `warning`. Needs manifests in the snapshot.',
      params: idParams,
      response: { 200: refOrBytes(auditReportSchema), ...errors },
    },
    // A cluster's report lists thousands of findings (20 nodes of 2,000 Services: 1.4 MB): jsonBytes.
    handler: async (request, reply) => {
      const report = await service.audit(request.params.id);
      return reply.type('application/json; charset=utf-8').send(jsonBytes(report));
    },
  });

  app.get('/v1/snapshots/:id/trace', {
    schema: {
      tags: ['trace'],
      operationId: 'traceSnapshot',
      summary: 'Trace a packet through a stored snapshot, on one node or on every node',
      params: idParams,
      querystring: Type.Object({
        destination: Type.Optional(Type.String({ description: 'the packet\'s destination: ip (and give port), ip:port or [ipv6]:port; or give service' })),
        port: Type.Optional(Type.String({
          pattern: '^[0-9]+$|^[a-z0-9]([a-z0-9-]*[a-z0-9])?$',
          description: `destination port (${PORT_RANGE.minimum} to ${PORT_RANGE.maximum}), unless destination names it; with service, the Service port's number or name`,
        })),
        service: Type.Optional(Type.String({ description: 'ns/name: trace every frontend of this Service port on every node (needs manifests)' })),
        protocol: Type.Optional(protocolInput({ description: 'default tcp' })),
        source: Type.Optional(Type.String({ description: 'default 203.0.113.10, or 2001:db8::10 for an IPv6 destination (outside the cluster)' })),
        node: Type.Optional(Type.String({ description: 'default: every node of the snapshot' })),
        entry: Type.Optional(oneOf(ENTRIES)),
        sourcePort: Type.Optional(port()),
        inInterface: Type.Optional(Type.String()),
      }, { additionalProperties: false }),
      response: { 200: refOrBytes(snapshotTraceSchema), ...errors },
    },
    // An all-node trace of a Service with many endpoints answers with megabytes (jsonBytes).
    handler: async (request, reply) => {
      const answer = await service.trace(request.params.id, storedTraceQuery(request.query));
      return reply.type('application/json; charset=utf-8').send(jsonBytes(answer));
    },
  });
}
