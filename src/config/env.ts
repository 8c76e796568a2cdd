// Boolean environment variables, read one way everywhere: FIREZONE_NO_INC_BUF=0 must not mean
// "set" just because it is present, and GLASSGATE_METRICS_PER_PEER=true must not mean "off".
// Words as clap's boolish parser (what Firezone's own env flags go through) accepts them.

const TRUE = new Set(["1", "true", "yes", "on", "y", "t"]);
const FALSE = new Set(["", "0", "false", "no", "off", "n", "f"]);

/** An environment variable with a value that is not a yes/no word. */
export class EnvError extends Error {
  constructor(readonly variable: string, readonly value: string) {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    super(`${variable}: "${shown}" is not a yes/no value (1, true, yes, on / 0, false, no, off, or empty)`);
    this.name = "EnvError";
  }
}

/** True for 1/true/yes/on (any case, trimmed); false when unset, empty or 0/false/no/off; else EnvError. */
export function envFlag(env: Record<string, string | undefined>, name: string): boolean {
  const raw = env[name];
  if (raw === undefined) return false;
  const v = raw.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new EnvError(name, raw);
}
