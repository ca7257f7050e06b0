/**
 * The Azure credential and TLS settings the ARM client uses.
 *
 * With a client secret: that service principal. Without: @azure/identity's
 * default chain (workload identity, managed identity, …).
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { ClientSecretCredential, DefaultAzureCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import type { TlsSettings } from '@azure/core-rest-pipeline';
import type { AciConfig } from '../config.js';
import { AciConfigError } from '../errors.js';
import { ENV } from '../config.js';
import { errorMessage } from '../../../common/errors.js';

export interface TlsOptions {
  ca?: string[];
  /** The same CAs, parsed once, for the Azure SDK's pipeline (pipelineTls). */
  secureContext?: SecureContext;
}

/**
 * The Azure pipeline's TLS settings: one SecureContext instead of the CA list. Given the list,
 * Node parses all its certificates again for each new TLS connection and joins them into the
 * agent's socket key on each request: about 4 s of CPU for 1,000 pods in the benchmark's profile.
 * (The pipeline spreads these settings into its https.Agent, which hands them to tls.connect.)
 */
export function pipelineTls(tls: TlsOptions): { tlsOptions: TlsSettings } | Record<string, never> {
  return tls.secureContext ? { tlsOptions: { secureContext: tls.secureContext } as TlsSettings } : {};
}

/** The CA bundle: the usual public roots plus the configured file, so both Azure and a private endpoint verify. */
export function tlsOptionsFor(cfg: Pick<AciConfig, 'caFile'>): TlsOptions {
  if (!cfg.caFile) return {};
  let pem: string;
  try {
    pem = readFileSync(cfg.caFile, 'utf8');
  } catch (e) {
    throw new AciConfigError(ENV.caFile, `${ENV.caFile}: cannot read ${cfg.caFile}: ${errorMessage(e)}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----'))
    throw new AciConfigError(ENV.caFile, `${ENV.caFile}: ${cfg.caFile} holds no PEM certificate`);
  const ca = [...rootCertificates, pem];
  return { ca, secureContext: createSecureContext({ ca }) };
}

export function createCredential(cfg: AciConfig, tls: TlsOptions): TokenCredential {
  const common = {
    ...(cfg.authorityHost ? { authorityHost: cfg.authorityHost, disableInstanceDiscovery: true } : {}),
    ...pipelineTls(tls),
  };
  if (cfg.clientSecret && cfg.clientId && cfg.tenantId) {
    return new ClientSecretCredential(cfg.tenantId, cfg.clientId, cfg.clientSecret, common);
  }
  return new DefaultAzureCredential({ ...common, ...(cfg.clientId ? { managedIdentityClientId: cfg.clientId } : {}) });
}
