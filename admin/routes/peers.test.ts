// Peers through the JSON API and the Peers page: defaults, partial updates, one address per peer,
// the config file's peers read-only, search and sort.
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/index.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import type { FilePeerView } from "../types.ts";
import { filePeerId, type GatewayRow } from "../../src/store/index.ts";
import { BASE, ENV_TOKEN, login, setup, type App } from "../testing.ts";

const json = { authorization: `Bearer ${ENV_TOKEN}`, "content-type": "application/json" };
const newKey = () => encodeKey(publicKeyOf(generatePrivateKey()));
const send = (app: App, method: string, path: string, body: unknown) => app.request(path, { method, headers: json, body: JSON.stringify(body) });
const fileKey = newKey();
const filePeer: FilePeerView = { line: 7, id: filePeerId(fileKey), public_key: fileKey, allowed_ips: ["10.99.0.2/32"], endpoint: "192.0.2.50:51820", persistent_keepalive: 25, preshared_key: true };
const withFilePeer = () => setup({ filePeers: () => [filePeer] });

describe("POST /api/peers", () => {
  test("a name is enough: the peer is enabled, gets the next free address and keys, and its client config comes back once", async () => {
    const ctx = setup();
    const r = await send(ctx.app, "POST", "/api/peers", { name: "phone" });
    expect(r.status).toBe(201);
    const body = (await r.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ allowed_ips: "10.99.0.9/32", enabled: true });
    const config = parseConfig(String(body.client_config).replace(/^\[Peer\][\s\S]*$/m, ""), "client.conf");
    expect(encodeKey(publicKeyOf(config.interface.privateKey))).toBe(String(body.public_key));
    expect(ctx.store.peers.get(String(body.id))).toMatchObject({ enabled: true, allowedIps: "10.99.0.9/32" });
    expect(ctx.applied()).toBe(1);
    // The list never shows it again.
    expect(await (await ctx.app.request("/api/peers", { headers: json })).text()).not.toContain("PrivateKey");
  });

  test("with its own public key there is no client config; enabled: false is kept", async () => {
    const ctx = setup();
    const r = await send(ctx.app, "POST", "/api/peers", { name: "laptop", publicKey: newKey(), allowedIps: "10.99.0.7/32", enabled: false });
    expect(r.status).toBe(201);
    const body = (await r.json()) as Record<string, unknown>;
    expect(body.client_config).toBeUndefined();
    expect(body.enabled).toBe(false);
  });

  test("the HTML form still reads an absent checkbox as disabled", async () => {
    const ctx = setup();
    const auth = await login(ctx.app, ctx.store);
    const r = await ctx.app.request("/peers", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: new URLSearchParams({ _csrf: auth.csrf, name: "kiosk", publicKey: newKey(), allowedIps: "10.99.0.8/32" }) });
    expect(r.status).toBe(302);
    expect(ctx.store.peers.list()[0]!.enabled).toBe(false);
  });
});

describe("PATCH /api/peers/:id", () => {
  test("changes only the fields sent, applies them and audits before and after", async () => {
    const ctx = setup();
    const id = ((await (await send(ctx.app, "POST", "/api/peers", { name: "phone", publicKey: newKey(), allowedIps: "10.99.0.5/32", persistentKeepalive: 25, endpoint: "192.0.2.9:51820" })).json()) as { id: string }).id;
    const r = await send(ctx.app, "PATCH", `/api/peers/${id}`, { name: "phone-2" });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { peer: Record<string, unknown> }).peer).toMatchObject({ id, name: "phone-2", allowedIps: "10.99.0.5/32", persistentKeepalive: 25, endpoint: "192.0.2.9:51820", enabled: true, source: "store" });
    expect(ctx.applied()).toBe(2);
    const audit = ctx.store.audit.query({ action: "peer.updated" }).rows[0]!;
    expect(JSON.parse(audit.before!).name).toBe("phone");
    expect(JSON.parse(audit.after!)).toMatchObject({ name: "phone-2", persistentKeepalive: 25 });
    expect((await send(ctx.app, "PATCH", `/api/peers/${id}`, { endpoint: "" })).status).toBe(200);
    expect(ctx.store.peers.get(id)!.endpoint).toBeNull();
  });

  test("an unknown peer is a 404; unknown fields, bad values and an empty body are a 400 naming the field, and change nothing", async () => {
    const ctx = setup();
    const id = ((await (await send(ctx.app, "POST", "/api/peers", { name: "phone", publicKey: newKey(), allowedIps: "10.99.0.5/32" })).json()) as { id: string }).id;
    expect((await send(ctx.app, "PATCH", "/api/peers/nope", { name: "x" })).status).toBe(404);
    for (const [body, field] of [[{ nmae: "x" }, "nmae"], [{ persistentKeepalive: 70000 }, "persistentKeepalive"], [{ endpoint: "host:0" }, "endpoint"], [{ allowedIps: "10.99.0.300/32" }, "allowedIps"], [{}, "body"]] as const) {
      const r = await send(ctx.app, "PATCH", `/api/peers/${id}`, body);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { field: string }).field).toBe(field);
    }
    expect(ctx.store.audit.query({ action: "peer.updated" }).total).toBe(0);
    expect(ctx.store.peers.get(id)!.name).toBe("phone");
  });
});

describe("one tunnel address, one peer", () => {
  test("POST and PATCH refuse an address another store peer or a config file peer has, naming it; the page form too", async () => {
    const ctx = withFilePeer();
    const auth = await login(ctx.app, ctx.store);
    expect((await send(ctx.app, "POST", "/api/peers", { name: "alice", publicKey: newKey(), allowedIps: "10.99.0.5/32" })).status).toBe(201);
    const dup = await send(ctx.app, "POST", "/api/peers", { name: "bob", publicKey: newKey(), allowedIps: "10.99.0.6/32, 10.99.0.5/32" });
    expect(dup.status).toBe(400);
    expect(await dup.json()).toMatchObject({ field: "allowedIps", fields: { allowedIps: expect.stringMatching(/^10\.99\.0\.5\/32 is already an address of peer "alice"/) } });
    const dupFile = await send(ctx.app, "POST", "/api/peers", { name: "bob", publicKey: newKey(), allowedIps: "10.99.0.2" });
    expect(((await dupFile.json()) as { fields: { allowedIps: string } }).fields.allowedIps).toStartWith(`10.99.0.2/32 is already an address of the config file's peer at line 7 (${fileKey})`);
    const sameKey = await send(ctx.app, "POST", "/api/peers", { name: "bob", publicKey: fileKey, allowedIps: "10.99.0.20/32" });
    expect(((await sameKey.json()) as { fields: { publicKey: string } }).fields.publicKey).toContain("is already the config file's peer at line 7");
    const bob = ((await (await send(ctx.app, "POST", "/api/peers", { name: "bob", publicKey: newKey(), allowedIps: "10.99.0.6/32" })).json()) as { id: string }).id;
    const patch = await send(ctx.app, "PATCH", `/api/peers/${bob}`, { allowedIps: "10.99.0.5/32" });
    expect(patch.status).toBe(400);
    expect(((await patch.json()) as { fields: { allowedIps: string } }).fields.allowedIps).toContain('peer "alice"');
    // Its own address again is no clash.
    expect((await send(ctx.app, "PATCH", `/api/peers/${bob}`, { allowedIps: "10.99.0.6/32" })).status).toBe(200);
    const form = await ctx.app.request("/peers", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: new URLSearchParams({ _csrf: auth.csrf, name: "carol", publicKey: newKey(), allowedIps: "10.99.0.5/32", enabled: "on" }) });
    expect(form.status).toBe(400);
    expect(await form.text()).toMatch(/data-field="allowedIps">allowedIps: 10\.99\.0\.5\/32 is already an address of peer &quot;alice&quot;/);
    expect(ctx.store.peers.list().map((p) => p.name).sort()).toEqual(["alice", "bob"]);
  });
});

describe("config file peers", () => {
  test("GET /api/peers lists them with source file; the page shows their fields with no edit or delete", async () => {
    const ctx = withFilePeer();
    const auth = await login(ctx.app, ctx.store);
    await send(ctx.app, "POST", "/api/peers", { name: "alice", publicKey: newKey(), allowedIps: "10.99.0.5/32" });
    const peers = ((await (await ctx.app.request("/api/peers", { headers: json })).json()) as { peers: Record<string, unknown>[] }).peers;
    expect(peers.map((p) => p.source)).toEqual(["store", "file"]);
    expect(peers[1]).toMatchObject({ id: filePeerId(fileKey), line: 7, publicKey: fileKey, allowedIps: "10.99.0.2/32", endpoint: "192.0.2.50:51820", persistentKeepalive: 25, presharedKey: "(set)" });
    const html = await (await ctx.app.request("/peers", { headers: { cookie: auth.cookie } })).text();
    const row = /<tr data-file-peer="7">[\s\S]*?<\/tr>/.exec(html)![0];
    expect(row).toContain(fileKey);
    expect(row).toContain("192.0.2.50:51820");
    expect(row).not.toContain("edit");
    expect(row).not.toContain("delete");
  });
});

describe("Peers page search and sort", () => {
  // Fixed keys: search also matches public keys, so a random key holding "al" (about 1 in 12 per
  // world) made "?q=AL" find a second peer. None of these three holds "al" in any case.
  const fixedKey = (seed: number) => encodeKey(publicKeyOf(generatePrivateKey((n) => new Uint8Array(n).fill(seed))));
  async function world() {
    const ctx = setup();
    const auth = await login(ctx.app, ctx.store);
    for (const [i, name] of ["carol", "alice", "bob"].entries()) {
      ctx.store.peers.create({ name, publicKey: fixedKey(i + 1), allowedIps: `10.99.0.${10 + i}/32`, persistentKeepalive: 0, enabled: true }, "test");
      ctx.store.sqlite.run("UPDATE peers SET created_at = ? WHERE name = ?", [1_700_000_000_000 + i * 1000, name]);
    }
    const names = async (qs: string) => {
      const html = await (await ctx.app.request(`/peers${qs}`, { headers: { cookie: auth.cookie } })).text();
      return { html, names: [...html.matchAll(/<tr data-peer="([^"]+)"/g)].map((m) => m[1]) };
    };
    return { ctx, auth, names };
  }

  test("sorted by name by default; by creation either way; search by name, key or address", async () => {
    const { ctx, names } = await world();
    expect((await names("")).names).toEqual(["alice", "bob", "carol"]);
    expect((await names("?sort=created&dir=asc")).names).toEqual(["carol", "alice", "bob"]);
    expect((await names("?sort=created&dir=desc")).names).toEqual(["bob", "alice", "carol"]);
    expect((await names("?q=AL")).names).toEqual(["alice"]);
    expect((await names("?q=10.99.0.12")).names).toEqual(["bob"]);
    const carolKey = ctx.store.peers.list().find((p) => p.name === "carol")!.publicKey;
    expect((await names(`?q=${encodeURIComponent(carolKey.slice(0, 12))}`)).names).toEqual(["carol"]);
    const none = await names("?q=zzz");
    expect(none.names).toEqual([]);
    expect(none.html).toContain("No peer matches “zzz”");
  });

  test("a sort it does not know is said in words and the default is used; with no peers, an empty state", async () => {
    const { names } = await world();
    const r = await names("?sort=size&dir=up");
    expect(r.names).toEqual(["alice", "bob", "carol"]);
    expect(r.html).toContain("Sort: &quot;size&quot; is not one of name, created, handshake — showing the default instead.");
    expect(r.html).toContain("Sort direction: &quot;up&quot; is not one of asc, desc");
    const empty = setup();
    const auth = await login(empty.app, empty.store);
    expect(await (await empty.app.request("/peers", { headers: { cookie: auth.cookie } })).text()).toContain("No peers yet — add one below.");
  });
});

describe("client config page", () => {
  const configWith = (endpoint: string) => (p: { clientPrivateKey: string | null }) =>
    p.clientPrivateKey ? `[Interface]\nPrivateKey = ${p.clientPrivateKey}\n\n[Peer]\nEndpoint = ${endpoint}\n` : undefined;
  const open = async (endpoint: string) => {
    const ctx = setup({ clientConfig: configWith(endpoint) });
    const created = (await (await send(ctx.app, "POST", "/api/peers", { name: "phone" })).json()) as { id: string };
    return (await ctx.app.request(`/peers/${created.id}/config`, { headers: { authorization: `Bearer ${ENV_TOKEN}`, accept: "text/html" } })).text();
  };

  test("a config that would dial a loopback address says so and how to fix it", async () => {
    for (const endpoint of ["127.0.0.1:52625", "[::1]:52625", "localhost:52625"]) {
      const page = await open(endpoint);
      expect(page).toContain('id="endpoint-warning"');
      expect(page).toContain("GLASSGATE_ENDPOINT");
    }
  });

  test("a config with a reachable endpoint carries no warning", async () => {
    for (const endpoint of ["203.0.113.10:52625", "vpn.example.com:52625", "[2001:db8::1]:52625"]) expect(await open(endpoint)).not.toContain('id="endpoint-warning"');
  });
});

describe("cluster mode (several gateways on one database)", () => {
  const SELF = "11111111-1111-4111-8111-111111111111";
  const OTHER = "22222222-2222-4222-8222-222222222222";
  const gatewayRow = (gid: string, name: string): GatewayRow => ({ gid, name, publicKey: "pk", endpoint: null, version: "0", startedAt: 0, lastSeen: 0, connectedPeers: 0, live: null });
  /** The shared peers as ClusterPeers offers them: every answer a promise, every call counted. */
  function clusterSetup() {
    const calls: string[] = [];
    const ctx = setup({}, (store) => ({
      peers: {
        list: async () => (calls.push("list"), store.peers.list()),
        get: async (id) => (calls.push("get"), store.peers.get(id)),
        byPublicKey: async (k) => store.peers.byPublicKey(k),
        create: async (input, actor, others) => (calls.push("create"), store.peers.create(input, actor, others)),
        update: async (id, patch, actor, others) => (calls.push("update"), store.peers.update(id, patch, actor, others)),
        delete: async (id, actor) => (calls.push("delete"), store.peers.delete(id, actor)),
      },
      cluster: { gid: SELF, gateways: async () => [gatewayRow(SELF, "edge-a"), gatewayRow(OTHER, "edge-b")], audit: store.audit },
    }));
    return { ...ctx, calls };
  }

  test("the API's peer endpoints go through the shared peer store and await it", async () => {
    const ctx = clusterSetup();
    const r = await send(ctx.app, "POST", "/api/peers", { name: "phone", servedBy: [OTHER] });
    expect(r.status).toBe(201);
    const id = String(((await r.json()) as { id: string }).id);
    expect(ctx.store.peers.get(id)?.servedBy).toBe(OTHER);
    const listed = (await (await ctx.app.request("/api/peers", { headers: json })).json()) as { peers: { id: string; servedBy: string | null }[] };
    expect(listed.peers.find((p) => p.id === id)?.servedBy).toBe(OTHER);
    const patched = await send(ctx.app, "PATCH", `/api/peers/${id}`, { servedBy: "" });
    expect(((await patched.json()) as { peer: { servedBy: string | null } }).peer.servedBy).toBeNull();
    expect((await ctx.app.request(`/api/peers/${id}`, { method: "DELETE", headers: json })).status).toBe(204);
    expect(ctx.calls).toEqual(["create", "list", "get", "update", "delete"]);
    expect(ctx.store.peers.list()).toHaveLength(0);
  });

  test("the form offers Served by (one box per gateway, none = every gateway); the list and the peer page say who serves it", async () => {
    const ctx = clusterSetup();
    const auth = await login(ctx.app, ctx.store);
    const page = await (await ctx.app.request("/peers", { headers: { cookie: auth.cookie } })).text();
    expect(page).toContain('name="servedBy" value="' + OTHER + '"');
    expect(page).toContain("edge-a (this gateway)");
    const body = new URLSearchParams({ _csrf: auth.csrf, name: "site-b", publicKey: newKey(), allowedIps: "10.99.0.8/32", enabled: "on", servedBy: "" });
    body.append("servedBy", OTHER);
    body.append("servedBy", SELF);
    const r = await ctx.app.request("/peers", { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body });
    expect(r.status).toBe(302);
    const row = ctx.store.peers.list()[0]!;
    expect(row.servedBy).toBe(`${OTHER},${SELF}`);
    const list = await (await ctx.app.request("/peers", { headers: { cookie: auth.cookie } })).text();
    expect(list).toContain("edge-b, edge-a (this gateway)");
    const edit = await (await ctx.app.request(`/peers/${row.id}`, { headers: { cookie: auth.cookie } })).text();
    expect(edit).toContain('id="served-by"');
    expect(edit).toMatch(new RegExp(`value="${OTHER}" checked`));
    // Saving with every box unchecked: every gateway.
    const save = new URLSearchParams({ _csrf: auth.csrf, name: "site-b", publicKey: row.publicKey, allowedIps: "10.99.0.8/32", enabled: "on", servedBy: "" });
    expect((await ctx.app.request(`/peers/${row.id}`, { method: "POST", headers: { cookie: auth.cookie, origin: BASE }, body: save })).status).toBe(302);
    expect(ctx.store.peers.get(row.id)?.servedBy).toBeNull();
    expect(await (await ctx.app.request(`/peers/${row.id}`, { headers: { cookie: auth.cookie } })).text()).toContain("every gateway");
  });

  test("standalone, the form has no Served by", async () => {
    const ctx = setup();
    const auth = await login(ctx.app, ctx.store);
    expect(await (await ctx.app.request("/peers", { headers: { cookie: auth.cookie } })).text()).not.toContain("servedBy");
  });
});
