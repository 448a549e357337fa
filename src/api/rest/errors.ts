/**
 * One error handler for the REST API: every failure leaves as `application/problem+json`
 * with a stable `code`. 5xx details are logged, not sent. A database that cannot be reached
 * is 503 UNAVAILABLE with Retry-After, not 500: the request can be made again as it is.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError, RETRY_AFTER_SECONDS, toAppError } from '../../app-error.ts';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * What a route takes, for the 415 that says so: the content types its schema lists (or JSON), and
 * the content type that came.
 */
export function unsupportedMediaType(request: FastifyRequest): string {
  const content = (request.routeOptions.schema?.body as { content?: Record<string, unknown> } | undefined)?.content;
  const accepted = content ? Object.keys(content) : ['application/json'];
  const sent = request.headers['content-type'];
  return `${request.method} ${request.routeOptions.url ?? request.url} takes ${accepted.join(' or ')} (gzip allowed with Content-Encoding: gzip); ` +
    `the request ${sent ? `was ${JSON.stringify(sent.slice(0, 100))}` : 'had no Content-Type'}`;
}

function fromFastify(e: FastifyError, request: FastifyRequest): AppError | null {
  if (e.validation) {
    return new AppError('VALIDATION', `invalid request: ${e.message}`, {
      errors: e.validation.map((v) => ({ path: v.instancePath, message: v.message, params: v.params })),
    });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', 'the request body is larger than this server accepts (BODY_LIMIT_MB)');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('UNSUPPORTED_MEDIA_TYPE', unsupportedMediaType(request));
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('VALIDATION', e.message);
    default:
      break;
  }
  if (e instanceof SyntaxError || e.statusCode === 400) return new AppError('VALIDATION', `malformed request body: ${e.message}`);
  if (e.statusCode === 413) return new AppError('PAYLOAD_TOO_LARGE', e.message);
  if (e.statusCode === 415) return new AppError('UNSUPPORTED_MEDIA_TYPE', unsupportedMediaType(request));
  return null;
}

export const errorHandler = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const mapped = toAppError(error) ?? fromFastify(error, request);
      const status = mapped?.status ?? 500;
      if (status === 503) {
        request.log.warn({ err: error }, 'request refused for now: unavailable');
        const retry = mapped?.details.retryAfter;
        void reply.header('retry-after', String(typeof retry === 'number' ? retry : RETRY_AFTER_SECONDS));
      } else if (status >= 500) {
        request.log.error({ err: error }, 'request failed');
      }
      const body = {
        type: 'about:blank',
        title: TITLES[status] ?? 'Error',
        status,
        code: mapped?.code ?? 'INTERNAL',
        detail: mapped && status < 500 ? mapped.message : status === 503 ? mapped?.message : 'an unexpected error occurred',
        instance: request.url,
        ...(mapped && status < 500 ? mapped.details : {}),
      };
      void reply.status(status).type('application/problem+json').send(body);
    });
    app.setNotFoundHandler((request, reply) => {
      void reply.status(404).type('application/problem+json').send({
        type: 'about:blank', title: 'Not Found', status: 404, code: 'NOT_FOUND',
        detail: `no route ${request.method} ${request.url.split('?')[0]}`, instance: request.url,
      });
    });
  },
  { name: 'svcpath-errors' },
);

/**
 * Fastify's `frameworkErrors`: a path that is not percent-encoded UTF-8, or a path parameter over
 * the router's length, is refused before any route (or the error handler above) sees it; without
 * this they would leave as fastify's own application/json.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const detail = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
    ? 'a path segment is longer than this server accepts (100 characters)'
    : error.code === 'FST_ERR_BAD_URL' ? 'the path is not valid percent-encoded UTF-8' : `malformed request: ${error.message}`;
  void reply.status(400).type('application/problem+json').send({
    type: 'about:blank', title: TITLES[400], status: 400, code: 'VALIDATION', detail, instance: request.url.slice(0, 200),
  });
}
