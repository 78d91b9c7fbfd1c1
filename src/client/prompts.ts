import { createHash } from 'node:crypto';
import confirm from '@inquirer/confirm';
import password from '@inquirer/password';
import { UsageError } from './errors.js';

/** ZStack's clients send the SHA-512 hex of the password, never the password itself. */
export const wirePassword = (plain: string): string => createHash('sha512').update(plain).digest('hex');

async function firstLineOfStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/**
 * A secret for scripts or people: from the environment variable if set, else prompted without echo on a
 * terminal, else the first line of stdin.
 */
export async function readSecret(label: string, envName: string): Promise<string> {
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (process.stdin.isTTY) return password({ message: `${label}:` });
  const line = await firstLineOfStdin();
  if (line === '') throw new UsageError(`no ${label.toLowerCase()}: set ${envName}, type it on a terminal, or pipe it on stdin`);
  return line;
}

/** A yes/no question on the terminal; false when the user interrupts the question itself. */
export async function askYesNo(message: string): Promise<boolean> {
  try {
    return await confirm({ message, default: false });
  } catch {
    return false;
  }
}
