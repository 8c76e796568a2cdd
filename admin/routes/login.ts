// Logging in and out. The login form is public: bounded, same-origin and CSRF-checked by the
// middleware and here, throttled before any password is checked.
import { Hono, type Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { SESSION_COOKIE, type AdminEnv } from "../middleware/auth.ts";
import { loginCsrfToken, loginCsrfValid } from "../middleware/csrf.ts";
import { DEVICE_COOKIE, LoginThrottle } from "../middleware/login-throttle.ts";
import { sameOriginPath } from "../middleware/origin.ts";
import type { AdminOptions } from "../types.ts";
import * as v from "../views/layout.ts";
import { session } from "./common.ts";

export function loginRoutes(opts: AdminOptions) {
  const { store } = opts;
  const throttle = new LoginThrottle();
  const clock = opts.clock ?? Date.now;
  const secure = (c: Context<AdminEnv>) => opts.secureCookie === true || c.get("facts").https;

  return new Hono<AdminEnv>()
    // `next` is cleaned here too, so the form never even carries an off-site target.
    .get("/login", (c) => c.html(v.loginPage({ next: sameOriginPath(c.req.query("next"), c.get("facts").origin), csrf: loginCsrfToken(c, secure(c)) })))
    .post("/login", async (c) => {
      const { remote, origin } = c.get("facts");
      const form = await c.req.parseBody();
      const username = String(form.username ?? "");
      const password = String(form.password ?? "");
      const next = String(form.next ?? "/");
      const csrf = loginCsrfToken(c, secure(c));
      if (!loginCsrfValid(c, form._csrf)) {
        return c.html(v.loginPage({ error: "The login form expired or came from another site; please try again.", next, csrf }), 403);
      }
      // Counted before the password is checked: see middleware/login-throttle.ts.
      const admission = throttle.admit(remote, username, getCookie(c, DEVICE_COOKIE), clock());
      if (!admission.ok) {
        const seconds = Math.ceil(admission.retryAfterMs / 1000);
        if (admission.audit) {
          store?.audit.record({ actor: `anonymous@${remote}`, action: "admin.login_throttled", subject: username.slice(0, 64),
            reason: `${admission.audit.refused} attempt(s) refused: too many for this ${admission.scope}; next in ${seconds} s` });
        }
        return c.html(v.loginPage({ error: `Too many login attempts; try again in ${seconds} s.`, next, csrf }), 429, { "retry-after": String(seconds) });
      }
      const s = store ? await store.auth.login(username, password, remote) : undefined;
      admission.settle(s !== undefined);
      if (!s) return c.html(v.loginPage({ error: "Wrong username or password.", next, csrf }), 401);
      const cookie = { httpOnly: true, sameSite: "Strict", secure: secure(c) } as const;
      setCookie(c, SESSION_COOKIE, s.id, { ...cookie, path: "/", maxAge: 12 * 3600 });
      if (!admission.trustedDevice) setCookie(c, DEVICE_COOKIE, throttle.trustDevice(s.username), { ...cookie, path: "/login", maxAge: 30 * 24 * 3600 });
      return c.redirect(sameOriginPath(next, origin));
    });
}

/** Needs a principal: mounted after requireAuth. */
export function logoutRoutes(opts: AdminOptions) {
  return new Hono<AdminEnv>().post("/logout", (c) => {
    const s = session(c);
    if (s) opts.store?.auth.logout(s.id);
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.redirect("/login");
  });
}
