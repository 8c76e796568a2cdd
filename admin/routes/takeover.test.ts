// POST /api/takeover: reach out to the clients other gateways published, on this gateway only.
import { expect, test } from "bun:test";
import { encodeKey } from "../../src/crypto/x25519.ts";
import type { GatewayRow } from "../../src/store/index.ts";
import type { LiveConnection } from "../../src/cluster/gateway-presence.ts";
import type { AdminGateway } from "../types.ts";
import { ENV_TOKEN, login, setup } from "../testing.ts";

const bearer = { authorization: `Bearer ${ENV_TOKEN}` };
const NOW = Date.parse("2026-11-29T10:00:00Z");
const key = (n: number) => encodeKey(new Uint8Array(32).fill(n));

function row(gid: string, connections: Partial<LiveConnection>[]): GatewayRow {
  const live = { connections: connections.map((c, i) => ({ cid: i + 1, peer: c.public_key ?? "?", endpoint: null, rx_bytes: 0, tx_bytes: 0, last_handshake: "2026-11-29T09:59:00.000Z", ...c })), problems: [] };
  return { gid, name: gid, publicKey: `pk-${gid}`, endpoint: null, version: "1", startedAt: NOW - 60_000, lastSeen: NOW - 3000, connectedPeers: connections.length, live: JSON.stringify(live) };
}

function cluster(reachOut: AdminGateway["reachOut"]) {
  const rows: GatewayRow[] = [
    row("gw-self", [{ public_key: key(9), endpoint: "192.0.2.9:1" }]),
    row("gw-old", [
      { public_key: key(1), endpoint: "198.51.100.1:51820" },
      { public_key: key(2), endpoint: "198.51.100.2:51820" },
      { public_key: key(3), endpoint: "198.51.100.3:51820" },
      { public_key: key(4), endpoint: null },
      { peer: "laptop", endpoint: "198.51.100.5:51820" },
    ]),
  ];
  const calls: [string, string][] = [];
  const ctx = setup({
    reachOut: (k, e) => {
      calls.push([k, `${e.address}:${e.port}`]);
      return reachOut!(k, e);
    },
  }, (store) => ({ cluster: { gid: "gw-self", gateways: async () => rows, audit: store.audit } }));
  ctx.clock.now = NOW;
  return { ...ctx, calls };
}

test("the gateway reaches out to each peer the other gateways saw, once, and says what it skipped and why; one audit row, one log line", async () => {
  const outcome: Record<string, "initiated" | "live_session" | "rate_limited" | "unknown_peer"> = { [key(1)]: "initiated", [key(2)]: "live_session", [key(3)]: "unknown_peer" };
  const { app, store, logs, calls } = cluster((k) => outcome[k] ?? "initiated");
  const laptop = store.peers.create({ name: "laptop", publicKey: key(5), allowedIps: "10.99.0.5/32", persistentKeepalive: 0, enabled: true }, "test");
  const r = await app.request("/api/takeover", { method: "POST", headers: bearer });
  expect(r.status).toBe(200);
  const body = (await r.json()) as { reached: { peer: string; endpoint: string; seen_by: string }[]; skipped: { peer: string; reason: string }[] };
  // Its own publish (gw-self) is not a target; each other peer is asked once.
  expect(calls).toEqual([[key(1), "198.51.100.1:51820"], [key(2), "198.51.100.2:51820"], [key(3), "198.51.100.3:51820"], [laptop.publicKey, "198.51.100.5:51820"]]);
  expect(body.reached).toEqual([
    { peer: key(1), endpoint: "198.51.100.1:51820", seen_by: "gw-old" },
    { peer: laptop.publicKey, endpoint: "198.51.100.5:51820", seen_by: "gw-old" },
  ]);
  expect(body.skipped).toEqual([{ peer: key(4), reason: "no_endpoint" }, { peer: key(2), reason: "live_session" }, { peer: key(3), reason: "not_served" }]);
  const audit = store.audit.query({ action: "gateway.takeover" });
  expect(audit.total).toBe(1);
  expect(audit.rows[0]!.subject).toBe("gw-self");
  expect(JSON.parse(audit.rows[0]!.after!)).toEqual({ reached: 2, skipped: 3, skipped_by_reason: { no_endpoint: 1, live_session: 1, not_served: 1 } });
  const lines = logs.query({}).filter((l) => l.msg === "takeover");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ target: "admin", reached: 2, skipped: 3, skipped_live_session: 1 });
});

test("standalone, a takeover is refused with 409 and a reason; nothing is reached out to", async () => {
  let called = 0;
  const { app } = setup({ reachOut: () => (called++, "initiated") });
  const r = await app.request("/api/takeover", { method: "POST", headers: bearer });
  expect(r.status).toBe(409);
  expect(await r.json()).toMatchObject({ error: "not_clustered", message: expect.stringContaining("DATABASE_URL") });
  expect(called).toBe(0);
});

test("a takeover needs credentials, and a browser session's CSRF token", async () => {
  const { app, store, calls } = cluster(() => "initiated");
  expect((await app.request("/api/takeover", { method: "POST" })).status).toBe(401);
  const auth = await login(app, store);
  expect((await app.request("/api/takeover", { method: "POST", headers: { cookie: auth.cookie, origin: "http://localhost" } })).status).toBe(403);
  expect(calls).toHaveLength(0);
  const ok = await app.request("/api/takeover", { method: "POST", headers: { cookie: auth.cookie, origin: "http://localhost", "x-csrf-token": auth.csrf } });
  expect(ok.status).toBe(200);
  expect(calls.length).toBeGreaterThan(0);
});
