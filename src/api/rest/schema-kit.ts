/**
 * The few JSON Schema shapes TypeBox does not write the way the OpenAPI 3.0 document needs them:
 * a reference to a shared schema by its `$id`, `nullable`, a string enum with its `type`, a map of
 * strings. Each keeps the static type TypeBox would give, so a route's handler is typed from the
 * same declaration that validates the request and documents it.
 */
import Type from 'typebox';
import type { Static, TArray, TArrayOptions, TImmutable, TInteger, TOptional, TSchema, TUnsafe } from 'typebox';

/**
 * `{ $ref: 'Name#' }` to a schema registered with `app.addSchema`, typed as that schema: fastify
 * resolves it, @fastify/swagger lists it under `components.schemas`.
 */
export function ref<T extends TSchema>(schema: T, options: { readonly description?: string } = {}): TUnsafe<Static<T>> {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== 'string') throw new Error('ref() needs a schema with an $id');
  return Type.Unsafe<Static<T>>({ $ref: `${id}#`, ...options });
}

/**
 * ref(schema) for a route that may send its answer as JSON bytes it wrote itself (jsonBytes): the
 * same document to OpenAPI, a Buffer allowed to the handler.
 */
export function refOrBytes<T extends TSchema>(schema: T): TUnsafe<Static<T> | Buffer> {
  return Type.Unsafe<Static<T> | Buffer>(ref(schema));
}

/**
 * A JSON answer as UTF-8 bytes, written by V8's JSON.stringify. For answers of megabytes (an
 * all-node trace of a Service with many endpoints) this costs a third of what the response
 * schema's serializer does: that one concatenates the answer piece by piece into a string that
 * must then be flattened to be measured and encoded (1.4 MB: 5 + 2.5 ms against about 20). Only
 * for answers that hold nothing but their schema's fields, in the schema's types: nothing drops
 * or coerces a field here.
 */
export function jsonBytes(value: unknown): Buffer {
  // TextEncoder: half the time of Buffer.from for a string of megabytes.
  const bytes = ENCODER.encode(JSON.stringify(value));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const ENCODER = new TextEncoder();

/** The schema, or null: OpenAPI 3.0's `nullable: true`. */
export function nullable<T extends TSchema>(schema: T): TUnsafe<Static<T> | null> {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

/** One of a list of strings, e.g. the engine's PROTOCOLS: `{ type: 'string', enum: [...] }`. */
export function oneOf<const V extends string>(values: readonly V[], options: { readonly description?: string; readonly default?: V } = {}): TUnsafe<V> {
  return Type.Unsafe<V>({ type: 'string', enum: [...values], ...options });
}

/** An object of string values, such as labels. */
export function stringMap(options: { readonly description?: string } = {}): TUnsafe<Record<string, string>> {
  return Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' }, ...options });
}

/** Optional integer properties named `names`: the counters of a summary. */
export function counts<const N extends string>(names: readonly N[]): { [K in N]: TOptional<TInteger> } {
  return Object.fromEntries(names.map((n) => [n, Type.Optional(Type.Integer())])) as { [K in N]: TOptional<TInteger> };
}

/** An array whose static type is readonly, as the engine's and the services' answers are. */
export function list<T extends TSchema>(items: T, options: TArrayOptions = {}): TImmutable<TArray<T>> {
  return Type.Immutable<TArray<T>>(Type.Array(items, options));
}

/**
 * One of a list of strings to validators and OpenAPI, typed `string` for an answer whose service
 * type says only string (the values are the list's, but the service's interface does not say so).
 */
export function stringOneOf(values: readonly string[], options: { readonly description?: string } = {}): TUnsafe<string> {
  return Type.Unsafe<string>({ type: 'string', enum: [...values], ...options });
}
