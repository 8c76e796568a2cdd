// The CLI as a user runs it: a real `bun run glassgate …` process.
import { expect, test } from "bun:test";
import { spawnSync } from "bun";
import { existsSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../src/config/index.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Store } from "../src/store/index.ts";
import { isRoot, missingCommands } from "./support/netns.ts";

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

test("check-config refuses a file over 16 MiB with one short line, without reading it (exit 2)", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-cli-"));
  const big = join(dir, "big.conf");
  writeFileSync(big, "");
  truncateSync(big, 17 * 1024 * 1024); // sparse: 17 MiB of NUL bytes that cost no disk
  const r = glassgate(["check-config", big]);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`glassgate: ${big}: is larger than 16 MiB (${17 * 1024 * 1024} bytes): not a gateway config\n`);
});

test("a numeric environment variable that is not a sane number is a usage error naming it (exit 2), before anything starts", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-cli-"));
  const conf = join(dir, "gw.conf");
  writeFileSync(conf, `[Interface]\nPrivateKey = ${glassgate(["keygen"]).stdout.trim()}\n`, { mode: 0o600 });
  for (const [name, value, range] of [
    ["GLASSGATE_TRAFFIC_SAMPLE_SECONDS", "0", "1 to 86400"],
    ["GLASSGATE_METRICS_PER_PEER_CAP", "-1", "0 to 100000"],
    ["GLASSGATE_RETENTION_DAYS", "ninety", "1 to 36500"],
  ] as const) {
    const r = spawnSync(["bun", "run", "src/cli.ts", "up", "--config", conf, "--data", join(dir, "data"), "--interface", "ggnever0", "--listen-port", "0", "--admin", "127.0.0.1:0"], {
      cwd: ROOT, env: { ...process.env, [name]: value },
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toBe(`glassgate: ${name}: "${value}" is not a whole number from ${range}\n`);
  }
});

test("up with a DATABASE_URL it cannot use stops with exit 2 naming it, before anything is written", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-dburl-"));
  const conf = join(dir, "gw.conf");
  for (const [args, env, msg] of [
    [["--init", "--config", conf], { DATABASE_URL: "mysql://gg:hunter2@db/gg" }, 'DATABASE_URL: scheme "mysql" is not supported'],
    [["--portal"], { DATABASE_URL: "postgres://gg:hunter2@db/gg" }, "DATABASE_URL: up --portal keeps its state in --data"],
  ] as const) {
    const r = spawnSync(["bun", "run", "src/cli.ts", "up", ...args, "--data", join(dir, "data")], { cwd: ROOT, env: { ...process.env, ...env } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain(msg);
    expect(r.stderr.toString()).not.toContain("hunter2");
  }
  expect(existsSync(conf)).toBe(false);
  expect(existsSync(join(dir, "data"))).toBe(false);
});

test("up with a PostgreSQL it cannot reach exits 1 saying where the database is, never the password", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-dburl-"));
  const conf = join(dir, "gw.conf");
  // A unix socket directory that does not exist: refused at once, no network involved.
  const url = `postgres://gg:hunter2@localhost:5432/gg?host=${encodeURIComponent(join(dir, "no-socket"))}`;
  const r = spawnSync(["bun", "run", "src/cli.ts", "up", "--init", "--config", conf, "--data", join(dir, "data"), "--interface", "ggnever0"], { cwd: ROOT, env: { ...process.env, DATABASE_URL: url } });
  expect(r.exitCode).toBe(1);
  expect(r.stderr.toString()).toContain(`DATABASE_URL: cannot use PostgreSQL at gg@${join(dir, "no-socket")}:5432/gg`);
  expect(r.stderr.toString()).not.toContain("hunter2");
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

test("peers add appends a peer and prints a client config whose keys match the gateway's", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-peers-"));
  const gwFile = join(dir, "gw.conf");
  const gwKey = glassgate(["keygen"]).stdout.trim();
  writeFileSync(gwFile, `[Interface]\nPrivateKey = ${gwKey}\nAddress = 10.99.0.1/24\n`);
  const r = glassgate(["peers", "add", "--config", gwFile, "--endpoint", "vpn.example.net", "--name", "laptop"]);
  expect(r.code).toBe(0);
  const gw = parseConfig(readFileSync(gwFile, "utf8"), gwFile);
  const client = parseConfig(r.stdout, "client.conf");
  expect(gw.peers).toHaveLength(1);
  expect(encodeKey(gw.peers[0]!.publicKey)).toBe(encodeKey(publicKeyOf(client.interface.privateKey)));
  expect(encodeKey(client.peers[0]!.publicKey)).toBe(glassgate(["pubkey"], gwKey).stdout.trim());
  expect(encodeKey(client.peers[0]!.presharedKey!)).toBe(encodeKey(gw.peers[0]!.presharedKey!));
  expect(client.peers[0]!.endpoint).toEqual({ host: "vpn.example.net", port: 52625 });
  expect(client.interface.addresses.map((a) => `${a.bytes.join(".")}/${a.prefix}`)).toEqual(["10.99.0.2/32"]);
  // A second peer gets the next free address; a bad --address changes nothing.
  const second = glassgate(["peers", "add", "--config", gwFile, "--endpoint", "192.0.2.1:51820", "--out", join(dir, "phone.conf")]);
  expect(second.code).toBe(0);
  expect(readFileSync(join(dir, "phone.conf"), "utf8")).toContain("Address = 10.99.0.3/32");
  const before = readFileSync(gwFile, "utf8");
  const bad = glassgate(["peers", "add", "--config", gwFile, "--endpoint", "x", "--address", "10.99.0.300"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('"10.99.0.300" is not an IP address');
  expect(readFileSync(gwFile, "utf8")).toBe(before);
  if (missingCommands(["wg-quick"]).length === 0) {
    expect(spawnSync(["wg-quick", "strip", join(dir, "phone.conf")]).exitCode).toBe(0);
  }
});

test("peers add skips the addresses of admin UI peers in --data, and refuses one they or a file peer use, naming both", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-peers-store-"));
  const gwFile = join(dir, "gw.conf");
  writeFileSync(gwFile, `[Interface]\nPrivateKey = ${glassgate(["keygen"]).stdout.trim()}\nAddress = 10.99.0.1/24\n`);
  const store = Store.open(join(dir, "data"));
  store.peers.create({ name: "ui-phone", publicKey: encodeKey(publicKeyOf(generatePrivateKey())), allowedIps: "10.99.0.2/32", persistentKeepalive: 0, enabled: true }, "test");
  store.close();
  const r = glassgate(["peers", "add", "--config", gwFile, "--endpoint", "vpn.example.net", "--data", join(dir, "data")]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("Address = 10.99.0.3/32");
  const before = readFileSync(gwFile, "utf8");
  const dup = glassgate(["peers", "add", "--config", gwFile, "--endpoint", "x", "--name", "tablet", "--address", "10.99.0.2", "--data", join(dir, "data")]);
  expect(dup.code).toBe(2);
  expect(dup.stderr).toContain('peers add: --address: 10.99.0.2/32 is already an address of peer "ui-phone"');
  const dupFile = glassgate(["peers", "add", "--config", gwFile, "--endpoint", "x", "--address", "10.99.0.3", "--data", join(dir, "data")]);
  expect(dupFile.code).toBe(2);
  expect(dupFile.stderr).toContain("10.99.0.3/32 is already an address of the config file's peer at line 5");
  expect(readFileSync(gwFile, "utf8")).toBe(before);
}, 30_000);

test("admin create on an existing user says so and points to admin passwd; passwd sets the password, logs out that user's sessions and is audited", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-admin-"));
  const data = join(dir, "data");
  expect(glassgate(["admin", "create", "--data", data, "--username", "ops"], "first password\n").code).toBe(0);
  const again = glassgate(["admin", "create", "--data", data, "--username", "ops"], "other password\n");
  expect(again.code).toBe(2);
  expect(again.stderr).toContain('admin create: admin user "ops" already exists; to set a new password: glassgate admin passwd --username ops');
  let store = Store.open(data);
  const session = (await store.auth.login("ops", "first password", "test"))!;
  expect(session).toBeDefined();
  store.close();
  const short = glassgate(["admin", "passwd", "--data", data, "--username", "ops"], "short\n");
  expect(short.code).toBe(2);
  expect(short.stderr).toContain("at least 8 characters");
  expect(glassgate(["admin", "passwd", "--data", data, "--username", "nobody"], "long enough pw\n").stderr).toContain('no admin user "nobody"');
  const r = glassgate(["admin", "passwd", "--data", data, "--username", "ops"], "second password\n");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("1 session(s) logged out");
  store = Store.open(data);
  expect(store.auth.session(session.id)).toBeUndefined();
  expect(await store.auth.login("ops", "first password", "test")).toBeUndefined();
  expect(await store.auth.login("ops", "second password", "test")).toBeDefined();
  expect(store.audit.query({ action: "admin.password_changed" }).rows[0]).toMatchObject({ actor: "cli", subject: "ops" });
  store.close();
}, 30_000);

test("check-config refuses two file peers with one tunnel address, naming both (exit 2)", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-dup-"));
  const file = join(dir, "gw.conf");
  const [a, b] = [encodeKey(publicKeyOf(generatePrivateKey())), encodeKey(publicKeyOf(generatePrivateKey()))];
  writeFileSync(file, `[Interface]\nPrivateKey = ${glassgate(["keygen"]).stdout.trim()}\n[Peer]\nPublicKey = ${a}\nAllowedIPs = 10.99.0.2/32\n[Peer]\nPublicKey = ${b}\nAllowedIPs = 10.99.0.2/32\n`);
  const r = glassgate(["check-config", file]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(`${file}:8: AllowedIPs: 10.99.0.2/32 is already an address of the config file's peer at line 3 (${a})`);
});

test.skipIf(!isRoot() || missingCommands(["setpriv"]).length > 0)("up without CAP_NET_ADMIN fails with a clear message (exit 1)", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-nocap-"));
  const file = join(dir, "gw.conf");
  writeFileSync(file, `[Interface]\nPrivateKey = ${glassgate(["keygen"]).stdout.trim()}\n`);
  // Same user, but every capability dropped: what an unprivileged user or container gets.
  const r = spawnSync(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", "bun", "run", "src/cli.ts", "up", "--config", file, "--interface", "ggnocap0", "--admin", "127.0.0.1:0", "--data", join(dir, "data")], { cwd: ROOT });
  expect(r.exitCode).toBe(1);
  expect(r.stderr.toString()).toContain("needs root or CAP_NET_ADMIN");
});

test("a yes/no env var with another value stops up with exit 2 naming it, before anything is written", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-envflag-"));
  const conf = join(dir, "gw.conf");
  const r = spawnSync(["bun", "run", "src/cli.ts", "up", "--init", "--config", conf, "--data", join(dir, "data")], { cwd: ROOT, env: { ...process.env, FIREZONE_NO_INC_BUF: "maybe" } });
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain('FIREZONE_NO_INC_BUF: "maybe" is not a yes/no value');
  expect(existsSync(conf)).toBe(false);
});

test("up refuses a GLASSGATE_TRUSTED_PROXY that is not an address list (exit 2)", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-proxy-"));
  const file = join(dir, "gw.conf");
  writeFileSync(file, `[Interface]\nPrivateKey = ${glassgate(["keygen"]).stdout.trim()}\n`);
  const r = spawnSync(["bun", "run", "src/cli.ts", "up", "--config", file, "--interface", "ggproxy0", "--admin", "127.0.0.1:0", "--data", join(dir, "data")],
    { cwd: ROOT, env: { ...process.env, GLASSGATE_TRUSTED_PROXY: "10.0.0.5, proxy.example" } });
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain('GLASSGATE_TRUSTED_PROXY: "proxy.example" is not an IP address');
});

test("up refuses a GLASSGATE_PUBLIC_ADMIN_URL that is not an http(s) URL or a GLASSGATE_NEVER_CONNECTED_SECONDS of 0 (exit 2), naming it", () => {
  const dir = mkdtempSync(join(tmpdir(), "gg-puburl-"));
  const file = join(dir, "gw.conf");
  writeFileSync(file, `[Interface]\nPrivateKey = ${glassgate(["keygen"]).stdout.trim()}\n`);
  for (const bad of ["vpn.example.com/admin", "ftp://vpn.example.com", "https://vpn.example.com/?x=1"]) {
    const r = spawnSync(["bun", "run", "src/cli.ts", "up", "--config", file, "--interface", "ggpub0", "--admin", "127.0.0.1:0", "--data", join(dir, "data")],
      { cwd: ROOT, env: { ...process.env, GLASSGATE_PUBLIC_ADMIN_URL: bad } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain(`GLASSGATE_PUBLIC_ADMIN_URL: ${JSON.stringify(bad)} is not an http(s) URL`);
  }
  const r = spawnSync(["bun", "run", "src/cli.ts", "up", "--config", file, "--interface", "ggpub0", "--admin", "127.0.0.1:0", "--data", join(dir, "data")],
    { cwd: ROOT, env: { ...process.env, GLASSGATE_NEVER_CONNECTED_SECONDS: "0" } });
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toBe('glassgate: GLASSGATE_NEVER_CONNECTED_SECONDS: "0" is not a whole number from 1 to 31536000\n');
}, 30_000);

test("up --portal: a missing or conflicting portal setting is a usage error naming it (exit 2), before anything starts", () => {
  const run = (args: string[], env: Record<string, string | undefined>) => {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FIREZONE_")));
    const r = spawnSync(["bun", "run", "src/cli.ts", ...args], { cwd: ROOT, env: { ...base, ...env } as Record<string, string> });
    return { code: r.exitCode, stderr: r.stderr.toString() };
  };
  const noToken = run(["up", "--portal"], {});
  expect(noToken.code).toBe(2);
  expect(noToken.stderr).toContain("FIREZONE_TOKEN: not set");
  const both = run(["up", "--portal"], { FIREZONE_TOKEN: "t", FIREZONE_TOKEN_FILE: "/nonexistent" });
  expect(both.code).toBe(2);
  expect(both.stderr).toContain("FIREZONE_TOKEN and FIREZONE_TOKEN_FILE are both set");
  const badUrl = run(["up", "--portal"], { FIREZONE_TOKEN: "t", FIREZONE_API_URL: "ftp://portal" });
  expect(badUrl.code).toBe(2);
  expect(badUrl.stderr).toContain("FIREZONE_API_URL");
  const withConfig = run(["up", "--portal", "--config", "x.conf"], { FIREZONE_TOKEN: "t" });
  expect(withConfig.code).toBe(2);
  expect(withConfig.stderr).toContain("--config and --init are for standalone mode");
  const neither = run(["up"], { GLASSGATE_CONFIG: undefined });
  expect(neither.code).toBe(2);
  expect(neither.stderr).toContain("or --portal");
});

test("takeover posts to the local admin API with the token and prints its answer; a refusal exits 1 with it", async () => {
  const seen: { method: string; path: string; auth: string | null }[] = [];
  let answer = { status: 200, body: JSON.stringify({ reached: [{ peer: "K=", endpoint: "192.0.2.1:51820", seen_by: "gw-a" }], skipped: [] }) };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => {
      seen.push({ method: req.method, path: new URL(req.url).pathname, auth: req.headers.get("authorization") });
      return new Response(answer.body, { status: answer.status, headers: { "content-type": "application/json" } });
    },
  });
  const run = async (env: Record<string, string>) => {
    const p = Bun.spawn(["bun", "run", "src/cli.ts", "takeover", "--admin", `127.0.0.1:${server.port}`], { cwd: ROOT, env: { ...process.env, GLASSGATE_ADMIN_TOKEN: "", ...env }, stdout: "pipe", stderr: "pipe" });
    return { code: await p.exited, stdout: await new Response(p.stdout).text(), stderr: await new Response(p.stderr).text() };
  };
  try {
    const ok = await run({ GLASSGATE_ADMIN_TOKEN: "tok-1" });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).reached[0].peer).toBe("K=");
    expect(seen).toEqual([{ method: "POST", path: "/api/takeover", auth: "Bearer tok-1" }]);
    answer = { status: 409, body: JSON.stringify({ error: "not_clustered", message: "standalone" }) };
    const refused = await run({ GLASSGATE_ADMIN_TOKEN: "tok-1" });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("409");
    expect(refused.stderr).toContain("not_clustered");
    const noToken = await run({});
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain("GLASSGATE_ADMIN_TOKEN");
  } finally {
    server.stop(true);
  }
});
