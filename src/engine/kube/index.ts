/**
 * Kubernetes meaning for traces: manifests → cluster model, kube-proxy's chain names recomputed,
 * and trace outcomes described as Services, frontends, endpoints, pods and masquerade reasons.
 * Re-exported by the engine barrel (src/engine/index.ts).
 */
export { readClusterModel } from './manifests.ts';
export { ClusterModel, canonicalIP } from './model.ts';
export {
  ChainNameIndex, decodeChainName, endpointString, kubeProxyChainName, servicePortNameString, splitChainName,
} from './chain-names.ts';
export { parseServicePortName, resolveServiceFrontends, serviceKey } from './describe.ts';
export { describeTrace } from './describe-any.ts';
export { decodeNftChainName, nftChainName } from './nft-chain-names.ts';
export { base32, sha256, toHex, utf8 } from './sha256.ts';

export type { ReadClusterModelResult } from './manifests.ts';
export type {
  ClusterModelData, EndpointPort, FrontendKind, FrontendMatch, Namespace, Node, NodeAddress, ObjectRef, OtherObject, Pod,
  PortEndpoint, Service, ServiceEndpoint, ServicePort, ServiceProtocol, ServiceType, SourceRef, TrafficPolicy,
} from './model.ts';
export type { ChainKind, ChainNameEntry, ChainPrefix } from './chain-names.ts';
export type { NftChainKind, NftChainName } from './nft-chain-names.ts';
export type {
  DescribedEndpoint, DescribedFrontend, DescribedOutcome, DescribedPod, DescribedService, DescribedTrace, DescribeOptions,
  ServiceFrontend,
} from './describe.ts';
