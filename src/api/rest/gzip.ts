/** Accepts gzip-compressed request bodies (`Content-Encoding: gzip`), as CI jobs send large dumps. */
import { createGunzip } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../../app-error.ts';

export const gzipBodies = fp(
  async (app: FastifyInstance) => {
    app.addHook('preParsing', async (request, _reply, payload) => {
      const encoding = String(request.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding === 'identity') return payload;
      if (encoding !== 'gzip' && encoding !== 'x-gzip') {
        throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Content-Encoding '${encoding}' is not supported (use gzip or none)`);
      }
      const gunzip = createGunzip();
      gunzip.on('error', (e) => gunzip.destroy(new AppError('VALIDATION', `the gzip body is corrupt: ${e.message}`)));
      delete request.headers['content-length'];
      return payload.pipe(gunzip);
    });
  },
  { name: 'svcpath-gzip' },
);
