// The Gateways page and API, the audit's gateway filter (cluster mode reads the shared audit) and
// the Problems page across gateways.
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store, type GatewayRow } from "../../src/store/index.ts";
import type { GatewayLive } from "../../src/cluster/gateway-presence.ts";
import type { ProblemView } from "../types.ts";
import { ENV_TOKEN, login, setup } from "../testing.ts";

const bearer = { authorization: `Bearer ${ENV_TOKEN}` };
const NOW = Date.parse("2026-11-29T10:00:00Z");

function row(gid: string, name: string, lastSeen: number, live: GatewayLive | string | null, extra: Partial<GatewayRow> = {}): GatewayRow {
  return { gid, name, publicKey: `pk-${gid}`, endpoint: `${name}.example:52625`, version: "0.9.0", startedAt: NOW - 3600_000, lastSeen, connectedPeers: 2, live: typeof live === "string" || live === null ? live : JSON.stringify(live), ...extra };
}

const OTHER_LIVE: GatewayLive = {
  connections: [{ cid: 77, peer: "phone", endpoint: "198.51.100.4:40000", rx_bytes: 5000, tx_bytes: 6000, last_handshake: "2026-11-29T09:59:50.000Z", state: "connected" }],
  problems: [{ kind: "psk_mismatch", title: "Preshared key mismatch on phone", since: "2026-11-29T09:50:00.000Z", count: 3, cid: 77 }],
};
const PROBLEM: ProblemView = {
  kind: "allowed_ips", cid: 3428714, public_key: "KEY=", source: "10.0.0.9", title: "Packets from outside AllowedIPs", likely_cause: "a <cause>", fix: "the fix",
  since: "2026-11-29T09:40:00.000Z", last_seen: "2026-11-29T09:41:00.000Z", count: 4,
};

function cluster() {
  const shared = Store.open(mkdtempSync(join(tmpdir(), "gg-shared-")));
  const rows: GatewayRow[] = [];
  const ctx = setup({ problems: () => [PROBLEM] }, { cluster: { gid: "gw-self", gateways: async () => rows, audit: shared.audit, heartbeatMs: 5000 } });
  ctx.clock.now = NOW;
  rows.push(
    row("gw-self", "edge-a", NOW - 2000, null),
    row("gw-other", "edge-b", NOW - 15_000, { ...OTHER_LIVE, connections: [...OTHER_LIVE.connections, { cid: -1 } as never] }),
    row("gw-gone", "edge-c", Date.parse("2026-11-29T09:00:00Z"), "{not json", { connectedPeers: 0 }),
  );
  return { ...ctx, shared, rows };
}

test("standalone: the Gateways page shows this gateway's own row from its store, up, with its live connections", async () => {
  const { app, store, clock, conns } = setup();
  clock.now = NOW;
  store.gateways.register({ gid: store.gid, name: "solo", publicKey: "GWKEY=", endpoint: "vpn.example:52625", version: "1.2.3" }, NOW - 60_000);
  store.gateways.publish(store.gid, NOW - 4000, 1, JSON.stringify({ connections: [], problems: [] }));
  const api = await app.request("/api/gateways", { headers: bearer });
  expect(api.status).toBe(200);
  const { gateways } = (await api.json()) as { gateways: Record<string, unknown>[] };
  expect(gateways.length).toBe(1);
  expect(gateways[0]).toMatchObject({ gid: store.gid, name: "solo", health: "up", stale_since: null, self: true, version: "1.2.3", endpoint: "vpn.example:52625", connected_peers: 1, last_seen: "2026-11-29T09:59:56.000Z" });
  // Its own connections are read live, not from its last publish (which had none).
  expect((gateways[0]!.connections as { cid: number; peer: string }[]).map((c) => [c.cid, c.peer])).toEqual([[conns[0]!.cid, conns[0]!.public_key]]);
  const auth = await login(app, store);
  const page = await (await app.request("/gateways", { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  expect(page).toContain('<a href="/gateways" class="on">Gateways</a>');
  expect(page).toContain('data-health="up"');
  expect(page).toContain(`<a class="cid" href="/connections/${conns[0]!.cid}">`);
  expect((await app.request("/api/gateways")).status).toBe(401);
});

test("cluster: every gateway with health from its last seen (stale since then), and connections across gateways from what each published", async () => {
  const { app, store } = cluster();
  const { gateways } = (await (await app.request("/api/gateways", { headers: bearer })).json()) as { gateways: Record<string, unknown>[] };
  expect(gateways.map((g) => [g.gid, g.health, g.stale_since, g.self])).toEqual([
    ["gw-self", "up", null, true],
    ["gw-other", "up", null, false],
    ["gw-gone", "stale", "2026-11-29T09:00:00.000Z", false],
  ]);
  expect(gateways[1]!.connections).toEqual([OTHER_LIVE.connections[0], { unreadable: expect.stringContaining("unreadable") }]);
  expect(gateways[2]!.unreadable).toBe("unreadable: not JSON");
  const auth = await login(app, store);
  const page = await (await app.request("/gateways", { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  expect(page).toContain('<tr id="gw-gw-gone" data-gid="gw-gone" data-health="stale">');
  expect(page).toContain('since <time datetime="2026-11-29T09:00:00.000Z">2026-11-29 09:00:00 UTC</time>');
  // Another gateway's connection links to that gateway's row (its cid means nothing here).
  expect(page).toContain('<tr data-gid="gw-other" data-cid="77"><td><a href="#gw-gw-other">edge-b</a></td><td>77</td><td class="key">phone</td>');
  expect(page).toContain('<tr data-gid="gw-other" class="unreadable">');
  expect(page).toContain('data-testid="unreadable">unreadable: not JSON</span>');
});

test("cluster: the Audit page and API read the shared audit, and the gateway select narrows it", async () => {
  const { app, store, shared } = cluster();
  store.audit.record({ actor: "admin:local", action: "settings.updated", subject: "only-local" });
  shared.audit.record({ actor: "gateway", action: "connection.established", subject: "on-self", gid: "gw-self" });
  shared.audit.record({ actor: "gateway", action: "connection.established", subject: "on-other", cid: 4242, gid: "gw-other" });
  const all = (await (await app.request("/api/audit", { headers: bearer })).json()) as { rows: { subject: string }[]; total: number };
  expect(all.rows.map((r) => r.subject)).toEqual(["on-other", "on-self"]);
  const one = (await (await app.request("/api/audit?gid=gw-other", { headers: bearer })).json()) as { rows: { subject: string }[]; total: number };
  expect(one).toMatchObject({ total: 1, rows: [{ subject: "on-other" }] });
  const auth = await login(app, store);
  const page = await (await app.request("/audit?gid=gw-other", { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  expect(page).toContain('<option value="gw-other" selected>edge-b (gw-other)</option>');
  expect(page).toContain('<option value="gw-gone">edge-c (gw-gone)</option>');
  expect(page).toContain("on-other");
  expect(page).not.toContain("on-self");
  expect(page).toContain('<a href="/gateways#gw-gw-other">edge-b</a>');
  // Its cid is that gateway's: not linked to this gateway's connection page.
  expect(page).toContain("<td>4242</td>");
  expect(page).not.toContain('href="/connections/4242"');
  const csv = await (await app.request("/audit.csv?gid=gw-self", { headers: { cookie: auth.cookie } })).text();
  expect(csv).toContain("on-self");
  expect(csv).not.toContain("on-other");
});

test("standalone: the audit's gid filter narrows the local audit", async () => {
  const { app, store } = setup();
  store.audit.record({ actor: "gateway", action: "connection.established", subject: "mine" });
  store.audit.record({ actor: "cli", action: "peer.created", subject: "imported", gid: "elsewhere" });
  const r = (await (await app.request(`/api/audit?gid=${store.gid}`, { headers: bearer })).json()) as { rows: { subject: string }[] };
  expect(r.rows.map((x) => x.subject)).toEqual(["mine"]);
});

test("Problems: every gateway's by default, one gateway's with ?gid= (this one's live, with cause and fix; another's as published)", async () => {
  const { app, store } = cluster();
  const auth = await login(app, store);
  const get = async (q: string) => (await app.request(`/problems${q}`, { headers: { cookie: auth.cookie, accept: "text/html" } })).text();
  const all = await get("");
  expect(all).toContain('<tr data-gid="gw-self" data-kind="allowed_ips">');
  expect(all).toContain('<tr data-gid="gw-other" data-kind="psk_mismatch">');
  expect(all).toContain("a &lt;cause&gt;");
  const other = await get("?gid=gw-other");
  expect(other).toContain("Preshared key mismatch on phone");
  expect(other).not.toContain('data-kind="allowed_ips"');
  expect(other).toContain('<option value="gw-other" selected>');
  expect(await get("?gid=gw-gone")).toContain("No problem on this gateway.");
  // "*" on the page means every gateway too (as in the API), not a gateway called "*".
  const star = await get("?gid=*");
  expect(star).toContain('<tr data-gid="gw-self" data-kind="allowed_ips">');
  expect(star).toContain('<tr data-gid="gw-other" data-kind="psk_mismatch">');
  const api = (await (await app.request("/api/problems?gid=*", { headers: bearer })).json()) as { problems: { gid: string; kind: string }[] };
  expect(api.problems.map((p) => [p.gid, p.kind])).toEqual([["gw-self", "allowed_ips"], ["gw-other", "psk_mismatch"]]);
  // Without gid: this gateway's, as before.
  expect(((await (await app.request("/api/problems", { headers: bearer })).json()) as { problems: ProblemView[] }).problems).toEqual([PROBLEM]);
});
