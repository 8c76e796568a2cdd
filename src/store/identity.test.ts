import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { drizzle } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { DB_FILE, filePeerId, parsePeerInput, Store, type PeerInput } from "./index.ts";

const dir = () => mkdtempSync(join(tmpdir(), "gg-identity-"));
const key = () => encodeKey(publicKeyOf(generatePrivateKey()));
const GID = "0b7e9f0e-3a53-4f0c-9d43-5c4b8f1d2e6a";

test("a config-file peer's id depends on its public key only, so it survives restarts and edits of other lines", () => {
  const k = key();
  expect(filePeerId(k)).toMatch(/^file-[0-9a-f]{12}$/);
  expect(filePeerId(k)).toBe(filePeerId(k));
  expect(filePeerId(key())).not.toBe(filePeerId(k));
});

test("a cid from an earlier run still names its peer after a restart", () => {
  const d = dir();
  const k = key();
  let s = Store.open(d);
  s.history.remember([{ publicKey: k, peerId: filePeerId(k), name: "laptop", source: "file" }], 1000);
  s.history.observe(GID, [{ cid: 0x123456, publicKey: k }], 1000);
  s.close();
  s = Store.open(d); // the next run: a new cid for the same peer
  s.history.observe(GID, [{ cid: 0x654321, publicKey: k }], 5000);
  const old = s.history.byCid(0x123456);
  expect(old).toEqual([{ gid: GID, cid: 0x123456, publicKey: k, firstSeen: 1000, lastSeen: 1000 }]);
  const who = s.history.resolve(old[0]!.publicKey)!;
  expect(who).toEqual({ peerId: filePeerId(k), name: "laptop", source: "file", keys: [k] });
  expect(s.history.cidsOf(who.keys).map((r) => r.cid)).toEqual([0x654321, 0x123456]);
  s.close();
});

test("observing writes only new cids, and moves last_seen only when asked", () => {
  const s = Store.open(dir());
  const [a, b] = [key(), key()];
  expect(s.history.observe(GID, [{ cid: 1, publicKey: a }], 10)).toBe(1);
  expect(s.history.observe(GID, [{ cid: 1, publicKey: a }, { cid: 2, publicKey: b }], 20)).toBe(1);
  expect(s.history.byCid(1)[0]!.lastSeen).toBe(10);
  s.history.observe(GID, [{ cid: 1, publicKey: a }, { cid: 2, publicKey: b }], 30, true);
  expect(s.history.byCid(1)[0]).toMatchObject({ firstSeen: 10, lastSeen: 30 });
  expect(s.history.count(GID)).toBe(2);
  expect(s.history.prune(25)).toBe(0);
  expect(s.history.prune(31)).toBe(2);
  s.close();
});

test("a store peer keeps its id across a key change, and its history covers both keys", () => {
  const s = Store.open(dir());
  const [k1, k2] = [key(), key()];
  const p = s.peers.create(parsePeerInput({ name: "phone", publicKey: k1, allowedIps: "10.99.0.7/32" }) as PeerInput, "admin:a");
  s.peers.update(p.id, { publicKey: k2 }, "admin:a");
  const who = s.history.resolve(p.id)!;
  expect(who.peerId).toBe(p.id);
  expect(new Set(who.keys)).toEqual(new Set([k1, k2]));
  expect(s.history.resolve(k1)!.peerId).toBe(p.id);
  s.close();
});

test("a deleted store peer's history still resolves by its id, with its name", () => {
  const s = Store.open(dir());
  const k = key();
  const p = s.peers.create(parsePeerInput({ name: "old laptop", publicKey: k, allowedIps: "10.99.0.9/32" }) as PeerInput, "admin:a");
  s.peers.delete(p.id, "admin:a");
  expect(s.history.resolve(p.id)).toEqual({ peerId: p.id, name: "old laptop", source: "store", keys: [k] });
  expect(s.audit.query({ subjects: [k] }).rows.map((r) => r.action)).toEqual(["peer.deleted", "peer.created"]);
  s.close();
});

test("one filter shows a peer's peer.* and connection.* audit rows", () => {
  const s = Store.open(dir());
  const k = key();
  const p = s.peers.create(parsePeerInput({ name: "phone", publicKey: k, allowedIps: "10.99.0.8/32" }) as PeerInput, "admin:a");
  s.audit.record({ actor: "gateway", action: "connection.established", cid: 7, subject: k });
  s.audit.record({ actor: "gateway", action: "connection.closed", cid: 7, subject: k });
  s.audit.record({ actor: "gateway", action: "connection.established", cid: 8, subject: key() }); // someone else
  const { rows } = s.audit.query({ subjects: s.history.resolve(p.id)!.keys });
  expect(rows.map((r) => r.action)).toEqual(["connection.closed", "connection.established", "peer.created"]);
  s.close();
});

test("peer.* audit rows written before the upgrade are renamed to the peer's key, so the peer filter finds them", () => {
  // A database as the previous release left it: migrations 0000–0002 only, a peer row named by id.
  const d = dir();
  const migrations = join(dir(), "migrations");
  cpSync(join(import.meta.dir, "..", "..", "migrations"), migrations, { recursive: true });
  const journalFile = join(migrations, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalFile, "utf8"));
  journal.entries = journal.entries.filter((e: { idx: number }) => e.idx <= 2);
  writeFileSync(journalFile, JSON.stringify(journal));
  const old = new Database(join(d, DB_FILE), { create: true });
  migrate(drizzle(old), { migrationsFolder: migrations });
  const k = key();
  const snap = JSON.stringify({ id: "p-1", name: "laptop", publicKey: k });
  old.run("INSERT INTO audit_events (ts, actor, action, subject, after) VALUES (1, 'admin:a', 'peer.created', 'p-1', ?)", [snap]);
  old.run("INSERT INTO audit_events (ts, actor, action, subject, before) VALUES (2, 'admin:a', 'peer.deleted', 'p-1', ?)", [snap]);
  old.run("INSERT INTO audit_events (ts, actor, action, subject) VALUES (3, 'admin:a', 'resource.created', 'lan')");
  old.close();
  const s = Store.open(d);
  expect(s.audit.query({ subject: k }).rows.map((r) => r.action)).toEqual(["peer.deleted", "peer.created"]);
  expect(s.audit.query({ subject: "lan" }).total).toBe(1);
  s.close();
});

test("1 200 identities and cids (more than one multi-row insert) are all kept: names update, first_seen stays", () => {
  const s = Store.open(dir());
  const keys = Array.from({ length: 1200 }, (_, i) => encodeKey(Uint8Array.from({ length: 32 }, (_, j) => (i * 7 + j * 13 + (i >> 8)) & 255)));
  s.history.remember(keys.map((k, i) => ({ publicKey: k, peerId: `p${i}`, name: `old${i}`, source: "store" as const })), 1000);
  s.history.remember(keys.map((k, i) => ({ publicKey: k, peerId: `p${i}`, name: `new${i}`, source: "store" as const })), 2000);
  expect(s.history.byKey(keys[1100]!)).toEqual({ publicKey: keys[1100]!, peerId: "p1100", name: "new1100", source: "store", firstSeen: 1000, lastSeen: 2000 });
  const live = keys.map((k, i) => ({ cid: i + 1, publicKey: k }));
  expect(s.history.observe(GID, live, 1000)).toBe(1200);
  expect(s.history.count(GID)).toBe(1200);
  s.history.observe(GID, live, 9000, true);
  expect(s.history.byCid(1150)).toEqual([{ gid: GID, cid: 1150, publicKey: keys[1149]!, firstSeen: 1000, lastSeen: 9000 }]);
  s.close();
});

test("remembering every store peer inside SQLite writes what remembering them one by one writes", () => {
  const a = Store.open(dir());
  const b = Store.open(dir());
  for (const s of [a, b]) {
    s.peers.create(parsePeerInput({ name: "laptop", publicKey: key(), allowedIps: "10.99.0.2/32" }) as PeerInput, "test");
  }
  // Same rows in both stores, then each way of remembering them at 5000.
  const row = a.peers.list()[0]!;
  b.sqlite.run("DELETE FROM peers");
  b.sqlite.run("DELETE FROM peer_identities");
  b.sqlite.run("INSERT INTO peers (id, name, public_key, allowed_ips, persistent_keepalive, enabled) VALUES (?, ?, ?, ?, 0, 1)", [row.id, row.name, row.publicKey, row.allowedIps]);
  a.sqlite.run("UPDATE peer_identities SET name = 'old name', first_seen = 1000");
  b.sqlite.run("INSERT INTO peer_identities (public_key, peer_id, name, source, first_seen, last_seen) VALUES (?, ?, 'old name', 'store', 1000, 1000)", [row.publicKey, row.id]);
  a.history.remember(a.peers.list().map((p) => ({ publicKey: p.publicKey, peerId: p.id, name: p.name, source: "store" as const })), 5000);
  b.history.rememberStorePeers(5000);
  const ids = (s: Store) => s.sqlite.query("SELECT public_key, peer_id, name, source, first_seen, last_seen FROM peer_identities ORDER BY public_key").all();
  expect(ids(b)).toEqual(ids(a));
  expect(ids(a)).toEqual([{ public_key: row.publicKey, peer_id: row.id, name: "laptop", source: "store", first_seen: 1000, last_seen: 5000 }]);
  a.close();
  b.close();
});
