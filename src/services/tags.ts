import { ZStackError } from '../lib/errors.js';
import { parseDigestAlgorithm } from '../hashing/algorithms.js';

const HEX_LENGTH: Record<string, number> = { MD5: 32, SHA1: 40, SHA256: 64, SHA512: 128, SM3: 64 };

/**
 * Expected digests given by the caller of AddImage as system tags `checksum::<algorithm>::<hex>`
 * (e.g. `checksum::sha256::9f86d0…`). A mismatch fails the add and removes the bytes.
 */
export function expectedChecksums(systemTags: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const tag of systemTags) {
    const m = /^checksum::([^:]+)::(.*)$/i.exec(tag);
    if (!m) continue;
    const alg = parseDigestAlgorithm(m[1]!);
    const hex = m[2]!.trim().toLowerCase();
    if (!alg || !['MD5', 'SHA256'].includes(alg)) {
      throw new ZStackError('SYS.1007', `system tag[${tag}]: AddImage verifies checksum::md5::<hex> and checksum::sha256::<hex> only`);
    }
    if (!new RegExp(`^[0-9a-f]{${HEX_LENGTH[alg]}}$`).test(hex)) {
      throw new ZStackError('SYS.1007', `system tag[${tag}]: a ${alg} digest is ${HEX_LENGTH[alg]} hex digits`);
    }
    out.set(alg, hex);
  }
  return out;
}
