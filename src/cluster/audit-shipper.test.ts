import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postgresSkipReason, TestPostgres } from "../../test/support/postgres.ts";
import { PgStore } from "../store/pg-store.ts";
import { Store } from "../store/index.ts";
import { shippingMarks } from "../store/schema.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import { AUDIT_STREAM, AuditShipper } from "./audit-shipper.ts";

const skip = postgresSkipReason();
if (skip) console.log(`skipping audit shipper tests: ${skip}`);

let dbs = 0;

describe.skipIf(!!skip)("audit shipper", () => {
  let pg: TestPostgres;
  const cleanup: (() => unknown)[] = [];
  beforeAll(() => {
    pg = TestPostgres.start();
  });
  afterAll(() => pg?.stop());
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function world() {
    const dir = mkdtempSync(join(tmpdir(), "gg-ship-"));
    const local = Store.open(dir);
    const remote = await PgStore.open(pg.createDatabase(`ship${++dbs}`), local.gid);
    const lines: LogLine[] = [];
    const log = new Logger(parseLogFilter("info"), memorySink(lines)).target("cluster");
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }), () => local.close(), () => remote.close());
    return { local, remote, lines, log };
  }

  /** PostgreSQL's copies as (origin_id, subject, gid), in id order. */
  async function copies(remote: PgStore) {
    return (await remote.client`select origin_id::int as origin, subject, gid, actor, action, cid::int as cid, ts::float8 as ts from audit_events order by id`) as {
      origin: number; subject: string; gid: string; actor: string; action: string; cid: number | null; ts: number;
    }[];
  }

  test("every local row arrives once, in id order, with its local id and gid, across batches", async () => {
    const { local, remote } = await world();
    for (let n = 1; n <= 1203; n++) local.audit.record({ actor: "gateway", action: "connection.established", subject: `row-${n}`, cid: n }, 1_700_000_000_000 + n);
    // A row copied in from elsewhere keeps its own gid.
    local.audit.record({ actor: "cli", action: "peer.created", subject: "other", gid: "gw-other" }, 1_700_000_000_000);
    const shipper = new AuditShipper({ local, pg: remote, gid: local.gid, batch: 500 });
    expect(shipper.stats().pending).toBe(1204);
    expect(await shipper.shipOnce()).toBe(1204);
    expect(await shipper.shipOnce()).toBe(0);
    const got = await copies(remote);
    expect(got.length).toBe(1204);
    expect(got.map((r) => r.origin)).toEqual(Array.from({ length: 1204 }, (_, i) => i + 1));
    expect(got[0]).toEqual({ origin: 1, subject: "row-1", gid: local.gid, actor: "gateway", action: "connection.established", cid: 1, ts: 1_700_000_000_001 });
    expect(got[1203]!.gid).toBe("gw-other");
    expect(shipper.stats()).toEqual({ shipped: 1204, pending: 0, lastError: null });
    expect(shipper.mark()).toBe(1204);
    // Rows written later follow.
    local.audit.record({ actor: "gateway", action: "connection.closed", subject: "later" });
    expect(await shipper.shipOnce()).toBe(1);
    expect((await copies(remote)).map((r) => r.subject).slice(-1)).toEqual(["later"]);
  });

  test("a crash between the copy and the mark copies again but inserts nothing twice", async () => {
    const { local, remote } = await world();
    for (let n = 1; n <= 40; n++) local.audit.record({ actor: "gateway", action: "connection.established", subject: `row-${n}` });
    const first = new AuditShipper({ local, pg: remote, gid: local.gid, batch: 16 });
    await first.shipOnce();
    // What a crash after the INSERT and before the mark's write leaves: rows in PostgreSQL, an old mark.
    local.db.update(shippingMarks).set({ lastId: 5 }).run();
    local.audit.record({ actor: "gateway", action: "connection.closed", subject: "row-41" });
    const restarted = new AuditShipper({ local, pg: remote, gid: local.gid, batch: 16 });
    expect(restarted.stats().pending).toBe(36);
    expect(await restarted.shipOnce()).toBe(36);
    const got = await copies(remote);
    expect(got.map((r) => r.subject)).toEqual(Array.from({ length: 41 }, (_, i) => `row-${i + 1}`));
    expect(local.db.select().from(shippingMarks).all()).toEqual([{ stream: AUDIT_STREAM, lastId: 41 }]);
  });

  test("PostgreSQL down: rows stay local, the outage is logged once, and they arrive after it", async () => {
    const { local, remote, lines, log } = await world();
    const shipper = new AuditShipper({ local, pg: remote, gid: local.gid, log });
    local.audit.record({ actor: "gateway", action: "connection.established", subject: "before" });
    expect(await shipper.shipOnce()).toBe(1);
    pg.pause();
    try {
      for (let n = 1; n <= 3; n++) {
        local.audit.record({ actor: "gateway", action: "connection.established", subject: `during-${n}` });
        expect(await shipper.shipOnce().then(() => "shipped", () => "failed")).toBe("failed");
      }
      expect(shipper.stats().pending).toBe(3);
      expect(shipper.stats().lastError).not.toBeNull();
    } finally {
      pg.resume();
    }
    const failures = lines.filter((l) => l.msg.startsWith("audit copy to PostgreSQL failed"));
    expect(failures.length).toBe(1);
    expect(failures[0]!.pending).toBe(1);
    // The pool reconnects on its own; a tick or two may still see the old connections fail.
    let moved = 0;
    for (let i = 0; i < 20 && shipper.stats().pending > 0; i++) moved += await shipper.shipOnce().catch(() => 0);
    expect(moved).toBe(3);
    expect((await copies(remote)).map((r) => r.subject)).toEqual(["before", "during-1", "during-2", "during-3"]);
    expect(shipper.stats().lastError).toBeNull();
    expect(lines.filter((l) => l.msg.startsWith("audit copy to PostgreSQL failed")).length).toBe(1);
    expect(lines.filter((l) => l.msg === "audit copy to PostgreSQL resumed").length).toBe(1);
  });

  test("start() copies on its own and stop() makes a last copy", async () => {
    const { local, remote } = await world();
    const shipper = new AuditShipper({ local, pg: remote, gid: local.gid });
    shipper.start(20);
    local.audit.record({ actor: "gateway", action: "connection.established", subject: "ticked" });
    for (let i = 0; i < 500 && (await copies(remote)).length === 0; i++) await Bun.sleep(10);
    expect((await copies(remote)).map((r) => r.subject)).toEqual(["ticked"]);
    local.audit.record({ actor: "gateway", action: "connection.closed", subject: "at stop" });
    await shipper.stop();
    expect((await copies(remote)).map((r) => r.subject)).toEqual(["ticked", "at stop"]);
  });
});
