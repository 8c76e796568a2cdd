import { describe, expect, test } from "bun:test";
import { SQL } from "bun";
import { existsSync } from "node:fs";
import { postgresSkipReason, TestPostgres } from "./support/postgres.ts";

const skip = postgresSkipReason();
if (skip) console.log(`skipping PostgreSQL harness test: ${skip}`);

describe.skipIf(!!skip)("test PostgreSQL", () => {
  test("a private cluster answers on its own socket and leaves nothing behind when stopped", async () => {
    const pg = TestPostgres.start();
    try {
      const sql = new SQL(pg.createDatabase("harness"));
      const [row] = await sql`select current_database() as db, current_setting('listen_addresses') as listen`;
      expect(row).toEqual({ db: "harness", listen: "" });
      await sql.close();
    } finally {
      pg.stop();
    }
    expect(existsSync(pg.dir)).toBe(false);
  });
});
