// Bounded input through the whole app: body limits, query values, JSON bodies, echoed values, 500s.
import { describe, expect, test } from "bun:test";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { ENV_TOKEN, login, setup } from "./testing.ts";

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
