// The migrations in migrations/ (SQLite) and migrations/postgres/ must be what drizzle-kit would
// generate from schema.ts and schema-pg.ts: a schema edit without its migration would reach a
// database only as a runtime error. drizzle-kit runs on copies, so a drift never writes here.
import { expect, test } from "bun:test";
import { spawnSync } from "bun";
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");

test.each([
  ["sqlite", "schema.ts", "migrations"],
  ["postgresql", "schema-pg.ts", "migrations/postgres"],
] as const)("the %s migrations match the schema", (dialect, schema, dir) => {
  const tmp = mkdtempSync(join(tmpdir(), "gg-migrations-"));
  const out = join(tmp, "out");
  try {
    cpSync(join(ROOT, dir), out, { recursive: true, filter: (src) => src !== join(ROOT, "migrations", "postgres") || dir.endsWith("postgres") });
    const before = readdirSync(out).sort();
    const config = join(tmp, "drizzle.config.ts");
    // drizzle-kit reads both paths relative to its working directory.
    writeFileSync(config, `export default ${JSON.stringify({ dialect, schema: `./src/store/${schema}`, out: relative(ROOT, out) })};\n`);
    const r = spawnSync(["bunx", "drizzle-kit", "generate", "--config", config], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    expect(readdirSync(out).sort()).toEqual(before);
    expect(r.stdout.toString()).toContain("No schema changes");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}, 60_000);
