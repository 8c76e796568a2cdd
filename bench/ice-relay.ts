// Throughput through a TURN relay (coturn) relative to a direct path, in one run, with every real
// piece of portal mode: the headless client (tools/headless-client: our controlling ICE agent,
// src/wire, its own TUN) → `glassgate up --portal` (dev portal beside it) → a resource server in
// its own namespace (test/support/portal-world.ts, the world the portal e2e test uses).
// (direct) the client reaches the gateway's WireGuard port; (relay) that port is closed to the
// client by iptables in the bench's own namespace, so ICE settles on coturn, handed out by the
// portal. iperf3 TCP from the client's namespace to the resource, alternating rounds, medians.
// Before measuring, the path is asserted twice — the client's `connected` event (`relayed`) and
// the gateway's admin API (`/api/connections` `path`) — so a "relay" row cannot silently be direct.
// CPU-seconds per GB: gateway and client, /proc/<pid>/stat (all threads), over the round.
// Env: BENCH_ICE_SECONDS (5), BENCH_ICE_ROUNDS (3), BENCH_ICE_STREAMS ("1,4").
// Needs root, ip, iptables, turnserver, iperf3, curl; everything it creates is removed at the end.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { sh, skipReason } from "../test/support/netns.ts";
import { adminConnections, RESOURCE_IP, world, type World } from "../test/support/portal-world.ts";
import { cpuSeconds, iperf3, measuredPid, median, stopMeasurements, threadCpuSeconds } from "./support.ts";

const SECONDS = Number(process.env.BENCH_ICE_SECONDS ?? 5);
const ROUNDS = Math.max(3, Number(process.env.BENCH_ICE_ROUNDS ?? 3));
/** What /proc/<pid>/comm says for our Bun processes (the world starts them with process.execPath). */
const BUN_COMM = basename(process.execPath).slice(0, 15);
const STREAMS = (process.env.BENCH_ICE_STREAMS ?? "1,4").split(",").map(Number);

interface Case {
  name: string;
  w: World;
  gatewayPid: number;
  clientPid: number;
  /** coturn's PID in the relay case: the relay's own CPU is part of its cost. */
  turnPid: number | undefined;
  path: string;
}

/** The turnserver the world started in the gateway's namespace (found by name among that namespace's PIDs). */
function turnserverPid(w: World): number | undefined {
  for (const pid of sh(["ip", "netns", "pids", w.gw.name], { allowFail: true }).split(/\s+/).filter(Boolean).map(Number)) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "turnserver") return pid;
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

async function setup(relay: boolean, cleanups: (() => Promise<void> | void)[]): Promise<Case> {
  const w = await world({ relay }, cleanups);
  const c = w.startClient();
  const connected = await c.out.next((l) => l.event === "connected", "connected", 40_000);
  await c.out.next((l) => l.event === "handshake_completed", "handshake", 20_000);
  // Either end may be the relayed candidate: the client's own allocation or the gateway's, which
  // the client reaches from its host candidate. Both cross coturn (`relayed` is true for both).
  const pair = String(connected.pair);
  if (relay !== pair.includes("relay")) throw new Error(`the client nominated ${pair} (relayed: ${connected.relayed}); wanted ${relay ? "a pair with a relay candidate" : "no relay candidate"}`);
  if (w.curl() !== "hello from the resource\n") throw new Error("the resource is not reachable through the tunnel");
  const conns = adminConnections(w);
  const path = String(conns[0]?.path);
  if (conns.length !== 1 || relay !== path.includes("relay")) throw new Error(`the gateway's admin shows path ${path} (${conns.length} connections); wanted ${relay ? "a relay (\"relay via …\" or \"relay (client side)\")" : "no relay"}`);
  return { name: relay ? "relay via coturn" : "direct", w, gatewayPid: await measuredPid(w.gatewayProc.pid, BUN_COMM), clientPid: await measuredPid(c.proc.pid, BUN_COMM), turnPid: relay ? turnserverPid(w) : undefined, path: `gateway admin "${path}", client pair ${pair}` };
}

interface Sample {
  gbps: number;
  gwCpuPerGB: number;
  clCpuPerGB: number;
  /** Share of one core each used during the round. */
  gwCores: number;
  clCores: number;
  /** coturn's cores (NaN for the direct case). */
  turnCores: number;
  /** The client's busiest thread, in cores: near 1 means that thread is its limit. */
  clBusiest: number;
}

/** Cores used by `pid`'s busiest thread between two per-thread readings. */
function busiest(before: Map<number, number>, after: Map<number, number>, secs: number): number {
  let max = 0;
  for (const [tid, s] of after) max = Math.max(max, (s - (before.get(tid) ?? 0)) / secs);
  return max;
}

async function round(c: Case, streams: number): Promise<Sample> {
  const g0 = cpuSeconds(c.gatewayPid);
  const c0 = cpuSeconds(c.clientPid);
  const ct0 = threadCpuSeconds(c.clientPid);
  const t0cpu = c.turnPid ? cpuSeconds(c.turnPid) : NaN;
  const t0 = performance.now();
  const r = await iperf3(c.w.cl, c.w.res, RESOURCE_IP, SECONDS, streams);
  const secs = (performance.now() - t0) / 1000;
  const g = cpuSeconds(c.gatewayPid) - g0;
  const cl = cpuSeconds(c.clientPid) - c0;
  const turnCores = c.turnPid ? (cpuSeconds(c.turnPid) - t0cpu) / secs : NaN;
  const clBusiest = busiest(ct0, threadCpuSeconds(c.clientPid), secs);
  const gb = r.bytes / 1e9;
  return { gbps: r.gbps, gwCpuPerGB: g / gb, clCpuPerGB: cl / gb, gwCores: g / secs, clCores: cl / secs, clBusiest, turnCores };
}

export async function runIceRelayBench(): Promise<void> {
  const skip = skipReason(["ip", "iptables", "turnserver", "iperf3", "curl"]);
  if (skip) {
    console.log(`ice-relay bench skipped: ${skip}`);
    return;
  }
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    const cases = [await setup(false, cleanups), await setup(true, cleanups)];
    for (const c of cases) console.log(`path ${c.name}: ${c.path}`);
    if (!cases[1]!.turnPid) throw new Error("no turnserver process found in the relay case's gateway namespace");
    const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    console.log(`load average before: ${load()}`);
    const samples = new Map<string, Sample[]>();
    for (let i = 0; i < ROUNDS; i++) {
      for (const streams of STREAMS) {
        for (const c of cases) {
          const key = `${c.name}|${streams}`;
          samples.set(key, [...(samples.get(key) ?? []), await round(c, streams)]);
        }
      }
    }
    console.log(`load average after: ${load()}`);
    const med = (xs: Sample[], f: (s: Sample) => number) => median(xs.map(f));
    console.log(`iperf3 TCP client → gateway → resource, ${SECONDS} s × ${ROUNDS} rounds alternating, medians [all rounds]:`);
    console.log(`  case                 streams  Gbit/s                        gw CPU-s/GB  gw cores  client CPU-s/GB  client cores (busiest thread)  coturn cores`);
    for (const streams of STREAMS) {
      const byCase = cases.map((c) => samples.get(`${c.name}|${streams}`)!);
      cases.forEach((c, i) => {
        const xs = byCase[i]!;
        const all = xs.map((s) => s.gbps.toFixed(3)).join(", ");
        console.log(`  ${c.name.padEnd(20)} ×${String(streams).padEnd(7)} ${med(xs, (s) => s.gbps).toFixed(3).padEnd(6)} [${all}]`.padEnd(62) + `  ${med(xs, (s) => s.gwCpuPerGB).toFixed(1).padStart(11)}  ${med(xs, (s) => s.gwCores).toFixed(2).padStart(8)}  ${med(xs, (s) => s.clCpuPerGB).toFixed(1).padStart(15)}  ${med(xs, (s) => s.clCores).toFixed(2).padStart(12)} (${med(xs, (s) => s.clBusiest).toFixed(2)})  ${c.turnPid ? med(xs, (s) => s.turnCores).toFixed(2) : "-"}`);
      });
      const ratio = med(byCase[1]!, (s) => s.gbps) / med(byCase[0]!, (s) => s.gbps);
      console.log(`  relay / direct       ×${String(streams).padEnd(7)} ${(ratio * 100).toFixed(0)} %`);
    }
  } finally {
    stopMeasurements();
    for (const c of cleanups.reverse()) await c();
  }
}

if (import.meta.main) await runIceRelayBench();
