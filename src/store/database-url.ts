// Which store a gateway uses: SQLite under the data dir (the zero-setup default) unless
// DATABASE_URL (or DATABASE_URL_FILE, for a URL that carries a password) names a PostgreSQL server.
import { existsSync, readFileSync } from "node:fs";

export type StoreLocation = { kind: "sqlite" } | { kind: "postgres"; url: string };

export class DatabaseUrlError extends Error {}

/** Reads DATABASE_URL / DATABASE_URL_FILE from `env`; errors name the variable and the problem. */
export function storeLocation(env: Record<string, string | undefined>): StoreLocation {
  const direct = env.DATABASE_URL?.trim() || undefined;
  const file = env.DATABASE_URL_FILE?.trim() || undefined;
  if (direct && file) throw new DatabaseUrlError("DATABASE_URL and DATABASE_URL_FILE are both set: set one");
  let url = direct;
  let from = "DATABASE_URL";
  if (file) {
    from = "DATABASE_URL_FILE";
    if (!existsSync(file)) throw new DatabaseUrlError(`DATABASE_URL_FILE: "${file}" does not exist`);
    url = readFileSync(file, "utf8").trim() || undefined;
    if (!url) throw new DatabaseUrlError(`DATABASE_URL_FILE: "${file}" is empty`);
  }
  if (!url) return { kind: "sqlite" };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The URL may hold a password: name the variable, not the value.
    throw new DatabaseUrlError(`${from}: not a URL (expected postgres://user:password@host:port/database)`);
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new DatabaseUrlError(`${from}: scheme "${parsed.protocol.replace(/:$/, "")}" is not supported (expected postgres:// or postgresql://)`);
  }
  return { kind: "postgres", url };
}

/**
 * Where a PostgreSQL URL points, for logs and errors: user, host (or the unix socket directory of
 * libpq's `?host=/dir`), port and database — never the password or other parameters.
 */
export function databaseServer(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "(unparsable URL)";
  }
  const socket = u.searchParams.get("host");
  const host = socket && socket.startsWith("/") ? socket : u.hostname || "localhost";
  const user = u.username ? `${decodeURIComponent(u.username)}@` : "";
  return `${user}${host}:${u.port || "5432"}/${decodeURIComponent(u.pathname.replace(/^\//, "")) || "(default database)"}`;
}
