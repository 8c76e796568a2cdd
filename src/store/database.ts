// Opens the gateway's SQLite database (bun:sqlite, WAL) under the data dir and applies the
// drizzle-kit migrations from migrations/. Every write is a committed transaction with
// synchronous=FULL, so a crash (even kill -9) loses no row that was reported as written.
// The database holds client private keys, preshared keys and live session ids: the data dir is
// 0700 and the files 0600 whatever the umask (see io/private-files.ts).
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import * as schema from "./schema.ts";
import { GATEWAY_ID_FILE } from "./gateway-id.ts";
import { ensurePrivateDir, ensurePrivateFile, PRIVATE_FILE_MODE, tightenPrivate, type OnLoose } from "../io/private-files.ts";

export type Db = BunSQLiteDatabase<typeof schema>;

export const DB_FILE = "glassgate.db";
const MIGRATIONS = join(import.meta.dir, "..", "..", "migrations");

export interface OpenOptions {
  /** Told about each secret file or directory that was open to group or others (and tightened if ours). */
  onLoosePermissions?: OnLoose;
}

export function openDatabase(dataDir: string, opts: OpenOptions = {}): { sqlite: Database; db: Db } {
  ensurePrivateDir(dataDir, opts.onLoosePermissions, (name) => name.startsWith(DB_FILE) || name === GATEWAY_ID_FILE);
  const file = join(dataDir, DB_FILE);
  // Created 0600 before SQLite sees it: SQLite gives -wal and -shm the database file's mode
  // (unix findCreateFileMode + robust_open's fchmod), so they come out 0600 too. Leftovers
  // from an older run keep their own mode, hence the check on each.
  ensurePrivateFile(file, opts.onLoosePermissions);
  for (const side of ["-wal", "-shm", "-journal"]) tightenPrivate(file + side, PRIVATE_FILE_MODE, opts.onLoosePermissions);
  const sqlite = new Database(file, { create: true, strict: true });
  sqlite.exec("PRAGMA journal_mode = WAL");
  sqlite.exec("PRAGMA synchronous = FULL");
  sqlite.exec("PRAGMA foreign_keys = ON");
  sqlite.exec("PRAGMA busy_timeout = 5000");
  const db = drizzle(sqlite, { schema });
  try {
    migrate(db, { migrationsFolder: MIGRATIONS });
  } catch (err) {
    sqlite.close();
    throw new Error(`applying migrations to ${file}`, { cause: err });
  }
  return { sqlite, db };
}
