/** Digest algorithms zimage computes, by their wire names (CalculateImageHash's `algorithm`). */
export const DIGEST_ALGORITHMS = ['MD5', 'SHA1', 'SHA256', 'SHA512', 'SM3'] as const;
export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number];

/** Hex digests, keyed by algorithm. */
export type DigestResult = Partial<Record<DigestAlgorithm, string>>;

const NODE_NAMES: Record<DigestAlgorithm, string> = {
  MD5: 'md5',
  SHA1: 'sha1',
  SHA256: 'sha256',
  SHA512: 'sha512',
  SM3: 'sm3',
};

/** OpenSSL's name for the algorithm (node:crypto and `openssl dgst -<name>`). */
export const opensslName = (alg: DigestAlgorithm): string => NODE_NAMES[alg];

/** Case-insensitive; `sha-256` and `sha256` both name SHA256. Undefined when unsupported. */
export function parseDigestAlgorithm(value: string): DigestAlgorithm | undefined {
  const key = value.trim().toUpperCase().replace(/-/g, '');
  return (DIGEST_ALGORITHMS as readonly string[]).includes(key) ? (key as DigestAlgorithm) : undefined;
}
