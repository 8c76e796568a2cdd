import { afterEach, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GATEWAY_ID_FILE, gatewayId, Store } from "./index.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), "glassgate-gid-"));
  dirs.push(d);
  return join(d, "data");
}

test("a gateway keeps the same id across restarts, and two data dirs get two ids", () => {
  const dir = dataDir();
  Store.open(dir).close();
  const first = gatewayId(dir);
  expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  Store.open(dir).close();
  expect(gatewayId(dir)).toBe(first);
  const other = dataDir();
  Store.open(other).close();
  expect(gatewayId(other)).not.toBe(first);
  expect(statSync(join(dir, GATEWAY_ID_FILE)).mode & 0o777).toBe(0o600);
});

test("a data dir holding the gateway id is still the gateway's own: a loose mode is tightened to 0700", () => {
  const dir = dataDir();
  Store.open(dir).close();
  gatewayId(dir);
  chmodSync(dir, 0o755);
  const found: { path: string; now: string; reason?: string }[] = [];
  Store.open(dir, { onLoosePermissions: (f) => found.push(f) }).close();
  expect(found).toEqual([{ path: dir, mode: "0755", now: "0700" } as never]);
  expect(statSync(dir).mode & 0o777).toBe(0o700);
});

test("a gateway-id file that holds no UUID is refused, naming the file and its content", () => {
  const dir = dataDir();
  Store.open(dir).close();
  writeFileSync(join(dir, GATEWAY_ID_FILE), "not-an-id\n", { mode: 0o600 });
  expect(() => gatewayId(dir)).toThrow(`${join(dir, GATEWAY_ID_FILE)}: "not-an-id" is not a gateway id (a UUID)`);
});
