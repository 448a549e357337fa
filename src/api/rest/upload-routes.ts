/**
 * Uploads in steps, for clusters too large for one request: begin, put each node's dump (any
 * order, concurrently, again if need be), put the manifests, commit. Nothing is a snapshot before
 * the commit; an upload left uncommitted expires.
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { AppError } from '../../app-error.ts';
import type { SnapshotService } from '../../services/snapshot-types.ts';
import { createSnapshotResultSchema, FORMATS, problem, stagedDumpSchema, stagedNodeSchema, uploadSchema } from './schemas.ts';
import { readRawBody } from './raw-body.ts';
import { oneOf, ref, stringMap } from './schema-kit.ts';

const errors = { 400: problem, 404: problem, 413: problem, 415: problem };
const idParams = Type.Object({ id: Type.String() });
const nodeParams = Type.Object({ id: Type.String(), node: Type.String() });
/** Described, not validated: the body is read as bytes whatever its type (see bodyBuffer). */
const rawBody = Type.Unsafe<unknown>({
  description: 'the raw content; gzip allowed (Content-Encoding: gzip)',
  content: { 'text/plain': { schema: { description: 'text' } }, 'application/octet-stream': { schema: { description: 'bytes' } } },
});
const contentSize = Type.Object({ sha256: Type.String(), bytes: Type.Integer() });

export async function uploadRoutes(plain: FastifyInstance, opts: { snapshotService: SnapshotService; partBytes: number }): Promise<void> {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const service = opts.snapshotService;
  // Dumps and manifests come as they are, whatever the content type says (curl --data-binary
  // sends application/x-www-form-urlencoded). Only this plugin's routes read bodies this way.
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', async (request: FastifyRequest, payload: Readable) => {
      const length = request.headers['content-length'];
      return readRawBody(payload, {
        ...(length !== undefined && /^\d+$/.test(length) ? { expected: Number(length) } : {}),
        limit: opts.partBytes, limitName: 'SVCPATH_NODE_LIMIT_MB',
      });
    });
    await rawBodyRoutes(raw, service);
  });

  app.post('/v1/clusters/:cluster/uploads', {
    schema: {
      tags: ['snapshots'],
      operationId: 'beginUpload',
      summary: 'Begin an upload in steps',
      params: Type.Object({ cluster: Type.String() }),
      response: { 201: ref(uploadSchema), ...errors },
    },
    handler: async (request, reply) => {
      return reply.status(201).send(await service.beginUpload(request.params.cluster));
    },
  });

  app.get('/v1/uploads/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'getUpload',
      summary: 'An upload in steps: the nodes and manifests put so far',
      params: idParams,
      response: { 200: ref(uploadSchema), ...errors },
    },
    handler: async (request) => service.getUpload(request.params.id),
  });

  app.post('/v1/uploads/:id/commit', {
    schema: {
      tags: ['snapshots'],
      operationId: 'commitUpload',
      summary: 'Make the upload a snapshot',
      description: "Answers as the one-request upload does: 201 with a new version, or 200 with the cluster's latest snapshot when the content equals it.",
      params: idParams,
      // Optional: a commit without labels may send no body.
      body: Type.Optional(Type.Object({ labels: Type.Optional(stringMap()) }, { additionalProperties: false })),
      response: { 201: ref(createSnapshotResultSchema), 200: ref(createSnapshotResultSchema), ...errors },
    },
    handler: async (request, reply) => {
      const result = await service.commitUpload(request.params.id, request.body?.labels ?? {});
      return reply.status(result.created ? 201 : 200).send(result);
    },
  });

  app.delete('/v1/uploads/:id', {
    schema: {
      tags: ['snapshots'],
      operationId: 'deleteUpload',
      summary: 'Abandon an upload',
      params: idParams,
      response: { 204: Type.Null({ description: 'deleted' }), ...errors },
    },
    handler: async (request, reply) => {
      await service.abortUpload(request.params.id);
      return reply.status(204).send(null);
    },
  });
}

/** Routes whose body is a dump or manifests as they are (registered where every body is a Buffer). */
async function rawBodyRoutes(plain: FastifyInstance, service: SnapshotService): Promise<void> {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  app.put('/v1/uploads/:id/nodes/:node', {
    schema: {
      tags: ['snapshots'],
      operationId: 'putUploadNode',
      summary: "Put a node's rule dump (replaces an earlier one of the same node)",
      description: 'The body is the dump as `iptables-save` or `iptables -S` printed it. A dump already stored (by sha256) is not parsed again. A dual-stack node\'s IPv6 dump (ip6tables-save output) goes to `…/nodes/{node}/rules6` after this one.',
      params: nodeParams,
      querystring: Type.Object({
        addresses: Type.Optional(Type.String({ description: "the node's addresses, comma separated" })),
        format: Type.Optional(oneOf(FORMATS)),
        table: Type.Optional(Type.String({ description: 'for iptables -S output: the table it lists' })),
      }, { additionalProperties: false }),
      body: rawBody,
      response: { 200: ref(stagedNodeSchema), ...errors },
    },
    handler: async (request) => {
      const { id, node } = request.params;
      const q = request.query;
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
      params: nodeParams,
      querystring: Type.Object({
        format: Type.Optional(oneOf(FORMATS.filter((f) => f !== 'nftables'))),
        table: Type.Optional(Type.String({ description: 'for ip6tables -S output: the table it lists' })),
      }, { additionalProperties: false }),
      body: rawBody,
      response: { 200: ref(stagedDumpSchema), ...errors },
    },
    handler: async (request) => {
      const { id, node } = request.params;
      const q = request.query;
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
      params: nodeParams,
      body: rawBody,
      response: { 200: contentSize, ...errors },
    },
    handler: async (request) => service.putNodeRoutes(request.params.id, request.params.node, bodyBuffer(request.body)),
  });

  app.put('/v1/uploads/:id/manifests', {
    schema: {
      tags: ['snapshots'],
      operationId: 'putUploadManifests',
      summary: "Put the cluster's manifests (kubectl get … -o json|yaml output)",
      params: idParams,
      body: rawBody,
      response: { 200: contentSize, ...errors },
    },
    handler: async (request) => service.putManifests(request.params.id, bodyBuffer(request.body)),
  });
}

function bodyBuffer(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  throw new AppError('VALIDATION', 'the body must be the content itself (a dump or manifests)');
}
