import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

// scrypt N=2^15, r=8, p=1: ~50 ms and 32 MiB per check on this class of machine.
const N = 32768;
const R = 8;
const P = 1;
const KEY_LEN = 64;

function derive(secret: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_LEN, { N: n, r, p, maxmem: 256 * n * r }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/**
 * Stores a password as a slow salted hash. The wire form is already the SHA-512 hex of the plain text
 * (what ZStack's clients send); that value is hashed again with scrypt.
 */
export async function hashPassword(wirePassword: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(wirePassword.toLowerCase(), salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(wirePassword: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = await derive(wirePassword.toLowerCase(), Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
