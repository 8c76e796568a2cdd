// Portal mode's settings from the environment, named as Firezone's gateway names them:
// FIREZONE_API_URL (default wss://api.firezone.dev), FIREZONE_TOKEN or FIREZONE_TOKEN_FILE (a file
// holding it, e.g. a Docker or systemd secret), FIREZONE_ID, FIREZONE_NAME. Files are read through
// the injected `readFile`, so this stays free of IO; errors name the variable (exit code 2).

export const DEFAULT_API_URL = "wss://api.firezone.dev";

export interface PortalSettings {
  apiUrl: string;
  token: string;
  /** FIREZONE_ID, or undefined: the caller falls back to the gateway's persisted id (store/gateway-id). */
  id: string | undefined;
  /** FIREZONE_NAME, or undefined: the caller falls back to the host name. */
  name: string | undefined;
}

export function portalSettings(env: Record<string, string | undefined>, readFile: (path: string) => string): PortalSettings {
  const apiUrl = env.FIREZONE_API_URL?.trim() || DEFAULT_API_URL;
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    throw new Error(`FIREZONE_API_URL: "${apiUrl}" is not a URL`);
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) throw new Error(`FIREZONE_API_URL: scheme "${url.protocol.slice(0, -1)}" is not one of http, https, ws, wss`);

  let token = env.FIREZONE_TOKEN?.trim();
  const file = env.FIREZONE_TOKEN_FILE?.trim();
  if (token && file) throw new Error("FIREZONE_TOKEN and FIREZONE_TOKEN_FILE are both set: keep one");
  if (!token && file) {
    try {
      token = readFile(file).trim();
    } catch (err) {
      throw new Error(`FIREZONE_TOKEN_FILE: cannot read ${file}`, { cause: err });
    }
    if (!token) throw new Error(`FIREZONE_TOKEN_FILE: ${file} is empty`);
  }
  if (!token) throw new Error("FIREZONE_TOKEN: not set (portal mode needs the gateway's token; or set FIREZONE_TOKEN_FILE)");
  if (/\s/.test(token)) throw new Error("FIREZONE_TOKEN: contains whitespace (a pasted token with a line break?)");

  const id = env.FIREZONE_ID?.trim() || undefined;
  const name = env.FIREZONE_NAME?.trim() || undefined;
  return { apiUrl, token, id, name };
}
