// Peers shared by several gateways through one PostgreSQL database (src/cluster/): a change made on
// one gateway reaches another's local mirror through LISTEN/NOTIFY — the reconcile is set to an hour
// here, so only a notification can deliver it in time — is audited once (in PostgreSQL, never in a
// mirror), and a change missed while a listener was down arrives at its next reconcile.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterPeers } from "../src/cluster/cluster-peers.ts";
import { isMirror, markMirror, refuseStandaloneRows, StandaloneRowsError } from "../src/cluster/standalone-rows.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { PeerSync } from "../src/standalone/peer-sync.ts";
import { parsePeerInput, Store, type PeerInput } from "../src/store/index.ts";
import { PgPeerRepository } from "../src/store/peers-pg.ts";
import { PgStore } from "../src/store/pg-store.ts";
import type { PgDb } from "../src/store/postgres.ts";
import { Logger, memorySink, parseLogFilter } from "../src/telemetry/log.ts";
import { clusterGateways, propagationTimer, until } from "./support/cluster-pair.ts";
import { postgresSkipReason, TestPostgres } from "./support/postgres.ts";
import { TunnelClients } from "./support/tunnel-clients.ts";
import { skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { Topology } from "./support/topology.ts";

const skip = postgresSkipReason();
if (skip) console.log(`skipping cluster peer tests: ${skip}`);

const input = (name: string, allowedIps: string, more: Record<string, unknown> = {}) =>
  parsePeerInput({ name, publicKey: encodeKey(publicKeyOf(generatePrivateKey())), allowedIps, ...more }) as PeerInput;

describe.skipIf(!!skip)("peers across gateways on one PostgreSQL", () => {
  const gateways = clusterGateways("peers", (o) => ClusterPeers.start(o), { dir: "gg-cpeers-", db: "cp" });
  const { pair } = gateways;

  test("a data dir that ran standalone is refused, naming its own peers, and nothing is written; a fresh one becomes a mirror and is not asked again", async () => {
    const url = gateways.database();
    const dir = mkdtempSync(join(tmpdir(), "gg-cpeers-own-"));
    const local = Store.open(dir);
    const pg = await PgStore.open(url, local.gid);
    try {
      local.peers.create(input("laptop-of-record", "10.95.0.2/32"), "admin:alice");
      let refused: unknown;
      await refuseStandaloneRows(local, pg, dir).catch((e) => (refused = e));
      expect(refused).toBeInstanceOf(StandaloneRowsError);
      expect(String((refused as Error).message)).toContain('1 peer(s) and 0 resource(s) that PostgreSQL does not have (peer "laptop-of-record")');
      expect(local.peers.list().map((p) => p.name)).toEqual(["laptop-of-record"]);
      expect(isMirror(local)).toBe(false);
      expect(await pg.peers.list()).toEqual([]);

      // A fresh data dir: nothing of its own; once marked a mirror, rows PostgreSQL lacks are its copies.
      const fresh = Store.open(mkdtempSync(join(tmpdir(), "gg-cpeers-fresh-")));
      try {
        await refuseStandaloneRows(fresh, pg, "fresh");
        markMirror(fresh);
        fresh.peers.create(input("stale-copy", "10.95.0.3/32"), "test");
        await refuseStandaloneRows(fresh, pg, "fresh");
      } finally {
        fresh.close();
      }
    } finally {
      await pg.close();
      local.close();
    }
  });

  test("create, update, disable and delete on gateway A reach gateway B's mirror by notification, audited once in PostgreSQL and never in either SQLite", async () => {
    const [a, b] = await pair();
    const { delays, timed } = propagationTimer();
    const before = b.changes;
    let id = "";
    await timed("create", async () => (id = (await a.peers.create(input("laptop", "10.80.0.2/32"), "admin:alice")).id), () => b.peers.get(id)?.name === "laptop");
    expect(a.peers.get(id)?.name).toBe("laptop");
    await timed("update", () => a.peers.update(id, { name: "work laptop" }, "admin:alice"), () => b.peers.get(id)?.name === "work laptop");
    await timed("disable", () => a.peers.update(id, { enabled: false }, "admin:alice"), () => b.peers.get(id)?.enabled === false);
    const key = a.peers.get(id)!.publicKey;
    await timed("delete", () => a.peers.delete(id, "admin:alice"), () => b.peers.get(id) === undefined);
    console.log(`propagation A→B by NOTIFY (ms, write start → B's mirror): ${JSON.stringify(delays)}`);

    expect(b.changes - before).toBe(4);
    expect(b.peers.stats()).toMatchObject({ appliedByNotice: 4, reconcileRepairs: 0, listening: true });
    const audit = await a.pg.audit.query({ subject: key });
    expect(audit.rows.map((r) => r.action)).toEqual(["peer.deleted", "peer.updated", "peer.updated", "peer.created"]);
    expect(new Set(audit.rows.map((r) => r.gid))).toEqual(new Set([a.local.gid]));
    expect(a.local.audit.query({}).total).toBe(0);
    expect(b.local.audit.query({}).total).toBe(0);
  });

  test("a change made while B's listener was down arrives at B's next reconcile", async () => {
    const [a, b] = await pair();
    await b.peers.suspendListening();
    const p = await a.peers.create(input("offline", "10.81.0.2/32"), "admin:alice");
    // A hears its own notice: by then it was delivered to every listener there was.
    await until("A's own notice", () => a.peers.stats().notices === 1);
    await a.peers.settled();
    expect(b.peers.get(p.id)).toBeUndefined();
    await b.peers.resumeListening();
    await until("B's reconcile after re-listen", () => b.peers.get(p.id) !== undefined);
    expect(b.peers.stats()).toMatchObject({ appliedByNotice: 0, reconcileRepairs: 1 });
  });

  test("a lost LISTEN connection is re-established, logged once, and reconciled", async () => {
    const [a, b] = await pair();
    const reconciles = b.peers.stats().reconciles;
    // Both gateways' listening connections go (which is B's cannot be told from here).
    const killed = await a.pg.client`select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'listen%' and datname = current_database()`;
    expect(killed.length).toBe(2);
    await until("B listening again", () => b.peers.stats().relistens === 1);
    await until("B's reconcile after re-listen", () => b.peers.stats().reconciles > reconciles);
    expect(b.lines.filter((l) => l.msg.startsWith("peer notifications listening again"))).toHaveLength(1);
    const p = await a.peers.create(input("after", "10.82.0.2/32"), "admin:alice");
    await until("the next change on B", () => b.peers.get(p.id) !== undefined);
  });

  test("a rolled-back write announces nothing and reaches no mirror", async () => {
    const [a, b] = await pair();
    const notices = b.peers.stats().notices;
    await expect(a.pg.db.transaction(async (tx) => {
      await new PgPeerRepository(tx as unknown as PgDb, a.local.gid).create(input("ghost", "10.83.0.2/32"), "admin:alice");
      throw new Error("roll back");
    })).rejects.toThrow("roll back");
    // A committed write after it: once B has it, B has heard everything sent before.
    const p = await a.peers.create(input("real", "10.83.0.3/32"), "admin:alice");
    await until("the committed write on B", () => b.peers.get(p.id) !== undefined);
    expect(b.peers.stats().notices - notices).toBe(1);
    expect(b.peers.list().map((r) => r.name)).toEqual(["real"]);
  });

  test("notices committed together are read back together: one re-apply on B for a transaction of 20 creates", async () => {
    const [a, b] = await pair();
    const before = b.changes;
    const ids: string[] = [];
    await a.pg.db.transaction(async (tx) => {
      const repo = new PgPeerRepository(tx as unknown as PgDb, a.local.gid);
      for (let i = 0; i < 20; i++) ids.push((await repo.create(input(`burst-${i}`, `10.84.0.${i + 2}/32`), "admin:alice")).id);
    });
    await until("all 20 on B", () => ids.every((id) => b.peers.get(id) !== undefined));
    await b.peers.settled();
    console.log(`20 creates in one transaction: B re-applied peers ${b.changes - before} time(s)`);
    expect(b.changes - before).toBeLessThan(20);
    expect(b.peers.list()).toEqual(await a.pg.peers.list());
  });

  test("each gateway's data plane serves only the peers served_by names for it (or every peer when it names none)", async () => {
    const [a, b] = await pair();
    const sim = new TunnelClients();
    const sync = new PeerSync(sim.gw, b.local, new Set(), new Logger(parseLogFilter("off"), memorySink([])).target("peers"), { gid: b.local.gid });
    const all = await a.peers.create(input("all", "10.85.0.2/32"), "admin:alice");
    const onlyA = await a.peers.create(input("only-a", "10.85.0.3/32", { servedBy: a.local.gid }), "admin:alice");
    const both = await a.peers.create(input("both", "10.85.0.4/32", { servedBy: [a.local.gid, b.local.gid] }), "admin:alice");
    await until("three rows on B", () => b.peers.list().length === 3);
    sync.apply(sim.now);
    expect([...sync.applied().keys()].sort()).toEqual([all.publicKey, both.publicKey].sort());
    await a.peers.update(onlyA.id, parsePeerInput({ servedBy: "" }, true), "admin:alice");
    await until("served_by cleared on B", () => b.peers.get(onlyA.id)?.servedBy === null);
    sync.apply(sim.now);
    expect([...sync.applied().keys()].sort()).toEqual([all.publicKey, onlyA.publicKey, both.publicKey].sort());
  });
});

// Two real `glassgate up` processes, each in its own namespace with its own data dir, on one
// PostgreSQL (its unix socket is a file, reachable from any namespace).
const upSkip = skip ?? skipReason(["ip"]);
if (upSkip && !skip) console.log(`skipping the two-gateway process test: ${upSkip}`);

describe.skipIf(!!upSkip)("two glassgate up processes on one PostgreSQL", () => {
  let cluster: TestPostgres;
  const topos: Topology[] = [];
  beforeAll(() => {
    cluster = TestPostgres.start();
  });
  afterAll(async () => {
    for (const t of topos) {
      if (t.gateway && t.gateway.exitCode !== null && t.gateway.exitCode !== 0) console.error(`glassgate exited ${t.gateway.exitCode}; its log:\n${t.gatewayLog}`);
      await t.destroy();
    }
    cluster?.stop();
  });

  test("a peer added through gateway A's admin API is in gateway B's /api/peers and applied by B", async () => {
    const env = { DATABASE_URL: cluster.createDatabase("up_pair") };
    const [a, b] = [new Topology(uniqueTag(), 0), new Topology(uniqueTag(), 0)];
    topos.push(a, b);
    await a.startGateway(env, 0);
    await b.startGateway(env, 0);
    for (const t of [a, b]) {
      const store = t.gatewayLog.split("\n").filter((l) => l.includes('"msg":"store"')).map((l) => JSON.parse(l));
      expect(store).toHaveLength(1);
      expect(store[0]).toMatchObject({ dialect: "postgresql" });
      expect(store[0].server).toContain(cluster.socketDir);
    }
    const key = encodeKey(publicKeyOf(generatePrivateKey()));
    const created = a.request("POST", "/api/peers", { name: "roaming-laptop", publicKey: key, allowedIps: "10.99.77.2/32" });
    expect(created.status).toBe(201);
    const id = JSON.parse(created.body).id as string;
    const applied = (t: Topology) => t.gatewayLog.split("\n").find((l) => l.includes('"msg":"peer applied"') && l.includes(key));
    const lineB = await waitFor("B's peer applied line", () => applied(b), 20_000);
    const lineA = applied(a)!;
    expect(lineA).toBeDefined();
    const listed = JSON.parse(b.api("/api/peers").body).peers as { id: string; publicKey: string; name: string }[];
    expect(listed.find((p) => p.id === id)).toMatchObject({ publicKey: key, name: "roaming-laptop" });
    console.log(`peer added on A applied by B ${Date.parse(JSON.parse(lineB).ts) - Date.parse(JSON.parse(lineA).ts)} ms after A applied it (log timestamps)`);

    // Deleted on B: gone from A's data plane (audited once, in PostgreSQL).
    expect(b.request("DELETE", `/api/peers/${id}`).status).toBe(204);
    await waitFor("A removing the peer", () => a.gatewayLog.split("\n").some((l) => l.includes('"msg":"peer removed from the data plane"') && l.includes(key)), 20_000);
    const pg = await PgStore.open(env.DATABASE_URL, crypto.randomUUID());
    try {
      expect((await pg.audit.query({ subject: key })).rows.map((r) => r.action)).toEqual(["peer.deleted", "peer.created"]);
    } finally {
      await pg.close();
    }
    // Both stop cleanly: the listener and the database are closed in order, nothing logged as an error.
    for (const t of [a, b]) {
      expect((await t.stopGateway()).code).toBe(0);
      expect(t.gatewayLog.split("\n").filter((l) => l.includes('"level":"error"'))).toEqual([]);
    }
  }, 120_000);
});
