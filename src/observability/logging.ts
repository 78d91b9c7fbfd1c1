import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

/** Fields that may hold a secret wherever they appear in a logged object (one or two levels deep). */
const SECRET_KEYS = ['authorization', 'password', 'cephKey', 'sessionUuid', 'token', 'metricsToken', 'secretKey'];
export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
];

const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@'"]+@/gi;

/** `scheme://user:pass@host` → `scheme://***@host` in any text. */
export const maskUserinfo = (text: string): string => text.replace(USERINFO, '$1***@');

/** The logged object with credentials in its string fields masked (a copy when something changes). */
function maskStrings(obj: Record<string, unknown>): Record<string, unknown> {
  let out = obj;
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v !== 'string' || !v.includes('@')) continue;
    const masked = maskUserinfo(v);
    if (masked === v) continue;
    if (out === obj) out = { ...obj };
    out[k] = masked;
  }
  return out;
}

/**
 * The process logger: JSON lines, or human-readable lines when stdout is a terminal. Secrets are
 * redacted by field name, and credentials in URLs (`user:pass@`) are masked in every logged string.
 */
export function createLogger(level: string, opts: { pretty?: boolean } = {}): Logger {
  const options: pino.LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: '***' },
    formatters: { log: maskStrings },
    serializers: {
      err: (err: Error) => maskStrings(pino.stdSerializers.err(err)),
    },
  };
  const human = opts.pretty ?? process.stdout.isTTY === true;
  if (!human) return pino(options);
  return pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
}
