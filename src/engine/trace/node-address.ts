/**
 * Traces of packets sent to a node's own address (a NodePort from outside), compared between
 * nodes. Two nodes' rules differ where kube-proxy writes the node's address into them (with
 * nodePortAddresses, `-d 192.168.0.10/32 … -j KUBE-NODEPORTS`); with that address written as one
 * placeholder on both sides, a walk to node A's address through A's chain meets the rules a walk
 * to node B's address meets through B's, and matches them alike, when none of them tests the
 * destination otherwise than every address of the swap answers alike.
 */
import type { Rule } from '../netfilter/ast.ts';
import { cidrTest } from '../net/address.ts';
import { Hasher } from '../hash.ts';

/** What stands for the node's address in rule texts compared between nodes. */
const PLACEHOLDER = '@node';

/** Characters of an IPv4 address: a mention is not next to one (192.168.0.1 is not in 192.168.0.10). */
const IN_ADDRESS = /[0-9.]/;

function boundaryAt(text: string, at: number): boolean {
  const c = text[at];
  return c === undefined || !IN_ADDRESS.test(c);
}

/** Where `text` names the IPv4 address `a` (not as part of a longer address), in order. */
function placesOf(text: string, a: string): number[] {
  const out: number[] = [];
  for (let at = text.indexOf(a); at >= 0; at = text.indexOf(a, at + 1)) {
    if (boundaryAt(text, at - 1) && boundaryAt(text, at + a.length)) out.push(at);
  }
  return out;
}

/** Whether `text` names the address `a` (as a word). */
export function mentionsAddress(text: string, a: string): boolean {
  return placesOf(text, a).length > 0;
}

/** `text` with each mention of the address `a` written as the placeholder. */
export function withoutAddress(text: string, a: string): string {
  const places = placesOf(text, a);
  if (places.length === 0) return text;
  let out = '';
  let from = 0;
  for (const at of places) {
    out += text.slice(from, at) + PLACEHOLDER;
    from = at + a.length;
  }
  return out + text.slice(from);
}

/** Matches that never read the destination address, or read it as every node's own address answers (addrtype). */
const DESTINATION_FREE = new Set(['comment', 'tcp', 'udp', 'sctp', 'icmp', 'icmp6', 'icmpv6', 'multiport', 'statistic', 'mark', 'connmark', 'addrtype', 'physdev', 'pkttype', 'limit', 'mac', 'length']);
const CONNTRACK_FREE = new Set(['ctstate', 'state', 'ctproto', 'ctdir', 'ctorigdstport']);

/** Whether the rule's matches read the destination only through `-d` (see generalWalkId) and the node's own addresses. */
function destinationFree(r: Rule): boolean {
  for (const m of r.matches) {
    if (DESTINATION_FREE.has(m.module)) continue;
    if ((m.module === 'conntrack' || m.module === 'state') && m.options.every((o) => CONNTRACK_FREE.has(o.name))) continue;
    if (m.module === 'recent' && !m.options.some((o) => o.name === 'rdest')) continue;
    return false;
  }
  return true;
}

/**
 * A number for the rules a walk to the node's address `address` can meet, as on any node: each
 * rule's text with the address written as the placeholder, and whether its `-d` contains the
 * address. Null when one of them reads the destination in another way (an ipset, a range, the
 * original destination): such a walk is compared only with walks to the same address.
 */
export function generalWalkId(policy: string | null, declared: boolean, rules: readonly Rule[], address: string): number | null {
  const h = new Hasher().string(policy ?? '-').number(declared ? 1 : 0).number(rules.length);
  for (const r of rules) {
    if (!destinationFree(r)) return null;
    h.string(withoutAddress(r.text, address));
    h.number(r.destination === undefined ? 2 : cidrTest(r.destination.value).contains(address) ? 1 : 0);
  }
  return h.value();
}
