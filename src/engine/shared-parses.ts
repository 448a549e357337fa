/**
 * The engine's caches shared by every dump (parsed rule bodies, compiled rules, the checks' chain
 * readings, each node's expected Service ports): all go at once here, for a thread that has
 * finished a large task and should not carry them into the next (an audit of 20 nodes of 10,000
 * Services leaves some 400 MB of them).
 */
import { forgetExpectedPorts } from './checks/expected.ts';
import { forgetChainReadings } from './checks/node-rules.ts';
import { forgetSharedBodies } from './netfilter/rule.ts';
import { forgetSharedRules } from './trace/compile.ts';

export function forgetSharedParses(): void {
  forgetSharedBodies();
  forgetSharedRules();
  forgetChainReadings();
  forgetExpectedPorts();
}
