/**
 * The project's one PKI: certificate authorities, certificates they issue, and self-signed
 * serving pairs, for the dev cluster, the emulator and the kubelet API alike.
 *
 * ECDSA P-256 throughout: generating a dozen RSA keys costs seconds on a busy 2-core machine,
 * EC keys cost milliseconds, and every Kubernetes component, Node and MSAL accept them.
 * @peculiar/x509 builds the certificates on Node's WebCrypto (Node's crypto has no certificate
 * builder; node-forge has no EC keys).
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

// Node's webcrypto is the standard Crypto; the types differ only because this project builds without the DOM lib.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** The signature and key algorithm of every key made here. */
export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 3600_000;

export interface KeyPairPem {
  cert: string;
  /** PKCS#8 PEM of the private key; never logged. */
  key: string;
}

export interface CertRequest {
  commonName: string;
  organizations?: string[];
  /** DNS names and IP addresses the certificate is for (each sorted into its SAN type). */
  hosts?: string[];
  serverNames?: string[];
  serverIps?: string[];
  client?: boolean;
  server?: boolean;
  /** Validity from now (default 365 days). */
  validDays?: number;
}

/** A PEM block of `label` around DER bytes. */
export function pemBlock(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der))
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
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
  return pemBlock('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/** A fresh, exportable P-256 key pair. */
export async function newEcKeys(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

function validity(days: number | undefined): { notBefore: Date; notAfter: Date } {
  // A minute back: a peer whose clock is a little behind must not see a certificate from the future.
  return { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + (days ?? 365) * DAY) };
}

/** The extensions of a leaf certificate (not a CA) for `req`. */
function leafExtensions(req: CertRequest): x509.Extension[] {
  const usages: string[] = [];
  if (req.server) usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (req.client) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(usages),
  ];
  const hosts = req.hosts ?? [];
  const dns = [...(req.serverNames ?? []), ...hosts.filter((h) => !isIP(h))];
  const ips = [...(req.serverIps ?? []), ...hosts.filter((h) => isIP(h))];
  const names: x509.JsonGeneralName[] = [
    ...[...new Set(dns)].map((value) => ({ type: 'dns' as const, value })),
    ...[...new Set(ips)].map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  return extensions;
}

export class CertificateAuthority {
  private constructor(
    private readonly cert: x509.X509Certificate,
    private readonly keys: CryptoKeyPair,
    readonly pem: KeyPairPem,
  ) {}

  static async create(commonName: string, opts: { validDays?: number } = {}): Promise<CertificateAuthority> {
    const keys = await newEcKeys();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: distinguishedName({ commonName }),
      ...validity(opts.validDays),
      signingAlgorithm: EC_P256,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new CertificateAuthority(cert, keys, { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) });
  }

  /** A CA from its PEM files (to issue more certificates later, e.g. per node name). Throws for a key that is not P-256. */
  static async load(pem: KeyPairPem): Promise<CertificateAuthority> {
    const cert = new x509.X509Certificate(pem.cert);
    const der = Buffer.from(pem.key.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    // Both come back typed as the DOM's CryptoKey, which this build has no lib for; they are Node's.
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, EC_P256, true, ['sign']);
    const publicKey = (await cert.publicKey.export(EC_P256, ['verify'])) as unknown as CryptoKey;
    return new CertificateAuthority(cert, { privateKey, publicKey }, pem);
  }

  async issue(req: CertRequest): Promise<KeyPairPem> {
    const keys = await newEcKeys();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: distinguishedName(req),
      issuer: this.cert.subject,
      ...validity(req.validDays),
      signingAlgorithm: EC_P256,
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      extensions: [...leafExtensions(req), await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey)],
    });
    return { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) };
  }
}

/** A self-signed leaf certificate (no CA), e.g. a serving pair made at start when none is configured. */
export async function selfSignedPair(req: CertRequest): Promise<KeyPairPem> {
  const keys = await newEcKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: distinguishedName(req),
    ...validity(req.validDays),
    signingAlgorithm: EC_P256,
    keys,
    extensions: leafExtensions(req),
  });
  return { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) };
}
