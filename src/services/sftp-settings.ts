import { posix } from 'node:path';
import { ZStackError } from '../lib/errors.js';
import { FINGERPRINT_RE, privateKeyProblem } from '../storage/sftp/index.js';

/* The settings of an SFTP backup storage as AddSftpBackupStorage / UpdateSftpBackupStorage check them (SYS.1007). */

/** The remote directory: absolute, normalised, no trailing slash. */
export function remoteDirectory(url: string): string {
  if (!url.startsWith('/') || url.includes('\0')) {
    throw new ZStackError('SYS.1007', `url[${url}] must be an absolute directory path on the SFTP host, e.g. /var/lib/zimage/images`);
  }
  return posix.normalize(url).replace(/(.)\/+$/, '$1');
}

export function checkPrivateKey(pem: string | undefined): void {
  if (pem === undefined || pem === '') return;
  const problem = privateKeyProblem(pem);
  if (problem) throw new ZStackError('SYS.1007', `invalid field[privateKey]: ${problem}`);
}

export function checkFingerprint(fp: string | undefined): void {
  if (fp !== undefined && !FINGERPRINT_RE.test(fp)) {
    throw new ZStackError(
      'SYS.1007',
      `invalid field[hostKeyFingerprint]: ${fp} is not an SSH fingerprint; give it as ssh-keygen -l prints it (SHA256:…)`,
    );
  }
}

const IPV4_RE = /^(([01]?\d\d?|2[0-4]\d|25[0-5])\.){3}([01]?\d\d?|2[0-4]\d|25[0-5])$/;
const HOSTNAME_RE = /^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;

/** SftpBackupStorageApiInterceptor: an IPv4 address or a host name (NetworkUtils' patterns), else SYS.1007. */
export function checkHostname(hostname: string | undefined): void {
  if (hostname !== undefined && !IPV4_RE.test(hostname) && !HOSTNAME_RE.test(hostname)) {
    throw new ZStackError('SYS.1007', `hostname[${hostname}] is neither an IPv4 address nor a valid hostname`);
  }
}
