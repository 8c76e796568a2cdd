// Logging in: where the browser goes afterwards, throttling, same-origin and CSRF checks, cookies.
import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../../src/store/index.ts";
import { createAdminApp } from "../app.ts";
import { BASE, loginForm, postLogin, setup, type App } from "../testing.ts";

describe("login", () => {
  const alice = { username: "alice", password: "correct horse" };
  async function withAlice() {
    const ctx = setup();
    await ctx.store.auth.createUser("alice", "correct horse", "test");
    return ctx;
  }

  test("after five wrong passwords an account must wait before the next attempt is checked", async () => {
    const { app, store, clock } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const attempt = (password: string) => postLogin(app, { username: "alice", password });
    for (let i = 0; i < 5; i++) expect((await attempt("nope")).status).toBe(401);
    const refused = await attempt("correct horse");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(store.audit.query({ action: "admin.login_failed" }).total).toBe(5);
    // A delay, not a lockout: once it has passed, the right password works.
    clock.now += 1_000;
    expect((await attempt("correct horse")).status).toBe(302);
  });

  test("parallel wrong passwords are not all checked: only the free attempts reach the password check", async () => {
    const { app, store } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const form = await loginForm(app);
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => postLogin(app, { username: "alice", password: `guess ${i}` }, { form })));
    expect(burst.filter((r) => r.status === 401)).toHaveLength(5);
    expect(burst.filter((r) => r.status === 429)).toHaveLength(35);
    expect(store.audit.query({ action: "admin.login_failed" }).total).toBe(5);
    // Refusals are audited, but not one row each: one per key per minute, with the count.
    const throttled = store.audit.query({ action: "admin.login_throttled" }).rows;
    expect(throttled).toHaveLength(1);
    expect(throttled[0]!.reason).toContain("1 attempt(s) refused");
  });

  test("a stranger guessing from the same address (ssh -L, Docker proxy) does not keep the admin out of their browser", async () => {
    const { app, store, clock } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const post = (fields: Record<string, string>, cookie = "") => postLogin(app, fields, { cookie });
    const first = await post({ username: "alice", password: "correct horse" });
    expect(first.status).toBe(302);
    const device = first.headers.getSetCookie().find((c) => c.startsWith("gg_device="))!;
    expect(device).toContain("HttpOnly");
    expect(device).toContain("Path=/login");
    // Everyone is 127.0.0.1 here: the stranger hammers alice until refused.
    for (let i = 0; i < 8; i++) await post({ username: "alice", password: "guess" });
    expect((await post({ username: "alice", password: "correct horse" })).status).toBe(429);
    // The admin's browser carries its device cookie and gets in at once, with no wait.
    expect((await post({ username: "alice", password: "correct horse" }, device.split(";")[0]!)).status).toBe(302);
    // The stranger is still slowed.
    expect((await post({ username: "alice", password: "guess" })).status).toBe(429);
    clock.now += 500;
    expect((await post({ username: "alice", password: "guess" })).status).toBe(429);
  });

  test("a device cookie is good for a few wrong passwords only, then it is forgotten", async () => {
    const { app, store } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const post = (password: string, cookie: string) => postLogin(app, { username: "alice", password }, { cookie });
    const device = (await post("correct horse", "")).headers.getSetCookie().find((c) => c.startsWith("gg_device="))!.split(";")[0]!;
    for (let i = 0; i < 5; i++) expect((await post("guess", device)).status).toBe(401);
    // The stolen cookie no longer helps, and its guesses counted for the account: it must wait.
    expect((await post("guess", device)).status).toBe(429);
  });

  test("after login the browser goes only to a path on this origin", async () => {
    const { app, store } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const loginWith = async (next: string) => {
      const r = await postLogin(app, { username: "alice", password: "correct horse", next }, { base: "http://gw.local" });
      expect(r.status).toBe(302);
      return r.headers.get("location");
    };
    for (const next of ["/\\evil.example", "//evil.example", "/\t/evil.example", "/%5Cevil.example", "https://evil.example/", " //evil.example"]) {
      expect(await loginWith(next)).toBe("/");
    }
    expect(await loginWith("/logs?cid=7")).toBe("/logs?cid=7");
    // The form served for such a link does not carry the off-site target either.
    const form = await (await app.request(`http://gw.local/login?next=${encodeURIComponent("/\\evil.example")}`)).text();
    expect(form).toContain('name="next" value="/"');
  });

  test("login must show it comes from this exact origin: missing, null, other scheme or port are refused", async () => {
    const { app, store } = await withAlice();
    const base = "http://gw.local:8080";
    const form = await loginForm(app, base);
    const attempt = (headers: Record<string, string>) =>
      app.request(`${base}/login`, { method: "POST", headers: { cookie: form.cookie, ...headers }, body: new URLSearchParams({ ...alice, _csrf: form.csrf }) });
    for (const headers of [{}, { origin: "null" }, { origin: "https://gw.local:8080" }, { origin: "http://gw.local:8081" }, { origin: "http://gw.local" },
      { origin: "http://evil.example:8080" }, { referer: "http://evil.example/login" }, { "sec-fetch-site": "same-site" }, { "sec-fetch-site": "cross-site" },
      { origin: "null", referer: `${base}/login` }] as Record<string, string>[]) {
      expect((await attempt(headers)).status).toBe(403);
    }
    expect(store.audit.query({ action: "admin.login" }).total).toBe(0);
    // Without Origin, a same-origin Referer or Sec-Fetch-Site will do.
    expect((await attempt({ referer: `${base}/login?next=/peers` })).status).toBe(302);
    expect((await attempt({ "sec-fetch-site": "same-origin" })).status).toBe(302);
    expect((await attempt({ origin: base })).status).toBe(302);
  });

  test("login needs the CSRF token of the form it was served (double-submit cookie)", async () => {
    const { app, store } = await withAlice();
    const form = await loginForm(app);
    const other = await loginForm(app);
    expect(other.csrf).not.toBe(form.csrf);
    const post = (cookie: string, csrf?: string) =>
      app.request("/login", { method: "POST", headers: { origin: BASE, cookie }, body: new URLSearchParams({ ...alice, ...(csrf !== undefined && { _csrf: csrf }) }) });
    expect((await post(form.cookie)).status).toBe(403);
    expect((await post("", form.csrf)).status).toBe(403);
    expect((await post(form.cookie, other.csrf)).status).toBe(403);
    expect((await post(form.cookie, "x".repeat(43))).status).toBe(403);
    expect(store.audit.query({ action: "admin.login" }).total).toBe(0);
    expect(store.audit.query({ action: "admin.login_failed" }).total).toBe(0);
    const ok = await post(form.cookie, form.csrf);
    expect(ok.status).toBe(302);
    const csrfCookie = (await app.request("/login")).headers.getSetCookie().find((c) => c.startsWith("gg_login_csrf="))!;
    expect(csrfCookie).toContain("HttpOnly");
    expect(csrfCookie).toContain("SameSite=Strict");
  });

  test("cookies are Secure when configured, or when a trusted proxy says the request came over https", async () => {
    const base = "http://gw.local";
    const cookiesOf = async (app: App, env?: object, headers: Record<string, string> = {}, origin = base) => {
      const get = await app.request(`${base}/login`, { headers }, env);
      const form = { cookie: get.headers.getSetCookie()[0]!.split(";")[0]!, csrf: /name="_csrf" value="([^"]+)"/.exec(await get.text())![1]! };
      const r = await app.request(`${base}/login`, { method: "POST", headers: { ...headers, origin, cookie: form.cookie }, body: new URLSearchParams({ ...alice, _csrf: form.csrf }) }, env);
      return { status: r.status, cookies: [...get.headers.getSetCookie(), ...r.headers.getSetCookie()] };
    };
    const make = async (o: { secureCookie?: boolean; trustedProxies?: string[] }) => {
      const store = Store.open(mkdtempSync(join(tmpdir(), "gg-admin-")));
      await store.auth.createUser("alice", "correct horse", "test");
      return createAdminApp({ gateway: { connections: () => [], metrics: () => "", peersChanged() {}, nextAddress: () => "", clientConfig: () => undefined }, store, ...o });
    };
    const plain = await cookiesOf(await make({}));
    expect(plain.status).toBe(302);
    expect(plain.cookies.some((c) => /;\s*Secure/i.test(c))).toBe(false);
    const forced = await cookiesOf(await make({ secureCookie: true }));
    expect(forced.cookies).toHaveLength(3);
    for (const c of forced.cookies) expect(c).toMatch(/;\s*Secure/i);

    const fromProxy = { requestIP: () => ({ address: "::ffff:10.0.0.5" }) };
    const fromStranger = { requestIP: () => ({ address: "10.0.0.6" }) };
    const https = { "x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7" };
    const proxied = await make({ trustedProxies: ["10.0.0.5"] });
    const viaProxy = await cookiesOf(proxied, fromProxy, https, "https://gw.local");
    expect(viaProxy.status).toBe(302);
    for (const c of viaProxy.cookies) expect(c).toMatch(/;\s*Secure/i);
    // The browser's origin is https://gw.local behind the proxy: its http twin is another origin.
    expect((await cookiesOf(proxied, fromProxy, https, base)).status).toBe(403);
    // The same headers from anyone else are ignored.
    const spoofed = await cookiesOf(proxied, fromStranger, https, base);
    expect(spoofed.status).toBe(302);
    expect(spoofed.cookies.some((c) => /;\s*Secure/i.test(c))).toBe(false);
  });

  test("behind a trusted proxy, throttling and the audit see the forwarded client address, never a spoofed one", async () => {
    const { app: _unused } = setup();
    const store = Store.open(mkdtempSync(join(tmpdir(), "gg-admin-")));
    await store.auth.createUser("alice", "correct horse", "test");
    const app = createAdminApp({ gateway: { connections: () => [], metrics: () => "", peersChanged() {}, nextAddress: () => "", clientConfig: () => undefined }, store, trustedProxies: ["10.0.0.5"] });
    const fail = async (peer: string, forwardedFor: string) => {
      const env = { requestIP: () => ({ address: peer }) };
      const get = await app.request(`${BASE}/login`, {}, env);
      const csrf = /name="_csrf" value="([^"]+)"/.exec(await get.text())![1]!;
      await app.request(`${BASE}/login`, { method: "POST", headers: { origin: BASE, cookie: get.headers.getSetCookie()[0]!.split(";")[0]!, "x-forwarded-for": forwardedFor }, body: new URLSearchParams({ username: "alice", password: "nope", _csrf: csrf }) }, env);
    };
    await fail("10.0.0.5", "203.0.113.9, 198.51.100.7");
    await fail("10.0.0.6", "198.51.100.7");
    expect(store.audit.query({ action: "admin.login_failed" }).rows.map((r) => r.actor).sort()).toEqual(["anonymous@10.0.0.6", "anonymous@198.51.100.7"]);
  });
});
