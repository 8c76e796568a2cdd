// The repositories both stores offer, run against each: SQLite in a temp dir, and PostgreSQL in a
// private cluster (test/support/postgres.ts) — skipped with one line when that cannot run here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postgresSkipReason, TestPostgres } from "../../test/support/postgres.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../crypto/x25519.ts";
import type { AuditRepository } from "./audit.ts";
import { PgAuditLog } from "./audit-pg.ts";
import { parsePeerInput, PeerValidationError, Store, type PeerInput } from "./index.ts";
import type { GatewayStore } from "./gateways.ts";
import type { PeerStore } from "./peers.ts";
import { PEERS_CHANNEL, PgPeerRepository, type PeerNotice } from "./peers-pg.ts";
import { PgStore } from "./pg-store.ts";
import { openPostgres, type PgDb } from "./postgres.ts";

const key = () => encodeKey(publicKeyOf(generatePrivateKey()));
const peerInput = (name: string, allowedIps: string, publicKey = key()) => parsePeerInput({ name, publicKey, allowedIps }) as PeerInput;

interface Opened {
  audit: AuditRepository;
  peers: PeerStore;
  gateways: GatewayStore;
  /** The gid this store stamps on audit rows. */
  gid: string;
  close(): Promise<void>;
}

interface Dialect {
  name: string;
  skip?: string;
  setup?(): void;
  teardown?(): void;
  open(): Promise<Opened>;
}

let pg: TestPostgres | undefined;
let dbSeq = 0;
const pgSkip = postgresSkipReason();
if (pgSkip) console.log(`skipping PostgreSQL repository tests: ${pgSkip}`);

const dialects: Dialect[] = [
  {
    name: "sqlite",
    async open() {
      const s = Store.open(mkdtempSync(join(tmpdir(), "gg-repo-")));
      return { audit: s.audit, peers: s.peers, gateways: s.gateways, gid: s.gid, close: async () => s.close() };
    },
  },
  {
    name: "postgres",
    skip: pgSkip,
    setup: () => (pg = TestPostgres.start()),
    teardown: () => pg?.stop(),
    async open() {
      const s = await PgStore.open(pg!.createDatabase(`repo_${++dbSeq}`), crypto.randomUUID());
      return { audit: s.audit, peers: s.peers, gateways: s.gateways, gid: s.gid, close: () => s.close() };
    },
  },
];

describe.each(dialects)("$name store", (d) => {
  beforeAll(() => {
    if (!d.skip) d.setup?.();
  });
  afterAll(() => {
    if (!d.skip) d.teardown?.();
  });

  test.skipIf(!!d.skip)("audit rows come back newest first with filters, totals and pages", async () => {
    const s = await d.open();
    try {
      await s.audit.record({ actor: "admin:alice", action: "peer.created", subject: "k1", after: { name: "a" } }, 1000);
      await s.audit.record({ actor: "gateway", action: "connection.established", subject: "k1", cid: 7 }, 2000);
      await s.audit.record({ actor: "token:ci", action: "peer.deleted", subject: "k2", before: { name: "b" } }, 3000);
      const all = await s.audit.query({});
      expect(all.total).toBe(3);
      expect(all.rows.map((r) => r.action)).toEqual(["peer.deleted", "connection.established", "peer.created"]);
      expect(all.rows[2]).toMatchObject({ ts: 1000, actor: "admin:alice", subject: "k1", cid: null, before: null, after: '{"name":"a"}', reason: null });
      expect((await s.audit.query({ subject: "k1" })).total).toBe(2);
      expect((await s.audit.query({ subjects: ["k1", "k2"] })).total).toBe(3);
      expect((await s.audit.query({ subjects: [] })).total).toBe(0);
      expect((await s.audit.query({ cid: 7 })).rows.map((r) => r.cid)).toEqual([7]);
      expect((await s.audit.query({ since: 1500, until: 2500 })).rows.map((r) => r.ts)).toEqual([2000]);
      const page = await s.audit.query({}, { limit: 1, offset: 1 });
      expect(page).toMatchObject({ total: 3 });
      expect(page.rows.map((r) => r.action)).toEqual(["connection.established"]);
    } finally {
      await s.close();
    }
  });

  test.skipIf(!!d.skip)("pruning removes only events older than the cut-off and says how many", async () => {
    const s = await d.open();
    try {
      for (const ts of [100, 200, 300]) await s.audit.record({ actor: "cli", action: "settings.updated" }, ts);
      expect(await s.audit.prune(250)).toBe(2);
      expect((await s.audit.query({})).rows.map((r) => r.ts)).toEqual([300]);
    } finally {
      await s.close();
    }
  });

  test.skipIf(!!d.skip)("peer create/update/delete each leave one audit event with before/after and no secrets", async () => {
    const s = await d.open();
    try {
      const priv = encodeKey(generatePrivateKey());
      const psk = encodeKey(generatePrivateKey());
      const p = await s.peers.create({ ...(parsePeerInput({ name: "laptop", publicKey: key(), presharedKey: psk, allowedIps: "10.99.0.2/32", persistentKeepalive: "25" }) as PeerInput), clientPrivateKey: priv }, "admin:alice");
      expect(p).toMatchObject({ name: "laptop", enabled: true, persistentKeepalive: 25, expiresAt: null, clientPrivateKey: priv });
      expect(typeof p.createdAt).toBe("number");
      await s.peers.update(p.id, { name: "work laptop", enabled: false }, "admin:alice");
      expect(await s.peers.get(p.id)).toMatchObject({ name: "work laptop", enabled: false, persistentKeepalive: 25 });
      expect((await s.peers.byPublicKey(p.publicKey))?.id).toBe(p.id);
      expect(await s.peers.delete(p.id, "token:ci")).toBe(true);
      expect(await s.peers.delete(p.id, "token:ci")).toBe(false);
      expect(await s.peers.list()).toHaveLength(0);
      const { rows, total } = await s.audit.query({ subject: p.publicKey });
      expect(total).toBe(3);
      expect(rows.map((r) => r.action)).toEqual(["peer.deleted", "peer.updated", "peer.created"]);
      expect(JSON.parse(rows[1]!.before!).name).toBe("laptop");
      expect(JSON.parse(rows[1]!.after!)).toMatchObject({ name: "work laptop", enabled: false, presharedKey: "(set)" });
      for (const r of rows) for (const secret of [priv, psk]) expect(`${r.before}${r.after}`).not.toContain(secret);
    } finally {
      await s.close();
    }
  });

  test.skipIf(!!d.skip)("every audit row names the gateway that wrote it, and the trail filters by gateway", async () => {
    const s = await d.open();
    try {
      await s.audit.record({ actor: "cli", action: "settings.updated" });
      const p = await s.peers.create(peerInput("gw", "10.97.0.1/32"), "admin:alice");
      await s.peers.delete(p.id, "admin:alice");
      await s.audit.record({ actor: "cli", action: "settings.updated", gid: "other-gateway" });
      const mine = await s.audit.query({ gid: s.gid });
      expect(mine.rows.map((r) => r.action)).toEqual(["peer.deleted", "peer.created", "settings.updated"]);
      expect(new Set(mine.rows.map((r) => r.gid))).toEqual(new Set([s.gid]));
      expect((await s.audit.query({ gid: "other-gateway" })).total).toBe(1);
    } finally {
      await s.close();
    }
  });

  test.skipIf(!!d.skip)("a gateway registers once per gid, a restart updates its row, and heartbeats move last seen", async () => {
    const s = await d.open();
    try {
      await s.gateways.register({ gid: "g-1", name: "edge-b", publicKey: "pk1", version: "0.1.0" }, 1000);
      await s.gateways.register({ gid: "g-2", name: "edge-a", publicKey: "pk2", endpoint: "203.0.113.7:51820", version: "0.1.0" }, 1500);
      expect(await s.gateways.heartbeat("g-1", 2000)).toBe(true);
      expect(await s.gateways.heartbeat("g-unknown", 2000)).toBe(false);
      await s.gateways.register({ gid: "g-2", name: "edge-a", publicKey: "pk2", version: "0.2.0" }, 3000);
      expect(await s.gateways.list()).toEqual([
        { gid: "g-2", name: "edge-a", publicKey: "pk2", endpoint: null, version: "0.2.0", startedAt: 3000, lastSeen: 3000, connectedPeers: 0, live: null },
        { gid: "g-1", name: "edge-b", publicKey: "pk1", endpoint: null, version: "0.1.0", startedAt: 1000, lastSeen: 2000, connectedPeers: 0, live: null },
      ]);
    } finally {
      await s.close();
    }
  });

  test.skipIf(!!d.skip)("a peer's serving gateways are kept, changed and cleared (cleared = every gateway); a bad gid is refused", async () => {
    const s = await d.open();
    try {
      const [g1, g2] = [crypto.randomUUID(), crypto.randomUUID()];
      const p = await s.peers.create(parsePeerInput({ name: "site", publicKey: key(), allowedIps: "10.96.0.2/32", servedBy: `${g1.toUpperCase()}, ${g2}` }) as PeerInput, "admin:alice");
      expect(p.servedBy).toBe(`${g1},${g2}`);
      await s.peers.update(p.id, parsePeerInput({ servedBy: [g2] }, true), "admin:alice");
      expect((await s.peers.get(p.id))?.servedBy).toBe(g2);
      await s.peers.update(p.id, parsePeerInput({ name: "renamed" }, true), "admin:alice");
      expect((await s.peers.get(p.id))?.servedBy).toBe(g2);
      await s.peers.update(p.id, parsePeerInput({ servedBy: "" }, true), "admin:alice");
      expect((await s.peers.get(p.id))?.servedBy).toBeNull();
      expect((await s.peers.create(peerInput("plain", "10.96.0.3/32"), "admin:alice")).servedBy).toBeNull();
      expect(() => parsePeerInput({ servedBy: `${g1},edge-b` }, true)).toThrow('servedBy: "edge-b" is not a gateway id (a UUID)');
    } finally {
      await s.close();
    }
  });

  test.skipIf(!!d.skip)("a publish moves last seen and stores the connection count and live state; a gone row says so", async () => {
    const s = await d.open();
    try {
      await s.gateways.register({ gid: "g-1", name: "edge", publicKey: "pk1", version: "0.1.0" }, 1000);
      expect(await s.gateways.publish("g-1", 2000, 3, '{"connections":[],"problems":[]}')).toBe(true);
      expect(await s.gateways.publish("g-unknown", 2000, 1, "{}")).toBe(false);
      expect(await s.gateways.list()).toEqual([
        { gid: "g-1", name: "edge", publicKey: "pk1", endpoint: null, version: "0.1.0", startedAt: 1000, lastSeen: 2000, connectedPeers: 3, live: '{"connections":[],"problems":[]}' },
      ]);
    } finally {
      await s.close();
    }
  });

  test.skipIf(!!d.skip)("a taken public key or overlapping AllowedIPs is refused naming the field, and nothing is written", async () => {
    const s = await d.open();
    try {
      const a = await s.peers.create(peerInput("a", "10.99.0.0/24"), "x");
      const refused = async (f: () => unknown) => {
        try {
          await f();
        } catch (e) {
          expect(e).toBeInstanceOf(PeerValidationError);
          return Object.keys((e as PeerValidationError).fields);
        }
        throw new Error("accepted");
      };
      expect(await refused(() => s.peers.create(peerInput("dup", "10.98.0.1/32", a.publicKey), "x"))).toEqual(["publicKey"]);
      expect(await refused(() => s.peers.create(peerInput("b", "10.99.0.7/24"), "x"))).toEqual(["allowedIps"]);
      const b = await s.peers.create(peerInput("b", "10.98.0.1/32"), "x");
      expect(await refused(() => s.peers.update(b.id, { allowedIps: "10.99.0.0/24" }, "x"))).toEqual(["allowedIps"]);
      expect(await refused(() => s.peers.update(b.id, { publicKey: a.publicKey }, "x"))).toEqual(["publicKey"]);
      expect(await refused(() => s.peers.update("nope", { name: "n" }, "x"))).toEqual(["id"]);
      expect((await s.peers.list()).map((p) => p.name)).toEqual(["a", "b"]);
      expect((await s.audit.query({ action: "peer.created" })).total).toBe(2);
      expect((await s.audit.query({ action: "peer.updated" })).total).toBe(0);
    } finally {
      await s.close();
    }
  });
});

describe.skipIf(!!pgSkip)("PostgreSQL shared by several gateways", () => {
  let shared: TestPostgres;
  beforeAll(() => {
    shared = TestPostgres.start();
  });
  afterAll(() => shared?.stop());

  test("two gateways adding peers with the same AllowedIPs at the same moment: exactly one succeeds", async () => {
    const url = shared.createDatabase("overlap");
    const [g1, g2] = [await openPostgres(url), await openPostgres(url)];
    try {
      const [r1, r2] = [new PgPeerRepository(g1.db), new PgPeerRepository(g2.db)];
      for (let round = 0; round < 10; round++) {
        const results = await Promise.allSettled([
          r1.create(peerInput(`one-${round}`, `10.${round}.0.0/16`), "admin:g1"),
          r2.create(peerInput(`two-${round}`, `10.${round}.0.0/16`), "admin:g2"),
        ]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
        expect(failed.reason).toBeInstanceOf(PeerValidationError);
      }
      expect(await r1.list()).toHaveLength(10);
      expect((await new PgAuditLog(g2.db).query({ action: "peer.created" })).total).toBe(10);
    } finally {
      await g1.client.close();
      await g2.client.close();
    }
  });

  test("each committed peer change is announced once on glassgate_peers with its op, id and gid; a refused or rolled-back write announces nothing", async () => {
    const url = shared.createDatabase("notices");
    const store = await PgStore.open(url, crypto.randomUUID());
    const notices: PeerNotice[] = [];
    const sub = await store.client.listen(PEERS_CHANNEL, (payload) => notices.push(JSON.parse(payload)));
    try {
      const p = await store.peers.create(peerInput("n", "10.95.0.2/32"), "admin:alice");
      await store.peers.update(p.id, { enabled: false }, "admin:alice");
      await expect(store.peers.create(peerInput("clash", "10.95.0.2/32"), "admin:alice")).rejects.toBeInstanceOf(PeerValidationError);
      // The write itself succeeded, but the transaction around it rolled back: nothing was announced.
      await expect(store.db.transaction(async (tx) => {
        await new PgPeerRepository(tx as unknown as PgDb, store.gid).create(peerInput("rolled", "10.95.0.3/32"), "admin:alice");
        throw new Error("roll back");
      })).rejects.toThrow("roll back");
      expect(await store.peers.list()).toHaveLength(1);
      await store.peers.delete(p.id, "admin:alice");
      // A marker sent after the writes: once it is heard, every earlier notice has been too.
      await store.client`select pg_notify(${PEERS_CHANNEL}, '{"op":"marker"}')`;
      for (let i = 0; i < 200 && !notices.some((n) => (n.op as string) === "marker"); i++) await Bun.sleep(10);
      expect(notices).toEqual([
        { op: "create", id: p.id, gid: store.gid },
        { op: "update", id: p.id, gid: store.gid },
        { op: "delete", id: p.id, gid: store.gid },
        { op: "marker" } as unknown as PeerNotice,
      ]);
    } finally {
      await sub.unlisten();
      await store.close();
    }
  });
});
