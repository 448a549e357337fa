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
