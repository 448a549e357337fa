/**
 * The keys a long chain is indexed by for tracing (trace/compile.ts): a rule's exact destination
 * (a non-negated single host) and its destination port (a non-negated single `--dport` of a tcp,
 * udp or sctp match). A packet to another address or port skips the rule without testing it.
 * The parser keeps them per rule (RuleStore); rules made otherwise give them here.
 */
import type { Cidr, MatchModule, Negatable } from './ast.ts';
import { readPortRange } from '../net/port.ts';
import { isDispatchPortOption } from './modules.ts';

/** The address of a destination that names one host, else null. */
export function dispatchHost(destination: Negatable<Cidr> | undefined): string | null {
  if (destination === undefined || destination.negated) return null;
  const d = destination.value;
  return d.prefix === (d.family === 'ipv4' ? 32 : 128) ? d.address : null;
}

/** The port option `--name arg` of `module` gives as a dispatch key, or null. */
export function dispatchPort(module: string, name: string, negated: boolean, arg: string | undefined): number | null {
  if (arg === undefined || !isDispatchPortOption(module, name, negated) || arg.includes(':')) return null;
  const read = readPortRange(arg, module);
  if ('error' in read) return null;
  const [lo, hi] = read.range;
  return lo !== null && lo === hi ? lo : null;
}

/** Both keys of a rule (the last dispatch port when it gives several). */
export function dispatchKeys(rule: { readonly destination?: Negatable<Cidr>; readonly matches: readonly MatchModule[] }): { dst: string | null; port: number | null } {
  let port: number | null = null;
  for (const m of rule.matches) {
    for (const o of m.options) port = dispatchPort(m.module, o.name, o.negated, o.args[0]) ?? port;
  }
  return { dst: dispatchHost(rule.destination), port };
}
