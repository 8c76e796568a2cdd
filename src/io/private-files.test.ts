import { afterEach, beforeEach, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../store/index.ts";
import { ensurePrivateDir, ensurePrivateFile, tightenPrivate, writePrivateFile, type LoosePermissions } from "./private-files.ts";

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
let dir: string;
let oldUmask: number;

beforeEach(() => {
  // The worst case: a umask that lets everything through.
  oldUmask = process.umask(0);
  dir = mkdtempSync(join(tmpdir(), "gg-private-"));
});
afterEach(() => {
  process.umask(oldUmask);
});

test("secret files and the data dir are created owner-only even with umask 000", () => {
  writePrivateFile(join(dir, "token"), "secret\n", { exclusive: true });
  ensurePrivateFile(join(dir, "empty"));
  ensurePrivateDir(join(dir, "a", "data"));
  expect(mode(join(dir, "token"))).toBe("600");
  expect(readFileSync(join(dir, "token"), "utf8")).toBe("secret\n");
  expect(mode(join(dir, "empty"))).toBe("600");
  expect(mode(join(dir, "a", "data"))).toBe("700");
});

test("an exclusive write never replaces an existing secret", () => {
  writeFileSync(join(dir, "token"), "old");
  expect(() => writePrivateFile(join(dir, "token"), "new", { exclusive: true })).toThrow(/EEXIST/);
  expect(readFileSync(join(dir, "token"), "utf8")).toBe("old");
});

test("rewriting a world-readable file leaves it 0600", () => {
  writeFileSync(join(dir, "client.conf"), "old", { mode: 0o644 });
  writePrivateFile(join(dir, "client.conf"), "new");
  expect(mode(join(dir, "client.conf"))).toBe("600");
});

test("a world-readable secret found at start is tightened and reported once, naming path and mode", () => {
  const f = join(dir, "token");
  writeFileSync(f, "x", { mode: 0o644 });
  const seen: LoosePermissions[] = [];
  expect(tightenPrivate(f, 0o600, (x) => seen.push(x))).toBe(true);
  expect(mode(f)).toBe("600");
  expect(seen).toEqual([{ path: f, mode: "0644", now: "0600" }]);
  // Already private: nothing to say.
  tightenPrivate(f, 0o600, (x) => seen.push(x));
  expect(seen).toHaveLength(1);
});

test.skipIf(process.geteuid?.() !== 0)("a loose file owned by someone else is reported, not changed", () => {
  const f = join(dir, "theirs");
  writeFileSync(f, "x", { mode: 0o640 });
  chownSync(f, 65534, 65534);
  const seen: LoosePermissions[] = [];
  tightenPrivate(f, 0o600, (x) => seen.push(x));
  expect(mode(f)).toBe("640");
  expect(seen[0]).toMatchObject({ path: f, mode: "0640", now: "0640" });
  expect(seen[0]!.reason).toContain("owned by uid 65534");
});

test("the database, its -wal and -shm, and the data dir are private even with umask 000", () => {
  const data = join(dir, "data");
  const store = Store.open(data);
  store.audit.record({ actor: "test", action: "admin.login" }); // a write, so -wal and -shm exist
  try {
    expect(mode(data)).toBe("700");
    for (const f of ["glassgate.db", "glassgate.db-wal", "glassgate.db-shm"]) expect([f, mode(join(data, f))]).toEqual([f, "600"]);
  } finally {
    store.close();
  }
});

test("a data dir and database left world-readable by an older version are tightened at open, with a warning each", () => {
  const data = join(dir, "data");
  Store.open(data).close();
  chmodSync(data, 0o755);
  chmodSync(join(data, "glassgate.db"), 0o644);
  const seen: LoosePermissions[] = [];
  const store = Store.open(data, { onLoosePermissions: (x) => seen.push(x) });
  store.close();
  expect(mode(data)).toBe("700");
  expect(mode(join(data, "glassgate.db"))).toBe("600");
  expect(seen.map((x) => [x.path, x.mode, x.now])).toEqual([[data, "0755", "0700"], [join(data, "glassgate.db"), "0644", "0600"]]);
});

test("a world-readable data dir shared with other programs' files is reported, not chmod-ed", () => {
  const shared = join(dir, "var-lib");
  Store.open(shared).close();
  chmodSync(shared, 0o755);
  writeFileSync(join(shared, "other-service.state"), "x");
  const seen: LoosePermissions[] = [];
  Store.open(shared, { onLoosePermissions: (x) => seen.push(x) }).close();
  expect(mode(shared)).toBe("755");
  expect(seen).toHaveLength(1);
  expect(seen[0]).toMatchObject({ path: shared, mode: "0755", now: "0755" });
  expect(seen[0]!.reason).toContain("other-service.state");
});
