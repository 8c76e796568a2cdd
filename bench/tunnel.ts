// Tunnel throughput, CPU per gigabyte and latency, every case measured in one run on the same
// two-namespace topology (client namespace a ──veth── gateway namespace b):
//   (a) bare veth, the ceiling
//   (b) wireguard-go client → wireguard-go gateway
//   (c) wireguard-go client → glassgate gateway, also with the admin UI polled
//   (d) glassgate client → glassgate gateway (the client is a second `glassgate up` with the
//       gateway as Endpoint + PersistentKeepalive, so it initiates)
//   (e) wireguard-go ↔ wireguard-go: the (b) setup, named as the reference for (d)
// All setups stay up for the whole run and rounds alternate between them, so slow drift of a shared
// machine hits every case alike; each figure is the median over BENCH_TUNNEL_ROUNDS rounds.
// Per case and round: ping idle, then iperf3 TCP ×1 with `ping -i 0.01` beside it (RTT under load),
// then TCP ×4, then TCP ×1 paced at BENCH_TUNNEL_PACED_MBIT (default 150) with a ping beside it:
// latency and CPU per GB at the same load for every case. The gateway's CPU time (utime+stime, all
// threads, /proc/<pid>/stat) is read around each iperf3 run and divided by the gigabytes the server
// received.
// GLASSGATE_* variables (e.g. GLASSGATE_OFFLOAD) pass through to both glassgate processes, so runs
// with and without an option compare directly. BENCH_TUNNEL_CASES=a,c,… limits the cases (",noadmin" drops c+admin);
// BENCH_TUNNEL_JSON=<file> also writes every sample.
// Needs root, wireguard-go, wg, iperf3, ping; everything it creates is removed at the end.
import { readFileSync, writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Netns, skipReason, uniqueTag, waitFor } from "../test/support/netns.ts";
import {
  TUNNEL_A, TUNNEL_B, UNDERLAY_B, WG_PORT, cpuSeconds, iperf3, measuredPid, median, ping, quantile, spread, startGlassgate,
  startWireguardGo, describeProcess, stopMeasurements, underlay, wgQuickConfig, type Glassgate, type PingResult,
} from "./support.ts";

const SECONDS = Number(process.env.BENCH_TUNNEL_SECONDS ?? 10);
const ROUNDS = Math.max(1, Number(process.env.BENCH_TUNNEL_ROUNDS ?? 3));
/** Length of the idle ping per round; at 100 pings a second that is 200 samples. */
const IDLE_PING_SECONDS = 2;
const ADMIN_TOKEN = "bench-token";
/**
 * The paced run: TCP ×1 held to this rate (Mbit/s, below every tunnel's capacity here) with a ping
 * beside it, so latency and CPU per GB compare at the same load. The unpaced ×1 run loads each
 * case as far as it goes, and on 2 shared cores the faster tunnel also makes the busier machine.
 */
const PACED_MBIT = Number(process.env.BENCH_TUNNEL_PACED_MBIT ?? 150);

type CaseKey = "a" | "b" | "c" | "c+admin" | "d";

interface Setup {
  a: Netns;
  b: Netns;
  target: string;
  /** The gateway's process (namespace b), when there is one to measure. */
  gatewayPid?: number;
  /** The client's process (namespace a), when there is one. */
  clientPid?: number;
  cleanup: () => Promise<void>;
}

async function setupVeth(tag: string): Promise<Setup> {
  const { a, b } = underlay(tag);
  return { a, b, target: UNDERLAY_B, cleanup: async () => { await a.destroy(); await b.destroy(); } };
}

async function setupWgGo(tag: string): Promise<Setup> {
  const { a, b } = underlay(tag);
  try {
    const ka = generatePrivateKey();
    const kb = generatePrivateKey();
    const client = await startWireguardGo(a, `wba${tag}`, ka, { publicKey: publicKeyOf(kb), allowedIps: "10.204.0.0/24", endpoint: `${UNDERLAY_B}:${WG_PORT}` }, TUNNEL_A);
    const gw = await startWireguardGo(b, `wbb${tag}`, kb, { publicKey: publicKeyOf(ka), allowedIps: "10.204.0.0/24" }, TUNNEL_B);
    return {
      a, b, target: TUNNEL_B,
      clientPid: await measuredPid(client.pid, "wireguard-go"),
      gatewayPid: await measuredPid(gw.pid, "wireguard-go"),
      cleanup: async () => { await a.destroy(); await b.destroy(); },
    };
  } catch (e) {
    await a.destroy();
    await b.destroy();
    throw e;
  }
}

function gatewayConfig(kb: Uint8Array, ka: Uint8Array): string {
  return wgQuickConfig({ privateKey: kb, address: `${TUNNEL_B}/24`, listenPort: WG_PORT, peerPublicKey: publicKeyOf(ka), allowedIps: `${TUNNEL_A}/32` });
}

async function setupGlassgateGateway(tag: string): Promise<Setup> {
  const { a, b } = underlay(tag);
  let gw: Glassgate | undefined;
  try {
    const ka = generatePrivateKey();
    const kb = generatePrivateKey();
    const client = await startWireguardGo(a, `wba${tag}`, ka, { publicKey: publicKeyOf(kb), allowedIps: "10.204.0.0/24", endpoint: `${UNDERLAY_B}:${WG_PORT}` }, TUNNEL_A);
    gw = await startGlassgate(b, { config: gatewayConfig(kb, ka), ifname: `gbb${tag}`, env: { GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    const g = gw;
    return {
      a, b, target: TUNNEL_B,
      clientPid: await measuredPid(client.pid, "wireguard-go"),
      gatewayPid: gw.pid,
      cleanup: async () => { await g.stop(); await a.destroy(); await b.destroy(); },
    };
  } catch (e) {
    await gw?.stop();
    await a.destroy();
    await b.destroy();
    throw e;
  }
}

/** Both ends glassgate: the client knows the gateway's Endpoint and keeps the tunnel alive, like a site-to-site peer. */
async function setupGlassgateBoth(tag: string): Promise<Setup> {
  const { a, b } = underlay(tag);
  const started: Glassgate[] = [];
  const stopAll = async () => { for (const g of started) await g.stop(); };
  try {
    const ka = generatePrivateKey();
    const kb = generatePrivateKey();
    const gw = await startGlassgate(b, { config: gatewayConfig(kb, ka), ifname: `gbb${tag}`, env: { GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    started.push(gw);
    const client = await startGlassgate(a, {
      config: wgQuickConfig({ privateKey: ka, address: `${TUNNEL_A}/24`, listenPort: WG_PORT, peerPublicKey: publicKeyOf(kb), allowedIps: `${TUNNEL_B}/32`, endpoint: `${UNDERLAY_B}:${WG_PORT}`, keepalive: 25 }),
      ifname: `gba${tag}`,
      env: { GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    started.push(client);
    return { a, b, target: TUNNEL_B, gatewayPid: gw.pid, clientPid: client.pid, cleanup: async () => { await stopAll(); await a.destroy(); await b.destroy(); } };
  } catch (e) {
    await stopAll();
    await a.destroy();
    await b.destroy();
    throw e;
  }
}

/**
 * What an open Connections page costs: the live rows every second (as htmx does), plus the JSON
 * API and a Prometheus scrape, inside the gateway's namespace while iperf3 runs.
 */
function startAdminLoad(b: Netns): Subprocess {
  const script = `const h = { authorization: "Bearer ${ADMIN_TOKEN}" }; let n = 0;
    for (;;) { for (const p of ["/connections/rows", "/api/connections", "/metrics"]) { await (await fetch("http://127.0.0.1:18080" + p, { headers: h })).text(); n++; }
      await Bun.sleep(1000); }`;
  return b.start(["bun", "-e", script]);
}

/** Everything measured for one case, one entry per round (RTTs pooled over rounds). */
interface Samples {
  gbps1: number[];
  gbps4: number[];
  /** Gateway CPU-seconds per GB received, for the ×1 and ×4 runs. */
  gwCpu1: number[];
  gwCpu4: number[];
  clientCpu1: number[];
  clientCpu4: number[];
  idle: PingResult[];
  loaded: PingResult[];
  /** The paced ×1 run (PACED_MBIT): its ping, and the gateway's CPU-seconds per GB. */
  paced: PingResult[];
  gwCpuPaced: number[];
}

function emptySamples(): Samples {
  return { gbps1: [], gbps4: [], gwCpu1: [], gwCpu4: [], clientCpu1: [], clientCpu4: [], idle: [], loaded: [], paced: [], gwCpuPaced: [] };
}

function cpuOf(pid: number | undefined): number {
  return pid === undefined ? NaN : cpuSeconds(pid);
}

/** One iperf3 run with the CPU time of both ends' processes read around it, optionally with a ping beside it. */
async function measuredRun(s: Setup, streams: number, withPing: boolean, bitrate?: string): Promise<{ gbps: number; gwCpuPerGb: number; clientCpuPerGb: number; ping?: PingResult }> {
  const gw0 = cpuOf(s.gatewayPid);
  const cl0 = cpuOf(s.clientPid);
  const [r, p] = await Promise.all([iperf3(s.a, s.b, s.target, SECONDS, streams, bitrate), withPing ? ping(s.a, s.target, SECONDS) : undefined]);
  const gb = r.bytes / 1e9;
  return { gbps: r.gbps, gwCpuPerGb: (cpuOf(s.gatewayPid) - gw0) / gb, clientCpuPerGb: (cpuOf(s.clientPid) - cl0) / gb, ping: p };
}

async function measureRound(s: Setup, into: Samples): Promise<void> {
  into.idle.push(await ping(s.a, s.target, IDLE_PING_SECONDS));
  const one = await measuredRun(s, 1, true);
  into.gbps1.push(one.gbps);
  into.gwCpu1.push(one.gwCpuPerGb);
  into.clientCpu1.push(one.clientCpuPerGb);
  into.loaded.push(one.ping!);
  const four = await measuredRun(s, 4, false);
  into.gbps4.push(four.gbps);
  into.gwCpu4.push(four.gwCpuPerGb);
  into.clientCpu4.push(four.clientCpuPerGb);
  const paced = await measuredRun(s, 1, true, `${PACED_MBIT}M`);
  into.paced.push(paced.ping!);
  into.gwCpuPaced.push(paced.gwCpuPerGb);
}

const LABELS: Record<CaseKey, string> = {
  a: "(a) veth",
  b: "(b)=(e) wg-go→wg-go",
  c: "(c) wg-go→glassgate",
  "c+admin": "(c) + admin polled",
  d: "(d) glassgate→glassgate",
};

function pooled(ps: PingResult[]): { p50: number; p99: number; lossPct: number } {
  const rtts = ps.flatMap((p) => p.rtts);
  const sent = ps.reduce((n, p) => n + p.sent, 0);
  return { p50: quantile(rtts, 0.5), p99: quantile(rtts, 0.99), lossPct: sent ? (1 - rtts.length / sent) * 100 : NaN };
}

/** The 1/5/15-minute load: how busy the shared machine was, beside figures that depend on it. */
function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

const fmt = (x: number, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
const fmtSpread = (xs: number[]) => { const { min, max } = spread(xs); return `${fmt(min)}–${fmt(max)}`; };
const ratio = (x: number, y: number) => fmt(x / y, 2) + "×";

function printTable(cases: CaseKey[], r: Record<string, Samples>): void {
  const width = 24;
  const row = (name: string, cell: (s: Samples) => string) =>
    console.log(name.padEnd(26) + cases.map((k) => (r[k] ? cell(r[k]!) : "failed").padStart(width)).join(""));
  console.log("\n" + "".padEnd(26) + cases.map((k) => LABELS[k].padStart(width)).join(""));
  row("TCP ×1 Gbit/s", (s) => fmt(median(s.gbps1)));
  row("TCP ×4 Gbit/s", (s) => fmt(median(s.gbps4)));
  row("gateway CPU-s/GB ×1", (s) => fmt(median(s.gwCpu1), 2));
  row("gateway CPU-s/GB ×4", (s) => fmt(median(s.gwCpu4), 2));
  row("client CPU-s/GB ×1", (s) => fmt(median(s.clientCpu1), 2));
  row("ping idle p50/p99 ms", (s) => { const p = pooled(s.idle); return `${fmt(p.p50)} / ${fmt(p.p99)}`; });
  row("ping ×1 load p50/p99 ms", (s) => { const p = pooled(s.loaded); return `${fmt(p.p50)} / ${fmt(p.p99)}`; });
  row("ping ×1 load lost %", (s) => fmt(pooled(s.loaded).lossPct, 1));
  row(`ping at ${PACED_MBIT} Mbit/s p50/p99`, (s) => { const p = pooled(s.paced); return `${fmt(p.p50)} / ${fmt(p.p99)}`; });
  row(`gw CPU-s/GB at ${PACED_MBIT} Mbit/s`, (s) => fmt(median(s.gwCpuPaced), 2));
  row("TCP ×1 spread Gbit/s", (s) => fmtSpread(s.gbps1));
  row("TCP ×4 spread Gbit/s", (s) => fmtSpread(s.gbps4));

  const b = r.b, c = r.c, d = r.d, ca = r["c+admin"];
  if (b && c) {
    console.log(`\nc/b  Gbit/s: ×1 ${ratio(median(c.gbps1), median(b.gbps1))}, ×4 ${ratio(median(c.gbps4), median(b.gbps4))}`);
    console.log(`CPU-s/GB b/c (wireguard-go's ÷ glassgate's, goal ≥ 4.0): ×1 ${ratio(median(b.gwCpu1), median(c.gwCpu1))}, ×4 ${ratio(median(b.gwCpu4), median(c.gwCpu4))}`);
    console.log(`ping p99 under load c vs b (goal: c ≤ b): ${fmt(pooled(c.loaded).p99)} vs ${fmt(pooled(b.loaded).p99)} ms (c carries ${ratio(median(c.gbps1), median(b.gbps1))} b's traffic there)`);
    console.log(`ping p50/p99 at the same ${PACED_MBIT} Mbit/s, c vs b: ${fmt(pooled(c.paced).p50)}/${fmt(pooled(c.paced).p99)} vs ${fmt(pooled(b.paced).p50)}/${fmt(pooled(b.paced).p99)} ms; CPU-s/GB b/c there ${ratio(median(b.gwCpuPaced), median(c.gwCpuPaced))}`);
  }
  if (b && d) {
    console.log(`d/e  Gbit/s (goal ×1 ≥ 3.0): ×1 ${ratio(median(d.gbps1), median(b.gbps1))}, ×4 ${ratio(median(d.gbps4), median(b.gbps4))}`);
    console.log(`ping p99 under load d vs e: ${fmt(pooled(d.loaded).p99)} vs ${fmt(pooled(b.loaded).p99)} ms`);
  }
  if (c && ca) {
    const pct = (x: number, y: number) => `${((x / y - 1) * 100).toFixed(1)} %`;
    console.log(`admin UI polled, throughput change (goal within ±3 %): ×1 ${pct(median(ca.gbps1), median(c.gbps1))}, ×4 ${pct(median(ca.gbps4), median(c.gbps4))}`);
    console.log(`  spread without: ×1 ${fmtSpread(c.gbps1)}, ×4 ${fmtSpread(c.gbps4)}; with: ×1 ${fmtSpread(ca.gbps1)}, ×4 ${fmtSpread(ca.gbps4)} Gbit/s`);
  }
}

export async function runTunnelBench(): Promise<void> {
  const skip = skipReason(["ip", "wg", "wireguard-go", "iperf3", "ping", "ss"]);
  if (skip) {
    console.log(`\ntunnel bench skipped: ${skip}`);
    return;
  }
  const all: CaseKey[] = ["a", "b", "c", "c+admin", "d"];
  const wanted = process.env.BENCH_TUNNEL_CASES?.split(",").map((x) => x.trim());
  // "noadmin" leaves out the admin-polled variant of (c) (quicker runs when only CPU per GB is wanted).
  const cases = all.filter((k) => !wanted || wanted.includes(k) || (k === "c+admin" && wanted.includes("c") && !wanted.includes("noadmin")));
  const passed = Object.entries(process.env).filter(([k]) => k.startsWith("GLASSGATE_")).map(([k, v]) => `${k}=${v}`);
  console.log(`\nTunnel bench: iperf3 TCP ${SECONDS} s per run, ${ROUNDS} alternating rounds, medians; same two-namespace topology per case`);
  console.log(`glassgate environment: ${passed.length ? passed.join(" ") : "no GLASSGATE_* set (defaults)"}`);
  console.log(`load average at start: ${loadAverage()}`);

  const base = uniqueTag().slice(0, 6);
  const makers: Record<"a" | "b" | "c" | "d", (tag: string) => Promise<Setup>> = { a: setupVeth, b: setupWgGo, c: setupGlassgateGateway, d: setupGlassgateBoth };
  const setups: Partial<Record<"a" | "b" | "c" | "d", Setup>> = {};
  const results: Record<string, Samples> = {};
  // Interrupted by hand, the namespaces and peers must still go (cleanups are idempotent), and the
  // iperf3 or ping running right then, which no namespace owns.
  const interrupted = () => {
    console.error("interrupted: removing the namespaces");
    stopMeasurements();
    void Promise.allSettled(Object.values(setups).map((s) => s.cleanup())).then(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    for (const k of ["a", "b", "c", "d"] as const) {
      if (!cases.includes(k)) continue;
      try {
        const s = await makers[k](`${base}${k}`);
        setups[k] = s;
        await waitFor(`${k}: path up`, () => s.a.exec(["ping", "-c", "1", "-W", "1", s.target], { allowFail: true }).includes("1 received"), 20_000, 200);
        const who = (pid: number | undefined) => (pid === undefined ? "–" : describeProcess(pid));
        console.log(`${LABELS[k].padEnd(26)} up; measuring gateway ${who(s.gatewayPid)}; client ${who(s.clientPid)}`);
      } catch (e) {
        console.log(`${LABELS[k]}: setup failed, left out: ${(e as Error).message.slice(0, 400)}`);
      }
    }
    for (const k of cases) if (setups[k === "c+admin" ? "c" : k]) results[k] = emptySamples();
    for (let round = 0; round < ROUNDS; round++) {
      // Each round starts one case later, so no case always runs right after the same neighbour.
      for (const k of cases.map((_, i) => cases[(i + round) % cases.length]!)) {
        const s = setups[k === "c+admin" ? "c" : k];
        if (!s || !results[k]) continue;
        const load = k === "c+admin" ? startAdminLoad(s.b) : undefined;
        try {
          await measureRound(s, results[k]!);
        } catch (e) {
          console.log(`round ${round + 1} ${LABELS[k]}: failed, round left out: ${(e as Error).message.slice(0, 300)}`);
          continue;
        } finally {
          load?.kill();
        }
        const r = results[k]!;
        console.log(`round ${round + 1} ${LABELS[k].padEnd(26)} ×1 ${fmt(r.gbps1.at(-1)!)} ×4 ${fmt(r.gbps4.at(-1)!)} Gbit/s, gateway CPU-s/GB ×1 ${fmt(r.gwCpu1.at(-1)!, 2)} ×4 ${fmt(r.gwCpu4.at(-1)!, 2)}`);
      }
    }
  } finally {
    for (const s of Object.values(setups)) await s.cleanup();
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }
  console.log(`load average at end: ${loadAverage()}`);
  if (process.env.BENCH_TUNNEL_JSON) {
    writeFileSync(process.env.BENCH_TUNNEL_JSON, JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, env: passed, results }, null, 1));
    console.log(`raw samples written to ${process.env.BENCH_TUNNEL_JSON}`);
  }
  printTable(cases.filter((k) => results[k]), results);
  console.log("(e) is the (b) setup; CPU-s/GB = utime+stime of the process (all threads) ÷ GB received; RTT pooled over rounds.");
  console.log("Other work on this machine shares its cores: treat single figures as noisy, ratios from one run as the comparison.");
}

if (import.meta.main) await runTunnelBench();
