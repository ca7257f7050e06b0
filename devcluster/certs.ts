/**
 * The dev cluster's PKI: one CA that signs the API server's serving certificate,
 * every client certificate (admin, controllers, the connector, the API server's
 * kubelet client) and a kubelet serving certificate for connectors under test.
 *
 * ECDSA P-256 throughout: generating a dozen RSA keys costs seconds on a busy
 * 2-core machine, EC keys cost milliseconds, and every Kubernetes component
 * accepts them. @peculiar/x509 builds the certificates (node-forge has no EC).
 */
import 'reflect-metadata';
import { generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

// Node's webcrypto is the standard Crypto; the types differ only because this project builds without the DOM lib.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const year = 365 * 24 * 3600_000;

export interface KeyPairPem {
  cert: string;
  key: string;
}

export interface CertRequest {
  commonName: string;
  organizations?: string[];
  serverNames?: string[];
  serverIps?: string[];
  client?: boolean;
  server?: boolean;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f; // a positive serial
  return b.toString('hex');
}

function distinguishedName(req: Pick<CertRequest, 'commonName' | 'organizations'>): string {
  // Commas and other specials never occur in our names; escape them anyway so a change can't break parsing.
  const esc = (v: string) => v.replace(/([,+"\\<>;=])/g, '\\$1');
  return [`CN=${esc(req.commonName)}`, ...(req.organizations ?? []).map((o) => `O=${esc(o)}`)].join(', ');
}

async function pemKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
}

export class CertificateAuthority {
  private constructor(
    private readonly cert: x509.X509Certificate,
    private readonly keys: CryptoKeyPair,
    readonly pem: KeyPairPem,
  ) {}

  static async create(commonName: string): Promise<CertificateAuthority> {
    const keys = await newKeys();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: distinguishedName({ commonName }),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + year),
      signingAlgorithm: alg,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new CertificateAuthority(cert, keys, { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) });
  }

  /** The CA of a running cluster, from its PEM files (to issue more certificates later, e.g. per node name). */
  static async load(pem: KeyPairPem): Promise<CertificateAuthority> {
    const cert = new x509.X509Certificate(pem.cert);
    const der = Buffer.from(pem.key.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    // Both come back typed as the DOM's CryptoKey, which this build has no lib for; they are Node's.
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, alg, true, ['sign']);
    const publicKey = (await cert.publicKey.export(alg, ['verify'])) as unknown as CryptoKey;
    return new CertificateAuthority(cert, { privateKey, publicKey }, pem);
  }

  async issue(req: CertRequest): Promise<KeyPairPem> {
    const keys = await newKeys();
    const usages: string[] = [];
    if (req.server) usages.push(x509.ExtendedKeyUsage.serverAuth);
    if (req.client) usages.push(x509.ExtendedKeyUsage.clientAuth);
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usages),
      await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey),
    ];
    const names = [
      ...(req.serverNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(req.serverIps ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: distinguishedName(req),
      issuer: this.cert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + year),
      signingAlgorithm: alg,
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      extensions,
    });
    return { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) };
  }
}

/** Writes NAME.crt and NAME.key into dir and returns their paths. */
export function writePair(dir: string, name: string, pair: KeyPairPem): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  return { cert, key };
}

/** The service-account token signing key pair (ES256). */
export function serviceAccountKeys(dir: string): { key: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const key = join(dir, 'sa.key');
  const pub = join(dir, 'sa.pub');
  writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { key, pub };
}
