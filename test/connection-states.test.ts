// Connection states with a real wireguard-go client: awaiting confirmation → connected at the
// first authenticated packet (audited then), and "expired", with its time, once the peer's expiry
// passes — on /api/connections while it lives, then on its open connection page after it left.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Store } from "../src/store/index.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { Topology, type Client } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping connection state tests: ${skip}`);

describe.skipIf(skip !== undefined)("connection states with a wireguard-go client", () => {
  let topo: Topology;
  let client: Client;
  const expiresAt = Date.now() + 15_000;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 1);
    client = topo.clients[0]!;
    await topo.configureClient(client);
    // A UI peer that expires soon (the gateway sweeps expiry every 10 s).
    const store = Store.open(join(topo.dir, "data"));
    store.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips, expires_at) VALUES ('p1', 'short-lived', ?, ?, ?)", [client.publicKey, `${client.tunnelIp}/32`, expiresAt]);
    store.close();
    await topo.startGateway({}, 0);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("connected after the first authenticated packet, audited then; expired with its time once the expiry passes", async () => {
    expect(sh(["ip", "netns", "exec", client.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", topo.gwTunnelIp], { allowFail: true })).toContain("2 received");
    const conn = (JSON.parse(topo.api("/api/connections").body).connections as { cid: number; state: string; state_since: string; handshakes: { confirmed: number } }[])[0]!;
    expect(conn.state).toBe("connected");
    expect(conn.handshakes.confirmed).toBe(1);
    const established = JSON.parse(topo.api(`/api/audit?action=connection.established&cid=${conn.cid}`).body).rows as { reason: string }[];
    expect(established).toHaveLength(1);
    expect(established[0]!.reason).toBe(`from ${client.underlayIp}:51820`);
    const log = await waitFor("the confirmation log line", () => topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"handshake completed"') && l.includes(`"cid":${conn.cid}`)));
    expect(JSON.parse(log)).toMatchObject({ role: "responder", rtt_ms: expect.any(Number) });

    // The open page's live part (polled every 2 s) says what happened to it.
    const page = await waitFor("the peer to expire", () => {
      const r = topo.api(`/connections/${conn.cid}/live`);
      return r.body.includes('data-state="expired"') && r;
    }, 40_000, 500);
    // Waited for, not looked up: the page can say "expired" before the gateway's line has been read.
    const removed = await waitFor("the removal log line", () => topo.gatewayLog.split("\n").find((l) => l.includes("peer removed from the data plane") && l.includes('"reason":"expired"')));
    const since = Date.parse(JSON.parse(removed).ts);
    expect(since).toBeGreaterThanOrEqual(expiresAt - 1000);
    expect(page.body).toContain(new Date(since).toISOString().slice(0, 16).replace("T", " "));
  }, 60_000);
});
