import ssh2 from 'ssh2';
import { INVENTORY_CLASS } from '../../lib/inventory-class.js';
import type { StorageTypeDef } from '../types.js';
import { SftpDriver } from './driver.js';

export { parseSftpConfig, SftpDriver, type SftpConfig } from './driver.js';
export { shellCommand, shellQuote } from './quote.js';

/**
 * SftpBackupStorage: a directory on a remote Linux host, reached over SSH (password or private key).
 * Sizes are read through SFTP (headers only) and a remote `stat`; digests are computed on the host.
 */
export const sftpType: StorageTypeDef = {
  type: 'SftpBackupStorage',
  inventoryClass: INVENTORY_CLASS.sftpBackupStorage,
  create: (ctx) => new SftpDriver(ctx),
  /** hostname, username, sshPort and the recorded host key fingerprint: never the password or key. */
  inventoryFields(config) {
    const port = Number(config.sshPort ?? 22);
    return {
      hostname: typeof config.hostname === 'string' ? config.hostname : null,
      username: typeof config.username === 'string' ? config.username : null,
      sshPort: Number.isInteger(port) ? port : 22,
      ...(typeof config.hostKeyFingerprint === 'string' && config.hostKeyFingerprint
        ? { hostKeyFingerprint: config.hostKeyFingerprint }
        : {}),
    };
  },
};

/** Why a private key (PEM / OpenSSH format) cannot be used, or undefined when it can. Never echoes the key. */
export function privateKeyProblem(pem: string): string | undefined {
  const parsed = ssh2.utils.parseKey(pem);
  if (parsed instanceof Error) {
    return /encrypted/i.test(parsed.message)
      ? 'the private key is encrypted with a passphrase; give zimage an unencrypted key (ssh-keygen -p -N "" -f <key>)'
      : 'the private key cannot be parsed; give an OpenSSH or PEM private key (RSA, ECDSA or Ed25519)';
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || !key.isPrivateKey()) return 'the key is not a private key';
  return undefined;
}

/** 'SHA256:' and 43 base64 characters, as `ssh-keygen -l` prints. */
export const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;
