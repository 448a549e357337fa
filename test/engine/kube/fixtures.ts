/** Fixture access for the kube tests: the kube-proxy conformance cases and the k3s example. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const KUBE_PROXY = join(ROOT, 'test', 'fixtures', 'kube-proxy');
export const K3S_EXAMPLE = join(ROOT, 'examples', 'k3s');

export interface Flow {
  readonly name: string;
  readonly source: string;
  readonly protocol: 'tcp' | 'udp' | 'sctp';
  readonly destination: string;
  readonly port: number;
  readonly expect: { readonly endpoints?: string[]; readonly verdict?: string; readonly masquerade: boolean };
}

export interface KubeProxyCase {
  readonly folder: string;
  readonly dump: string;
  readonly flows: { readonly localIPs: string[]; readonly nodeName: string; readonly clusterCIDR?: string; readonly flows: Flow[] };
  /** Parsed manifests.json, or null for cases without one (trace-packet). */
  readonly manifests: unknown;
}

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function kubeProxyCases(): KubeProxyCase[] {
  const index = readJson(join(KUBE_PROXY, 'index.json')) as { cases: { folder: string; manifests?: boolean }[] };
  return index.cases.map((c) => {
    const dir = join(KUBE_PROXY, c.folder);
    let manifests: unknown = null;
    try {
      manifests = readJson(join(dir, 'manifests.json'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return {
      folder: c.folder,
      dump: readFileSync(join(dir, 'iptables-save.txt'), 'utf8'),
      flows: readJson(join(dir, 'flows.json')) as KubeProxyCase['flows'],
      manifests,
    };
  });
}

/** The node's own addresses as the conformance test hands them to the tracer: localIPs minus loopback. */
export function nodeAddresses(c: KubeProxyCase): string[] {
  return c.flows.localIPs.filter((a) => a !== '127.0.0.1' && a !== '::1');
}
