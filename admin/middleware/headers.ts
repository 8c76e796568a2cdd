// Headers on every response (pages, fragments, JSON, errors). The UI runs no inline script and no
// inline style — scripts and styles come only from /static on this origin — so the policy can be
// strict: an injected `<script>`, `onclick=` or `style=` does nothing. htmx's own indicator
// stylesheet is turned off by the `htmx-config` meta tag in views/layout.ts for the same reason.
import type { MiddlewareHandler } from "hono";

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    c.res.headers.set("content-security-policy", CONTENT_SECURITY_POLICY);
    c.res.headers.set("x-content-type-options", "nosniff");
    c.res.headers.set("referrer-policy", "same-origin");
    c.res.headers.set("x-frame-options", "DENY");
  };
}
