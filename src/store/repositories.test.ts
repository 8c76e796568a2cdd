// The repositories both stores offer, run against each: SQLite in a temp dir, and PostgreSQL in a
// private cluster (test/support/postgres.ts) — skipped with one line when that cannot run here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postgresSkipReason, TestPostgres } from "../../test/support/postgres.ts";
import type { AuditRepository } from "./audit.ts";
import { PgAuditLog } from "./audit-pg.ts";
import { Store } from "./index.ts";
import { openPostgres } from "./postgres.ts";

interface Opened {
  audit: AuditRepository;
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
      return { audit: s.audit, close: async () => s.close() };
    },
  },
  {
    name: "postgres",
    skip: pgSkip,
    setup: () => (pg = TestPostgres.start()),
    teardown: () => pg?.stop(),
    async open() {
      const { client, db } = await openPostgres(pg!.createDatabase(`repo_${++dbSeq}`));
      return { audit: new PgAuditLog(db), close: () => client.close() };
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
});
