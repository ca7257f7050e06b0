export { KubeletApiServer, startKubeletApi, type KubeletApiOptions, type PodLookup } from './server.js';
export { loadKubeletTls, selfSignedServingPair, KubeletTlsError, type KubeletTls, type KubeletTlsFiles } from './tls.js';
