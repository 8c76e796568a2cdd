// Same-origin rules of the admin server: where a login may send the browser afterwards, and which
// cross-site requests are refused. Both compare full origins (scheme, host, port) as the WHATWG URL
// parser — the one browsers use — computes them, never strings that only look like paths.

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
