import { hostPort } from '../../src/engine/net/address.ts';

/** Shares as people read them: percent with at most three decimals, trailing zeros dropped. */
export function percent(p: number): string {
  return `${Number((p * 100).toFixed(3))}%`;
}

/** The exact share as the API gives it (a fraction), for hover text. */
export function exactShare(o: { probability: number; exactProbability?: string }): string {
  return o.exactProbability ? `exactly ${o.exactProbability}` : `${o.probability}`;
}

export function when(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function endpointLabel(o: { verdict: string; destination?: { ip: string; port?: number | null } | null }): string {
  if (!o.destination) return o.verdict;
  return o.destination.port ? hostPort(o.destination.ip, o.destination.port) : o.destination.ip;
}
