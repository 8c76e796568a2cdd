import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseUrlError, storeLocation, databaseServer } from "./database-url.ts";

test("without DATABASE_URL the store is SQLite", () => {
  expect(storeLocation({})).toEqual({ kind: "sqlite" });
  expect(storeLocation({ DATABASE_URL: "  " })).toEqual({ kind: "sqlite" });
});

test("a postgres:// or postgresql:// URL selects PostgreSQL, directly or from a file", () => {
  expect(storeLocation({ DATABASE_URL: "postgres://gg:pw@db:5432/gg" })).toEqual({ kind: "postgres", url: "postgres://gg:pw@db:5432/gg" });
  const f = join(mkdtempSync(join(tmpdir(), "gg-dburl-")), "url");
  writeFileSync(f, "postgresql://gg:pw@db/gg\n");
  expect(storeLocation({ DATABASE_URL_FILE: f })).toEqual({ kind: "postgres", url: "postgresql://gg:pw@db/gg" });
});

test("a wrong scheme, a missing file or both variables are refused, and the password is never echoed", () => {
  const msg = (env: Record<string, string>) => {
    try {
      storeLocation(env);
    } catch (e) {
      expect(e).toBeInstanceOf(DatabaseUrlError);
      return (e as Error).message;
    }
    throw new Error("accepted");
  };
  expect(msg({ DATABASE_URL: "mysql://u:hunter2@h/db" })).toBe('DATABASE_URL: scheme "mysql" is not supported (expected postgres:// or postgresql://)');
  expect(msg({ DATABASE_URL: "not a url hunter2" })).not.toContain("hunter2");
  expect(msg({ DATABASE_URL_FILE: "/nonexistent/gg-url" })).toBe('DATABASE_URL_FILE: "/nonexistent/gg-url" does not exist');
  expect(msg({ DATABASE_URL: "postgres://h/db", DATABASE_URL_FILE: "/x" })).toBe("DATABASE_URL and DATABASE_URL_FILE are both set: set one");
});

test("where a URL points is said without its password, for a host or a unix socket directory", () => {
  expect(databaseServer("postgres://gg:hunter2@db.example:6543/glassgate?sslmode=require")).toBe("gg@db.example:6543/glassgate");
  expect(databaseServer("postgresql://db/gg")).toBe("db:5432/gg");
  expect(databaseServer("postgres://postgres@localhost:25432/x?host=%2Ftmp%2Fgg-pg-1")).toBe("postgres@/tmp/gg-pg-1:25432/x");
  expect(databaseServer("postgres://gg:hunter2@db")).not.toContain("hunter2");
});
