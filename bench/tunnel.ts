// Tunnel throughput, all measured in one run on the same two-namespace topology:
//   (a) bare veth (the ceiling), (b) wireguard-go ↔ wireguard-go, (c) wireguard-go ↔ glassgate.
// iperf3 TCP, 1 and 4 streams; prints Gbit/s per case and glassgate's ratio to wireguard-go (c/b).
// Needs root, wireguard-go, wg and iperf3; everything it creates is removed at the end.
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Netns, sh, skipReason, uniqueTag, waitFor } from "../test/support/netns.ts";

const SECONDS = Number(process.env.BENCH_TUNNEL_SECONDS ?? 10);
const ROOT = join(import.meta.dir, "..");

interface Setup {
  a: Netns;
  b: Netns;
  target: string;
  cleanup: () => Promise<void>;
}

function underlay(tag: string): { a: Netns; b: Netns } {
  const a = new Netns(`gg-ba-${tag}`);
  const b = new Netns(`gg-bb-${tag}`);
  sh(["ip", "link", "add", `bva${tag}`, "type", "veth", "peer", "name", `bvb${tag}`]);
  sh(["ip", "link", "set", `bva${tag}`, "netns", a.name]);
  sh(["ip", "link", "set", `bvb${tag}`, "netns", b.name]);
  a.exec(["ip", "addr", "add", "10.203.0.1/24", "dev", `bva${tag}`]);
  b.exec(["ip", "addr", "add", "10.203.0.2/24", "dev", `bvb${tag}`]);
  a.exec(["ip", "link", "set", `bva${tag}`, "up"]);
  b.exec(["ip", "link", "set", `bvb${tag}`, "up"]);
  return { a, b };
}

async function wgGo(ns: Netns, ifname: string, key: Uint8Array, peer: Uint8Array, addr: string, endpoint?: string): Promise<void> {
  ns.start(["wireguard-go", "-f", ifname], { LOG_LEVEL: "error" });
  await waitFor(`${ifname}`, () => ns.exec(["ip", "link", "show", ifname], { allowFail: true }).includes(ifname));
  const dir = mkdtempSync(join(tmpdir(), "gg-bench-"));
  writeFileSync(join(dir, "key"), encodeKey(key));
  const args = ["wg", "set", ifname, "private-key", join(dir, "key"), "listen-port", "51820", "peer", encodeKey(publicKeyOf(peer)), "allowed-ips", "10.204.0.0/24"];
  if (endpoint) args.push("endpoint", endpoint);
  ns.exec(args);
  ns.exec(["ip", "addr", "add", `${addr}/24`, "dev", ifname]);
  ns.exec(["ip", "link", "set", ifname, "mtu", "1420", "up"]);
}

async function setupVeth(tag: string): Promise<Setup> {
  const { a, b } = underlay(tag);
  return { a, b, target: "10.203.0.2", cleanup: async () => { await a.destroy(); await b.destroy(); } };
}

async function setupWgGo(tag: string): Promise<Setup> {
  const { a, b } = underlay(tag);
  const ka = generatePrivateKey();
  const kb = generatePrivateKey();
  await wgGo(a, `wba${tag}`, ka, kb, "10.204.0.1", "10.203.0.2:51820");
  await wgGo(b, `wbb${tag}`, kb, ka, "10.204.0.2");
  return { a, b, target: "10.204.0.2", cleanup: async () => { await a.destroy(); await b.destroy(); } };
}

const ADMIN_TOKEN = "bench-token";

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

async function setupGlassgate(tag: string): Promise<Setup> {
  const { a, b } = underlay(tag);
  const ka = generatePrivateKey();
  const kb = generatePrivateKey();
  await wgGo(a, `wba${tag}`, ka, kb, "10.204.0.1", "10.203.0.2:51820");
  const dir = mkdtempSync(join(tmpdir(), "gg-bench-"));
  const conf = join(dir, "gw.conf");
  writeFileSync(conf, `[Interface]\nPrivateKey = ${encodeKey(kb)}\nAddress = 10.204.0.2/24\nListenPort = 51820\n\n[Peer]\nPublicKey = ${encodeKey(publicKeyOf(ka))}\nAllowedIPs = 10.204.0.1/32\n`);
  const gw: Subprocess<"ignore", "pipe", "pipe"> = spawn(
    ["ip", "netns", "exec", b.name, "bun", "run", join(ROOT, "src/cli.ts"), "up", "--config", conf, "--interface", `gbb${tag}`, "--admin", "127.0.0.1:18080", "--data", join(dir, "data")],
    { cwd: ROOT, env: { ...process.env, GLASSGATE_LOG: "warn", GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  await waitFor("glassgate TUN", () => b.exec(["ip", "link", "show", `gbb${tag}`], { allowFail: true }).includes("UP"), 20_000);
  return {
    a,
    b,
    target: "10.204.0.2",
    cleanup: async () => {
      gw.kill("SIGTERM");
      await Promise.race([gw.exited, Bun.sleep(3000)]);
      if (gw.exitCode === null) gw.kill("SIGKILL");
      await a.destroy();
      await b.destroy();
    },
  };
}

async function iperf(s: Setup, streams: number): Promise<number> {
  const server = s.b.start(["iperf3", "-s", "-1", "-B", s.target]);
  await Bun.sleep(300);
  const out = s.a.exec(["iperf3", "-c", s.target, "-t", String(SECONDS), "-P", String(streams), "-J"], { allowFail: true });
  await Promise.race([server.exited, Bun.sleep(2000)]);
  try {
    return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
  } catch {
    return NaN;
  }
}

export async function runTunnelBench(): Promise<void> {
  const skip = skipReason(["ip", "wg", "wireguard-go", "iperf3"]);
  if (skip) {
    console.log(`\ntunnel bench skipped: ${skip}`);
    return;
  }
  console.log(`\nTCP through the tunnel, iperf3 ${SECONDS}s, same two-namespace topology`);
  const results: Record<string, Record<number, number>> = {};
  const ROUNDS = Number(process.env.BENCH_TUNNEL_ROUNDS ?? 3);
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  for (const [name, make] of [["veth (ceiling)", setupVeth], ["wireguard-go ↔ wireguard-go", setupWgGo]] as const) {
    const s = await make(uniqueTag());
    try {
      await waitFor("path up", () => s.a.exec(["ping", "-c", "1", "-W", "1", s.target], { allowFail: true }).includes("1 received"), 20_000, 200);
      results[name] = {};
      for (const streams of [1, 4]) {
        results[name]![streams] = await iperf(s, streams);
        console.log(`${name.padEnd(30)} -P ${streams}  ${results[name]![streams]!.toFixed(3).padStart(7)} Gbit/s`);
      }
    } finally {
      await s.cleanup();
    }
  }
  // glassgate with and without the admin UI polled: one gateway, alternating rounds, medians —
  // the admin's cost is smaller than run-to-run noise, so single runs cannot show it.
  const s = await setupGlassgate(uniqueTag());
  const plain: Record<number, number[]> = { 1: [], 4: [] };
  const polled: Record<number, number[]> = { 1: [], 4: [] };
  try {
    await waitFor("path up", () => s.a.exec(["ping", "-c", "1", "-W", "1", s.target], { allowFail: true }).includes("1 received"), 20_000, 200);
    for (let round = 0; round < ROUNDS; round++) {
      for (const streams of [1, 4]) {
        plain[streams]!.push(await iperf(s, streams));
        const load = startAdminLoad(s.b);
        try {
          polled[streams]!.push(await iperf(s, streams));
        } finally {
          load.kill();
        }
      }
    }
  } finally {
    await s.cleanup();
  }
  results["wireguard-go ↔ glassgate"] = { 1: median(plain[1]!), 4: median(plain[4]!) };
  results["… with the admin UI polled"] = { 1: median(polled[1]!), 4: median(polled[4]!) };
  for (const name of ["wireguard-go ↔ glassgate", "… with the admin UI polled"]) {
    for (const streams of [1, 4]) console.log(`${name.padEnd(30)} -P ${streams}  ${results[name]![streams]!.toFixed(3).padStart(7)} Gbit/s (median of ${ROUNDS})`);
  }
  const b = results["wireguard-go ↔ wireguard-go"]!;
  const c = results["wireguard-go ↔ glassgate"]!;
  const d = results["… with the admin UI polled"]!;
  console.log(`ratio glassgate/wireguard-go (c/b): -P 1 ${(c[1]! / b[1]!).toFixed(2)}×, -P 4 ${(c[4]! / b[4]!).toFixed(2)}×`);
  console.log(`throughput change with the admin UI polled (d/c − 1): -P 1 ${((d[1]! / c[1]! - 1) * 100).toFixed(1)} %, -P 4 ${((d[4]! / c[4]! - 1) * 100).toFixed(1)} % (target: a drop of at most 3 %)`);
  console.log(`  runs without: -P 1 ${plain[1]!.map((x) => x.toFixed(3)).join(" ")}, -P 4 ${plain[4]!.map((x) => x.toFixed(3)).join(" ")}`);
  console.log(`  runs with:    -P 1 ${polled[1]!.map((x) => x.toFixed(3)).join(" ")}, -P 4 ${polled[4]!.map((x) => x.toFixed(3)).join(" ")}`);
}

if (import.meta.main) await runTunnelBench();
