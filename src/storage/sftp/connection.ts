import { createHash } from 'node:crypto';
import net from 'node:net';
import ssh2 from 'ssh2';
import type { Client as SshClient, ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import { StorageError } from '../../lib/errors.js';
import { collect, LostConnection, type RunOptions, type RunResult } from './collect.js';
import { scriptCommand } from './quote.js';
import { Slots } from './slots.js';
import { socketError } from './socket-errors.js';

export { collect, LostConnection, type RunOptions, type RunResult } from './collect.js';

/** Where and how to log in. Secrets stay in here: never logged, never put in a message. */
export interface SshTarget {
  hostname: string;
  port: number;
  username: string;
  password?: string;
  privateKey?: string;
}

export interface HostKeyPolicy {
  /** The recorded fingerprint ('SHA256:…'); undefined on first connect. */
  expected(): string | undefined;
  /** Records the fingerprint seen on a first successful login. */
  learn(fingerprint: string): Promise<void>;
}

/** Bytes on the wire and remote commands run, for the benchmark and tests. */
export interface WireStats {
  bytesIn: number;
  bytesOut: number;
  commands: number;
  connections: number;
}

const MAX_CHANNELS = 8;

/**
 * Every script reports its own exit status as its last stderr line. Under load OpenSSH sometimes closes a
 * session channel without the exit-status message even though the command ran to its end; this line
 * tells a finished command from a lost one.
 */
const EXIT_MARK = `trap 'printf "@X %s\\n" "$?" >&2' EXIT`;

/** OpenSSH's fingerprint of a public key blob: SHA256:<base64 without padding>. */
export const fingerprintOf = (key: Buffer): string => `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;

/**
 * One pooled SSH connection to one host: made on first use, checked against the recorded host key,
 * replaced after it breaks. Commands are run as constant scripts with quoted arguments (see quote.ts).
 */
export class SshConnection {
  private client: SshClient | undefined;
  private connecting: Promise<SshClient> | undefined;
  private sftpSession: Promise<SFTPWrapper> | undefined;
  private closed = false;
  private readonly slots = new Slots(MAX_CHANNELS);
  private liveSocket: net.Socket | undefined;
  private readonly stats0: WireStats = { bytesIn: 0, bytesOut: 0, commands: 0, connections: 0 };

  constructor(
    private readonly target: SshTarget,
    private readonly hostKey: HostKeyPolicy,
  ) {}

  /** `user@host:port`, for messages. */
  get where(): string {
    const h = this.target.hostname.includes(':') ? `[${this.target.hostname}]` : this.target.hostname;
    return `${this.target.username}@${h}:${this.target.port}`;
  }

  stats(): WireStats {
    const s = this.liveSocket;
    return {
      ...this.stats0,
      bytesIn: this.stats0.bytesIn + (s ? s.bytesRead : 0),
      bytesOut: this.stats0.bytesOut + (s ? s.bytesWritten : 0),
    };
  }

  /** The connected client, connecting (or reconnecting) when needed. */
  async ensure(): Promise<SshClient> {
    if (this.closed) throw new StorageError('unreachable', `the connection to ${this.where} was closed`);
    if (this.client) return this.client;
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Drops the pooled connection (the next use makes a new one). */
  reset(): void {
    const c = this.client;
    this.client = undefined;
    this.sftpSession = undefined;
    c?.end();
    c?.destroy();
  }

  close(): Promise<void> {
    this.closed = true;
    this.reset();
    return Promise.resolve();
  }

  private countSocket(sock: net.Socket): void {
    this.liveSocket = sock;
    sock.once('close', () => {
      this.stats0.bytesIn += sock.bytesRead;
      this.stats0.bytesOut += sock.bytesWritten;
      if (this.liveSocket === sock) this.liveSocket = undefined;
    });
  }

  private async open(): Promise<SshClient> {
    const { hostname, port, username } = this.target;
    const where = this.where;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: hostname, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          new StorageError(
            'unreachable',
            `cannot connect to ${hostname}:${port}: no answer within 15 s; check the hostname, sshPort and firewalls.`,
          ),
        );
      }, 15_000);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(socketError(err, hostname, port));
      });
    });
    sock.setNoDelay(true);
    this.countSocket(sock);
    this.stats0.connections++;

    const expected = this.hostKey.expected();
    let seen: string | undefined;
    const client = new ssh2.Client();
    const config: ConnectConfig = {
      sock,
      username,
      readyTimeout: 15_000,
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      tryKeyboard: this.target.password !== undefined,
      hostVerifier: (key: Buffer) => {
        seen = fingerprintOf(key);
        return expected === undefined || expected === seen;
      },
    };
    if (this.target.privateKey !== undefined) config.privateKey = this.target.privateKey;
    if (this.target.password !== undefined) config.password = this.target.password;
    const password = this.target.password;
    client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => {
      finish(prompts.map(() => password ?? ''));
    });

    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error & { level?: string; code?: string }): void => {
        client.removeListener('ready', onReady);
        // ssh2 can emit a second error as the dead socket closes ("Connection lost before handshake"):
        // this failure is already reported, so later errors of this client are ignored, not uncaught.
        client.on('error', () => undefined);
        client.destroy();
        sock.destroy();
        if (expected !== undefined && seen !== undefined && seen !== expected) {
          reject(
            new StorageError(
              'permission',
              `the SSH host key of ${hostname}:${port} has changed: expected ${expected}, seen ${seen}. zimage refuses to connect ` +
                `(this is what a man-in-the-middle looks like). If the host was reinstalled, check its key on the host ` +
                `(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and accept it with UpdateSftpBackupStorage ` +
                `(hostKeyFingerprint: "${seen}", or resetHostKey: true).`,
            ),
          );
        } else if (err.level === 'client-authentication') {
          reject(
            new StorageError(
              'permission',
              `SSH login to ${where} was refused: wrong ${this.target.privateKey !== undefined && this.target.password === undefined ? 'private key' : 'password or private key'}, ` +
                `or the user may not log in; check the username and credentials of the backup storage.`,
            ),
          );
        } else if (err.level === 'client-timeout') {
          reject(
            new StorageError('unreachable', `SSH handshake with ${hostname}:${port} timed out; is an SSH server answering on that port?`),
          );
        } else if (err.code) {
          reject(socketError(err, hostname, port));
        } else {
          reject(new StorageError('unreachable', `SSH connection to ${where} failed: ${err.message}`));
        }
      };
      const onReady = (): void => {
        client.removeListener('error', onError);
        resolve();
      };
      client.once('error', onError);
      client.once('ready', onReady);
      client.connect(config);
    });

    // From now on a failure only ends this connection; the next call makes a new one.
    client.on('error', () => {
      if (this.client === client) this.reset();
    });
    client.on('close', () => {
      if (this.client === client) {
        this.client = undefined;
        this.sftpSession = undefined;
      }
    });
    if (expected === undefined && seen !== undefined) {
      try {
        await this.hostKey.learn(seen);
      } catch (err) {
        client.end();
        throw new StorageError('io', `cannot record the host key of ${hostname}:${port}: ${(err as Error).message}`);
      }
    }
    if (this.closed) {
      client.end();
      throw new StorageError('unreachable', `the connection to ${where} was closed`);
    }
    this.client = client;
    return client;
  }

  /** The connection's SFTP session (one, shared). */
  async sftp(): Promise<SFTPWrapper> {
    const client = await this.ensure();
    this.sftpSession ??= new Promise<SFTPWrapper>((resolve, reject) => {
      client.sftp((err, sftp) => {
        if (err) {
          this.sftpSession = undefined;
          reject(
            new StorageError(
              'unsupported',
              `the SFTP subsystem of ${this.where} is not available (${err.message}); enable "Subsystem sftp" in sshd_config.`,
            ),
          );
          return;
        }
        sftp.on('close', () => {
          this.sftpSession = undefined;
        });
        sftp.on('error', () => {
          this.sftpSession = undefined;
        });
        resolve(sftp);
      });
    });
    return this.sftpSession;
  }

  /** Opens a channel running `sh -c <script> zimage <args…>`; the slot is held until the channel closes. */
  async channel(script: string, args: readonly string[], signal?: AbortSignal, retry = false): Promise<ClientChannel> {
    const release = await this.slots.acquire(signal);
    const command = scriptCommand(`${EXIT_MARK}\n${script}`, args);
    for (let attempt = 0; ; attempt++) {
      let client: SshClient;
      try {
        client = await this.ensure();
      } catch (err) {
        release();
        throw err;
      }
      try {
        const ch = await new Promise<ClientChannel>((resolve, reject) => {
          try {
            client.exec(command, (err, ch) => (err ? reject(err) : resolve(ch)));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
        this.stats0.commands++;
        ch.once('close', release);
        return ch;
      } catch (err) {
        // A pooled connection that died between uses: start again once on a fresh one.
        if (this.client === client) this.reset();
        if (retry && attempt === 0) continue;
        release();
        throw new StorageError('unreachable', `cannot run a command on ${this.where}: ${(err as Error).message}`);
      }
    }
  }

  /** Runs a script to its end and collects its output. Rejects only when the channel itself fails. */
  async run(script: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    opts.signal?.throwIfAborted();
    const ch = await this.channel(script, args, opts.signal, opts.retry ?? false);
    try {
      return await collect(ch, this.where, opts);
    } catch (err) {
      // The connection broke under a command that may safely run again (it was pooled and had gone
      // stale, e.g. sshd restarted): once more on a fresh connection, whose failure is the real answer.
      if (!opts.retry || !(err instanceof LostConnection) || opts.signal?.aborted) throw err;
      return collect(await this.channel(script, args, opts.signal, true), this.where, opts);
    }
  }
}
