// The URL a gateway (or client) dials: `{api}/{gateway|client}/websocket?token&external_id&name&public_key`
// (`phoenix-channel/src/login_url.rs`). http(s) becomes ws(s); no `vsn`, so the portal keeps its v1
// serializer. The token is in the query, so this URL is a secret: log `redactedUrl()` only.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export interface LoginParams {
  /** FIREZONE_API_URL: http, https, ws or wss. */
  apiUrl: string;
  token: string;
  /** FIREZONE_ID (a UUID, or anything the operator chose). */
  id: string;
  /** FIREZONE_NAME, else the host name (the shell's to find). */
  name: string;
  /** Base64 of the X25519 public key, added at each connect. */
  publicKey: string;
  mode?: "gateway" | "client";
}

/** Uuid::from_str's forms: hyphenated, simple, braced, urn. */
const UUID = /^(?:urn:uuid:)?\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$/i;

/** The portal sees a hash of a UUID id, never the id itself (it may be a machine id); other ids go raw. */
export function externalId(id: string): string {
  return UUID.test(id) ? bytesToHex(sha256(new TextEncoder().encode(id))) : id;
}

/** Throws naming FIREZONE_API_URL when it is not a URL or has another scheme. */
export function loginUrl(p: LoginParams): string {
  let url: URL;
  try {
    url = new URL(p.apiUrl);
  } catch {
    throw new Error(`FIREZONE_API_URL: "${p.apiUrl}" is not a URL`);
  }
  const scheme = { "http:": "ws:", "ws:": "ws:", "https:": "wss:", "wss:": "wss:" }[url.protocol];
  if (!scheme) throw new Error(`FIREZONE_API_URL: scheme "${url.protocol.replace(":", "")}" is not one of http, https, ws, wss`);
  url.protocol = scheme;
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${p.mode ?? "gateway"}/websocket`;
  url.search = "";
  url.searchParams.append("token", p.token);
  url.searchParams.append("external_id", externalId(p.id));
  url.searchParams.append("name", p.name);
  url.searchParams.append("public_key", p.publicKey);
  return url.toString();
}

/** The URL with the token replaced, for logs. */
export function redactedUrl(url: string): string {
  const u = new URL(url);
  if (u.searchParams.has("token")) u.searchParams.set("token", "REDACTED");
  return u.toString();
}
