/**
 * Uploads in steps, for clusters too large for one request: begin, put each node's dump (any
 * order, concurrently, again if need be), put the manifests, commit. Nothing is a snapshot before
 * the commit; an upload left uncommitted expires.
 */
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../app-error.ts';
import type { FormatOption } from '../../engine/index.ts';
import type { SnapshotService } from '../../services/snapshot-types.ts';

const problem = { $ref: 'Problem#' };
const errors = { 400: problem, 404: problem, 413: problem, 415: problem };
const idParams = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;
const rawBody = {
  description: 'the raw content; gzip allowed (Content-Encoding: gzip)',
  // Described, not validated: the body is read as bytes whatever its type.
  content: { 'text/plain': { schema: { description: 'text' } }, 'application/octet-stream': { schema: { description: 'bytes' } } },
};

export async function uploadRoutes(app: FastifyInstance, opts: { snapshotService: SnapshotService; partBytes: number }): Promise<void> {
  const service = opts.snapshotService;
  // Dumps and manifests come as they are, whatever the content type says (curl --data-binary
  // sends application/x-www-form-urlencoded). Only this plugin's routes read bodies this way.
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: opts.partBytes }, (_request, body, done) => done(null, body));
    await rawBodyRoutes(raw, service);
  });

  app.post('/v1/clusters/:cluster/uploads', {
    schema: {
      tags: ['snapshots'],
      operationId: 'beginUpload',
      summary: 'Begin an upload in steps',
      params: { type: 'object', properties: { cluster: { type: 'string' } }, required: ['cluster'] },
      response: { 201: { $ref: 'Upload#' }, ...errors },
    },
    handler: async (request, reply) => {
      const { cluster } = request.params as { cluster: string };
      return reply.status(201).send(await service.beginUpload(cluster));
    },
  });

  app.get('/v1/uploads/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getUpload',
      summary: 'An upload in steps: the nodes and manifests put so far',
      params: idParams,
      response: { 200: { $ref: 'Upload#' }, ...errors },
    },
    handler: async (request) => service.getUpload((request.params as { id: string }).id),
  });

  app.post('/v1/uploads/:id/commit', {
    schema: {
      tags: ['snapshots'],
      operationId: 'commitUpload',
      summary: 'Make the upload a snapshot',
      description: "Answers as the one-request upload does: 201 with a new version, or 200 with the cluster's latest snapshot when the content equals it.",
      params: idParams,
      body: {
        type: 'object',
        properties: { labels: { type: 'object', additionalProperties: { type: 'string' } } },
        additionalProperties: false,
      },
      response: { 201: { $ref: 'CreateSnapshotResult#' }, 200: { $ref: 'CreateSnapshotResult#' }, ...errors },
    },
    handler: async (request, reply) => {
      const body = (request.body ?? {}) as { labels?: Record<string, string> };
      const result = await service.commitUpload((request.params as { id: string }).id, body.labels ?? {});
      return reply.status(result.created ? 201 : 200).send(result);
    },
  });

  app.delete('/v1/uploads/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'deleteUpload',
      summary: 'Abandon an upload',
      params: idParams,
      response: { 204: { type: 'null', description: 'deleted' }, ...errors },
    },
    handler: async (request, reply) => {
      await service.abortUpload((request.params as { id: string }).id);
      return reply.status(204).send();
    },
  });
}

/** Routes whose body is a dump or manifests as they are (registered where every body is a Buffer). */
async function rawBodyRoutes(app: FastifyInstance, service: SnapshotService): Promise<void> {
  app.put('/v1/uploads/:id/nodes/:node', {
    schema: {
      tags: ['snapshots'],
      operationId: 'putUploadNode',
      summary: "Put a node's rule dump (replaces an earlier one of the same node)",
      description: 'The body is the dump as `iptables-save` or `iptables -S` printed it. A dump already stored (by sha256) is not parsed again. A dual-stack node\'s IPv6 dump (ip6tables-save output) goes to `…/nodes/{node}/rules6` after this one.',
      params: { type: 'object', properties: { id: { type: 'string' }, node: { type: 'string' } }, required: ['id', 'node'] },
      querystring: {
        type: 'object',
        properties: {
          addresses: { type: 'string', description: "the node's addresses, comma separated" },
          format: { type: 'string', enum: ['auto', 'iptables-save', 'iptables-S', 'nftables'] },
          table: { type: 'string', description: 'for iptables -S output: the table it lists' },
        },
        additionalProperties: false,
      },
      body: rawBody,
      response: { 200: { $ref: 'StagedNode#' }, ...errors },
    },
    handler: async (request) => {
      const { id, node } = request.params as { id: string; node: string };
      const q = request.query as { addresses?: string; format?: FormatOption; table?: string };
      return service.putNode(id, {
        name: node,
        rules: bodyBuffer(request.body),
        addresses: (q.addresses ?? '').split(/[\s,]+/).filter(Boolean),
        ...(q.format ? { format: q.format } : {}),
        ...(q.table ? { table: q.table } : {}),
      });
    },
  });

  app.put('/v1/uploads/:id/nodes/:node/rules6', {
    schema: {
      tags: ['snapshots'],
      operationId: 'putUploadNodeRules6',
      summary: "Put a dual-stack node's IPv6 dump (ip6tables-save output), after its rules",
      description:
        'The node\'s second dump, beside the one put at `…/nodes/{node}` (its iptables-save output): traces of IPv6 packets go through it. Refused when it does not read as IPv6. Replaces one put before; a later put of the node\'s rules keeps it.',
      params: { type: 'object', properties: { id: { type: 'string' }, node: { type: 'string' } }, required: ['id', 'node'] },
      querystring: {
        type: 'object',
        properties: {
          format: { type: 'string', enum: ['auto', 'iptables-save', 'iptables-S'] },
          table: { type: 'string', description: 'for ip6tables -S output: the table it lists' },
        },
        additionalProperties: false,
      },
      body: rawBody,
      response: { 200: { $ref: 'StagedDump#' }, ...errors },
    },
    handler: async (request) => {
      const { id, node } = request.params as { id: string; node: string };
      const q = request.query as { format?: FormatOption; table?: string };
      return service.putNodeRules6(id, node, { rules: bodyBuffer(request.body), ...(q.format ? { format: q.format } : {}), ...(q.table ? { table: q.table } : {}) });
    },
  });

  app.put('/v1/uploads/:id/nodes/:node/routes', {
    schema: {
      tags: ['snapshots'],
      operationId: 'putUploadNodeRoutes',
      summary: "Put a node's routes (`ip route` / `ip -6 route` output), after its rules",
      description:
        'Stored with the node, like its dump (by content); traces of the snapshot read the interface a packet leaves through from them, so `-o` tests are decided rather than split into cases. Replaces routes put before; a later put of the node\'s rules keeps them.',
      params: { type: 'object', properties: { id: { type: 'string' }, node: { type: 'string' } }, required: ['id', 'node'] },
      body: rawBody,
      response: {
        200: { type: 'object', properties: { sha256: { type: 'string' }, bytes: { type: 'integer' } }, required: ['sha256', 'bytes'] },
        ...errors,
      },
    },
    handler: async (request) => {
      const { id, node } = request.params as { id: string; node: string };
      return service.putNodeRoutes(id, node, bodyBuffer(request.body));
    },
  });

  app.put('/v1/uploads/:id/manifests', {
    schema: {
      tags: ['snapshots'],
      operationId: 'putUploadManifests',
      summary: "Put the cluster's manifests (kubectl get … -o json|yaml output)",
      params: idParams,
      body: rawBody,
      response: {
        200: { type: 'object', properties: { sha256: { type: 'string' }, bytes: { type: 'integer' } }, required: ['sha256', 'bytes'] },
        ...errors,
      },
    },
    handler: async (request) => service.putManifests((request.params as { id: string }).id, bodyBuffer(request.body)),
  });
}

function bodyBuffer(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  throw new AppError('VALIDATION', 'the body must be the content itself (a dump or manifests)');
}
