// Secrets on disk as a user gets them from the real CLI, under the loosest umask there is: the
// gateway config (private key), the generated admin token, the data dir and the SQLite files
// (client private keys, preshared keys, sessions) must all be owner-only.
import { afterAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "bun";
import { chmodSync, existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Netns, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const ROOT = join(import.meta.dir, "..");
const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI through `sh -c 'umask 000; …'` so nothing but our own code decides the modes. */
function loose(args: string[], prefix: string[] = []) {
  const r = spawnSync([...prefix, "sh", "-c", `umask 000; exec bun run src/cli.ts ${args.map(q).join(" ")}`], { cwd: ROOT });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test("with umask 000, admin create makes the data dir 0700 and the database 0600", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-umask-"));
  const data = join(dir, "data");
  const r = spawnSync(["sh", "-c", `umask 000; exec bun run src/cli.ts admin create --data ${q(data)} --username alice`], { cwd: ROOT, stdin: new TextEncoder().encode("correct horse battery\n") });
  expect(r.exitCode).toBe(0);
  expect(mode(data)).toBe("700");
  for (const f of readdirSync(data)) expect([f, mode(join(data, f))]).toEqual([f, "600"]);
});

test("with umask 000, peers add makes the client config 0600 and tightens a world-readable gateway config", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-umask-"));
  const gw = join(dir, "gw.conf");
  const key = spawnSync(["bun", "run", "src/cli.ts", "keygen"], { cwd: ROOT }).stdout.toString().trim();
  writeFileSync(gw, `[Interface]\nPrivateKey = ${key}\nAddress = 10.99.0.1/24\n`);
  chmodSync(gw, 0o644);
  const out = join(dir, "phone.conf");
  writeFileSync(out, "old", { mode: 0o666 });
  chmodSync(out, 0o666);
  const r = loose(["peers", "add", "--config", gw, "--endpoint", "vpn.example.net", "--name", "phone", "--out", out]);
  expect(r.code).toBe(0);
  expect(mode(gw)).toBe("600");
  expect(mode(out)).toBe("600");
  expect(r.stderr).toContain(`${gw} was mode 0644 (readable by others), now 0600`);
});

const skip = skipReason(["ip"]);
describe.skipIf(skip !== undefined)("glassgate up under umask 000", () => {
  const tag = uniqueTag();
  const ns = new Netns(`gg-pf-${tag}`);
  const dir = mkdtempSync(join(tmpdir(), "gg-umask-up-"));
  const conf = join(dir, "glassgate.conf");
  const data = join(dir, "data");
  const token = join(dir, "run", "admin_token");
  afterAll(() => ns.destroy());

  /** Starts `up` in the namespace; returns its stderr once it is up, after SIGTERM the rest. */
  async function up(check: () => void): Promise<string> {
    const cmd = ["ip", "netns", "exec", ns.name, "sh", "-c",
      `umask 000; exec bun run src/cli.ts up --init --config ${q(conf)} --interface ggpf${tag} --admin 127.0.0.1:0 --data ${q(data)}`];
    const p = spawn(cmd, { cwd: ROOT, env: { ...process.env, GLASSGATE_ADMIN_TOKEN_FILE: token, GLASSGATE_ADMIN_TOKEN_CREATE: "1", GLASSGATE_LOG: "info" }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    let log = "";
    const reading = (async () => {
      for await (const chunk of p.stderr) log += new TextDecoder().decode(chunk);
    })();
    try {
      await waitFor("gateway up", () => {
        if (p.exitCode !== null) throw new Error(`glassgate exited ${p.exitCode}: ${log}`);
        return log.includes('"msg":"gateway up"');
      }, 20_000);
      check();
    } finally {
      p.kill("SIGTERM");
      await p.exited;
      await reading;
    }
    return log;
  }

  test("the config, token, data dir, database and its -wal/-shm are created owner-only", async () => {
    spawnSync(["mkdir", "-p", join(dir, "run")]);
    await up(() => {
      // While running: the WAL and shared-memory files exist and hold recent writes.
      expect(existsSync(join(data, "glassgate.db-wal"))).toBe(true);
      expect(existsSync(join(data, "glassgate.db-shm"))).toBe(true);
      expect(mode(data)).toBe("700");
      for (const f of readdirSync(data)) expect([f, mode(join(data, f))]).toEqual([f, "600"]);
    });
    expect(mode(conf)).toBe("600");
    expect(mode(token)).toBe("600");
  });

  test("world-readable secrets from an older version are tightened at start, one warning naming each", async () => {
    chmodSync(conf, 0o644);
    chmodSync(token, 0o644);
    chmodSync(data, 0o755);
    chmodSync(join(data, "glassgate.db"), 0o644);
    const log = await up(() => {
      for (const f of readdirSync(data)) expect([f, mode(join(data, f))]).toEqual([f, "600"]);
    });
    const warnings = log.split("\n").filter((l) => l.includes("secret file was readable by others")).map((l) => JSON.parse(l));
    expect(warnings.map((w) => [w.level, w.path, w.mode, w.now]).sort()).toEqual([
      ["warn", conf, "0644", "0600"],
      ["warn", data, "0755", "0700"],
      ["warn", join(data, "glassgate.db"), "0644", "0600"],
      ["warn", token, "0644", "0600"],
    ].sort());
    expect([mode(conf), mode(token), mode(data)]).toEqual(["600", "600", "700"]);
  });
});
