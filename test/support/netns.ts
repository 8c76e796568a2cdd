// Helpers for integration tests that build their own network namespaces and start real peers.
// Everything made here is named with the test's own tag, removed by cleanup(), and processes are
// ended by the PIDs we started — never by name.
import { spawn, spawnSync, type Subprocess } from "bun";

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function missingCommands(cmds: string[]): string[] {
  return cmds.filter((c) => spawnSync(["sh", "-c", `command -v ${c}`]).exitCode !== 0);
}

/** Why an integration test cannot run here, or undefined when it can. */
export function skipReason(cmds: string[]): string | undefined {
  if (!isRoot()) return "needs root (network namespaces); CI runs it as root";
  const missing = missingCommands(cmds);
  if (missing.length) return `missing commands: ${missing.join(", ")} (.ci/run installs them)`;
  return undefined;
}

export function sh(cmd: string[], opts: { allowFail?: boolean; stdin?: string } = {}): string {
  const r = spawnSync(cmd, { stdin: opts.stdin ? new TextEncoder().encode(opts.stdin) : undefined, stderr: "pipe", stdout: "pipe" });
  if (r.exitCode !== 0 && !opts.allowFail) {
    throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString().trim()}`);
  }
  return r.stdout.toString();
}

/** A unique short tag for interface and namespace names (IFNAMSIZ is 16 including NUL). */
let tagCounter = Math.floor(Math.random() * 100);

/**
 * Seven digits (interface names leave little room; some tests derive subnets from the number): the
 * process id's last three, a per-process counter (two tags of one test never clash, as two random
 * digits did once in a hundred) and two random digits against other processes with the same ending.
 */
export function uniqueTag(): string {
  tagCounter = (tagCounter + 1) % 100;
  const pad = (n: number, w: number) => String(n).padStart(w, "0");
  return `${pad(process.pid % 1000, 3)}${pad(tagCounter, 2)}${pad(Math.floor(Math.random() * 100), 2)}`;
}

export class Netns {
  readonly #processes: Subprocess<"ignore", "pipe", "pipe">[] = [];
  #alive = true;

  constructor(readonly name: string) {
    sh(["ip", "netns", "add", name]);
    this.exec(["ip", "link", "set", "lo", "up"]);
  }

  exec(cmd: string[], opts: { allowFail?: boolean } = {}): string {
    return sh(["ip", "netns", "exec", this.name, ...cmd], opts);
  }

  /** Starts a long-running process inside the namespace; `ip netns exec` execs, so the PID is the process's. */
  start(cmd: string[], env: Record<string, string> = {}): Subprocess<"ignore", "pipe", "pipe"> {
    const p = spawn(["ip", "netns", "exec", this.name, ...cmd], { env: { ...process.env, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    this.#processes.push(p);
    return p;
  }

  /** Ends our processes (by PID), then deletes the namespace and everything in it. */
  async destroy(): Promise<void> {
    if (!this.#alive) return;
    this.#alive = false;
    for (const p of this.#processes) {
      if (p.exitCode === null) p.kill("SIGTERM");
    }
    await Promise.all(this.#processes.map((p) => Promise.race([p.exited, Bun.sleep(2000)])));
    for (const p of this.#processes) if (p.exitCode === null) p.kill("SIGKILL");
    sh(["ip", "netns", "del", this.name], { allowFail: true });
  }
}

/** A veth pair between two namespaces, with an address on each end, named inside each (werift ignores interfaces named veth*). */
export function link(a: Netns, aIf: string, aAddr: string, b: Netns, bIf: string, bAddr: string): void {
  const tmpA = `la${uniqueTag()}`;
  const tmpB = `lb${uniqueTag()}`;
  sh(["ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB]);
  sh(["ip", "link", "set", tmpA, "netns", a.name, "name", aIf]);
  sh(["ip", "link", "set", tmpB, "netns", b.name, "name", bIf]);
  a.exec(["ip", "addr", "add", aAddr, "dev", aIf]);
  b.exec(["ip", "addr", "add", bAddr, "dev", bIf]);
  a.exec(["ip", "link", "set", aIf, "up"]);
  b.exec(["ip", "link", "set", bIf, "up"]);
}

/**
 * A veth pair from the host namespace into `ns`, with a /30 of 10.213.0.0/16: the host side gets
 * .1 and the namespace side .2. Traffic on it only ever reaches the namespace we created.
 */
export function vethInto(ns: Netns, hostIf: string, nsIf: string, subnet: number): { hostAddr: string; nsAddr: string } {
  const base = `10.213.${subnet >> 6}.${(subnet & 63) * 4}`;
  const octets = base.split(".").map(Number);
  const hostAddr = `${octets[0]}.${octets[1]}.${octets[2]}.${octets[3]! + 1}`;
  const nsAddr = `${octets[0]}.${octets[1]}.${octets[2]}.${octets[3]! + 2}`;
  sh(["ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf]);
  sh(["ip", "link", "set", nsIf, "netns", ns.name]);
  sh(["ip", "addr", "add", `${hostAddr}/30`, "dev", hostIf]);
  sh(["ip", "link", "set", hostIf, "up"]);
  ns.exec(["ip", "addr", "add", `${nsAddr}/30`, "dev", nsIf]);
  ns.exec(["ip", "link", "set", nsIf, "up"]);
  return { hostAddr, nsAddr };
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, stepMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(stepMs);
  }
}
