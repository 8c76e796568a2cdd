// What the netns benches share: a two-namespace underlay, wireguard-go and `glassgate up` peers in
// it, the CPU time of a process (all threads) from /proc, iperf3 and ping measured without blocking
// the event loop, and the statistics the benches print. Namespaces and plain process helpers come
// from test/support/netns.ts; this file only adds what measuring needs.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { encodeKey } from "../src/crypto/x25519.ts";
import { Netns, sh, waitFor } from "../test/support/netns.ts";

export const ROOT = join(import.meta.dir, "..");

/** Underlay addresses of the two namespaces (a = client side, b = gateway side). */
export const UNDERLAY_A = "10.203.0.1";
export const UNDERLAY_B = "10.203.0.2";
/** Tunnel addresses: the client is .1, the gateway .2; iperf3 and ping target the gateway's. */
export const TUNNEL_A = "10.204.0.1";
export const TUNNEL_B = "10.204.0.2";
export const WG_PORT = 51820;

/** Two fresh namespaces joined by a veth pair (UNDERLAY_A ↔ UNDERLAY_B). */
export function underlay(tag: string): { a: Netns; b: Netns } {
  const a = new Netns(`gg-ba-${tag}`);
  const b = new Netns(`gg-bb-${tag}`);
  sh(["ip", "link", "add", `bva${tag}`, "type", "veth", "peer", "name", `bvb${tag}`]);
  sh(["ip", "link", "set", `bva${tag}`, "netns", a.name]);
  sh(["ip", "link", "set", `bvb${tag}`, "netns", b.name]);
  a.exec(["ip", "addr", "add", `${UNDERLAY_A}/24`, "dev", `bva${tag}`]);
  b.exec(["ip", "addr", "add", `${UNDERLAY_B}/24`, "dev", `bvb${tag}`]);
  a.exec(["ip", "link", "set", `bva${tag}`, "up"]);
  b.exec(["ip", "link", "set", `bvb${tag}`, "up"]);
  return { a, b };
}

/**
 * Starts wireguard-go in `ns` with one peer and returns its process. `ip netns exec` execs and
 * `wireguard-go -f` stays in the foreground, so the PID is wireguard-go's own (checked by the
 * caller with measuredPid). The interface name must be unique machine-wide: wireguard-go's UAPI
 * socket path is not per namespace.
 */
export async function startWireguardGo(
  ns: Netns,
  ifname: string,
  key: Uint8Array,
  peer: { publicKey: Uint8Array; allowedIps: string; endpoint?: string },
  address: string,
): Promise<Subprocess> {
  const p = ns.start(["wireguard-go", "-f", ifname], { LOG_LEVEL: "error" });
  await waitFor(ifname, () => ns.exec(["ip", "link", "show", ifname], { allowFail: true }).includes(ifname));
  const dir = mkdtempSync(join(tmpdir(), "gg-bench-"));
  writeFileSync(join(dir, "key"), encodeKey(key), { mode: 0o600 });
  const args = ["wg", "set", ifname, "private-key", join(dir, "key"), "listen-port", String(WG_PORT), "peer", encodeKey(peer.publicKey), "allowed-ips", peer.allowedIps];
  if (peer.endpoint) args.push("endpoint", peer.endpoint);
  ns.exec(args);
  ns.exec(["ip", "addr", "add", `${address}/24`, "dev", ifname]);
  ns.exec(["ip", "link", "set", ifname, "mtu", "1420", "up"]);
  return p;
}

export interface Glassgate {
  process: Subprocess<"ignore", "pipe", "pipe">;
  /** The PID to measure: the process that runs the event loop and its Workers. */
  pid: number;
  dir: string;
  /** Milliseconds from spawn to ready: the `readyLine` seen on stderr, else the TUN up. */
  readyMs: number;
  /** stderr so far, for error messages. */
  log: () => string;
  stop: () => Promise<void>;
}

/**
 * `glassgate up` inside `ns` with the given wg-quick config text. The environment is passed
 * through (plus `env`), so GLASSGATE_* switches set for the bench reach the gateway. Resolves once
 * the TUN is up, or with `readyLine` once stderr has that text (e.g. the "gateway up" log line,
 * which needs GLASSGATE_LOG=info). `dataDir`: a data dir prepared beforehand (a seeded store).
 */
export async function startGlassgate(
  ns: Netns,
  opts: { config: string; ifname: string; admin?: string; env?: Record<string, string>; dataDir?: string; readyLine?: string; readyTimeoutMs?: number; bunFlags?: string[] },
): Promise<Glassgate> {
  const dir = mkdtempSync(join(tmpdir(), "gg-bench-"));
  const conf = join(dir, "gg.conf");
  writeFileSync(conf, opts.config, { mode: 0o600 });
  const t0 = performance.now();
  const p = spawn(
    ["ip", "netns", "exec", ns.name, "bun", ...(opts.bunFlags ?? []), "run", join(ROOT, "src/cli.ts"), "up", "--config", conf, "--interface", opts.ifname,
      "--admin", opts.admin ?? "127.0.0.1:18080", "--data", opts.dataDir ?? join(dir, "data")],
    { cwd: ROOT, env: { ...process.env, GLASSGATE_LOG: "warn", ...opts.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  // Drained so a chatty gateway never blocks on a full pipe; kept for error messages.
  let log = "";
  let readyAt = 0;
  void (async () => {
    for await (const chunk of p.stderr) {
      log += new TextDecoder().decode(chunk);
      if (opts.readyLine && !readyAt && log.includes(opts.readyLine)) readyAt = performance.now();
      log = log.slice(-8000);
    }
  })();
  void new Response(p.stdout).text();
  const stop = async () => {
    if (p.exitCode !== null) return;
    p.kill("SIGTERM");
    await Promise.race([p.exited, Bun.sleep(3000)]);
    if (p.exitCode === null) p.kill("SIGKILL");
  };
  try {
    await waitFor(`glassgate TUN ${opts.ifname}`, () => {
      if (p.exitCode !== null) throw new Error(`glassgate exited ${p.exitCode}: ${log}`);
      if (opts.readyLine) return readyAt > 0;
      const up = ns.exec(["ip", "link", "show", opts.ifname], { allowFail: true }).includes("UP");
      if (up) readyAt = performance.now();
      return up;
    }, opts.readyTimeoutMs ?? 20_000, opts.readyLine ? 10 : 20);
    const pid = await measuredPid(p.pid, "bun");
    return { process: p, pid, dir, readyMs: readyAt - t0, log: () => log, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A wg-quick config with one peer, as the benches write them. */
export function wgQuickConfig(o: { privateKey: Uint8Array; address: string; listenPort: number; peerPublicKey: Uint8Array; allowedIps: string; endpoint?: string; keepalive?: number }): string {
  const lines = ["[Interface]", `PrivateKey = ${encodeKey(o.privateKey)}`, `Address = ${o.address}`, `ListenPort = ${o.listenPort}`, "",
    "[Peer]", `PublicKey = ${encodeKey(o.peerPublicKey)}`, `AllowedIPs = ${o.allowedIps}`];
  if (o.endpoint) lines.push(`Endpoint = ${o.endpoint}`);
  if (o.keepalive) lines.push(`PersistentKeepalive = ${o.keepalive}`);
  return lines.join("\n") + "\n";
}

// --- /proc ----------------------------------------------------------------------------------

export const CLOCK_TICKS = Number(sh(["getconf", "CLK_TCK"]).trim()) || 100;

/**
 * utime + stime in clock ticks from a /proc/<pid>/stat line. The command name (field 2) may hold
 * spaces and parentheses, so fields are counted after the last ')': utime and stime are fields
 * 14 and 15 of proc(5), i.e. the 12th and 13th after it.
 */
export function parseCpuTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unreadable /proc stat line: ${stat.slice(0, 120)}`);
  return utime + stime;
}

/**
 * CPU seconds a process has used, user + system, summed over all its threads (for a thread-group
 * leader the kernel reports the whole group in /proc/<pid>/stat, including exited threads).
 */
export function cpuSeconds(pid: number): number {
  return parseCpuTicks(readFileSync(`/proc/${pid}/stat`, "utf8")) / CLOCK_TICKS;
}

function comm(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
}

/** Children of every thread of `pid` (a thread may exit while we look: it then has none). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
    } catch {
      continue;
    }
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

/** Children running `expected`, each with its start time so a reused PID is not mistaken for the same process. */
function childrenRunning(pid: number, expected: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const k of childrenOf(pid)) {
    try {
      if (comm(k) !== expected) continue;
      const stat = readFileSync(`/proc/${k}/stat`, "utf8");
      out.set(k, stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!); // field 22, starttime
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * CPU seconds per live thread of `pid` (tid → seconds): where a process's time goes, e.g. whether
 * its main thread is at a full core while the total says less. A thread may exit while we look.
 */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), parseCpuTicks(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")) / CLOCK_TICKS);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Resident set size in MB (VmRSS of /proc/<pid>/status). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function threadCount(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

/** "PID 123 (9 threads): bun run …/cli.ts up …" — what a bench measures, shown so a reader can check it. */
export function describeProcess(pid: number): string {
  const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).map((a) => a.replace(/^.*\/(src\/)/, "$1")).join(" ");
  return `PID ${pid} (${threadCount(pid)} threads): ${cmd.slice(0, 60)}`;
}

/**
 * The PID whose CPU time is the program's. We spawn `ip netns exec … <program>`; `ip` execs, but a
 * launcher (`bun run`, a shell) could fork the real program as a child, whose time would then be
 * missing from ours. So: wait until the spawned PID runs `expected`, and follow a child that runs
 * `expected` too and is still there a moment later — the program's own short-lived children (the
 * gateway runs `ip route` at start) carry the parent's name between fork and exec, and must not
 * be taken for it. Throws when the tree is not one we can measure.
 */
export async function measuredPid(pid: number, expected: string): Promise<number> {
  await waitFor(`PID ${pid} to exec ${expected}`, () => comm(pid) === expected, 10_000);
  const first = childrenRunning(pid, expected);
  if (first.size === 0) return pid;
  await Bun.sleep(300);
  const lasting = [...childrenRunning(pid, expected)].filter(([k, start]) => first.get(k) === start).map(([k]) => k);
  if (lasting.length === 0) return pid;
  if (lasting.length === 1) return measuredPid(lasting[0]!, expected);
  throw new Error(`PID ${pid} (${expected}) has ${lasting.length} ${expected} children: which one to measure is unclear`);
}

// --- iperf3 and ping --------------------------------------------------------------------------

const measuring = new Set<Subprocess>();

async function run(cmd: string[]): Promise<{ code: number; out: string }> {
  const p = spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  measuring.add(p);
  try {
    const [out] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    return { code: await p.exited, out };
  } finally {
    measuring.delete(p);
  }
}

/** Ends the iperf3 clients and pings running now (by PID): for a bench that is interrupted. */
export function stopMeasurements(): void {
  for (const p of measuring) p.kill("SIGKILL");
}

export interface IperfResult {
  gbps: number;
  /** Bytes the server received: what CPU time is divided by. */
  bytes: number;
}

/**
 * One iperf3 TCP run from `client` to a one-shot server on `target` in `server`. Async, so a ping
 * started beside it keeps being read. `bitrate` (iperf3's -b, e.g. "150M") paces it instead of
 * letting TCP take all it can.
 */
export async function iperf3(client: Netns, server: Netns, target: string, seconds: number, streams: number, bitrate?: string): Promise<IperfResult> {
  const srv = server.start(["iperf3", "-s", "-1", "-B", target]);
  await waitFor("iperf3 server", () => server.exec(["ss", "-Htln", `sport = :5201`], { allowFail: true }).includes("5201"), 5000, 20);
  const r = await run(["ip", "netns", "exec", client.name, "iperf3", "-c", target, "-t", String(seconds), "-P", String(streams), ...(bitrate ? ["-b", bitrate] : []), "-J"]);
  await Promise.race([srv.exited, Bun.sleep(2000)]);
  if (srv.exitCode === null) srv.kill();
  try {
    const sum = JSON.parse(r.out).end.sum_received;
    return { gbps: sum.bits_per_second / 1e9, bytes: sum.bytes };
  } catch {
    return { gbps: NaN, bytes: NaN };
  }
}

export interface PingResult {
  sent: number;
  /** Round-trip times in ms of the replies, in arrival order. */
  rtts: number[];
}

/** RTTs out of ping's per-reply lines (`… time=0.123 ms`) and the transmitted count. */
export function parsePing(out: string): PingResult {
  const rtts: number[] = [];
  for (const m of out.matchAll(/ time=([\d.]+) ms/g)) rtts.push(Number(m[1]));
  const sent = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? rtts.length);
  return { sent, rtts };
}

/** Pings `target` from `ns` every `intervalS` seconds for `seconds` (root may go below 0.2 s). */
export async function ping(ns: Netns, target: string, seconds: number, intervalS = 0.01): Promise<PingResult> {
  const r = await run(["ip", "netns", "exec", ns.name, "ping", "-n", "-i", String(intervalS), "-w", String(seconds), "-W", "1", target]);
  return parsePing(r.out);
}

// --- statistics -------------------------------------------------------------------------------

/** The p-quantile (0..1) by nearest rank; NaN for no samples. */
export function quantile(xs: number[], p: number): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

export function spread(xs: number[]): { min: number; max: number } {
  const s = xs.filter((x) => !Number.isNaN(x));
  return s.length ? { min: Math.min(...s), max: Math.max(...s) } : { min: NaN, max: NaN };
}
