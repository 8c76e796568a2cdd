// GET /api/overview: the Overview's data for scripts and dashboards, with the page's numbers and
// the logs' field names (cid, public_key, rx_bytes …).
import { expect, test } from "bun:test";
import type { GatewayFacts, ProblemView } from "../types.ts";
import { ENV_TOKEN, setup } from "../testing.ts";

const bearer = { authorization: `Bearer ${ENV_TOKEN}` };
const FACTS: GatewayFacts = {
  public_key: "GW=", udp_port: 52625, version: "1.2.3", gid: "gid-1", started_at: "2026-11-29T09:00:00.000Z", aead: "noble",
  udp_buffers: { recv: 1024, send: 2048 }, queue_depths: { udp: 0, tun: 1 }, unattributed_drops: { mac1: 3, allowed_ips: 1 }, traffic_sample_seconds: 60, throughput: [],
};
const PROBLEM: ProblemView = {
  kind: "allowed_ips", cid: 3428714, public_key: "KEY=", source: "10.99.0.77", title: "Packets from 10.99.0.77, outside the peer's AllowedIPs",
  likely_cause: "cause", fix: "fix", since: "2026-11-29T10:00:00.000Z", last_seen: "2026-11-29T10:01:00.000Z", count: 4,
};

test("GET /api/overview gives facts, problems, drops by reason with the cids causing them, top talkers and expiring peers", async () => {
  const ctx = setup({ problems: () => [PROBLEM], facts: () => FACTS });
  const c = ctx.conns[0]!;
  c.drops = { allowed_ips: 15, replay: 2 };
  const soon = Date.now() + 2 * 86400_000;
  ctx.store.peers.create({ name: "contractor", publicKey: c.public_key, allowedIps: "10.99.0.2/32", persistentKeepalive: 0, enabled: true, expiresAt: soon }, "test");
  ctx.log.target("tunnel").warn("something odd", { cid: c.cid });
  const r = await ctx.app.request("/api/overview", { headers: bearer });
  expect(r.status).toBe(200);
  const o = (await r.json()) as Record<string, unknown> & { drops: unknown[]; top_talkers: unknown[]; expiring_peers: unknown[] };
  expect(o.facts).toEqual(FACTS);
  expect(o.problems).toEqual([PROBLEM]);
  expect(o.summary).toEqual({ connected: 1, connections: 1, store_peers: 1, problems: 1, rx_bytes: 2048, tx_bytes: 1024, warnings_24h: 1, warnings_24h_capped: false });
  expect(o.drops).toEqual([
    { reason: "allowed_ips", packets: 16, by: [{ cid: c.cid, packets: 15 }], no_connection: 1 },
    { reason: "mac1", packets: 3, by: [], no_connection: 3 },
    { reason: "replay", packets: 2, by: [{ cid: c.cid, packets: 2 }], no_connection: 0 },
  ]);
  expect(o.top_talkers).toEqual([{ cid: c.cid, public_key: c.public_key, name: "contractor", rx_bytes: 2048, tx_bytes: 1024 }]);
  expect(o.expiring_peers).toEqual([expect.objectContaining({ name: "contractor", public_key: c.public_key, expires_at: new Date(soon).toISOString(), expired: false })]);
  // Like the rest of the API: a bearer token or a session, nothing else.
  expect((await ctx.app.request("/api/overview")).status).toBe(401);
});
