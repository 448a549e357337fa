/**
 * Constants as nft writes them, read into the model's canonical form, shared by the text and JSON
 * readers so that both give the same model for the same ruleset.
 */
import type { NftExpr, NftLiteral, NftOperator } from './ast.ts';

const HEX = /^0x[0-9a-f]+$/i;
const DECIMAL = /^[0-9]+$/;

/**
 * A literal with integers in decimal: nft prints marks as `0x00004000` in text and `16384` in
 * JSON; both are the same value.
 */
export function literal(text: string, quoted = false): NftLiteral {
  if (!quoted) {
    if (HEX.test(text)) return { kind: 'literal', text: BigInt(text).toString() };
    if (DECIMAL.test(text) && text.length > 1 && text.charCodeAt(0) === 48) return { kind: 'literal', text: BigInt(text).toString() };
    return { kind: 'literal', text };
  }
  return { kind: 'literal', text, quoted: true };
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const IPV6 = /^[0-9a-f]*:[0-9a-f:.]*$/i;

/** True for an IPv4 or IPv6 address (not checked further: the tracer reads it). */
export function isAddress(text: string): boolean {
  return IPV4.test(text) || IPV6.test(text);
}

function isScalar(text: string): boolean {
  return DECIMAL.test(text) || HEX.test(text) || isAddress(text);
}

/**
 * A word on the value side: `10.0.0.0/8` is a prefix, `1000-2000` and `10.0.0.1-10.0.0.9` ranges,
 * anything else a literal (symbols such as `port-unreachable` keep their dashes).
 */
export function valueWord(text: string): NftExpr {
  const slash = text.indexOf('/');
  if (slash > 0) {
    const address = text.slice(0, slash);
    const len = text.slice(slash + 1);
    if (isAddress(address) && DECIMAL.test(len)) return { kind: 'prefix', address, length: Number(len) };
  }
  const dash = text.indexOf('-');
  if (dash > 0 && text.indexOf('-', dash + 1) < 0) {
    const low = text.slice(0, dash);
    const high = text.slice(dash + 1);
    if (isScalar(low) && isScalar(high)) return { kind: 'range', low: literal(low), high: literal(high) };
  }
  return literal(text);
}

const TIME_PART = /(\d+)(ms|d|h|m|s)/gy;
const TIME_UNIT: Readonly<Record<string, number>> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** `10800s`, `3h`, `1d2h3m4s500ms`, or a bare number of seconds → milliseconds; undefined if not a time. */
export function parseTime(text: string): number | undefined {
  if (DECIMAL.test(text)) return Number(text) * 1000;
  TIME_PART.lastIndex = 0;
  let total = 0;
  let at = 0;
  for (let m = TIME_PART.exec(text); m; m = TIME_PART.exec(text)) {
    total += Number(m[1]) * TIME_UNIT[m[2]];
    at = TIME_PART.lastIndex;
  }
  return at === text.length && at > 0 ? total : undefined;
}

/** Milliseconds as nft accepts them back: `10800s`, `1500ms`. */
export function formatTime(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * Selectors whose values are bit sets: a match on them without an operator (or with a comma list)
 * is nft's flag test `in`, not equality.
 */
export function isBitmaskSelector(e: NftExpr): boolean {
  if (e.kind === 'ct') return e.key === 'state' || e.key === 'status';
  if (e.kind === 'payload') return e.protocol === 'tcp' && e.field === 'flags';
  return false;
}

/** The operator nft reads for a match written without one. */
export function implicitOperator(left: NftExpr, right: NftExpr): NftOperator {
  return isBitmaskSelector(left) || right.kind === 'list' ? 'in' : '==';
}

/**
 * Sets a limit's burst unless it is nft's default (5 packets for a packet rate, none for a byte
 * rate), which `nft list` leaves out and `nft -j` writes: both forms then read the same.
 */
export function setBurst(limit: { unit: string; burst?: number; burstUnit?: string }, burst: number, burstUnit: string | undefined): void {
  const unit = burstUnit ?? (limit.unit === 'packets' ? 'packets' : 'bytes');
  if (burst === 0 || (limit.unit === 'packets' && unit === 'packets' && burst === 5)) return;
  limit.burst = burst;
  limit.burstUnit = unit;
}
