import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nobleAead } from "../crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { AccessPolicy, GatewayCore, parseResource } from "../gateway/index.ts";
import { buildTcp } from "../ip/build.ts";
import { parseCidr } from "../ip/address.ts";
import { PacketView } from "../ip/packet.ts";
import { Store } from "../store/index.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import { GOODBYE_EVENT, Tunnel } from "../tunnel/index.ts";
import { TunnelClients } from "../../test/support/tunnel-clients.ts";
import { ResourceSync } from "./resource-sync.ts";

test("API resources and grants reach the policy next to the file's, and leave it when removed", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-rsync-")));
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const peerKey = publicKeyOf(generatePrivateKey());
  const conn = tunnel.upsertPeer({ publicKey: peerKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const policy = new AccessPolicy();
  policy.upsertResource(parseResource({ type: "cidr", id: "file", address: "192.0.2.0/24" }));
  const sync = new ResourceSync(policy, tunnel, store, ["file"], new Logger(parseLogFilter("off")).target("gateway"));
  store.resources.upsert({ type: "cidr", id: "api", address: "10.50.0.0/16" }, "test");
  store.resources.authorize({ publicKey: encodeKey(peerKey), resourceId: "api", expiresAt: null }, "test", new Set([encodeKey(peerKey)]));
  sync.apply(0);
  const v = new PacketView();
  v.parse(buildTcp({ src: "10.99.0.2", dst: "10.50.1.1", srcPort: 1, dstPort: 22 }));
  expect(policy.decide(conn.cid, v, 0)).toBeUndefined();
  store.resources.revoke(encodeKey(peerKey), "api", "test");
  sync.apply(0);
  expect(policy.decide(conn.cid, v, 0)).toBe("not_authorized");
  store.resources.delete("api", "test");
  sync.apply(0);
  expect(policy.resource("api")).toBeUndefined();
  expect(policy.resource("file")).toBeDefined();
});

/** The standalone composition on simulated time: a 10 s store sync, and the core's sweep at each expiry. */
function syncWorld() {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-rsync-")));
  const sim = new TunnelClients();
  const core = new GatewayCore();
  const lines: LogLine[] = [];
  const sync = new ResourceSync(core.policy, sim.gw, store, [], new Logger(parseLogFilter("info"), memorySink(lines)).target("gateway"));
  // The clients are the gateway's peers as the config file's would be: authorize() must know them.
  const peers = new Set<string>();
  const client = () => {
    const c = sim.client();
    sim.gw.upsertPeer({ publicKey: c.local.publicKey, allowedIPs: [parseCidr(`${c.ip}/32`)] });
    peers.add(encodeKey(c.local.publicKey));
    sim.ping(c);
    return c;
  };
  /** Runs the gateway for `ms` of simulated time: the timer-driven sweep, and a sync every 10 s. */
  const run = (ms: number) => {
    const end = sim.now + ms;
    let nextSync = sim.now + 10_000;
    while (sim.now < end) {
      const due = Math.min(core.pollTimeout() ?? Infinity, nextSync, end);
      sim.now = Math.max(sim.now, due);
      if ((core.pollTimeout() ?? Infinity) <= sim.now) core.handleTimeout(sim.now);
      for (let e = core.pollEvent(); e; e = core.pollEvent()) if (e.type === "authorization_expired") sync.onExpired(e.cid, e.rid, sim.now);
      if (sim.now >= nextSync) {
        sync.apply(sim.now);
        nextSync += 10_000;
      }
      sim.settle();
    }
  };
  const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
  return { store, sim, core, sync, client, run, count, lines, peers };
}

test("an expired authorization is logged and says goodbye once, not at every 10 s sync", () => {
  const w = syncWorld();
  const a = w.client();
  w.store.resources.upsert({ type: "cidr", id: "lan", address: "10.50.0.0/16" }, "test");
  w.store.resources.authorize({ publicKey: encodeKey(a.local.publicKey), resourceId: "lan", expiresAt: w.sim.now + 25_000 }, "test", w.peers);
  w.sync.apply(w.sim.now);
  expect(w.core.policy.authorizations([...w.sim.gw.connections()][0]!.cid)).toHaveLength(1);
  w.run(25_000 + 6 * 10_000); // the expiry, then six syncs
  expect(w.count("authorization expired")).toBe(1);
  expect(w.count("goodbye sent: no resources left")).toBe(1);
  expect(a.control).toEqual([GOODBYE_EVENT]);
  expect(w.core.policy.authorizations([...w.sim.gw.connections()][0]!.cid)).toEqual([]);
});

test("an authorization that expires exactly at a sync is still logged once with one goodbye", () => {
  const w = syncWorld();
  const a = w.client();
  w.store.resources.upsert({ type: "cidr", id: "lan", address: "10.50.0.0/16" }, "test");
  w.store.resources.authorize({ publicKey: encodeKey(a.local.publicKey), resourceId: "lan", expiresAt: w.sim.now + 20_000 }, "test", w.peers);
  w.sync.apply(w.sim.now);
  // The sync runs before the sweep here: the sync itself ends the grant.
  w.sim.now += 20_000;
  w.sync.apply(w.sim.now);
  w.run(60_000);
  expect(w.count("authorization expired")).toBe(1);
  expect(a.control).toEqual([GOODBYE_EVENT]);
});

test("an authorization already expired in the store is never applied, so nothing loops", () => {
  const w = syncWorld();
  const a = w.client();
  w.store.resources.upsert({ type: "cidr", id: "lan", address: "10.50.0.0/16" }, "test");
  w.store.resources.authorize({ publicKey: encodeKey(a.local.publicKey), resourceId: "lan", expiresAt: w.sim.now - 1 }, "test", w.peers);
  w.sync.apply(w.sim.now);
  w.run(60_000);
  expect(w.core.policy.authorizations([...w.sim.gw.connections()][0]!.cid)).toEqual([]);
  expect(w.count("authorization expired")).toBe(0);
  expect(a.control).toEqual([]);
});

test("revoking a client's last authorization, or deleting its last resource, sends one goodbye; losing one of two sends none", () => {
  const w = syncWorld();
  const a = w.client();
  const b = w.client();
  w.store.resources.upsert({ type: "cidr", id: "lan", address: "10.50.0.0/16" }, "test");
  w.store.resources.upsert({ type: "cidr", id: "db", address: "10.60.0.0/16" }, "test");
  w.store.resources.upsert({ type: "cidr", id: "web", address: "10.70.0.0/16" }, "test");
  for (const rid of ["lan", "db"]) w.store.resources.authorize({ publicKey: encodeKey(a.local.publicKey), resourceId: rid, expiresAt: null }, "test", w.peers);
  w.store.resources.authorize({ publicKey: encodeKey(b.local.publicKey), resourceId: "web", expiresAt: null }, "test", w.peers);
  w.sync.apply(w.sim.now);

  w.store.resources.revoke(encodeKey(a.local.publicKey), "db", "test");
  w.run(20_000);
  expect(a.control).toEqual([]); // still has "lan"
  w.store.resources.revoke(encodeKey(a.local.publicKey), "lan", "test");
  w.run(30_000);
  expect(a.control).toEqual([GOODBYE_EVENT]);
  expect(w.count("authorization revoked")).toBe(2);

  w.store.resources.delete("web", "test");
  w.run(30_000);
  expect(b.control).toEqual([GOODBYE_EVENT]);
  expect(a.control).toHaveLength(1);
});

test("a stored grant for an id the config file also uses never opens the file's resource", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-rsync-")));
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const peerKey = publicKeyOf(generatePrivateKey());
  const conn = tunnel.upsertPeer({ publicKey: peerKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const policy = new AccessPolicy();
  policy.upsertResource(parseResource({ type: "cidr", id: "file", address: "192.0.2.0/24" }));
  const sync = new ResourceSync(policy, tunnel, store, ["file"], new Logger(parseLogFilter("off")).target("gateway"));
  // A row from before ids were checked for clashes: same id as the file's resource.
  store.resources.upsert({ type: "cidr", id: "file", address: "198.51.100.0/24" }, "test");
  store.resources.authorize({ publicKey: encodeKey(peerKey), resourceId: "file", expiresAt: null }, "test", new Set([encodeKey(peerKey)]));
  sync.apply(0);
  const v = new PacketView();
  v.parse(buildTcp({ src: "10.99.0.2", dst: "192.0.2.1", srcPort: 1, dstPort: 22 }));
  expect(policy.decide(conn.cid, v, 0)).toBe("not_authorized");
});

test("a stored resource row that no longer parses is logged once naming the row and column; the others apply, and an applied one stays", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-rsync-")));
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(), random: (n) => crypto.getRandomValues(new Uint8Array(n)) });
  const policy = new AccessPolicy();
  const lines: LogLine[] = [];
  const sync = new ResourceSync(policy, tunnel, store, [], new Logger(parseLogFilter("info"), memorySink(lines)).target("gateway"));
  store.resources.upsert({ type: "cidr", id: "lan", address: "10.50.0.0/16" }, "test");
  store.resources.upsert({ type: "cidr", id: "dmz", address: "10.60.0.0/16" }, "test");
  sync.apply(0);
  // Broken by hand (or by an older version): one row's filters are not JSON, a new row's address is no CIDR.
  store.sqlite.run("UPDATE resources SET filters = '[{' WHERE id = 'lan'");
  store.sqlite.run("INSERT INTO resources (id, name, type, address, filters) VALUES ('web', 'Web', 'cidr', '10.70.0.0/33', '[]')");
  store.resources.upsert({ type: "cidr", id: "ops", address: "10.80.0.0/16" }, "test");
  for (let i = 0; i < 3; i++) sync.apply(0);
  const errors = lines.filter((l) => l.level === "error");
  expect(errors.map((l) => [l.msg, l.rid, l.field])).toEqual([
    ["stored resource skipped: it cannot be applied", "lan", "filters"],
    ["stored resource skipped: it cannot be applied", "web", "address"],
  ]);
  expect(errors[1]!.err).toContain("10.70.0.0/33");
  expect(policy.resource("lan")).toMatchObject({ id: "lan" }); // applied before: kept as it was
  expect(policy.resource("web")).toBeUndefined();
  expect(policy.resource("ops")).toBeDefined();
  expect(lines.filter((l) => l.msg === "resource removed")).toEqual([]);
  // Edited again (still broken): reported again, once.
  store.sqlite.run("UPDATE resources SET filters = '[[' WHERE id = 'lan'");
  sync.apply(0);
  sync.apply(0);
  expect(lines.filter((l) => l.level === "error" && l.rid === "lan")).toHaveLength(2);
});
