/**
 * Prints the nftables model as `nft -f`-loadable text in the block form `nft list ruleset` uses
 * (`table ip kube-proxy { set … chain … }`). Every table declares its sets and maps before its
 * chains, so rules that name them load; nft resolves jumps to chains further down the same file.
 */
import type {
  NftChain, NftExpr, NftRule, NftRuleset, NftSet, NftSetElement, NftSetType, NftStatement, NftTable,
} from './ast.ts';
import { formatTime, isBitmaskSelector } from './values.ts';

/** The whole ruleset, one table block after another. */
export function printNftRuleset(ruleset: NftRuleset): string {
  const out: string[] = [];
  for (const table of ruleset.tables.values()) printTable(table, out);
  return out.join('\n') + '\n';
}

function printTable(table: NftTable, out: string[]): void {
  out.push(`table ${table.family} ${quoteName(table.name)} {`);
  if (table.comment !== undefined) out.push(`\tcomment ${quote(table.comment)}`);
  if (table.flags.length > 0) out.push(`\tflags ${table.flags.join(',')}`);
  for (const set of table.sets.values()) printSet(set, out);
  for (const chain of table.chains.values()) printChain(chain, out);
  out.push('}');
}

function printSet(set: NftSet, out: string[]): void {
  out.push(`\t${set.isMap ? 'map' : 'set'} ${quoteName(set.name)} {`);
  const type = set.data ? `${setType(set.key)} : ${setType(set.data)}` : setType(set.key);
  out.push(`\t\t${set.key.typeof ? 'typeof' : 'type'} ${type}`);
  if (set.flags.length > 0) out.push(`\t\tflags ${set.flags.join(',')}`);
  if (set.timeoutMs !== undefined) out.push(`\t\ttimeout ${formatTime(set.timeoutMs)}`);
  if (set.gcIntervalMs !== undefined) out.push(`\t\tgc-interval ${formatTime(set.gcIntervalMs)}`);
  if (set.size !== undefined) out.push(`\t\tsize ${set.size}`);
  if (set.policy !== undefined) out.push(`\t\tpolicy ${set.policy}`);
  if (set.autoMerge) out.push('\t\tauto-merge');
  if (set.comment !== undefined) out.push(`\t\tcomment ${quote(set.comment)}`);
  if (set.elements.length > 0) out.push(`\t\telements = { ${set.elements.map(printElement).join(',\n\t\t\t     ')} }`);
  out.push('\t}');
}

function setType(t: NftSetType): string {
  if (t.typeof) return t.typeof.map(printExpr).join(' . ');
  return (t.types ?? []).join(' . ');
}

function printChain(chain: NftChain, out: string[]): void {
  out.push(`\tchain ${quoteName(chain.name)} {`);
  if (chain.comment !== undefined) out.push(`\t\tcomment ${quote(chain.comment)}`);
  const b = chain.base;
  if (b) {
    const device = b.devices.length === 0 ? '' : b.devices.length === 1
      ? ` device ${quote(b.devices[0])}` : ` devices = { ${b.devices.map(quote).join(', ')} }`;
    out.push(`\t\ttype ${b.type} hook ${b.hook}${device} priority ${b.priority}; policy ${b.policy};`);
  }
  for (const rule of chain.rules) out.push(`\t\t${printRule(rule)}`);
  out.push('\t}');
}

/** A rule's statements (and comment) as nft reads them back. */
export function printRule(rule: NftRule): string {
  const parts = rule.statements.map(printStatement);
  if (rule.comment !== undefined) parts.push(`comment ${quote(rule.comment)}`);
  return parts.join(' ');
}

/** One statement as nft writes it. */
export function printStatement(s: NftStatement): string {
  switch (s.kind) {
    case 'match': {
      // Without an operator nft reads `==`, or `in` on bitmask selectors and comma lists.
      const implicit = s.op === 'in'
        ? isBitmaskSelector(s.left) || s.right.kind === 'list'
        : s.op === '==' && s.left.kind !== 'binary' && !isBitmaskSelector(s.left);
      const left = printExpr(s.left);
      const right = printExpr(s.right);
      if (implicit) return `${left} ${right}`;
      return `${left} ${s.op === 'in' ? '&' : s.op} ${right}${s.op === 'in' ? ' != 0' : ''}`;
    }
    case 'verdict':
      return s.target === undefined ? s.verdict : `${s.verdict} ${quoteName(s.target)}`;
    case 'vmap':
      return `${printExpr(s.key)} vmap ${printExpr(s.map)}`;
    case 'counter':
      return s.packets !== undefined || s.bytes !== undefined ? `counter packets ${s.packets ?? 0} bytes ${s.bytes ?? 0}` : 'counter';
    case 'limit': {
      const rate = s.unit === 'packets' ? `${s.rate}/${s.per}` : `${s.rate} ${s.unit}/${s.per}`;
      const burst = s.burst === undefined ? '' : ` burst ${s.burst} ${s.burstUnit ?? (s.unit === 'packets' ? 'packets' : 'bytes')}`;
      return `limit rate ${s.over ? 'over ' : ''}${rate}${burst}`;
    }
    case 'log': {
      const parts = ['log'];
      if (s.prefix !== undefined) parts.push(`prefix ${quote(s.prefix)}`);
      if (s.level !== undefined) parts.push(`level ${s.level}`);
      if (s.group !== undefined) parts.push(`group ${s.group}`);
      if (s.more !== undefined) parts.push(s.more);
      return parts.join(' ');
    }
    case 'notrack':
      return 'notrack';
    case 'mangle':
      return `${printExpr(s.target)} set ${printExpr(s.value)}`;
    case 'nat': {
      const parts: string[] = [s.type];
      if (s.family) parts.push(s.family);
      if (s.address || s.port) parts.push(`to ${natTarget(s.address, s.port)}`);
      if (s.flags.length > 0) parts.push(s.flags.join(','));
      return parts.join(' ');
    }
    case 'reject':
      if (s.with === undefined) return 'reject';
      return s.with === 'tcp reset' ? 'reject with tcp reset' : `reject with ${s.with} ${s.code ?? 'port-unreachable'}`;
    case 'set-update':
      return `${s.op} @${quoteName(s.set)} { ${printExpr(s.key)}${s.timeoutMs === undefined ? '' : ` timeout ${formatTime(s.timeoutMs)}`} }`;
    case 'unmodelled':
      return s.text;
  }
}

function natTarget(address: NftExpr | undefined, port: NftExpr | undefined): string {
  const a = address ? printExpr(address) : '';
  if (!port) return a;
  const isV6 = address?.kind === 'literal' && address.text.includes(':');
  return `${isV6 ? `[${a}]` : a}:${printExpr(port)}`;
}

/** One expression as nft writes it. */
export function printExpr(e: NftExpr): string {
  switch (e.kind) {
    case 'payload':
      return `${e.protocol} ${e.field}`;
    case 'meta':
      return `meta ${e.key}`;
    case 'ct':
      return e.direction ? `ct ${e.direction} ${e.key}` : `ct ${e.key}`;
    case 'fib':
      return `fib ${e.flags.join(' . ')} ${e.result}`;
    case 'numgen':
      return `numgen ${e.mode} mod ${e.modulus}${e.offset !== 0 ? ` offset ${e.offset}` : ''}`;
    case 'concat':
      return e.parts.map(printExpr).join(' . ');
    case 'binary':
      // A flag list as a mask is written `(syn|ack)`.
      return `${printExpr(e.left)} ${e.op} ${e.right.kind === 'list' ? `(${e.right.items.map(printExpr).join('|')})` : printExpr(e.right)}`;
    case 'literal':
      return e.quoted ? quote(e.text) : e.text;
    case 'prefix':
      return `${e.address}/${e.length}`;
    case 'range':
      return `${printExpr(e.low)}-${printExpr(e.high)}`;
    case 'anonymous-set':
      return `{ ${e.elements.map(printElement).join(', ')} }`;
    case 'set-ref':
      return `@${quoteName(e.name)}`;
    case 'map':
      return `${printExpr(e.key)} map ${printExpr(e.map)}`;
    case 'list':
      return e.items.map(printExpr).join(',');
    case 'verdict':
      return e.target === undefined ? e.verdict : `${e.verdict} ${quoteName(e.target)}`;
    case 'unmodelled':
      return e.text;
  }
}

/** An element as nft reads it back; its `expires` (time left when listed) is the kernel's state, not input. */
function printElement(el: NftSetElement): string {
  let s = printExpr(el.key);
  if (el.timeoutMs !== undefined) s += ` timeout ${formatTime(el.timeoutMs)}`;
  if (el.comment !== undefined) s += ` comment ${quote(el.comment)}`;
  if (el.value) s += ` : ${printExpr(el.value)}`;
  return s;
}

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '\\$&')}"`;
}

/** Names nft reads bare (kube-proxy's `service-…/ns/name/tcp/p80` included) stay bare; others are quoted. */
function quoteName(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_./:-]*$/.test(name) ? name : quote(name);
}
