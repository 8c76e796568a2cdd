// Opens a PostgreSQL store through drizzle on Bun's built-in SQL client and applies the migrations
// in migrations/postgres/. Several gateways may start against one database at once: drizzle's
// migrator reads "the last applied migration" and then applies the rest, and its
// `CREATE SCHEMA IF NOT EXISTS` itself can fail under concurrency, so migrating runs under a
// session-level advisory lock held on one dedicated connection (a pooled query could land on a
// connection that does not hold the lock).
import { SQL } from "bun";
import { join } from "node:path";
import { sql as dsql } from "drizzle-orm";
import { drizzle, type BunSQLDatabase } from "drizzle-orm/bun-sql";
import { migrate } from "drizzle-orm/bun-sql/migrator";
import * as schema from "./schema-pg.ts";

export type PgDb = BunSQLDatabase<typeof schema>;

const MIGRATIONS = join(import.meta.dir, "..", "..", "migrations", "postgres");

/** The advisory-lock key for migrations: any fixed bigint; this one spells "glassgt" in ASCII. */
export const MIGRATION_LOCK_KEY = 0x676c6173736774n;

export interface PostgresStore {
  client: SQL;
  db: PgDb;
}

/** Applies pending migrations while holding the migration lock; waits for another gateway doing the same. */
export async function migratePostgres(url: string): Promise<void> {
  const one = new SQL({ url, max: 1 });
  try {
    await one`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    try {
      await migrate(drizzle({ client: one, schema }), { migrationsFolder: MIGRATIONS });
    } finally {
      await one`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`;
    }
  } finally {
    await one.close();
  }
}

export async function openPostgres(url: string): Promise<PostgresStore> {
  try {
    await migratePostgres(url);
  } catch (err) {
    // Not the URL: it may carry a password.
    throw new Error("applying PostgreSQL migrations", { cause: err });
  }
  const client = new SQL(url);
  const db = drizzle({ client, schema });
  await db.execute(dsql`select 1`);
  return { client, db };
}
