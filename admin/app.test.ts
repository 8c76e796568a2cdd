// The admin server in-process (app.request), with a real store on disk and a stub gateway.
import { beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { parseConfig } from "../src/config/index.ts";
import { formatCidr } from "../src/ip/address.ts";
import { Store, type PeerRow } from "../src/store/index.ts";
import { LogRing } from "../src/telemetry/log-ring.ts";
import { Logger, parseLogFilter } from "../src/telemetry/log.ts";
import type { ConnectionView } from "../src/telemetry/view.ts";
import { createAdminApp, type AdminGateway } from "./app.ts";
import { SESSION_COOKIE } from "./middleware/auth.ts";

const ENV_TOKEN = "env-token-xyz";

function setup(override: Partial<AdminGateway> = {}) {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-admin-")));
  const logs = new LogRing(100);
  const log = new Logger(parseLogFilter("trace"), logs.sink);
  let applied = 0;
  let resourcesApplied = 0;
  const conns: ConnectionView[] = [{
    cid: 3428714, public_key: encodeKey(publicKeyOf(generatePrivateKey())), endpoint: "192.0.2.7:51820", sessions: ["3428714|1"],
    last_handshake: new Date().toISOString(), rx_bytes: 2048, tx_bytes: 1024, rx_packets: 4, tx_packets: 2,
    handshakes: { initiated: 0, completed: 1, failed: 0 }, allowed_ips: ["10.99.0.2/32"], drops: { replay: 2 }, state: "connected",
  }];
  const gateway: AdminGateway = {
    connections: () => conns,
    metrics: () => "glassgate_connections 1\n",
    peersChanged: () => void applied++,
    resourcesChanged: () => void resourcesApplied++,
    nextAddress: () => "10.99.0.9",
    clientConfig: (p: PeerRow) => (p.clientPrivateKey ? `[Interface]\nPrivateKey = ${p.clientPrivateKey}\n` : undefined),
    resources: () => store.resources.list().map((r) => ({ id: r.id, name: r.name, type: r.type, address: "", filters: "", source: "api" as const, authorizations: [{ cid: 3428714, expires_at: null }] })),
    ...override,
  };
  const clock = { now: Date.parse("2026-11-29T10:00:00Z") };
  const app = createAdminApp({ gateway, store, logs, envToken: ENV_TOKEN, clock: () => clock.now, log: log.target("admin") });
  return { app, store, logs, log, conns, clock, applied: () => applied, resourcesApplied: () => resourcesApplied };
}

type App = ReturnType<typeof setup>["app"];
const BASE = "http://localhost";

/** What a browser has after GET /login: the login CSRF cookie and the form's hidden token. */
async function loginForm(app: App, base = BASE): Promise<{ cookie: string; csrf: string }> {
  const r = await app.request(`${base}/login`);
  const cookie = r.headers.getSetCookie().find((c) => c.startsWith("gg_login_csrf="))!.split(";")[0]!;
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await r.text())![1]!;
  return { cookie, csrf };
}

/** POST /login as a browser on `base` would: same-origin Origin, the form's CSRF token and cookie. */
async function postLogin(app: App, fields: Record<string, string>, opts: { cookie?: string; base?: string; form?: { cookie: string; csrf: string }; headers?: Record<string, string> } = {}) {
  const base = opts.base ?? BASE;
  const form = opts.form ?? (await loginForm(app, base));
  const cookie = [form.cookie, opts.cookie].filter(Boolean).join("; ");
  return app.request(`${base}/login`, { method: "POST", headers: { origin: base, cookie, ...opts.headers }, body: new URLSearchParams({ _csrf: form.csrf, ...fields }) });
}

async function login(app: App, store: Store): Promise<{ cookie: string; csrf: string }> {
  if (store.auth.userCount() === 0) await store.auth.createUser("alice", "correct horse", "test");
  const r = await postLogin(app, { username: "alice", password: "correct horse" });
  expect(r.status).toBe(302);
  const setCookie = r.headers.get("set-cookie")!;
  expect(setCookie).toContain("HttpOnly");
  expect(setCookie).toContain("SameSite=Strict");
  const cookie = setCookie.split(";")[0]!;
  const html = await (await app.request("/peers", { headers: { cookie } })).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
  return { cookie, csrf };
}

describe("authentication", () => {
  test("every registered route but /healthz, /login and htmx refuses unauthenticated access", async () => {
    const { app } = setup();
    const open = new Set(["/healthz", "/login", "/static/htmx.min.js", "/static/app.css"]);
    const routes = app.routes.filter((r) => r.method !== "ALL" && !open.has(r.path));
    expect(routes.length).toBeGreaterThan(20);
    for (const r of routes) {
      const path = r.path.replace(":cid", "1").replace(":id", "x");
      for (const headers of [{}, { accept: "application/json" }, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
        const res = await app.request(path, { method: r.method, headers });
        // A browser GET is sent to the login page; everything else is refused outright.
        expect([302, 401]).toContain(res.status);
        if (res.status === 302) expect(res.headers.get("location")).toStartWith("/login");
      }
    }
    expect((await app.request("/healthz")).status).toBe(200);
  });

  test("the env bearer token and API tokens from the store open the JSON API", async () => {
    const { app, store } = setup();
    expect((await app.request("/api/connections", { headers: { authorization: `Bearer ${ENV_TOKEN}` } })).status).toBe(200);
    const token = store.auth.createToken("ci", "test");
    const r = await app.request("/api/connections", { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { connections: ConnectionView[] }).connections[0]!.sessions).toEqual(["3428714|1"]);
    expect((await app.request("/metrics", { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

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

  test("a POST from another origin is refused, the login form included", async () => {
    const { app, store } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const r = await postLogin(app, { username: "alice", password: "correct horse" }, { base: "http://gw.local", headers: { origin: "https://evil.example" } });
    expect(r.status).toBe(403);
    expect(store.audit.query({ action: "admin.login" }).total).toBe(0);
    const same = await postLogin(app, { username: "alice", password: "correct horse" }, { base: "http://gw.local" });
    expect(same.status).toBe(302);
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

  test("a mutation without the CSRF token is refused and changes nothing", async () => {
    const { app, store } = setup();
    const { cookie, csrf } = await login(app, store);
    const body = { name: "x", publicKey: encodeKey(publicKeyOf(generatePrivateKey())), allowedIps: "10.99.0.5/32" };
    const noToken = await app.request("/peers", { method: "POST", headers: { cookie }, body: new URLSearchParams(body) });
    expect(noToken.status).toBe(403);
    const wrong = await app.request("/peers", { method: "POST", headers: { cookie }, body: new URLSearchParams({ ...body, _csrf: "forged" }) });
    expect(wrong.status).toBe(403);
    expect(store.peers.list()).toHaveLength(0);
    const ok = await app.request("/peers", { method: "POST", headers: { cookie }, body: new URLSearchParams({ ...body, _csrf: csrf, enabled: "on" }) });
    expect(ok.status).toBe(302);
    expect(store.peers.list()).toHaveLength(1);
  });
});

describe("pages", () => {
  let ctx: ReturnType<typeof setup>;
  let auth: { cookie: string; csrf: string };
  beforeEach(async () => {
    ctx = setup();
    auth = await login(ctx.app, ctx.store);
  });
  const get = (path: string) => ctx.app.request(path, { headers: { cookie: auth.cookie, accept: "text/html" } });
  const post = (path: string, fields: Record<string, string>) =>
    ctx.app.request(path, { method: "POST", headers: { cookie: auth.cookie }, body: new URLSearchParams({ ...fields, _csrf: auth.csrf }) });

  test("connections page shows cid, session indices and traffic; rows refresh via htmx", async () => {
    const html = await (await get("/connections")).text();
    expect(html).toContain('hx-get="/connections/rows"');
    expect(html).toContain("(3428714|1)");
    expect(html).toContain("2.0 KiB");
    const rows = await (await get("/connections/rows")).text();
    expect(rows).toContain('data-cid="3428714"');
    expect(rows).not.toContain("<html");
  });

  test("connection detail shows drops by reason and this cid's logs", async () => {
    ctx.log.log("info", "tunnel", "handshake completed", { cid: 3428714, session: "3428714|1" });
    ctx.log.log("info", "tunnel", "handshake completed", { cid: 99, session: "99|0" });
    const html = await (await get("/connections/3428714")).text();
    expect(html).toContain("replay");
    expect(html).toContain("session=3428714|1");
    expect(html).not.toContain("session=99|0");
  });

  test("logs filter by cid and level", async () => {
    ctx.log.log("warn", "tunnel", "bad thing", { cid: 7 });
    ctx.log.log("info", "tunnel", "fine thing", { cid: 7 });
    ctx.log.log("warn", "tunnel", "other", { cid: 8 });
    const html = await (await get("/logs?cid=7&level=warn")).text();
    expect(html).toContain("bad thing");
    expect(html).not.toContain("fine thing");
    expect(html).not.toContain(">other");
    const api = await ctx.app.request("/api/logs?cid=7", { headers: { authorization: `Bearer ${ENV_TOKEN}` } });
    expect(((await api.json()) as { logs: { msg: string }[] }).logs.map((l) => l.msg)).toEqual(["fine thing", "bad thing"]);
  });

  test("adding a peer without a key generates its config and QR code, applies it, and audits it", async () => {
    const r = await post("/peers", { name: "phone", publicKey: "", allowedIps: "10.99.0.9/32", persistentKeepalive: "25", enabled: "on" });
    expect(r.status).toBe(302);
    expect(ctx.applied()).toBe(1);
    const [peer] = ctx.store.peers.list();
    expect(r.headers.get("location")).toBe(`/peers/${peer!.id}/config`);
    const html = await (await get(`/peers/${peer!.id}/config`)).text();
    expect(html).toContain("<svg");
    expect(html).toContain(`PrivateKey = ${peer!.clientPrivateKey}`);
    const audit = ctx.store.audit.query({ action: "peer.created" }).rows[0]!;
    expect(audit.actor).toBe("admin:alice");
    expect(audit.after).not.toContain(peer!.clientPrivateKey!);
    const edit = await post(`/peers/${peer!.id}`, { name: "phone 2", publicKey: peer!.publicKey, allowedIps: "10.99.0.9/32", persistentKeepalive: "0" });
    expect(edit.status).toBe(302);
    expect(ctx.store.peers.get(peer!.id)).toMatchObject({ name: "phone 2", enabled: false });
    expect((await post(`/peers/${peer!.id}/delete`, {})).status).toBe(302);
    expect(ctx.store.peers.list()).toHaveLength(0);
    expect(ctx.applied()).toBe(3);
  });

  test("bad form input gets a message naming the field and stores nothing", async () => {
    const r = await post("/peers", { name: "", publicKey: "not-a-key", allowedIps: "10.0.0.0/40", persistentKeepalive: "-1", enabled: "on" });
    expect(r.status).toBe(400);
    const html = await r.text();
    expect(html).toContain('data-field="publicKey"');
    expect(html).toContain("publicKey: &quot;not-a-key&quot; is not a WireGuard key");
    expect(html).toContain("allowedIps: &quot;10.0.0.0/40&quot; has prefix length");
    expect(html).toContain("name: is required");
    expect(html).toContain("persistentKeepalive: &quot;-1&quot; is negative");
    expect(ctx.store.peers.list()).toHaveLength(0);
    expect(ctx.store.audit.query({ action: "peer.created" }).total).toBe(0);
    expect(ctx.applied()).toBe(0);
  });

  test("audit page filters, paginates and exports CSV", async () => {
    for (let i = 0; i < 60; i++) ctx.store.audit.record({ actor: "gateway", action: "connection.established", cid: i });
    const html = await (await get("/audit?action=connection.established")).text();
    expect(html).toContain("Page 1 of 2 (60 events)");
    expect((await (await get("/audit?action=connection.established&page=2")).text()).match(/data-action=/g)).toHaveLength(10);
    const csv = await (await get("/audit.csv?action=connection.established")).text();
    expect(csv.trim().split("\r\n")).toHaveLength(61);
  });

  test("a failed-login username shaped like a formula is exported as text in the audit CSV", async () => {
    const evil = '=HYPERLINK("http://evil.example","x")';
    await postLogin(ctx.app, { username: evil, password: "nope" });
    const csv = await (await get("/audit.csv?action=admin.login_failed")).text();
    expect(csv).toContain(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    expect(csv).not.toMatch(/(^|,)"?=HYPERLINK/m);
  });

  test("logout ends the session", async () => {
    await post("/logout", {});
    expect(ctx.store.auth.session(auth.cookie.slice(SESSION_COOKIE.length + 1))).toBeUndefined();
    expect((await get("/connections")).status).toBe(302);
  });

  test("resources page: add with a bad address names it and stores nothing; a good one is applied", async () => {
    const bad = await post("/resources", { id: "lan", type: "cidr", address: "10.0.0.0/33", filters: "tcp/22" });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("address: &quot;10.0.0.0/33&quot; has prefix length &quot;33&quot;");
    expect(ctx.store.resources.list()).toHaveLength(0);
    expect((await post("/resources", { id: "lan", name: "LAN", type: "cidr", address: "10.50.0.0/16", filters: "tcp/22, icmp" })).status).toBe(302);
    expect(ctx.store.resources.list()[0]).toMatchObject({ id: "lan", filters: [{ protocol: "tcp", portStart: 22, portEnd: 22 }, { protocol: "icmp" }] });
    expect(ctx.resourcesApplied()).toBe(1);
    const html = await (await get("/resources")).text();
    expect(html).toContain('data-resource="lan"');
    expect(html).toContain('href="/connections/3428714"');
    expect((await post("/resources/lan/authorize", { publicKey: "k", expiresAt: "never" })).status).toBe(400);
  });

  test("htmx is served from the package, not a CDN", async () => {
    const r = await ctx.app.request("/static/htmx.min.js");
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("htmx");
    expect(await (await get("/")).text()).toContain('src="/static/htmx.min.js"');
  });
});

describe("resources and authorizations API", () => {
  const auth = { authorization: `Bearer ${ENV_TOKEN}`, "content-type": "application/json" };
  test("create, validate, authorize with expiry, revoke, delete — each applied and audited", async () => {
    const { app, store, resourcesApplied, conns } = setup();
    const bad = await app.request("/api/resources", { method: "POST", headers: auth, body: JSON.stringify({ type: "cidr", id: "lan", address: "10.0.0.0/40" }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('"10.0.0.0/40" has prefix length "40"');
    const ok = await app.request("/api/resources", { method: "POST", headers: auth, body: JSON.stringify({ type: "cidr", id: "lan", name: "LAN", address: "10.50.0.0/16", filters: [{ protocol: "tcp", port_range_start: 22, port_range_end: 22 }] }) });
    expect(ok.status).toBe(201);
    expect(resourcesApplied()).toBe(1);
    const list = (await (await app.request("/api/resources", { headers: auth })).json()) as { resources: { id: string; filters: unknown[] }[] };
    expect(list.resources.map((r) => r.id)).toEqual(["lan"]);
    const key = conns[0]!.public_key;
    const noRes = await app.request("/api/authorizations", { method: "POST", headers: auth, body: JSON.stringify({ public_key: key, resource_id: "nope" }) });
    expect(noRes.status).toBe(400);
    const badDate = await app.request("/api/authorizations", { method: "POST", headers: auth, body: JSON.stringify({ public_key: key, resource_id: "lan", expires_at: "soon" }) });
    expect(((await badDate.json()) as { message: string }).message).toBe('expires_at: "soon" is not a date');
    expect((await app.request("/api/authorizations", { method: "POST", headers: auth, body: JSON.stringify({ public_key: key, resource_id: "lan", expires_at: 2_000_000_000 }) })).status).toBe(201);
    const grants = (await (await app.request("/api/authorizations", { headers: auth })).json()) as { authorizations: unknown[] };
    expect(grants.authorizations).toEqual([{ public_key: key, resource_id: "lan", expires_at: 2_000_000_000 }]);
    expect((await app.request(`/api/authorizations?public_key=${encodeURIComponent(key)}&resource_id=lan`, { method: "DELETE", headers: auth })).status).toBe(204);
    expect((await app.request("/api/resources/lan", { method: "DELETE", headers: auth })).status).toBe(204);
    expect(resourcesApplied()).toBe(4);
    expect(store.audit.query({ subject: "lan" }).rows.map((r) => r.action)).toEqual(["resource.deleted", "resource.updated", "resource.updated", "resource.created"]);
  });
});

describe("bounded input", () => {
  const bearer = { authorization: `Bearer ${ENV_TOKEN}` };
  const json = { ...bearer, "content-type": "application/json" };

  test("an oversized body is refused with 413 before any login or auth work", async () => {
    const { app, store } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const big = new URLSearchParams({ username: "alice", password: "x".repeat(5 * 1024) });
    const login = await app.request("/login", { method: "POST", body: big });
    expect(login.status).toBe(413);
    expect(store.audit.query({ action: "admin.login_failed" }).total).toBe(0);
    // Other routes allow more, but not much more; without credentials the answer is still 413.
    const body = JSON.stringify({ name: "x".repeat(100 * 1024) });
    expect((await app.request("/api/peers", { method: "POST", headers: json, body })).status).toBe(413);
    expect((await app.request("/api/peers", { method: "POST", headers: { "content-type": "application/json" }, body })).status).toBe(413);
    expect((await app.request("/peers", { method: "POST", body: new URLSearchParams({ name: "x".repeat(100 * 1024) }) })).status).toBe(413);
  });

  test("a streamed body without a length stops being read at the limit", async () => {
    const { app } = setup();
    let pulled = 0;
    const chunk = new Uint8Array(16 * 1024).fill(0x61);
    // 120 MB on offer; the server must stop after a few chunks.
    const stream = new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (pulled++ >= 7680) return ctl.close();
        ctl.enqueue(chunk);
      },
    });
    const r = await app.request("/login", { method: "POST", body: stream, headers: { "content-type": "application/x-www-form-urlencoded" }, duplex: "half" } as RequestInit);
    expect(r.status).toBe(413);
    expect(pulled).toBeLessThan(8);
  });

  test("query values out of range or not whole numbers are a 400 naming the field", async () => {
    const { app, store } = setup();
    const { cookie } = await login(app, store);
    const cases: [string, string][] = [
      ["/api/audit?offset=1e20", "offset"], ["/api/audit?limit=-1", "limit"], ["/api/audit?limit=1001", "limit"], ["/api/audit?cid=1.5", "cid"],
      ["/api/logs?limit=0", "limit"], ["/api/logs?limit=abc", "limit"], ["/api/logs?cid=-3", "cid"], ["/api/logs?level=loud", "level"],
      ["/api/logs?since=yesterday", "since"], [`/api/logs?target=${"t".repeat(300)}`, "target"],
    ];
    for (const [path, field] of cases) {
      const r = await app.request(path, { headers: bearer });
      expect(r.status).toBe(400);
      const body = (await r.json()) as { field: string; message: string };
      expect(body.field).toBe(field);
      expect(body.message).toStartWith(`${field}: `);
      expect(body.message.length).toBeLessThan(200);
    }
    for (const path of ["/audit?page=1e300", "/audit?page=0", "/logs?cid=x", "/logs/rows?limit=99999", "/audit.csv?cid=1e3", "/connections/1e3"]) {
      const r = await app.request(path, { headers: { cookie, accept: "text/html" } });
      expect(r.status).toBe(400);
    }
    expect((await app.request("/api/audit?offset=0&limit=1000", { headers: bearer })).status).toBe(200);
  });

  test("a JSON body that is not an object is a 400, not a 500", async () => {
    const { app } = setup();
    for (const path of ["/api/peers", "/api/resources", "/api/authorizations"]) {
      for (const body of ["null", "[]", "42", '"x"', "{", ""]) {
        const r = await app.request(path, { method: "POST", headers: json, body });
        expect(r.status).toBe(400);
        expect(((await r.json()) as { field: string }).field).toBe("body");
      }
    }
  });

  test("unknown fields in API bodies are refused by name and nothing is stored", async () => {
    const { app, store } = setup();
    const key = encodeKey(publicKeyOf(generatePrivateKey()));
    const cases: [string, unknown, string][] = [
      ["/api/peers", { name: "a", publicKey: key, allowedIps: "10.99.0.5/32", admin: true }, "admin"],
      ["/api/resources", { type: "cidr", id: "lan", address: "10.5.0.0/16", owner: "x" }, "owner"],
      ["/api/resources", { type: "cidr", id: "lan", address: "10.5.0.0/16", filters: [{ protocol: "tcp", port: 22 }] }, "filters.0.port"],
    ];
    for (const [path, body, field] of cases) {
      const r = await app.request(path, { method: "POST", headers: json, body: JSON.stringify(body) });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { field: string }).field).toBe(field);
    }
    expect(store.peers.list()).toHaveLength(0);
    expect(store.resources.list()).toHaveLength(0);
  });

  test("error messages repeat at most 64 characters of a value", async () => {
    const { app } = setup();
    const r = await app.request("/api/resources", { method: "POST", headers: json, body: JSON.stringify({ type: "cidr", id: "lan", address: "9".repeat(20_000) }) });
    expect(r.status).toBe(400);
    const { message } = (await r.json()) as { message: string };
    expect(message).toContain(`"${"9".repeat(64)}…"`);
    expect(message.length).toBeLessThan(200);
    const p = await app.request("/api/peers", { method: "POST", headers: json, body: JSON.stringify({ name: "a", publicKey: "k".repeat(5000), allowedIps: "10.99.0.5/32" }) });
    expect(JSON.stringify(await p.json()).length).toBeLessThan(300);
  });

  test("a peer expiry the pages could not print is refused, so the Peers page keeps working", async () => {
    const { app, store } = setup();
    const { cookie } = await login(app, store);
    const key = () => encodeKey(publicKeyOf(generatePrivateKey()));
    for (const expiresAt of [1e300, -5, 1.5, "+275760-09-13T00:00:00Z"]) {
      const r = await app.request("/api/peers", { method: "POST", headers: json, body: JSON.stringify({ name: "p", publicKey: key(), allowedIps: "10.99.0.5/32", expiresAt }) });
      expect(r.status).toBe(400);
      expect(Object.keys(((await r.json()) as { fields: object }).fields)).toEqual(["expiresAt"]);
    }
    expect(store.peers.list()).toHaveLength(0);
    expect((await app.request("/api/peers", { method: "POST", headers: json, body: JSON.stringify({ name: "p", publicKey: key(), allowedIps: "10.99.0.5/32", expiresAt: Date.UTC(9999, 0, 1) }) })).status).toBe(201);
    expect((await app.request("/peers", { headers: { cookie, accept: "text/html" } })).status).toBe(200);
  });

  test("an Origin header that is not a URL is refused, not a crash", async () => {
    const { app } = setup();
    const r = await app.request("/api/peers", { method: "POST", headers: { ...json, origin: "not a url" }, body: "{}" });
    expect(r.status).toBe(403);
  });

  test("an unexpected failure answers a generic 500 and is logged with its cause", async () => {
    const { app, logs } = setup({ connections: () => { throw new Error("snapshot failed", { cause: new Error("secret internals at /srv/x") }); } });
    const r = await app.request("/api/connections", { headers: bearer });
    expect(r.status).toBe(500);
    const text = await r.text();
    expect(text).not.toContain("secret");
    expect(text).not.toContain("snapshot");
    const logged = logs.query({ level: "error", limit: 10 });
    expect(logged.map((l) => l.err)).toContain("snapshot failed: secret internals at /srv/x");
  });
});

describe("origin and headers", () => {
  const alice = { username: "alice", password: "correct horse" };
  async function withAlice() {
    const ctx = setup();
    await ctx.store.auth.createUser("alice", "correct horse", "test");
    return ctx;
  }

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

  test("every response carries CSP, nosniff, Referrer-Policy and frame denial", async () => {
    const { app } = setup({ metrics: () => { throw new Error("boom"); } });
    const bearer = { authorization: `Bearer ${ENV_TOKEN}` };
    const responses = [
      await app.request("/login"), await app.request("/healthz"), await app.request("/static/htmx.min.js"), await app.request("/static/app.css"),
      await app.request("/nope", { headers: bearer }), await app.request("/api/peers"), await app.request("/connections", { headers: { accept: "text/html" } }),
      await app.request("/metrics", { headers: bearer }), await app.request("/api/logs?limit=-1", { headers: bearer }),
      await app.request("/login", { method: "POST", body: "x".repeat(10_000) }), await app.request("/login", { method: "POST", headers: { origin: "null" } }),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 404, 401, 302, 500, 400, 413, 403]);
    for (const r of responses) {
      const csp = r.headers.get("content-security-policy")!;
      for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"]) expect(csp).toContain(d);
      expect(csp).not.toContain("unsafe");
      expect(r.headers.get("x-content-type-options")).toBe("nosniff");
      expect(r.headers.get("referrer-policy")).toBe("same-origin");
      expect(r.headers.get("x-frame-options")).toBe("DENY");
    }
  });

  test("no page has inline script, event handler attribute or inline style (the CSP would block them)", async () => {
    const ctx = setup();
    const auth = await login(ctx.app, ctx.store);
    await ctx.app.request("/peers", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: new URLSearchParams({ _csrf: auth.csrf, name: "phone", publicKey: "", allowedIps: "10.99.0.9/32", enabled: "on" }) });
    const peer = ctx.store.peers.list()[0]!;
    ctx.store.resources.upsert({ type: "cidr", id: "lan", address: "10.50.0.0/16" }, "test");
    const pages = ["/", "/connections", "/connections/rows", "/connections/3428714", "/logs", "/logs/rows", "/errors", "/audit", "/peers", `/peers/${peer.id}`, `/peers/${peer.id}/config`, "/resources"];
    const htmls = await Promise.all(pages.map(async (p) => (await ctx.app.request(p, { headers: { cookie: auth.cookie, accept: "text/html" } })).text()));
    htmls.push(await (await ctx.app.request("/login")).text());
    for (const html of htmls) {
      expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/i);
      expect(html).not.toMatch(/\son[a-z]+\s*=/i);
      expect(html).not.toMatch(/\sstyle\s*=|<style/i);
    }
    expect(htmls[0]).toContain('<link rel="stylesheet" href="/static/app.css">');
    expect(htmls[0]).toContain(`<meta name="htmx-config" content='{"includeIndicatorStyles":false}'>`);
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

describe("resource ids and authorizations", () => {
  const json = { authorization: `Bearer ${ENV_TOKEN}`, "content-type": "application/json" };
  const fileResource = { id: "office", name: "Office", type: "cidr", address: "192.0.2.0/24", filters: "", source: "file" as const, authorizations: [] };
  function withFileResource() {
    const ctx: ReturnType<typeof setup> = setup({
      resources: () => [fileResource, ...ctx.store.resources.list().map((r) => ({ id: r.id, name: r.name, type: r.type, address: "", filters: "", source: "api" as const, authorizations: [] }))],
    });
    return ctx;
  }
  const post = (app: App, path: string, body: unknown) => app.request(path, { method: "POST", headers: json, body: JSON.stringify(body) });

  test("resource ids follow the config file's grammar, from the API, the form and the file alike", async () => {
    const ctx = setup();
    const auth = await login(ctx.app, ctx.store);
    const key = encodeKey(publicKeyOf(generatePrivateKey()));
    for (const id of ["../peers/x", "a/b", "..", ".", ".hidden", "", "x".repeat(65), "a b", "%2e%2e", "a?b", "ü"]) {
      const r = await post(ctx.app, "/api/resources", { type: "cidr", id, address: "10.5.0.0/16" });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { field: string }).field).toBe("id");
      const form = await ctx.app.request("/resources", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: new URLSearchParams({ _csrf: auth.csrf, id, type: "cidr", address: "10.5.0.0/16" }) });
      expect(form.status).toBe(400);
      expect(() => parseConfig(`[Interface]\nPrivateKey = ${encodeKey(generatePrivateKey())}\n[Resource]\nId = ${id}\nType = cidr\nAddress = 10.5.0.0/16\n[Peer]\nPublicKey = ${key}\n`, "gw.conf")).toThrow();
    }
    expect(ctx.store.resources.list()).toHaveLength(0);
    expect((await post(ctx.app, "/api/resources", { type: "cidr", id: "lan-2.b_c", address: "10.5.0.0/16" })).status).toBe(201);
  });

  test("an id that a config-file resource or an existing one has is a 409 and changes nothing", async () => {
    const ctx = withFileResource();
    const auth = await login(ctx.app, ctx.store);
    const clash = await post(ctx.app, "/api/resources", { type: "cidr", id: "office", address: "10.5.0.0/16" });
    expect(clash.status).toBe(409);
    expect(await clash.json()).toMatchObject({ error: "conflict", field: "id" });
    expect((await post(ctx.app, "/api/resources", { type: "cidr", id: "lab", address: "10.6.0.0/16" })).status).toBe(201);
    expect((await post(ctx.app, "/api/resources", { type: "cidr", id: "lab", address: "10.7.0.0/16" })).status).toBe(409);
    const form = await ctx.app.request("/resources", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: new URLSearchParams({ _csrf: auth.csrf, id: "office", type: "cidr", address: "10.5.0.0/16" }) });
    expect(form.status).toBe(409);
    expect(await form.text()).toContain("id: &quot;office&quot; is a resource of the config file");
    expect(ctx.store.resources.list().map((r) => [r.id, r.type === "cidr" && formatCidr(r.address)])).toEqual([["lab", "10.6.0.0/16"]]);
    expect(ctx.store.audit.query({ action: "resource.created" }).total).toBe(1);
    expect(ctx.store.audit.query({ action: "resource.updated" }).total).toBe(0);
    // Changing one is an explicit PUT (the file's stay read-only).
    const put = await ctx.app.request("/api/resources/lab", { method: "PUT", headers: json, body: JSON.stringify({ type: "cidr", address: "10.7.0.0/16", filters: [{ protocol: "icmp" }] }) });
    expect(put.status).toBe(200);
    expect(ctx.store.resources.list()[0]!.filters).toEqual([{ protocol: "icmp" }]);
    expect((await ctx.app.request("/api/resources/office", { method: "PUT", headers: json, body: JSON.stringify({ type: "cidr", address: "10.7.0.0/16" }) })).status).toBe(409);
    expect((await ctx.app.request("/api/resources/nope", { method: "PUT", headers: json, body: JSON.stringify({ type: "cidr", address: "10.7.0.0/16" }) })).status).toBe(404);
  });

  test("authorizations name a peer of this gateway, a resource managed here and a real expiry", async () => {
    const ctx = withFileResource();
    expect((await post(ctx.app, "/api/resources", { type: "cidr", id: "lab", address: "10.6.0.0/16" })).status).toBe(201);
    const filePeer = ctx.conns[0]!.public_key;
    const stranger = encodeKey(publicKeyOf(generatePrivateKey()));
    const cases: [unknown, string][] = [
      [{ public_key: stranger, resource_id: "lab" }, "public_key"],
      [{ public_key: "not a key", resource_id: "lab" }, "public_key"],
      [{ resource_id: "lab" }, "public_key"],
      [{ public_key: filePeer }, "resource_id"],
      [{ public_key: filePeer, resource_id: "office" }, "resource_id"],
      [{ public_key: filePeer, resource_id: "nope" }, "resource_id"],
      [{ public_key: filePeer, resource_id: "lab", expires_at: "soon" }, "expires_at"],
      [{ public_key: filePeer, resource_id: "lab", expires_at: -1 }, "expires_at"],
      [{ public_key: filePeer, resource_id: "lab", expires_at: 1e300 }, "expires_at"],
      [{ public_key: filePeer, resource_id: "lab", expires_at: 253_402_300_800 }, "expires_at"],
      [{ public_key: filePeer, resource_id: "lab", expires_at: "+275760-09-13T00:00:00Z" }, "expires_at"],
      [{ public_key: filePeer, resource_id: "lab", expires_at: true }, "expires_at"],
      [{ public_key: filePeer, resource_id: "lab", until: 5 }, "until"],
    ];
    for (const [body, field] of cases) {
      const r = await post(ctx.app, "/api/authorizations", body);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { field: string }).field).toBe(field);
    }
    // 1e400 in JSON is Infinity once parsed.
    expect((await ctx.app.request("/api/authorizations", { method: "POST", headers: json, body: `{"public_key":"${filePeer}","resource_id":"lab","expires_at":1e400}` })).status).toBe(400);
    expect(ctx.store.resources.authorizations()).toHaveLength(0);
    // A config-file peer and a (disabled) store peer both qualify; the last second of 9999 does too.
    expect((await post(ctx.app, "/api/authorizations", { public_key: filePeer, resource_id: "lab", expires_at: 253_402_300_799 })).status).toBe(201);
    const own = encodeKey(publicKeyOf(generatePrivateKey()));
    expect((await post(ctx.app, "/api/peers", { name: "laptop", publicKey: own, allowedIps: "10.99.0.7/32", enabled: false })).status).toBe(201);
    expect((await post(ctx.app, "/api/authorizations", { public_key: own, resource_id: "lab", expires_at: null })).status).toBe(201);
    expect(ctx.store.resources.authorizations().map((a) => a.publicKey).sort()).toEqual([filePeer, own].sort());
  });

  test("the Resources page's forms URL-encode resource ids", async () => {
    const ctx = setup({ resources: () => [{ id: "../peers/x", name: "old row", type: "cidr", address: "", filters: "", source: "api", authorizations: [] }] });
    const auth = await login(ctx.app, ctx.store);
    const html = await (await ctx.app.request("/resources", { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
    expect(html).toContain('action="/resources/..%2Fpeers%2Fx/delete"');
    expect(html).toContain('action="/resources/..%2Fpeers%2Fx/authorize"');
    expect(html).not.toContain('action="/resources/../');
  });
});
