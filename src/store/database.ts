// Opens the gateway's SQLite database (bun:sqlite, WAL) under the data dir and applies the
// drizzle-kit migrations from migrations/. Every write is a committed transaction with
// synchronous=FULL, so a crash (even kill -9) loses no row that was reported as written.
import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import * as schema from "./schema.ts";

export type Db = BunSQLiteDatabase<typeof schema>;

export const DB_FILE = "glassgate.db";
const MIGRATIONS = join(import.meta.dir, "..", "..", "migrations");

export function openDatabase(dataDir: string): { sqlite: Database; db: Db } {
  mkdirSync(dataDir, { recursive: true });
  const sqlite = new Database(join(dataDir, DB_FILE), { create: true, strict: true });
  sqlite.exec("PRAGMA journal_mode = WAL");
  sqlite.exec("PRAGMA synchronous = FULL");
  sqlite.exec("PRAGMA foreign_keys = ON");
  sqlite.exec("PRAGMA busy_timeout = 5000");
  const db = drizzle(sqlite, { schema });
  try {
    migrate(db, { migrationsFolder: MIGRATIONS });
  } catch (err) {
    sqlite.close();
    throw new Error(`applying migrations to ${join(dataDir, DB_FILE)}`, { cause: err });
  }
  return { sqlite, db };
}
