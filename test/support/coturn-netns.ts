// coturn (Debian) inside a test's namespace with a static user (gw / gw-secret), relayed ports
// 3500–3560: for the ICE tests and the relay bench. The caller's cleanups stop it (by its PID).
import { spawn } from "bun";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Netns } from "./netns.ts";

/** coturn in a namespace, a static user, relayed ports 3500–3560. */
export async function coturn(ns: Netns, ip: string, cleanups: (() => Promise<void> | void)[]) {
  const dir = mkdtempSync(join(tmpdir(), "gg-ice-coturn-"));
  const conf = [
    `listening-ip=${ip}`, "listening-port=3478", `relay-ip=${ip}`, "min-port=3500", "max-port=3560", "realm=glassgate.test",
    "lt-cred-mech", "user=gw:gw-secret", "fingerprint", "no-tls", "no-dtls", "no-cli", "no-rfc5780", "allow-loopback-peers",
    `pidfile=${join(dir, "pid")}`, `log-file=${join(dir, "turn.log")}`, "simple-log",
  ];
  writeFileSync(join(dir, "turnserver.conf"), conf.join("\n") + "\n");
  const proc = spawn(["ip", "netns", "exec", ns.name, "turnserver", "-c", join(dir, "turnserver.conf"), "--no-cli"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  cleanups.push(async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM");
    await Promise.race([proc.exited, Bun.sleep(2000)]);
    rmSync(dir, { recursive: true, force: true });
  });
  await Bun.sleep(500);
  if (proc.exitCode !== null) throw new Error(`turnserver exited ${proc.exitCode}: ${readFileSync(join(dir, "turn.log"), "utf8").slice(-1000)}`);
  return { server: `${ip}:3478`, log: () => readFileSync(join(dir, "turn.log"), "utf8") };
}

