/**
 * Snapshot routes under /v1: upload (JSON or multipart, gzip accepted), list, fetch, raw dump,
 * delete, and traces through a stored snapshot. Handlers only translate HTTP to the service.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, isDatabaseUnavailable } from '../../app-error.ts';
import type { Entry, FormatOption } from '../../engine/index.ts';
import type { CreateResult, SnapshotService, SnapshotUpload } from '../../services/snapshot-types.ts';
import { unsupportedMediaType } from './errors.ts';

const problem = { $ref: 'Problem#' };
const errors = { 400: problem, 404: problem, 413: problem, 415: problem };

export interface UploadLimits {
  /** Largest node dump or manifests, after gzip is inflated. */
  readonly partBytes: number;
  /** Largest multipart upload in all, after gzip is inflated. */
  readonly totalBytes: number;
}

interface MultipartPart {
  type: 'file' | 'field';
  fieldname: string;
  value?: unknown;
  file?: Readable;
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
  const it = (part.file as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const head = await it.next();
  if (head.done) return Buffer.alloc(0);
  async function* all(): AsyncGenerator<Buffer> {
    yield head.value;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let over: AppError | null = null;
  async function collect(source: AsyncIterable<Buffer>): Promise<void> {
    for await (const b of source) {
      size += b.length;
      if (size > limit) throw (over = tooLarge(name, limit));
      chunks.push(b);
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
  return Buffer.concat(chunks, size);
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
    const parts = (request as unknown as { parts(): AsyncIterable<MultipartPart> }).parts();
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

export async function snapshotRoutes(app: FastifyInstance, opts: { snapshotService: SnapshotService; limits: UploadLimits }): Promise<void> {
  const service = opts.snapshotService;

  app.post('/v1/clusters/:cluster/snapshots', {
    schema: {
      tags: ['snapshots'],
      operationId: 'createSnapshot',
      summary: 'Upload a snapshot: every node\'s rule dump, optionally the manifests',
      description:
        'JSON, or multipart/form-data (one part per node dump named by the node; a dual-stack node\'s IPv6 dump (ip6tables-save output) in a part `<node>.v6`; `addresses.<node>`, `routes.<node>` (ip route output), `format.<node>`, `table.<node>`, `manifests`, `labels` or `label.<key>` parts). In JSON a dual-stack node has `rules` and `rules6`, or `rules` as a list of its two dumps. A part or node given twice is refused (400). Bodies may be gzip-compressed (Content-Encoding: gzip). Uploading the same content again returns the stored snapshot with 200.',
      params: { type: 'object', properties: { cluster: { type: 'string' } }, required: ['cluster'] },
      body: {
        content: {
          'application/json': { schema: { $ref: 'SnapshotUpload#' } },
          'multipart/form-data': { schema: { description: 'parts as described above' } },
        },
      },
      response: { 201: { $ref: 'CreateSnapshotResult#' }, 200: { $ref: 'CreateSnapshotResult#' }, ...errors },
    },
    handler: async (request, reply) => {
      const { cluster } = request.params as { cluster: string };
      const multipart = (request as unknown as { isMultipart(): boolean }).isMultipart();
      // A raw dump sent as text is not an upload of this form: say which forms are.
      if (!multipart && (request.body === null || typeof request.body !== 'object' || Buffer.isBuffer(request.body))) {
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', `${unsupportedMediaType(request)}; one node's raw dump goes in the step-wise upload: POST /v1/clusters/${cluster}/uploads, then PUT /v1/uploads/{id}/nodes/{node}`);
      }
      const result = multipart
        ? await streamMultipart(request, service, cluster, opts.limits)
        : await service.create(cluster, request.body as SnapshotUpload);
      return reply.status(result.created ? 201 : 200).send(result);
    },
  });

  app.get('/v1/clusters', {
    schema: {
      tags: ['snapshots'],
      operationId: 'listClusters',
      summary: 'Clusters with their snapshot counts and latest snapshot',
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Cluster#' } } } } },
    },
    handler: async () => ({ items: await service.listClusters() }),
  });

  app.get('/v1/clusters/:cluster/snapshots', {
    schema: {
      tags: ['snapshots'],
      operationId: 'listSnapshots',
      summary: "A cluster's snapshots, newest first",
      params: { type: 'object', properties: { cluster: { type: 'string' } }, required: ['cluster'] },
      querystring: {
        type: 'object',
        properties: {
          limit: { type: 'integer', minimum: 1, maximum: 500, default: 20 },
          cursor: { type: 'string', description: 'nextCursor of the previous page' },
        },
        additionalProperties: false,
      },
      response: { 200: { $ref: 'SnapshotPage#' }, ...errors },
    },
    handler: async (request) => {
      const { cluster } = request.params as { cluster: string };
      const { limit, cursor } = request.query as { limit: number; cursor?: string };
      return service.listSnapshots(cluster, { limit, cursor });
    },
  });

  app.get('/v1/clusters/:cluster/snapshots/latest', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getLatestSnapshot',
      summary: "A cluster's latest snapshot, or the latest at a time",
      description: 'With `at`, the snapshot that was the latest at that time: "which pod did it reach yesterday at 10:00". Wherever a snapshot id is taken (`/v1/snapshots/{id}/…`, `from` and `to` of a diff, GraphQL `snapshot(id:)`), a reference works too: `CLUSTER@latest`, `CLUSTER@VERSION` or `CLUSTER@TIME`.',
      params: { type: 'object', properties: { cluster: { type: 'string' } }, required: ['cluster'] },
      querystring: {
        type: 'object',
        properties: { at: { type: 'string', format: 'date-time', description: 'ISO 8601, e.g. 2026-12-01T10:00:00Z' } },
        additionalProperties: false,
      },
      response: { 200: { $ref: 'Snapshot#' }, ...errors },
    },
    handler: async (request) => {
      const { cluster } = request.params as { cluster: string };
      const { at } = request.query as { at?: string };
      return service.get(`${cluster}@${at ?? 'latest'}`);
    },
  });

  app.get('/v1/clusters/:cluster/snapshots/:version', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getSnapshotVersion',
      summary: "A cluster's snapshot by version",
      params: {
        type: 'object',
        properties: { cluster: { type: 'string' }, version: { type: 'integer', minimum: 1 } },
        required: ['cluster', 'version'],
      },
      response: { 200: { $ref: 'Snapshot#' }, ...errors },
    },
    handler: async (request) => {
      const { cluster, version } = request.params as { cluster: string; version: number };
      return service.get(`${cluster}@${version}`);
    },
  });

  app.get('/v1/snapshots/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getSnapshot',
      summary: 'One snapshot with its nodes',
      description: 'By id, or by reference: `CLUSTER@latest`, `CLUSTER@VERSION`, `CLUSTER@TIME` (ISO 8601: the latest snapshot at that time).',
      params: { type: 'object', properties: { id: { type: 'string', description: 'a snapshot id, or CLUSTER@latest, CLUSTER@VERSION, CLUSTER@TIME' } }, required: ['id'] },
      response: { 200: { $ref: 'Snapshot#' }, ...errors },
    },
    handler: async (request) => service.get((request.params as { id: string }).id),
  });

  app.get('/v1/snapshots/:id/nodes/:node/rules', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getNodeRules',
      summary: "A node's rule dump, byte for byte as uploaded",
      params: { type: 'object', properties: { id: { type: 'string' }, node: { type: 'string' } }, required: ['id', 'node'] },
      produces: ['text/plain'],
      response: { 200: { type: 'string', description: 'the dump' }, ...errors },
    },
    handler: async (request, reply) => {
      const { id, node } = request.params as { id: string; node: string };
      const raw = await service.rawRules(id, node);
      return reply.type('text/plain; charset=utf-8').send(raw);
    },
  });

  app.get('/v1/snapshots/:id/nodes/:node/rules6', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getNodeRules6',
      summary: "A dual-stack node's IPv6 dump (ip6tables-save output), byte for byte as uploaded",
      description: '404 when the node was uploaded without one (its only dump is at `…/nodes/{node}/rules`).',
      params: { type: 'object', properties: { id: { type: 'string' }, node: { type: 'string' } }, required: ['id', 'node'] },
      produces: ['text/plain'],
      response: { 200: { type: 'string', description: 'the IPv6 dump' }, ...errors },
    },
    handler: async (request, reply) => {
      const { id, node } = request.params as { id: string; node: string };
      return reply.type('text/plain; charset=utf-8').send(await service.rawRules6(id, node));
    },
  });

  app.delete('/v1/snapshots/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'deleteSnapshot',
      summary: 'Delete a snapshot (its version number is not reused)',
      params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
      response: { 204: { type: 'null', description: 'deleted' }, ...errors },
    },
    handler: async (request, reply) => {
      await service.delete((request.params as { id: string }).id);
      return reply.status(204).send();
    },
  });

  app.get('/v1/diff', {
    schema: {
      tags: ['diff'],
      operationId: 'diffSnapshots',
      summary: 'What changed from snapshot `from` to snapshot `to`: where traffic goes, rules, manifests',
      description: 'The summary counts every change; the lists are paginated together (`limit` entries of each, `cursor` for the next page). Unchanged frontends are counted, not listed. Computed once per pair and kept.',
      querystring: {
        type: 'object',
        properties: {
          from: { type: 'string' },
          to: { type: 'string' },
          node: { type: 'string', description: 'diff only this node' },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          cursor: { type: 'string' },
        },
        required: ['from', 'to'],
        additionalProperties: false,
      },
      response: { 200: { $ref: 'DiffPage#' }, ...errors },
    },
    handler: async (request) => {
      const q = request.query as { from: string; to: string; node?: string; limit: number; cursor?: string };
      return service.diff(q);
    },
  });

  app.get('/v1/snapshots/:id/audit', {
    schema: {
      tags: ['audit'],
      operationId: 'auditSnapshot',
      summary: 'Where the rules and the manifests disagree, per node',
      description: 'Expected behaviour (traffic policies doing what they say, a Service without endpoints rejecting) is `info`; disagreements between rules and manifests are `error` or `warning`. Needs manifests in the snapshot.',
      params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
      response: { 200: { $ref: 'AuditReport#' }, ...errors },
    },
    handler: async (request) => service.audit((request.params as { id: string }).id),
  });

  app.get('/v1/snapshots/:id/trace', {
    schema: {
      tags: ['trace'],
      operationId: 'traceSnapshot',
      summary: 'Trace a packet through a stored snapshot, on one node or on every node',
      params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
      querystring: {
        type: 'object',
        properties: {
          destination: { type: 'string', description: 'the packet\'s destination: ip (and give port), ip:port or [ipv6]:port; or give service' },
          port: { type: 'string', pattern: '^[0-9]+$|^[a-z0-9]([a-z0-9-]*[a-z0-9])?$', description: 'destination port, unless destination names it; with service, the Service port\'s number or name' },
          service: { type: 'string', description: 'ns/name: trace every frontend of this Service port on every node (needs manifests)' },
          protocol: { type: 'string', description: 'tcp (default), udp, sctp or icmp, in any case' },
          source: { type: 'string', description: 'default 203.0.113.10, or 2001:db8::10 for an IPv6 destination (outside the cluster)' },
          node: { type: 'string', description: 'default: every node of the snapshot' },
          entry: { type: 'string', enum: ['PREROUTING', 'OUTPUT'] },
          sourcePort: { type: 'integer', minimum: 0, maximum: 65535 },
          inInterface: { type: 'string' },
        },
        additionalProperties: false,
      },
      response: { 200: { $ref: 'SnapshotTrace#' }, ...errors },
    },
    handler: async (request) => {
      const q = request.query as {
        destination?: string; port?: string; service?: string; protocol?: string; source?: string; node?: string; entry?: Entry;
        sourcePort?: number; inInterface?: string;
      };
      const port = q.port === undefined ? undefined : /^\d+$/.test(q.port) ? Number(q.port) : q.port;
      if (q.service !== undefined && port === undefined) throw new AppError('VALIDATION', 'a trace by service needs port: the Service port\'s name or number');
      if (q.service === undefined && typeof port === 'string') {
        throw new AppError('VALIDATION', 'port must be a number when tracing to a destination address (a port name goes with service)');
      }
      if (typeof port === 'number' && port > 65535) throw new AppError('VALIDATION', 'port must be from 0 to 65535');
      const { service: svc, ...rest } = q;
      return service.trace((request.params as { id: string }).id, svc !== undefined
        ? { ...rest, service: svc, servicePort: port, port: undefined }
        : { ...rest, port });
    },
  });
}
