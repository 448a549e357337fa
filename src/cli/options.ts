/**
 * Every command's options, declared once: the commands read their arguments with them, and the
 * shell completions (completion.ts) are made from them. Apart from the commands so that
 * completions load no database code.
 */
import type { ParseArgsConfig } from 'node:util';
import { PROTOCOLS } from '../engine/index.ts';
import type { Entry, FormatOption } from '../engine/index.ts';

/**
 * Options whose value is one of a few words, offered by the shell completions. The protocols are
 * the engine's list, which also checks them (readProtocol, in any case), as it does for REST and GraphQL.
 */
export const VALUES: Readonly<Record<string, readonly string[]>> = {
  protocol: PROTOCOLS,
  entry: ['PREROUTING', 'OUTPUT'] satisfies Entry[],
  format: ['auto', 'iptables-save', 'iptables-S', 'nftables'] satisfies FormatOption[],
  table: ['raw', 'mangle', 'nat', 'filter', 'security'],
  scope: ['read', 'write', 'admin'],
};

export const OPTIONS = {
  trace: {
    rules: { type: 'string' },
    rules6: { type: 'string' },
    'node-ip': { type: 'string', multiple: true },
    'node-name': { type: 'string' },
    from: { type: 'string' },
    protocol: { type: 'string', default: 'tcp' },
    entry: { type: 'string' },
    format: { type: 'string', default: 'auto' },
    table: { type: 'string' },
    'in-interface': { type: 'string' },
    'out-interface': { type: 'string' },
    'source-port': { type: 'string' },
    manifests: { type: 'string' },
    routes: { type: 'string' },
    service: { type: 'string' },
    port: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  push: {
    server: { type: 'string' },
    token: { type: 'string' },
    cluster: { type: 'string' },
    node: { type: 'string', multiple: true },
    node6: { type: 'string', multiple: true },
    rules: { type: 'string' },
    rules6: { type: 'string' },
    'node-ip': { type: 'string', multiple: true },
    routes: { type: 'string' },
    'node-routes': { type: 'string', multiple: true },
    manifests: { type: 'string' },
    label: { type: 'string', multiple: true },
    format: { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
  },
  audit: {
    node: { type: 'string', multiple: true },
    'node-ip': { type: 'string', multiple: true },
    manifests: { type: 'string' },
    format: { type: 'string', default: 'auto' },
    json: { type: 'boolean', default: false },
  },
  diff: {
    'node-ip': { type: 'string', multiple: true },
    'manifests-a': { type: 'string' },
    'manifests-b': { type: 'string' },
    'cluster-cidr': { type: 'string' },
    format: { type: 'string', default: 'auto' },
    json: { type: 'boolean', default: false },
  },
  token: {
    name: { type: 'string' },
    scope: { type: 'string', multiple: true },
    cluster: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
  },
  prune: {
    'dry-run': { type: 'boolean', default: false },
    keep: { type: 'string' },
    days: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
} as const satisfies Record<string, NonNullable<ParseArgsConfig['options']>>;
