// Who may use the admin server, and how: a browser session (HttpOnly SameSite cookie, CSRF token
// on every mutation) or a bearer token (GLASSGATE_ADMIN_TOKEN or an API token from the store).
// Every route but /healthz, /login and the static files requires one of them.
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { constantTimeEqual } from "./csrf.ts";
import { sameOriginPath, type RequestFacts } from "./origin.ts";
import type { AdminAuth, Session } from "../../src/store/index.ts";

export const SESSION_COOKIE = "gg_session";
export const CSRF_FIELD = "_csrf";
export const CSRF_HEADER = "x-csrf-token";
const PUBLIC_PATHS = new Set(["/healthz", "/login", "/static/htmx.min.js", "/static/app.css"]);

export type Principal = { kind: "session"; session: Session; actor: string } | { kind: "token"; actor: string };
export type AdminEnv = { Variables: { principal: Principal; facts: RequestFacts } };
const equal = constantTimeEqual;

export function wantsHtml(c: Context): boolean {
  return !c.req.path.startsWith("/api/") && c.req.path !== "/metrics" && (c.req.header("accept") ?? "").includes("text/html");
}

/** Requires a principal on every non-public route; for sessions, a CSRF token on every mutation. */
export function requireAuth(opts: { auth: AdminAuth | undefined; envToken: string | undefined }): MiddlewareHandler<AdminEnv> {
  return async (c, next) => {
    if (PUBLIC_PATHS.has(c.req.path)) return next();
    const header = c.req.header("authorization") ?? "";
    if (header.startsWith("Bearer ")) {
      const given = header.slice(7).trim();
      if (opts.envToken && equal(given, opts.envToken)) {
        c.set("principal", { kind: "token", actor: "token:env" });
        return next();
      }
      const name = opts.auth?.verifyToken(given);
      if (name) {
        c.set("principal", { kind: "token", actor: `token:${name}` });
        return next();
      }
      return c.json({ error: "unauthorized", message: "wrong bearer token" }, 401);
    }
    const session = opts.auth?.session(getCookie(c, SESSION_COOKIE));
    if (!session) {
      // An htmx poll or action (e.g. a live table) would follow a 302 and swap the login form into
      // the page's fragment. Tell htmx to navigate the whole page instead, back to the page the
      // user is on (HX-Current-URL), not to the fragment's URL. next= obeys the login's same-origin rule.
      if (c.req.header("hx-request") === "true") {
        const next = sameOriginPath(c.req.header("hx-current-url") ?? c.req.path, c.get("facts").origin);
        return c.body(null, 401, { "hx-redirect": `/login?next=${encodeURIComponent(next)}` });
      }
      if (wantsHtml(c) && c.req.method === "GET") return c.redirect(`/login?next=${encodeURIComponent(c.req.path)}`);
      const why = opts.envToken || opts.auth ? "log in or send a bearer token" : "set GLASSGATE_ADMIN_TOKEN to use the admin API";
      return c.json({ error: "unauthorized", message: why }, 401, { "www-authenticate": 'Bearer realm="glassgate"' });
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const given = c.req.header(CSRF_HEADER) ?? (await formField(c, CSRF_FIELD));
      if (!given || !equal(given, session.csrfToken)) return c.text("CSRF token missing or wrong", 403);
    }
    c.set("principal", { kind: "session", session, actor: `admin:${session.username}` });
    return next();
  };
}

async function formField(c: Context, name: string): Promise<string | undefined> {
  const type = c.req.header("content-type") ?? "";
  if (!type.includes("form")) return undefined;
  const body = await c.req.parseBody(); // Hono caches it for the handler
  const v = body[name];
  return typeof v === "string" ? v : undefined;
}
