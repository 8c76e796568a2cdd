import { expect, spyOn, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeKey } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { Store, type PeerInput } from "../store/index.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import { GOODBYE_EVENT, PeerSpecError } from "../tunnel/index.ts";
import { LOW_ORDER_KEYS } from "../../test/support/low-order-keys.ts";
import { TunnelClients } from "../../test/support/tunnel-clients.ts";
import { PeerSync } from "./peer-sync.ts";

function world() {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-psync-")));
  const sim = new TunnelClients();
  const lines: LogLine[] = [];
  const sync = new PeerSync(sim.gw, store, new Set(), new Logger(parseLogFilter("info"), memorySink(lines)).target("peers"));
  const add = (name: string, publicKey: string, allowedIps: string) =>
    store.peers.create({ name, publicKey, allowedIps, persistentKeepalive: 0, enabled: true } as PeerInput, "test");
  /** A row written behind the repository's back (older version, hand edit, restored backup). */
  const insertRaw = (id: string, name: string, publicKey: string, allowedIps: string, presharedKey: string | null = null) =>
    store.sqlite.run("INSERT INTO peers (id, name, public_key, preshared_key, allowed_ips, persistent_keepalive, enabled) VALUES (?, ?, ?, ?, ?, 0, 1)", [id, name, publicKey, presharedKey, allowedIps]);
  const inTunnel = () => [...sim.gw.connections()].map((c) => c.publicKey).sort();
  const errors = () => lines.filter((l) => l.level === "error");
  return { store, sim, sync, add, insertRaw, inTunnel, errors, lines };
}

test("a stored peer with a low-order key is skipped with one error line; every other peer still applies and deletes still take effect", () => {
  const w = world();
  const a = w.sim.client();
  const b = w.sim.client();
  const rowA = w.add("alice", encodeKey(a.local.publicKey), "10.99.0.2/32");
  w.insertRaw("bad-key", "mallory", LOW_ORDER_KEYS[2]!, "10.99.0.66/32");
  w.insertRaw("bad-ips", "oscar", encodeKey(b.local.publicKey).replace(/^./, (c) => (c === "A" ? "B" : "A")), "10.99.0.0/99");
  w.insertRaw("bad-psk", "trent", encodeKey(w.sim.client().local.publicKey), "10.99.0.70/32", "not-a-key");

  expect(() => w.sync.apply(w.sim.now)).not.toThrow();
  expect(w.inTunnel()).toEqual([encodeKey(a.local.publicKey)]);
  const errs = w.errors();
  expect(errs).toHaveLength(3);
  expect(errs.find((l) => l.peer_id === "bad-key")).toMatchObject({ target: "peers", msg: "stored peer skipped: it cannot be applied", peer: "mallory", field: "public_key", public_key: LOW_ORDER_KEYS[2] });
  expect(String(errs.find((l) => l.peer_id === "bad-key")!.err)).toContain("low-order point");
  expect(errs.find((l) => l.peer_id === "bad-ips")).toMatchObject({ peer: "oscar", field: "allowed_ips" });
  expect(errs.find((l) => l.peer_id === "bad-psk")).toMatchObject({ peer: "trent", field: "preshared_key" });

  // Every 10 s sync meets the same rows: no new lines until a row changes.
  for (let i = 0; i < 5; i++) w.sync.apply(w.sim.now);
  expect(w.errors()).toHaveLength(3);

  // Changes to the good peers still take effect: an addition, then a delete.
  w.add("bob", encodeKey(b.local.publicKey), "10.99.0.3/32");
  expect(w.sync.apply(w.sim.now)).toMatchObject({ upserted: 2, removed: 0, skipped: 3 });
  w.store.peers.delete(rowA.id, "test");
  expect(w.sync.apply(w.sim.now)).toMatchObject({ upserted: 1, removed: 1, skipped: 3 });
  expect(w.inTunnel()).toEqual([encodeKey(b.local.publicKey)]);
  expect([...w.sync.applied().keys()]).toEqual([encodeKey(b.local.publicKey)]);

  // Fixing the bad row applies it and the error is not repeated.
  w.store.sqlite.run("UPDATE peers SET allowed_ips = '10.99.0.4/32', updated_at = updated_at + 1 WHERE id = 'bad-ips'");
  w.sync.apply(w.sim.now);
  expect(w.inTunnel()).toHaveLength(2);
  expect(w.errors()).toHaveLength(3);
});

test("a row that turns unusable while applied keeps its peer as it was instead of half-changing it", () => {
  const w = world();
  const a = w.sim.client();
  const row = w.add("alice", encodeKey(a.local.publicKey), "10.99.0.2/32");
  w.sync.apply(w.sim.now);
  w.store.sqlite.run("UPDATE peers SET allowed_ips = 'garbage', updated_at = updated_at + 1 WHERE id = ?", [row.id]);
  expect(w.sync.apply(w.sim.now)).toMatchObject({ upserted: 0, removed: 0, skipped: 1 });
  const conn = [...w.sim.gw.connections()][0]!;
  expect(conn.publicKey).toBe(encodeKey(a.local.publicKey));
  expect(conn.allowedIPs.map((c) => c.prefix)).toEqual([32]);
  expect(w.errors()[0]).toMatchObject({ peer_id: row.id, field: "allowed_ips" });
});

test("the tunnel refuses a low-order key with a typed error and keeps its state", () => {
  const sim = new TunnelClients();
  const a = sim.client();
  sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  for (const bad of LOW_ORDER_KEYS) {
    const key = new Uint8Array(Buffer.from(bad, "base64"));
    let err: unknown;
    try {
      sim.gw.upsertPeer({ publicKey: key, allowedIPs: [parseCidr("10.99.0.0/24")] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PeerSpecError);
    expect((err as PeerSpecError).field).toBe("publicKey");
  }
  expect(() => sim.gw.upsertPeer({ publicKey: sim.gw.identity.publicKey, allowedIPs: [] })).toThrow("own public key");
  expect(() => sim.gw.upsertPeer({ publicKey: a.local.publicKey, presharedKey: new Uint8Array(5), allowedIPs: [] })).toThrow(PeerSpecError);
  // Nothing half-made: one connection, its route intact, and it still works.
  expect([...sim.gw.connections()]).toHaveLength(1);
  expect(sim.gw.connectionFor(new Uint8Array([10, 99, 0, 7]))).toBeUndefined();
  sim.ping(a);
  expect([...sim.gw.connections()][0]!.peer.keypairs.indices().length).toBeGreaterThan(0);
});

test("deleting or disabling a connected peer sends it a goodbye before it leaves the data plane", () => {
  const w = world();
  const a = w.sim.client();
  const b = w.sim.client();
  const c = w.sim.client();
  const rowA = w.add("alice", encodeKey(a.local.publicKey), "10.99.0.2/32");
  const rowB = w.add("bob", encodeKey(b.local.publicKey), "10.99.0.3/32");
  w.add("carol", encodeKey(c.local.publicKey), "10.99.0.4/32");
  w.sync.apply(w.sim.now);
  w.sim.ping(a);
  w.sim.ping(b);
  w.sim.ping(c);

  w.store.peers.delete(rowA.id, "test");
  w.store.peers.update(rowB.id, { enabled: false }, "test");
  w.sync.apply(w.sim.now);
  w.sim.settle();
  expect(a.control).toEqual([GOODBYE_EVENT]);
  expect(b.control).toEqual([GOODBYE_EVENT]);
  expect(c.control).toEqual([]);
  expect(w.inTunnel()).toEqual([encodeKey(c.local.publicKey)]);
  expect(w.lines.filter((l) => l.msg === "peer removed from the data plane").map((l) => [l.reason, l.goodbye_sent])).toEqual([["deleted", true], ["disabled", true]]);
  // Later syncs say nothing more.
  for (let i = 0; i < 3; i++) w.sync.apply(w.sim.now);
  w.sim.settle();
  expect(a.control).toHaveLength(1);
});

test("a store peer whose tunnel address a file peer or an older store peer has is skipped with one error naming both; the owners keep working", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-psync-")));
  const sim = new TunnelClients();
  const lines: LogLine[] = [];
  const [file, older, later, third] = [sim.client(), sim.client(), sim.client(), sim.client()];
  sim.gw.upsertPeer({ publicKey: file.local.publicKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const fileOwners = [{ label: "the config file's peer at line 7 (X)", allowedIPs: [parseCidr("10.99.0.2/32")] }];
  const sync = new PeerSync(sim.gw, store, new Set([encodeKey(file.local.publicKey)]), new Logger(parseLogFilter("info"), memorySink(lines)).target("peers"), { fileOwners });
  const add = (name: string, key: Uint8Array, allowedIps: string) => store.peers.create({ name, publicKey: encodeKey(key), allowedIps, persistentKeepalive: 0, enabled: true } as PeerInput, "test");
  add("older", older.local.publicKey, "10.99.0.3/32");
  // The repository refuses these now; a database from an older version (or a hand edit) may hold them.
  const raw = (id: string, name: string, key: Uint8Array, allowedIps: string) =>
    store.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips, persistent_keepalive, enabled, created_at) VALUES (?, ?, ?, ?, 0, 1, ?)", [id, name, encodeKey(key), allowedIps, Date.now() + 1000]);
  // "later" sorts before "older" by name: creation order is what decides.
  raw("l", "later", later.local.publicKey, "10.99.0.3/32");
  raw("t", "third", third.local.publicKey, "10.99.0.4/32, 10.99.0.2/32");

  expect(sync.apply(sim.now)).toMatchObject({ upserted: 1, skipped: 2 });
  const errs = lines.filter((l) => l.level === "error");
  expect(errs.map((l) => [l.msg, l.peer, l.address, l.other_peer]).sort((a, b) => (String(a[1]) < String(b[1]) ? -1 : 1))).toEqual([
    ["stored peer skipped: its tunnel address is another peer's", "later", "10.99.0.3/32", 'peer "older"'],
    ["stored peer skipped: its tunnel address is another peer's", "third", "10.99.0.2/32", "the config file's peer at line 7 (X)"],
  ]);
  // The tunnel routes each address to its first owner only; the losers are not in the data plane.
  expect(sim.gw.connectionFor(Uint8Array.of(10, 99, 0, 3))?.publicKey).toBe(encodeKey(older.local.publicKey));
  expect(sim.gw.connectionFor(Uint8Array.of(10, 99, 0, 2))?.publicKey).toBe(encodeKey(file.local.publicKey));
  expect([...sim.gw.connections()].map((c) => c.publicKey).sort()).toEqual([encodeKey(file.local.publicKey), encodeKey(older.local.publicKey)].sort());
  sim.ping(older);
  sim.ping(file);
  // Said once, not every sync.
  sync.apply(sim.now);
  expect(lines.filter((l) => l.level === "error")).toHaveLength(2);
});

test("a store peer's Endpoint reaches the tunnel: an IP literal at once, a hostname once resolved (failure logged naming the peer); a roamed client is not pulled back", async () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-psync-")));
  const sim = new TunnelClients();
  const lines: LogLine[] = [];
  const answers = new Map<string, Promise<string>>([["client.example", Promise.resolve("192.0.2.44")], ["nowhere.example", Promise.reject(new Error("ENOTFOUND nowhere.example"))]]);
  let resolvedCalls = 0;
  const sync = new PeerSync(sim.gw, store, new Set(), new Logger(parseLogFilter("info"), memorySink(lines)).target("peers"), {
    resolveHost: (host) => answers.get(host)!,
    onResolved: () => void resolvedCalls++,
  });
  const [a, b, c] = [sim.client(), sim.client(), sim.client()];
  const add = (name: string, key: Uint8Array, ip: string, endpoint: string) =>
    store.peers.create({ name, publicKey: encodeKey(key), allowedIps: `${ip}/32`, endpoint, persistentKeepalive: 25, enabled: true } as PeerInput, "test");
  add("literal", a.local.publicKey, "10.99.0.2", "[2001:db8::7]:51820");
  add("named", b.local.publicKey, "10.99.0.3", "client.example:51821");
  add("lost", c.local.publicKey, "10.99.0.4", "nowhere.example:51822");
  const sent = () => {
    sim.gw.handleTimeout(sim.now);
    const out = [];
    for (let t = sim.gw.pollTransmit(); t; t = sim.gw.pollTransmit()) out.push(t);
    return out.map((t) => [t.data[0], `${t.to.address}:${t.to.port}`]);
  };
  sync.apply(sim.now);
  expect(sent()).toEqual([[1, "2001:db8::7:51820"]]);
  await Bun.sleep(0);
  expect(resolvedCalls).toBe(1);
  expect(lines.find((l) => l.msg.startsWith("peer endpoint not resolved"))).toMatchObject({ level: "warn", peer: "lost", endpoint: "nowhere.example:51822" });
  sync.apply(sim.now);
  expect(sent()).toEqual([[1, "192.0.2.44:51821"]]);
  // The client roams: a later sync with the same row leaves the learnt endpoint alone.
  const conn = [...sim.gw.connections()].find((x) => x.publicKey === encodeKey(a.local.publicKey))!;
  conn.peer.setEndpoint({ address: "198.51.100.99", port: 1234 });
  sync.apply(sim.now);
  expect(conn.peer.endpoint).toEqual({ address: "198.51.100.99", port: 1234 });
  await Bun.sleep(0);
  expect(lines.filter((l) => l.msg.startsWith("peer endpoint not resolved"))).toHaveLength(1);
});

test("a peer kept as it was (its row turned unusable) keeps its address: a newer row claiming it stays out", () => {
  const w = world();
  const [a, b] = [w.sim.client(), w.sim.client()];
  const row = w.add("alice", encodeKey(a.local.publicKey), "10.99.0.2/32");
  w.sync.apply(w.sim.now);
  w.store.sqlite.run("UPDATE peers SET allowed_ips = 'garbage', updated_at = updated_at + 1 WHERE id = ?", [row.id]);
  w.store.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips, persistent_keepalive, enabled, created_at) VALUES ('b', 'bob', ?, '10.99.0.2/32', 0, 1, ?)", [encodeKey(b.local.publicKey), row.createdAt + 1000]);
  expect(w.sync.apply(w.sim.now)).toMatchObject({ upserted: 0, skipped: 2 });
  expect(w.sim.gw.connectionFor(Uint8Array.of(10, 99, 0, 2))?.publicKey).toBe(encodeKey(a.local.publicKey));
  expect(w.errors().find((l) => l.peer === "bob")).toMatchObject({ address: "10.99.0.2/32", other_peer: 'peer "alice"' });
});

test("a stored row with a config file peer's key is said once, and the file's peer stays as the file says", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-psync-")));
  const sim = new TunnelClients();
  const lines: LogLine[] = [];
  const a = sim.client();
  const key = encodeKey(a.local.publicKey);
  sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  const sync = new PeerSync(sim.gw, store, new Set([key]), new Logger(parseLogFilter("info"), memorySink(lines)).target("peers"));
  store.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips, persistent_keepalive, enabled) VALUES ('x', 'copy', ?, '10.99.0.9/32', 0, 1)", [key]);
  for (let i = 0; i < 3; i++) expect(sync.apply(sim.now)).toMatchObject({ upserted: 0, skipped: 1 });
  expect(lines.filter((l) => l.level === "error").map((l) => [l.msg, l.peer, l.field])).toEqual([["stored peer skipped: the config file has a peer with this key", "copy", "public_key"]]);
  expect([...sim.gw.connections()][0]!.allowedIPs.map((c) => c.bytes.join("."))).toEqual(["10.99.0.2"]);
});

test("a sync with nothing changed upserts nothing; an edited row, or a peer gone from the tunnel, is applied again", () => {
  const w = world();
  const a = w.sim.client();
  const b = w.sim.client();
  const keyA = encodeKey(a.local.publicKey);
  const rowA = w.add("alice", keyA, "10.99.0.2/32");
  w.add("bob", encodeKey(b.local.publicKey), "10.99.0.3/32");
  expect(w.sync.apply(w.sim.now)).toMatchObject({ upserted: 2, removed: 0, skipped: 0 });
  const upserts: string[] = [];
  const real = w.sim.gw.upsertPeer.bind(w.sim.gw);
  w.sim.gw.upsertPeer = (spec) => {
    upserts.push(encodeKey(spec.publicKey));
    return real(spec);
  };
  for (let i = 0; i < 3; i++) expect(w.sync.apply(w.sim.now)).toMatchObject({ upserted: 2, removed: 0, skipped: 0 });
  expect(upserts).toEqual([]);

  // An edit (the repository moves updated_at) reaches the tunnel at the next sync.
  w.store.peers.update(rowA.id, { allowedIps: "10.99.0.12/32" }, "test");
  w.sync.apply(w.sim.now);
  expect(upserts).toEqual([keyA]);
  expect([...w.sim.gw.connections()].find((c) => c.publicKey === keyA)!.allowedIPs.map((c) => c.bytes.join("."))).toEqual(["10.99.0.12"]);

  // Taken out of the tunnel by something else: put back, not trusted from the cache.
  w.sim.gw.removePeer(a.local.publicKey);
  w.sync.apply(w.sim.now);
  expect(upserts).toEqual([keyA, keyA]);
  expect(w.inTunnel()).toContain(keyA);
});

test("with a gateway id, only the peers served by that gateway enter its data plane; a peer moved elsewhere leaves it as not_served", () => {
  const store = Store.open(mkdtempSync(join(tmpdir(), "gg-psync-")));
  const sim = new TunnelClients();
  const lines: LogLine[] = [];
  const removed: string[] = [];
  const [me, other] = [crypto.randomUUID(), crypto.randomUUID()];
  const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("peers");
  const sync = new PeerSync(sim.gw, store, new Set(), log, { gid: me, onRemoved: (_cid, _key, why) => removed.push(why) });
  const standalone = new PeerSync(new TunnelClients().gw, store, new Set(), log);
  const [a, b, c] = [sim.client(), sim.client(), sim.client()];
  const add = (name: string, key: Uint8Array, ip: string, servedBy: string | null) =>
    store.peers.create({ name, publicKey: encodeKey(key), allowedIps: ip, persistentKeepalive: 0, enabled: true, servedBy } as PeerInput, "test");
  add("everywhere", a.local.publicKey, "10.99.0.2/32", null);
  const mine = add("mine", b.local.publicKey, "10.99.0.3/32", `${other},${me}`);
  add("theirs", c.local.publicKey, "10.99.0.4/32", other);
  expect(sync.apply(sim.now)).toMatchObject({ upserted: 2, removed: 0, skipped: 0 });
  expect([...sim.gw.connections()].map((x) => x.publicKey).sort()).toEqual([encodeKey(a.local.publicKey), encodeKey(b.local.publicKey)].sort());
  expect(standalone.apply(sim.now)).toMatchObject({ upserted: 3 });

  store.peers.update(mine.id, { servedBy: other }, "test");
  expect(sync.apply(sim.now)).toMatchObject({ upserted: 1, removed: 1 });
  expect([...sim.gw.connections()].map((x) => x.publicKey)).toEqual([encodeKey(a.local.publicKey)]);
  expect(removed).toEqual(["not_served"]);
  expect(lines.find((l) => l.msg === "peer removed from the data plane")).toMatchObject({ reason: "not_served" });
});

test("the periodic sync skips its full pass while the store is unchanged, and still applies a change, a hand edit and an expiry when they come", () => {
  const w = world();
  const a = w.sim.client();
  const b = w.sim.client();
  const rowA = w.add("alice", encodeKey(a.local.publicKey), "10.99.0.2/32");
  expect(w.sync.apply(w.sim.now, { unlessUnchanged: true })).toMatchObject({ upserted: 1 });
  const reads = () => listCalls.mock.calls.length;
  const listCalls = spyOn(w.store.peers, "list");
  expect(w.sync.apply(w.sim.now, { unlessUnchanged: true })).toEqual({ upserted: 1, removed: 0, skipped: 0, unchanged: true });
  expect(reads()).toBe(0);
  // An admin change (a new row), then a write by another process that keeps updated_at.
  w.add("bob", encodeKey(b.local.publicKey), "10.99.0.3/32");
  const before = reads();
  expect(w.sync.apply(w.sim.now, { unlessUnchanged: true })).toMatchObject({ upserted: 2, removed: 0 });
  expect(reads() - before).toBe(1);
  const other = new Database(w.store.sqlite.filename);
  other.run("UPDATE peers SET allowed_ips = '10.99.0.9/32' WHERE id = ?", [rowA.id]);
  other.close();
  w.sync.apply(w.sim.now, { unlessUnchanged: true });
  expect(w.sim.gw.connectionFor(parseCidr("10.99.0.9/32").bytes)?.publicKey).toBe(encodeKey(a.local.publicKey));
  // An expiry set ahead: nothing changes in the store when it passes, the sync still takes the peer out.
  w.store.peers.update(rowA.id, { expiresAt: w.sim.now + 60_000 }, "test");
  w.sync.apply(w.sim.now, { unlessUnchanged: true });
  expect(w.sync.apply(w.sim.now + 30_000, { unlessUnchanged: true }).unchanged).toBe(true);
  expect(w.sync.apply(w.sim.now + 60_000, { unlessUnchanged: true })).toMatchObject({ removed: 1 });
  expect(w.inTunnel()).toEqual([encodeKey(b.local.publicKey)]);
  listCalls.mockRestore();
});
