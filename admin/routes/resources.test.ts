// Resource ids and authorizations through the API and the Resources page.
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/index.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { formatCidr } from "../../src/ip/address.ts";
import type { GatewayRow, ResourceStore } from "../../src/store/index.ts";
import { BASE, ENV_TOKEN, login, setup, type App } from "../testing.ts";

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

describe("resources in cluster mode (several gateways on one database)", () => {
  const SELF = "11111111-1111-4111-8111-111111111111";
  const OTHER = "22222222-2222-4222-8222-222222222222";
  const gatewayRow = (gid: string, name: string): GatewayRow => ({ gid, name, publicKey: "pk", endpoint: null, version: "0", startedAt: 0, lastSeen: 0, connectedPeers: 0, live: null });
  const json = { authorization: `Bearer ${ENV_TOKEN}`, "content-type": "application/json" };
  /** The shared resources as ClusterResources offers them: every answer a promise, every write counted. */
  function clusterSetup() {
    const calls: string[] = [];
    const ctx: ReturnType<typeof setup> = setup(
      // The policy holds only what this gateway serves (resource-sync.ts filters by served_by).
      { resources: () => ctx.store.resources.listChecked(SELF).resources.map((r) => ({ id: r.id, name: r.name, type: r.type, address: "", filters: "", source: "api" as const, authorizations: [] })) },
      (store) => ({
        resources: {
          list: async () => store.resources.list(),
          records: async () => store.resources.records(),
          authorizations: async () => (calls.push("authorizations"), store.resources.authorizations()),
          create: async (raw, actor, reserved) => (calls.push("create"), store.resources.create(raw, actor, reserved)),
          update: async (id, raw, actor) => (calls.push("update"), store.resources.update(id, raw, actor)),
          delete: async (id, actor) => (calls.push("delete"), store.resources.delete(id, actor)),
          authorize: async (a, actor, others) => (calls.push("authorize"), store.resources.authorize(a, actor, others)),
          revoke: async (k, rid, actor) => (calls.push("revoke"), store.resources.revoke(k, rid, actor)),
        } satisfies ResourceStore,
        cluster: { gid: SELF, gateways: async () => [gatewayRow(SELF, "edge-a"), gatewayRow(OTHER, "edge-b")], audit: store.audit },
      }),
    );
    return { ...ctx, calls };
  }

  test("the API's resource endpoints go through the shared resource store and await it; served_by is validated", async () => {
    const ctx = clusterSetup();
    const post = (path: string, body: unknown) => ctx.app.request(path, { method: "POST", headers: json, body: JSON.stringify(body) });
    expect((await post("/api/resources", { type: "cidr", id: "db", address: "10.5.0.0/16", served_by: [OTHER] })).status).toBe(201);
    expect(ctx.store.resources.records()[0]?.servedBy).toBe(OTHER);
    const bad = await post("/api/resources", { type: "cidr", id: "x", address: "10.6.0.0/16", served_by: "edge-b" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ field: "served_by" });
    expect((await ctx.app.request("/api/resources/db", { method: "PUT", headers: json, body: JSON.stringify({ type: "cidr", address: "10.5.0.0/16", served_by: null }) })).status).toBe(200);
    expect(ctx.store.resources.records()[0]?.servedBy).toBeNull();
    const key = encodeKey(publicKeyOf(generatePrivateKey()));
    ctx.conns.push({ cid: 1, public_key: key } as never);
    expect((await post("/api/authorizations", { public_key: key, resource_id: "db", expires_at: null })).status).toBe(201);
    expect(((await (await ctx.app.request("/api/authorizations", { headers: json })).json()) as { authorizations: unknown[] }).authorizations).toHaveLength(1);
    expect((await ctx.app.request(`/api/authorizations?public_key=${encodeURIComponent(key)}&resource_id=db`, { method: "DELETE", headers: json })).status).toBe(204);
    expect((await ctx.app.request("/api/resources/db", { method: "DELETE", headers: json })).status).toBe(204);
    expect(ctx.calls).toEqual(["create", "create", "update", "authorize", "authorizations", "revoke", "delete"]);
  });

  test("the form offers Served by; a resource served by another gateway only is listed apart, with who serves it", async () => {
    const ctx = clusterSetup();
    const auth = await login(ctx.app, ctx.store);
    const page = await (await ctx.app.request("/resources", { headers: { cookie: auth.cookie } })).text();
    expect(page).toContain(`name="servedBy" value="${OTHER}"`);
    expect(page).toContain("edge-a (this gateway)");
    const body = new URLSearchParams({ _csrf: auth.csrf, id: "b-only", type: "cidr", address: "10.7.0.0/16", filters: "", servedBy: "" });
    body.append("servedBy", OTHER);
    expect((await ctx.app.request("/resources", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body })).status).toBe(302);
    expect(ctx.store.resources.records()[0]?.servedBy).toBe(OTHER);
    const everywhere = new URLSearchParams({ _csrf: auth.csrf, id: "all", type: "cidr", address: "10.8.0.0/16", filters: "", servedBy: "" });
    expect((await ctx.app.request("/resources", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: everywhere })).status).toBe(302);
    expect(ctx.store.resources.records().find((r) => r.id === "all")?.servedBy).toBeNull();
    const list = await (await ctx.app.request("/resources", { headers: { cookie: auth.cookie } })).text();
    expect(list).toContain('data-resource-elsewhere="b-only"');
    expect(list).not.toContain('data-resource-elsewhere="all"');
    expect(list).toContain("every gateway");
    expect(list).toContain("edge-b");
  });

  test("standalone, the resource form has no Served by", async () => {
    const ctx = setup();
    const auth = await login(ctx.app, ctx.store);
    expect(await (await ctx.app.request("/resources", { headers: { cookie: auth.cookie } })).text()).not.toContain("servedBy");
  });
});
