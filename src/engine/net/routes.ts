/**
 * The node's routes, read from `ip route` / `ip -6 route` output (either or both pasted together,
 * optionally with `ip route show table local`), so the tracer can say which interface a packet
 * leaves through and whether a translated destination is the node itself.
 */
import type { Cidr, Family } from '../netfilter/ast.ts';
import { syntaxError } from '../errors.ts';
import { cidrTest, parseCidr } from './address.ts';
import type { CidrTest } from './address.ts';

/** One route: its destination, the type `ip` printed first (unicast when none), and its device. */
export interface Route {
  readonly type: string;
  readonly destination: Cidr;
  readonly dev: string | null;
  readonly metric: number;
  readonly table: string;
  readonly line: number;
}

/** What the kernel's lookup in the local and main tables answers for a destination. */
export interface RouteDecision {
  readonly type: string;
  readonly dev: string | null;
  readonly route: Route;
}

const TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'anycast']);
/** Words `ip route` prints alone, without a value after them. */
const FLAGS = new Set(['linkdown', 'onlink', 'dead', 'pervasive', 'offload', 'notify', 'trap', 'rt_offload', 'rt_trap', 'rt_offload_failed']);

export class RouteTable {
  private readonly tests = new Map<Route, CidrTest>();

  constructor(readonly routes: readonly Route[]) {
    for (const r of routes) this.tests.set(r, cidrTest(r.destination));
  }

  /**
   * The route the kernel picks for `address`: the local table first (the node's own addresses),
   * then the longest matching prefix of the main table (other tables are policy routing, not read),
   * the lowest metric among equals. Null when nothing matches.
   */
  lookup(address: string, family: Family): RouteDecision | null {
    let best: Route | null = null;
    for (const table of ['local', 'main']) {
      for (const r of this.routes) {
        if (r.table !== table || r.destination.family !== family || !this.tests.get(r)!.contains(address)) continue;
        if (!best || r.destination.prefix > best.destination.prefix || (r.destination.prefix === best.destination.prefix && r.metric < best.metric)) best = r;
      }
      if (best && (table === 'main' || best.type === 'local')) break;
      best = null;
    }
    return best ? { type: best.type, dev: best.dev, route: best } : null;
  }
}

/**
 * Reads `ip route` output. Lines starting with whitespace continue the route above (`nexthop …` of
 * a multipath route: its first hop's device is taken). A line whose destination is not a prefix is
 * a located error.
 */
export function parseRoutes(text: string): RouteTable {
  const routes: Route[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let last: { route: Route; index: number } | null = null;
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) return;
    const words = raw.trim().split(/\s+/);
    if (/^\s/.test(raw) && last) {
      if (words[0] === 'nexthop' && last.route.dev === null) {
        const dev = valueOf(words, 'dev');
        if (dev) routes[last.index] = { ...last.route, dev };
        last = { route: routes[last.index], index: last.index };
      }
      return;
    }
    let at = 0;
    let type = 'unicast';
    if (TYPES.has(words[0])) type = words[at++];
    const dest = words[at];
    if (dest === undefined) throw syntaxError(`routes: a route of type ${type} has no destination`, line, raw.length + 1, raw);
    let destination: Cidr | null;
    if (dest === 'default' || dest === 'all' || dest === 'any') {
      destination = null;
    } else {
      destination = parseCidr(dest);
      if (!destination) {
        const column = raw.indexOf(dest) + 1;
        throw syntaxError(`routes: '${dest}' is not a route destination (expected an address, a prefix such as 10.0.0.0/8, or default); paste the output of ip route / ip -6 route`, line, column, raw);
      }
    }
    const rest = words.slice(at + 1);
    const metric = Number(valueOf(rest, 'metric') ?? 0);
    const table = valueOf(rest, 'table') ?? (type === 'local' || type === 'broadcast' ? 'local' : 'main');
    const via = valueOf(rest, 'via');
    const family: Family = destination?.family ?? (via && via.includes(':') ? 'ipv6' : rest.includes('inet6') ? 'ipv6' : 'ipv4');
    const route: Route = {
      type, destination: destination ?? { family, address: family === 'ipv4' ? '0.0.0.0' : '::', prefix: 0 },
      dev: valueOf(rest, 'dev'), metric: Number.isFinite(metric) ? metric : 0, table, line,
    };
    routes.push(route);
    last = { route, index: routes.length - 1 };
  });
  return new RouteTable(routes);
}

/** The word after `key` in a route's words, skipping flags; null when the route has no such key. */
function valueOf(words: readonly string[], key: string): string | null {
  for (let i = 0; i < words.length; i++) {
    if (FLAGS.has(words[i])) continue;
    if (words[i] === key) return words[i + 1] ?? null;
  }
  return null;
}
