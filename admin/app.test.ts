// The admin server in-process (app.request), with a real store on disk and a stub gateway.
import { beforeEach, describe, expect, test } from "bun:test";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import type { ConnectionView } from "../src/telemetry/view.ts";
import { SESSION_COOKIE } from "./middleware/auth.ts";
import { ENV_TOKEN, login, postLogin, setup } from "./testing.ts";

describe("authentication", () => {
  test("every registered route but /healthz, /login and htmx refuses unauthenticated access", async () => {
    const { app } = setup();
    const open = new Set(["/healthz", "/login", "/static/htmx.min.js", "/static/app.css", "/static/local-time.js"]);
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

  test("a POST from another origin is refused, the login form included", async () => {
    const { app, store } = setup();
    await store.auth.createUser("alice", "correct horse", "test");
    const r = await postLogin(app, { username: "alice", password: "correct horse" }, { base: "http://gw.local", headers: { origin: "https://evil.example" } });
    expect(r.status).toBe(403);
    expect(store.audit.query({ action: "admin.login" }).total).toBe(0);
    const same = await postLogin(app, { username: "alice", password: "correct horse" }, { base: "http://gw.local" });
    expect(same.status).toBe(302);
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
    expect(html).toContain('hx-get="/connections/rows?');
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

