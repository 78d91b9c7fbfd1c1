/** The import policy read from environment-style settings. */
import { parseCidr } from './cidr.js';
import { IMPORT_POLICY_ENV, type ImportPolicy, makeImportPolicy } from './import-policy.js';

/**
 * A policy from environment-style settings ({@link IMPORT_POLICY_ENV} names; lists separated by commas or
 * whitespace; an empty value means an empty list). Unset names keep their defaults. Pure: pass the map.
 */
export function policyFromEnv(env: Readonly<Record<string, string | undefined>>): ImportPolicy {
  const list = (k: keyof typeof IMPORT_POLICY_ENV): string[] | undefined => {
    const v = env[IMPORT_POLICY_ENV[k]];
    return v === undefined ? undefined : v.split(/[\s,;]+/).filter(Boolean);
  };
  const num = (k: keyof typeof IMPORT_POLICY_ENV): number | undefined => {
    const v = env[IMPORT_POLICY_ENV[k]];
    if (v === undefined || v.trim() === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`${IMPORT_POLICY_ENV[k]}="${v}" is not a number`);
    return n;
  };
  const o: { -readonly [K in keyof ImportPolicy]?: ImportPolicy[K] } = {};
  const ports = (k: 'allowedPorts' | 'deniedPorts'): number[] | undefined =>
    list(k)?.map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n)) throw new Error(`${IMPORT_POLICY_ENV[k]}: "${s}" is not a port number`);
      return n;
    });
  o.fileRoots = list('fileRoots');
  o.allowedSchemes = list('allowedSchemes');
  o.allowedNetworks = list('allowedNetworks');
  o.deniedNetworks = list('deniedNetworks');
  o.allowedPorts = ports('allowedPorts');
  o.deniedPorts = ports('deniedPorts');
  o.connectTimeoutMs = num('connectTimeoutMs');
  o.idleTimeoutMs = num('idleTimeoutMs');
  o.maxRedirects = num('maxRedirects');
  const hiddenText = env[IMPORT_POLICY_ENV.fileDenyHidden]?.trim().toLowerCase();
  if (hiddenText) o.fileDenyHidden = !['0', 'false', 'no', 'off'].includes(hiddenText);
  const defined = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<ImportPolicy>;
  for (const c of [...(defined.allowedNetworks ?? []), ...(defined.deniedNetworks ?? [])]) {
    try {
      parseCidr(c);
    } catch (err) {
      throw new Error(
        `${defined.allowedNetworks?.includes(c) ? IMPORT_POLICY_ENV.allowedNetworks : IMPORT_POLICY_ENV.deniedNetworks}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  return makeImportPolicy(defined);
}
