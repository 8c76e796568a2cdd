import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { postgresSkipReason, TestPostgres } from "../../test/support/postgres.ts";
import { openPostgres } from "./postgres.ts";

const skip = postgresSkipReason();
if (skip) console.log(`skipping PostgreSQL store tests: ${skip}`);

describe.skipIf(!!skip)("PostgreSQL store", () => {
  let pg: TestPostgres;
  beforeAll(() => {
    pg = TestPostgres.start();
  });
  afterAll(() => pg?.stop());

  test("five gateways opening one fresh database together all start, and each migration is applied once", async () => {
    const url = pg.createDatabase("race");
    const opened = await Promise.all(Array.from({ length: 5 }, () => openPostgres(url)));
    const check = new SQL(url);
    try {
      const applied = await check`select count(*)::int as n from drizzle.__drizzle_migrations`;
      const journal = (await Bun.file(new URL("../../migrations/postgres/meta/_journal.json", import.meta.url)).json()) as { entries: unknown[] };
      expect(applied[0].n).toBe(journal.entries.length);
      const tables = (await check`select tablename from pg_tables where schemaname = 'public' order by tablename`).map((r: { tablename: string }) => r.tablename);
      for (const t of ["peers", "resources", "audit_events", "traffic_samples", "admin_users", "api_tokens", "admin_sessions", "log_lines", "gateways"]) expect(tables).toContain(t);
    } finally {
      await check.close();
      for (const o of opened) await o.client.close();
    }
  });

  test("reopening a migrated database applies nothing again", async () => {
    const url = pg.createDatabase("reopen");
    await (await openPostgres(url)).client.close();
    await (await openPostgres(url)).client.close();
    const check = new SQL(url);
    try {
      const applied = await check`select count(*)::int as n from drizzle.__drizzle_migrations`;
      const journal = (await Bun.file(new URL("../../migrations/postgres/meta/_journal.json", import.meta.url)).json()) as { entries: unknown[] };
      expect(applied[0].n).toBe(journal.entries.length);
    } finally {
      await check.close();
    }
  });

  test("an unreachable server fails with the cause, not the URL", async () => {
    const secretUrl = `postgres://u:hunter2@localhost:1/none?host=${encodeURIComponent(pg.dir + "/nowhere")}`;
    const err = await openPostgres(secretUrl).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toBe("applying PostgreSQL migrations");
    expect(err!.message).not.toContain("hunter2");
    expect(err!.cause).toBeDefined();
  });
});
