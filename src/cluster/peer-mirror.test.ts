import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import { Store, type PeerRow } from "../store/index.ts";
import { PeerMirror } from "./peer-mirror.ts";

const key = () => encodeKey(publicKeyOf(generatePrivateKey()));
const row = (id: string, name: string, ip: string, more: Partial<PeerRow> = {}): PeerRow => ({
  id, name, publicKey: key(), presharedKey: null, clientPrivateKey: null, allowedIps: ip, endpoint: null, persistentKeepalive: 0,
  enabled: true, expiresAt: null, createdAt: 1000, updatedAt: 1000, servedBy: null, ...more,
});

function world() {
  const local = Store.open(mkdtempSync(join(tmpdir(), "gg-mirror-")));
  return { local, mirror: new PeerMirror(local) };
}

test("a full load makes the local peers exactly PostgreSQL's rows, says whether anything changed, and audits nothing", () => {
  const { local, mirror } = world();
  const a = row("a", "alice", "10.9.0.2/32");
  const b = row("b", "bob", "10.9.0.3/32", { servedBy: "11111111-1111-4111-8111-111111111111" });
  expect(mirror.replaceAll([a, b])).toBe(true);
  expect(local.peers.list()).toEqual([a, b]);
  expect(mirror.replaceAll([a, b])).toBe(false);
  const a2 = { ...a, enabled: false, updatedAt: 2000 };
  const c = row("c", "carol", "10.9.0.4/32");
  expect(mirror.replaceAll([a2, c])).toBe(true);
  expect(local.peers.list()).toEqual([a2, c]);
  expect(mirror.replaceAll([])).toBe(true);
  expect(local.peers.list()).toEqual([]);
  expect(local.audit.query({}).total).toBe(0);
});

test("rows that swapped public keys are applied in one go", () => {
  const { local, mirror } = world();
  const a = row("a", "alice", "10.9.0.2/32");
  const b = row("b", "bob", "10.9.0.3/32");
  mirror.replaceAll([a, b]);
  const swapped = [{ ...a, publicKey: b.publicKey, updatedAt: 2 }, { ...b, publicKey: a.publicKey, updatedAt: 2 }];
  expect(mirror.replaceAll(swapped)).toBe(true);
  expect(local.peers.list()).toEqual(swapped);
});

test("one row at a time: new, unchanged, changed, a key taken over by a new id, removed", () => {
  const { local, mirror } = world();
  const a = row("a", "alice", "10.9.0.2/32");
  expect(mirror.upsert(a)).toBe(true);
  expect(mirror.upsert({ ...a })).toBe(false);
  expect(mirror.upsert({ ...a, name: "alice2", updatedAt: 5 })).toBe(true);
  expect(local.peers.get("a")?.name).toBe("alice2");
  // Deleted and re-added under a new id elsewhere, the delete not heard yet: the new row wins the key.
  const again = row("a-new", "alice", "10.9.0.2/32", { publicKey: a.publicKey });
  expect(mirror.upsert(again)).toBe(true);
  expect(local.peers.list().map((p) => p.id)).toEqual(["a-new"]);
  expect(mirror.remove("a-new")).toBe(true);
  expect(mirror.remove("a-new")).toBe(false);
  expect(local.audit.query({}).total).toBe(0);
  // The identity map (cid history) follows the mirror: the key now names the new id.
  expect(local.history.byKey(a.publicKey)?.peerId).toBe("a-new");
});
