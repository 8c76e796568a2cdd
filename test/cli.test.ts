// The CLI as a user runs it: a real `bun run glassgate …` process.
import { expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { missingCommands } from "./support/netns.ts";

const ROOT = join(import.meta.dir, "..");
function glassgate(args: string[], stdin?: string) {
  const r = spawnSync(["bun", "run", "src/cli.ts", ...args], { cwd: ROOT, stdin: stdin === undefined ? undefined : new TextEncoder().encode(stdin) });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test("keygen and pubkey produce wg-compatible base64 keys", () => {
  const k = glassgate(["keygen"]);
  expect(k.code).toBe(0);
  expect(k.stdout.trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  const p = glassgate(["pubkey"], k.stdout);
  expect(p.code).toBe(0);
  expect(p.stdout.trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  expect(p.stdout).not.toBe(k.stdout);
});

test.skipIf(missingCommands(["wg"]).length > 0)("keys are interchangeable with wg genkey / wg pubkey", () => {
  const ours = glassgate(["keygen"]).stdout;
  expect(spawnSync(["wg", "pubkey"], { stdin: new TextEncoder().encode(ours) }).stdout.toString()).toBe(glassgate(["pubkey"], ours).stdout);
  const theirs = spawnSync(["wg", "genkey"]).stdout.toString();
  expect(glassgate(["pubkey"], theirs).stdout).toBe(spawnSync(["wg", "pubkey"], { stdin: new TextEncoder().encode(theirs) }).stdout.toString());
});

test("pubkey refuses a bad key with exit code 2", () => {
  const r = glassgate(["pubkey"], "hello\n");
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('"hello" is not a WireGuard key');
});

test("check-config accepts a good file and rejects a bad one naming line, key and value (exit 2)", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-cli-"));
  const key = glassgate(["keygen"]).stdout.trim();
  const good = join(dir, "good.conf");
  writeFileSync(good, `[Interface]\nPrivateKey = ${key}\nAddress = 10.99.0.1/24\n`);
  const ok = glassgate(["check-config", good]);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain("listen port 52625");
  const bad = join(dir, "bad.conf");
  writeFileSync(bad, `[Interface]\nPrivateKey = ${key}\nListenPort = 99999\n`);
  const r = glassgate(["check-config", bad]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(`${bad}:3: ListenPort: "99999" is not a port (0–65535)`);
});

test("an unknown command is a usage error", () => {
  const r = glassgate(["frobnicate"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('unknown command "frobnicate"');
});

test("the README's example config is valid", () => {
  const r = glassgate(["check-config", "examples/gw.conf"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("examples/gw.conf: ok");
});
