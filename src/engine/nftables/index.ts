/**
 * nftables rulesets: read any of nft's three forms into one model, and print it back.
 */
import type { NftRuleset, NftSourceForm } from './ast.ts';
import { parseNftJson } from './json.ts';
import { parseNftText } from './parser.ts';

export { parseNftJson } from './json.ts';
export { parseNftText } from './parser.ts';
export { printNftRuleset, printRule as printNftRule, printStatement as printNftStatement, printExpr as printNftExpr } from './printer.ts';
export { tableKey, standardPriority } from './ast.ts';

const JSON_START = /^\s*\{\s*"nftables"\s*:/;
const COMMAND = /^(add|create|insert|replace|delete|destroy|flush)\s+(table|chain|rule|set|map|element|ruleset)\b/;
const BLOCK = /^(table\s+((ip|ip6|inet|arp|bridge|netdev)\s+)?\S+\s*\{|(chain|map|set)\s+\S+\s*\{)/;

/**
 * Which form of nft output `line` (the first meaningful line of a dump, trimmed) starts, if any:
 * `nft -j` JSON, the `nft -f` command form, or `nft list` blocks (a bare `chain … {` included, so
 * that a fragment is read and refused with its location rather than called unknown).
 */
export function nftFormOfLine(line: string): NftSourceForm | undefined {
  if (JSON_START.test(line)) return 'json';
  if (COMMAND.test(line)) return 'commands';
  if (BLOCK.test(line)) return 'list';
  return undefined;
}

/**
 * Reads an nftables ruleset in any of nft's forms: `nft -j list ruleset` JSON, `nft list ruleset`
 * text (with or without `-a` handles, or one table), or an `nft -f` command file. The form read is
 * in the answer's `form`. Syntax errors are EngineErrors located by line and column (for JSON, by
 * the JSON path).
 */
export function parseNftables(text: string): NftRuleset {
  return JSON_START.test(text.slice(0, 200)) ? parseNftJson(text) : parseNftText(text);
}
