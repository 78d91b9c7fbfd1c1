import { StorageError } from '../../lib/errors.js';

/** A failed TCP connect to the SSH server as a StorageError that says what to check. */
export function socketError(err: NodeJS.ErrnoException, hostname: string, port: number): StorageError {
  switch (err.code) {
    case 'ECONNREFUSED':
      return new StorageError(
        'unreachable',
        `cannot connect to ${hostname}:${port}: connection refused; check that sshd runs on the host and that sshPort is right.`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StorageError('unreachable', `cannot resolve hostname ${hostname} (${err.code}); fix the hostname of the backup storage.`);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new StorageError('unreachable', `cannot reach ${hostname}:${port} (${err.code}); check the network and firewalls.`);
    case 'ECONNRESET':
    case 'EPIPE':
      return new StorageError(
        'unreachable',
        `the connection to ${hostname}:${port} was reset (${err.code}); check that an SSH server answers there.`,
      );
    default:
      return new StorageError('unreachable', `cannot connect to ${hostname}:${port} (${err.code ?? err.message}).`);
  }
}
