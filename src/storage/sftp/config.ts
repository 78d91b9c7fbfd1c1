import { StorageError } from '../../lib/errors.js';

/** What an SftpBackupStorage row's config holds. `password`/`privateKey` never leave the driver. */
export interface SftpConfig {
  hostname: string;
  username: string;
  sshPort: number;
  password?: string;
  privateKey?: string;
  /** The host key recorded on first connect ('SHA256:…'). */
  hostKeyFingerprint?: string;
}

/** Reads a row's settings; a missing or malformed one is a StorageError('invalid') naming it. */
export function parseSftpConfig(config: Record<string, unknown>): SftpConfig {
  const str = (k: string): string | undefined => {
    const v = config[k];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new StorageError('invalid', `SFTP setting ${k} must be a string.`);
    return v;
  };
  const hostname = str('hostname');
  const username = str('username');
  if (!hostname) throw new StorageError('invalid', 'the SFTP backup storage has no hostname; set it with UpdateSftpBackupStorage.');
  if (!username) throw new StorageError('invalid', 'the SFTP backup storage has no username; set it with UpdateSftpBackupStorage.');
  const port = config.sshPort === undefined || config.sshPort === null ? 22 : Number(config.sshPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new StorageError('invalid', `sshPort ${String(config.sshPort)} is not a TCP port (1-65535).`);
  const password = str('password');
  const privateKey = str('privateKey');
  if (password === undefined && privateKey === undefined) {
    throw new StorageError(
      'invalid',
      'the SFTP backup storage has neither a password nor a private key; set one with UpdateSftpBackupStorage.',
    );
  }
  const hostKeyFingerprint = str('hostKeyFingerprint');
  return {
    hostname,
    username,
    sshPort: port,
    ...(password !== undefined ? { password } : {}),
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(hostKeyFingerprint !== undefined ? { hostKeyFingerprint } : {}),
  };
}
