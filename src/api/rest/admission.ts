/**
 * Memory for request bodies. Before a body is read, its request reserves what reading it may
 * cost, from one budget for the whole server (SVCPATH_INFLIGHT_MB); when the budget is spent, the
 * request is answered 503 with Retry-After at once and nothing is read. The reservation is given
 * back when the response is sent or the connection closes.
 *
 * A JSON body is held whole and parsed: about three times its size (the bytes, the string, the
 * parsed values). A raw body (a dump or manifests put in an upload) is held once. A multipart
 * upload is read part by part: one part at a time. A gzip body may inflate up to the route's
 * limit, and a body without a Content-Length may be as large as that limit.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../../app-error.ts';

const JSON_EXPANSION = 3;
const NO_BODY = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

export interface AdmissionOptions {
  /** Bytes all bodies being read may cost together. */
  readonly budgetBytes: number;
  /** What one multipart part may hold (it is read one part at a time). */
  readonly partBytes: number;
}

export const bodyAdmission = fp(
  async (app: FastifyInstance, opts: AdmissionOptions) => {
    let held = 0;
    app.decorate('bodyAdmission', { get held() { return held; } });
    app.addHook('onRequest', async (request, reply) => {
      if (NO_BODY.has(request.method)) return;
      const type = String(request.headers['content-type'] ?? '').toLowerCase();
      const limit = request.routeOptions.bodyLimit ?? opts.partBytes;
      let cost: number;
      if (type.startsWith('multipart/')) cost = opts.partBytes;
      else {
        const length = Number(request.headers['content-length']);
        const gzip = /gzip/.test(String(request.headers['content-encoding'] ?? '').toLowerCase());
        const size = gzip || !Number.isFinite(length) ? limit : Math.min(length, limit);
        cost = type.includes('json') ? size * JSON_EXPANSION : size;
      }
      // One request alone is always let in, or a large upload could never be made.
      if (held > 0 && held + cost > opts.budgetBytes) {
        throw new AppError(
          'UNAVAILABLE',
          `the server is reading as many request bodies as its memory allows (SVCPATH_INFLIGHT_MB=${Math.round(opts.budgetBytes / 1048576)}); try again shortly`,
          { retryAfter: 5 },
        );
      }
      held += cost;
      let released = false;
      reply.raw.once('close', () => {
        if (released) return;
        released = true;
        held -= cost;
      });
    });
  },
  { name: 'svcpath-body-admission' },
);
