// Same-origin rules of the admin server: where a login may send the browser afterwards, and which
// cross-site requests are refused. Both compare full origins (scheme, host, port) as the WHATWG URL
// parser — the one browsers use — computes them, never strings that only look like paths.
import type { Context, MiddlewareHandler } from "hono";
import { formatIp, parseIp } from "../../src/ip/address.ts";

/**
 * The path a login may redirect to: `next` resolved against our origin as a browser would resolve
 * it, kept only when it stays on that origin; anything else is "/". Browsers strip tabs/newlines,
 * treat `\` as `/` and follow `//host` to another site, so `/\evil.example`, `/\t/evil.example` or
 * ` //evil.example` all leave the origin — the parser sees that, a `startsWith("/")` check does not.
 * Paths that would turn into such a form if some layer decoded them once more (`/%5Cevil`,
 * `/%2F/evil`, `/%09/evil`) are refused too: a login redirect never needs them.
 */
export function sameOriginPath(next: string | undefined, origin: string): string {
  if (!next) return "/";
  let url: URL;
  try {
    url = new URL(next, `${origin}/`);
  } catch {
    return "/";
  }
  if (url.origin !== origin) return "/";
  let decoded: string;
  try {
    decoded = decodeURIComponent(url.pathname);
  } catch {
    return "/";
  }
  // "//" at the start of the path we emit would be a scheme-relative URL in the Location header.
  if (/^[/\\]{2}/.test(decoded) || /[\\\u0000-\u001f\u007f]/.test(decoded)) return "/";
  return url.pathname + url.search + url.hash;
}


/** Who sent a request, as far as we can tell: set on the context by `requestFacts`. */
export interface RequestFacts {
  /** Our origin as the browser sees it: scheme://host[:port]. */
  origin: string;
  /** The client's address (through a trusted proxy: the address it forwarded for). */
  remote: string;
  /** Served over HTTPS (directly, or a trusted proxy says so). */
  https: boolean;
}

/** Canonical text of an address ("::ffff:127.0.0.1" and "127.0.0.1" are one client). */
export function canonicalIp(text: string): string | undefined {
  const bytes = parseIp(text.trim());
  if (!bytes) return undefined;
  if (bytes.length === 16 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return formatIp(bytes.slice(12));
  return formatIp(bytes);
}

function socketAddress(c: Context): string | undefined {
  // Bun.serve passes the server through Hono's env; in-process tests have none.
  const env = c.env as { requestIP?: (r: Request) => { address: string } | null } | undefined;
  const a = env?.requestIP?.(c.req.raw)?.address;
  return a === undefined ? undefined : canonicalIp(a) ?? a;
}

/**
 * Works out `RequestFacts`. Only a peer listed in `trustedProxies` (GLASSGATE_TRUSTED_PROXY) may
 * tell us the scheme (`X-Forwarded-Proto`) and the client (`X-Forwarded-For`, read from the right:
 * the nearest address no trusted proxy added); anyone else's forwarding headers are ignored, or a
 * client could pick the address it is throttled under.
 */
export function requestFacts(trustedProxies: readonly string[]): MiddlewareHandler<{ Variables: { facts: RequestFacts } }> {
  const trusted = new Set(trustedProxies.map((p) => canonicalIp(p) ?? p));
  return async (c, next) => {
    const url = new URL(c.req.url);
    const peer = socketAddress(c);
    let remote = peer ?? "local";
    let https = url.protocol === "https:";
    if (peer !== undefined && trusted.has(peer)) {
      const proto = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
      if (proto === "https" || proto === "http") https = proto === "https";
      const chain = (c.req.header("x-forwarded-for") ?? "").split(",").map((a) => canonicalIp(a)).filter((a): a is string => a !== undefined);
      while (chain.length > 0 && trusted.has(chain[chain.length - 1]!)) chain.pop();
      if (chain.length > 0) remote = chain[chain.length - 1]!;
    }
    const origin = `${https ? "https:" : "http:"}//${url.host}`;
    c.set("facts", { origin: URL.parse(origin)?.origin ?? origin, remote, https });
    return next();
  };
}

/**
 * Cross-site requests that change something are refused. A browser names the page a request came
 * from in `Origin`; when it is there it must be exactly our origin (scheme, host and port — an
 * http page must not post to the https admin, nor another port's app to us), and `null` (sandboxed
 * frames, opaque redirects) is not. Without Origin, a browser's `Sec-Fetch-Site` must not say
 * cross-site. The login form has no session yet, so no CSRF token of a session protects it: it
 * must prove same-origin positively — Origin, or else a same-origin Referer or
 * `Sec-Fetch-Site: same-origin` — so a forged login (login CSRF) has nothing to stand on.
 */
export function sameOriginGuard(): MiddlewareHandler<{ Variables: { facts: RequestFacts } }> {
  return async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD" || c.req.method === "OPTIONS") return next();
    const { origin } = c.get("facts");
    const given = c.req.header("origin");
    const site = c.req.header("sec-fetch-site");
    let ok: boolean;
    if (given !== undefined) ok = URL.parse(given)?.origin === origin && given !== "null";
    else if (c.req.path === "/login") {
      const referer = c.req.header("referer");
      ok = (referer !== undefined && URL.parse(referer)?.origin === origin) || site === "same-origin";
    } else ok = site === undefined || site === "same-origin" || site === "none";
    if (ok) return next();
    return c.text("cross-origin request refused (Origin, Referer or Sec-Fetch-Site must show this admin server's origin)", 403);
  };
}
