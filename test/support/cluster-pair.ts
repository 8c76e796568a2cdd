// Gateways sharing one test PostgreSQL, in process, for test/cluster-peers.test.ts and
// test/cluster-resources.test.ts: each gateway is a fresh SQLite data dir, a PgStore, and the
// cluster store under test (ClusterPeers or ClusterResources) started on them, its reconcile set to
// an hour (so only a notification can deliver a change in time), its re-applies counted and its log
// lines kept. Call clusterGateways inside a describe: it adds that describe's hooks.
import { afterAll, afterEach, beforeAll } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterMirrorOptions } from "../../src/cluster/notified-mirror.ts";
import { Store } from "../../src/store/index.ts";
import { PgStore } from "../../src/store/pg-store.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../../src/telemetry/log.ts";
import { TestPostgres } from "./postgres.ts";

const HOUR = 3_600_000;

/** Polls until `ok()`; the limit only bounds a broken run (never a speed claim). */
export async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (ok()) return;
    await Bun.sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Times each write until B has it (ms, write start → `seen()`), into `delays` for the test's log line. */
export function propagationTimer(): { delays: Record<string, number>; timed: (op: string, write: () => Promise<unknown>, seen: () => boolean) => Promise<void> } {
  const delays: Record<string, number> = {};
  const timed = async (op: string, write: () => Promise<unknown>, seen: () => boolean) => {
    const t0 = performance.now();
    await write();
    await until(`${op} on B`, seen);
    delays[op] = Math.round((performance.now() - t0) * 10) / 10;
  };
  return { delays, timed };
}

/** One gateway: its cluster store under `K` (`peers`, `resources`). */
export type ClusterGw<K extends string, S> = { local: Store; pg: PgStore; changes: number; lines: LogLine[] } & { [P in K]: S };

export interface ClusterGateways<K extends string, S> {
  /** The PostgreSQL of this describe (started in beforeAll). */
  readonly cluster: TestPostgres;
  /** A fresh database on it (`<prefix>_<n>`): its URL. */
  database(): string;
  gateway(url: string): Promise<ClusterGw<K, S>>;
  /** Two gateways on one fresh database. */
  pair(): Promise<[ClusterGw<K, S>, ClusterGw<K, S>]>;
}

export function clusterGateways<K extends string, S extends { close(): Promise<void> }>(
  key: K,
  start: (o: ClusterMirrorOptions) => Promise<S>,
  names: { dir: string; db: string },
): ClusterGateways<K, S> {
  let cluster: TestPostgres | undefined;
  let seq = 0;
  const open: ClusterGw<K, S>[] = [];
  beforeAll(() => {
    cluster = TestPostgres.start();
  });
  // Each gateway holds a pool of connections: closed after every test, or the cluster runs out.
  afterEach(async () => {
    for (const g of open.splice(0)) {
      await g[key].close();
      await g.pg.close();
      g.local.close();
    }
  });
  afterAll(() => cluster?.stop());

  const self: ClusterGateways<K, S> = {
    get cluster() {
      if (!cluster) throw new Error("the test PostgreSQL is not started (beforeAll)");
      return cluster;
    },
    database: () => self.cluster.createDatabase(`${names.db}_${++seq}`),
    async gateway(url) {
      const local = Store.open(mkdtempSync(join(tmpdir(), names.dir)));
      const pg = await PgStore.open(url, local.gid);
      const lines: LogLine[] = [];
      const g = { local, pg, changes: 0, lines } as ClusterGw<K, S>;
      g[key] = (await start({ pg, local, gid: local.gid, reconcileMs: HOUR, onChange: () => g.changes++, log: new Logger(parseLogFilter("info"), memorySink(lines)).target("cluster") })) as ClusterGw<K, S>[K];
      open.push(g);
      return g;
    },
    async pair() {
      const url = self.database();
      return [await self.gateway(url), await self.gateway(url)];
    },
  };
  return self;
}
