/**
 * The Azure credential and TLS settings the ARM client uses.
 *
 * With a client secret: that service principal. Without: @azure/identity's
 * default chain (workload identity, managed identity, …).
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { ClientSecretCredential, DefaultAzureCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import type { AciConfig } from '../config.js';
import { AciConfigError } from '../errors.js';
import { ENV } from '../config.js';
import { errorMessage } from '../../../common/errors.js';

export interface TlsOptions {
  ca?: string[];
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
  return { ca: [...rootCertificates, pem] };
}

export function createCredential(cfg: AciConfig, tls: TlsOptions): TokenCredential {
  const common = {
    ...(cfg.authorityHost ? { authorityHost: cfg.authorityHost, disableInstanceDiscovery: true } : {}),
    ...(tls.ca ? { tlsOptions: { ca: tls.ca } } : {}),
  };
  if (cfg.clientSecret && cfg.clientId && cfg.tenantId) {
    return new ClientSecretCredential(cfg.tenantId, cfg.clientId, cfg.clientSecret, common);
  }
  return new DefaultAzureCredential({ ...common, ...(cfg.clientId ? { managedIdentityClientId: cfg.clientId } : {}) });
}
