/**
 * Image reference validation, as a kubelet does it before pulling: the grammar of
 * github.com/distribution/reference (ParseNormalizedNamed), with its error texts, and
 * the kubelet's message around them (`Failed to apply default image tag …`), so that
 * `kubectl describe` reads as it would on any node.
 *
 * Hand-written because no maintained npm package implements this grammar; the
 * expressions below follow distribution/reference's regexp.go:
 *
 *   reference   := name [ ":" tag ] [ "@" digest ]
 *   name        := [domain '/'] remote-name          (at most 255 characters)
 *   domain      := host [ ":" port ]
 *   host        := domain-name | IPv4 | "[" IPv6 "]"
 *   remote-name := path-component [ '/' path-component ]*
 *   path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*   separator := [_.] | "__" | "-"+
 *   tag         := [\w][\w.-]{0,127}
 *   digest      := algorithm ":" hex (at least 32 hex digits; sha256 exactly 64, sha512 128)
 */

const alnum = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alnum}(?:${separator}${alnum})*`;
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const ipv6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const host = `(?:${domainName}|${ipv6})`;
const domain = `${host}(?::[0-9]+)?`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const name = `(?:${domain}/)?${remoteName}`;
const tag = '[\\w][\\w.-]{0,127}';
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const REFERENCE = new RegExp(`^(${name})(?::(${tag}))?(?:@(${digest}))?$`);
const ANCHORED_HEX64 = /^[a-f0-9]{64}$/;
const NAME_TOTAL_LENGTH_MAX = 255;
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

export class InvalidImageReferenceError extends Error {
  override readonly name = 'InvalidImageReferenceError';
  constructor(
    readonly image: string,
    /** distribution/reference's own text, e.g. `invalid reference format`. */
    readonly detail: string,
  ) {
    super(`Failed to apply default image tag "${image}": couldn't parse image reference "${image}": ${detail}`);
  }
}

/** Why `image` is not a valid reference (distribution/reference's words), or undefined when it is. */
export function imageReferenceProblem(image: string): string | undefined {
  if (image === '') return 'repository name must have at least one component';
  const m = REFERENCE.exec(image);
  if (!m) {
    // distribution tells uppercase apart: the same text lowercased would parse.
    if (REFERENCE.test(image.toLowerCase())) return 'invalid reference format: repository name must be lowercase';
    return 'invalid reference format';
  }
  const named = m[1] ?? '';
  if (named.length > NAME_TOTAL_LENGTH_MAX)
    return `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`;
  // ParseNormalizedNamed: a bare 64-hex name would be mistaken for an image id.
  if (ANCHORED_HEX64.test(named))
    return `invalid repository name (${named}), cannot specify 64-byte hexadecimal strings`;
  const d = m[3];
  if (d) {
    const [algorithm = '', hex = ''] = d.split(':');
    const want = DIGEST_HEX_LENGTH[algorithm];
    if (want === undefined) return 'unsupported digest algorithm';
    if (/[A-F]/.test(hex)) return 'invalid checksum digest format';
    if (hex.length !== want) return 'invalid checksum digest length';
  }
  return undefined;
}

/** Throws {@link InvalidImageReferenceError} for an image a kubelet would refuse to pull. */
export function assertValidImageReference(image: string): void {
  const problem = imageReferenceProblem(image);
  if (problem) throw new InvalidImageReferenceError(image, problem);
}
