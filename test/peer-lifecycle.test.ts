// Store peers over their life, with real wireguard-go clients: a database holding an unusable row
// (low-order key) still starts and serves every other peer; the API refuses such keys; deleting
// a connected peer, or revoking its last authorization, through the API says goodbye to it first.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Store } from "../src/store/index.ts";
import { LOW_ORDER_KEYS } from "./support/low-order-keys.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { Topology, type Client } from "./support/topology.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping peer lifecycle tests: ${skip}`);

function ping(c: Client, target: string, count = 2): boolean {
  return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", String(count), "-i", "0.2", "-W", "2", target], { allowFail: true }).includes(`${count} received`);
}

/** Bytes wireguard-go counted as received from the gateway (handshakes, transport incl. dropped inner packets). */
function rxBytes(c: Client): number {
  return Number(c.ns.exec(["wg", "show", c.wgIf, "transfer"]).trim().split(/\s+/)[1]);
}

describe.skipIf(skip !== undefined)("store peers with wireguard-go clients", () => {
  let topo: Topology;
  const ids: string[] = [];

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 2);
    for (const c of topo.clients) await topo.configureClient(c);
    // The database as an older version or a hand edit could leave it: a low-order key stored
    // directly in SQLite, next to two good peers.
    const store = Store.open(join(topo.dir, "data"));
    store.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips) VALUES ('bad', 'mallory', ?, '10.99.250.1/32')", [LOW_ORDER_KEYS[3]!]);
    for (const c of topo.clients) {
      ids.push(store.peers.create({ name: `client${c.index}`, publicKey: c.publicKey, allowedIps: `${c.tunnelIp}/32`, persistentKeepalive: 0, enabled: true }, "test").id);
    }
    store.close();
    await topo.startGateway({}, 0);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  test("a stored low-order key does not stop the gateway: it is skipped with an error, the other peers connect", async () => {
    const line = await waitFor("the skip error", () => topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"stored peer skipped: it cannot be applied"')));
    expect(JSON.parse(line)).toMatchObject({ level: "error", target: "peers", peer: "mallory", peer_id: "bad", field: "public_key" });
    expect(JSON.parse(line).err).toContain("low-order point");
    // It reaches the Errors page's source (the log ring, level error).
    expect(topo.api("/api/logs?level=error").body).toContain("stored peer skipped");
    for (const c of topo.clients) expect(ping(c, topo.gwTunnelIp)).toBe(true);
  });

  test("POST /api/peers with a low-order key is a 400 naming publicKey, and nothing is stored", () => {
    const r = topo.request("POST", "/api/peers", { name: "evil", publicKey: LOW_ORDER_KEYS[0], allowedIps: "10.99.251.1/32" });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).fields.publicKey).toContain("low-order point");
    expect(topo.api("/api/peers").body).not.toContain('"evil"');
  });

  test("deleting a connected peer through the API sends it a goodbye, then its traffic stops", async () => {
    const c = topo.clients[0]!;
    expect(ping(c, topo.gwTunnelIp)).toBe(true);
    const before = rxBytes(c);
    expect(topo.request("DELETE", `/api/peers/${ids[0]}`).status).toBe(204);
    const line = await waitFor("the removal", () => topo.gatewayLog.split("\n").find((l) => l.includes('"msg":"peer removed from the data plane"')));
    expect(JSON.parse(line)).toMatchObject({ target: "peers", reason: "deleted", goodbye_sent: true, public_key: c.publicKey });
    // wireguard-go drops the goodbye (its source :: is in no AllowedIPs) but counts it first: one
    // transport message of 16 B header + 48 B control packet + 16 B tag = 80 B.
    const delta = await waitFor("the goodbye to reach the client", () => rxBytes(c) - before >= 80 && rxBytes(c) - before);
    expect(delta).toBe(80);
    expect(ping(c, topo.gwTunnelIp, 1)).toBe(false);
    // The other store peer is untouched.
    expect(ping(topo.clients[1]!, topo.gwTunnelIp)).toBe(true);
  }, 30_000);

  test("revoking a connected client's last authorization through the API sends it one goodbye", async () => {
    const c = topo.clients[1]!;
    expect(ping(c, topo.gwTunnelIp)).toBe(true); // no resources yet: a plain WireGuard server
    expect(topo.request("POST", "/api/resources", { type: "cidr", id: "lan", address: `10.202.${topo.net}.0/24` }).status).toBe(201);
    expect(topo.request("POST", "/api/authorizations", { public_key: c.publicKey, resource_id: "lan" }).status).toBe(201);
    expect(ping(c, topo.lanIp)).toBe(true);
    const before = rxBytes(c);
    expect(topo.request("DELETE", `/api/authorizations?public_key=${encodeURIComponent(c.publicKey)}&resource_id=lan`).status).toBe(204);
    await waitFor("the goodbye", () => topo.gatewayLog.includes('"msg":"goodbye sent: no resources left"'));
    const delta = await waitFor("the goodbye to reach the client", () => rxBytes(c) - before >= 80 && rxBytes(c) - before);
    expect(delta).toBe(80);
    expect(ping(c, topo.lanIp)).toBe(false);
    expect(topo.gatewayLog.split("\n").filter((l) => l.includes('"msg":"goodbye sent: no resources left"'))).toHaveLength(1);
  }, 30_000);
});
