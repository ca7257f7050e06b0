export { KubeletApiServer, startKubeletApi, type KubeletApiOptions, type PodLookup } from './server.js';
export {
  loadKubeletTls,
  secureServerOptions,
  selfSignedServingPair,
  KubeletTlsError,
  SECURE_CIPHERS,
  type KubeletTls,
  type KubeletTlsFiles,
} from './tls.js';
export {
  AUTHORIZATION_MODES,
  AuthError,
  KubeletAuth,
  metricsGuard,
  type AuthorizationMode,
  type KubeletAuthOptions,
} from './auth.js';
export { requestAttributes, verbOf } from './attributes.js';
