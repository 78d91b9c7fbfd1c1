import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { makeDirs } from './data-dir.js';
import { dirname } from 'node:path';

const PREFIX = 'enc:v1:';

/**
 * Encrypts settings that hold secrets (SFTP passwords and keys, cephx keys) before they reach the
 * database: AES-256-GCM, a fresh IV per value. Values written before encryption existed (plain JSON) are
 * still read.
 */
export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the secret key must be 32 bytes');
  }

  /**
   * The key from ZIMAGE_SECRET_KEY (base64 of 32 bytes; give every node of a cluster the same one), else from
   * `file`, created with mode 0600 on first start.
   */
  static load(envValue: string | undefined, file: string): SecretBox {
    if (envValue) {
      const key = Buffer.from(envValue, 'base64');
      if (key.length !== 32) throw new Error('ZIMAGE_SECRET_KEY must be the base64 of 32 random bytes (e.g. `openssl rand -base64 32`)');
      return new SecretBox(key);
    }
    if (!existsSync(file)) {
      makeDirs(dirname(file));
      writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
    }
    return SecretBox.load(readFileSync(file, 'utf8').trim(), file);
  }

  /** A key for another purpose (e.g. signing ids), derived from this one: the same on every node sharing it. */
  deriveKey(purpose: string): Buffer {
    return createHmac('sha256', this.key).update(`zimage:${purpose}`).digest();
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${PREFIX}${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
  }

  open(value: string): string {
    if (!value.startsWith(PREFIX)) return value;
    const [iv, tag, ct] = value.slice(PREFIX.length).split(':');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv!, 'base64'));
      decipher.setAuthTag(Buffer.from(tag!, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(ct!, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(
        'cannot decrypt stored backup-storage settings: this node has a different secret key (set the same ZIMAGE_SECRET_KEY on every node)',
      );
    }
  }
}
