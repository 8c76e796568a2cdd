// Handshake flood: how much of an established tunnel's throughput glassgate keeps while another
// namespace floods it with handshake initiations (valid mac1). All in one run, same topology:
//
//   client (wireguard-go, iperf3 -c) ──veth── gw (glassgate, iperf3 -s on its tunnel address) ──veth── flood
//
// Rounds alternate: no flood; a control flood of junk datagrams at the same rate (what receiving
// that many packets costs on this machine, the flooder's own CPU included); a flood from a key the
// gateway does not know (2 DH per message unless stopped); a flood from a key it knows (2 DH,
// plus a response's 2 more when accepted).
// The flooder answers cookies (bench/initiation-flooder.ts), so what protects the gateway is
// its load handling and the per-source limit. Prints medians, the ratio flood/no flood (goal
// ≥ 0.90), the flood rate achieved and the gateway's handshake drops by reason. The same series
// runs with wireguard-go as the server: the reference for what this machine lets any
// implementation keep under the same flood.
// Needs root, wireguard-go, wg and iperf3; everything it creates is removed at the end.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Netns, sh, skipReason, uniqueTag, waitFor } from "../test/support/netns.ts";

const SECONDS = Number(process.env.BENCH_FLOOD_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_FLOOD_ROUNDS ?? 3);
/** Datagrams per second the flooder aims for (one source address), one series per rate. */
const RATES = (process.env.BENCH_FLOOD_RATES ?? "2000,20000").split(",").map(Number);
const ROOT = join(import.meta.dir, "..");
const ADMIN_TOKEN = "bench-token";
const GW_PORT = 51820;
type Server = "glassgate" | "wireguard-go";
const SERVERS = (process.env.BENCH_FLOOD_SERVERS ?? "glassgate,wireguard-go").split(",") as Server[];

interface Topology {
  client: Netns;
  gw: Netns;
  flood: Netns;
  gwKey: Uint8Array;
  knownFloodKey: Uint8Array;
  server: Server;
  gateway: Subprocess<"ignore", "pipe", "pipe">;
  cleanup: () => Promise<void>;
}

function veth(tag: string, name: string, a: Netns, aAddr: string, b: Netns, bAddr: string): void {
  sh(["ip", "link", "add", `${name}a${tag}`, "type", "veth", "peer", "name", `${name}b${tag}`]);
  sh(["ip", "link", "set", `${name}a${tag}`, "netns", a.name]);
  sh(["ip", "link", "set", `${name}b${tag}`, "netns", b.name]);
  a.exec(["ip", "addr", "add", aAddr, "dev", `${name}a${tag}`]);
  b.exec(["ip", "addr", "add", bAddr, "dev", `${name}b${tag}`]);
  a.exec(["ip", "link", "set", `${name}a${tag}`, "up"]);
  b.exec(["ip", "link", "set", `${name}b${tag}`, "up"]);
}

async function setup(tag: string, server: Server): Promise<Topology> {
  const client = new Netns(`gg-fc-${tag}`);
  const gw = new Netns(`gg-fg-${tag}`);
  const flood = new Netns(`gg-ff-${tag}`);
  veth(tag, "fc", client, "10.206.0.2/30", gw, "10.206.0.1/30");
  veth(tag, "ff", flood, "10.206.1.2/30", gw, "10.206.1.1/30");
  const dir = mkdtempSync(join(tmpdir(), "gg-flood-"));
  const gwKey = generatePrivateKey();
  const clientKey = generatePrivateKey();
  const knownFloodKey = generatePrivateKey();

  // The established tunnel: a stock wireguard-go client.
  const wgIf = `wfc${tag}`;
  client.start(["wireguard-go", "-f", wgIf], { LOG_LEVEL: "error" });
  await waitFor(wgIf, () => client.exec(["ip", "link", "show", wgIf], { allowFail: true }).includes(wgIf));
  writeFileSync(join(dir, "client.key"), encodeKey(clientKey));
  client.exec(["wg", "set", wgIf, "private-key", join(dir, "client.key"), "listen-port", "51820", "peer", encodeKey(publicKeyOf(gwKey)),
    "endpoint", `10.206.0.1:${GW_PORT}`, "allowed-ips", "10.207.0.0/24"]);
  client.exec(["ip", "addr", "add", "10.207.0.2/24", "dev", wgIf]);
  client.exec(["ip", "link", "set", wgIf, "mtu", "1420", "up"]);

  if (server === "wireguard-go") {
    const gwIf = `wfg${tag}`;
    const gateway = gw.start(["wireguard-go", "-f", gwIf], { LOG_LEVEL: "error" });
    await waitFor(gwIf, () => gw.exec(["ip", "link", "show", gwIf], { allowFail: true }).includes(gwIf));
    writeFileSync(join(dir, "gw.key"), encodeKey(gwKey));
    gw.exec(["wg", "set", gwIf, "private-key", join(dir, "gw.key"), "listen-port", String(GW_PORT),
      "peer", encodeKey(publicKeyOf(clientKey)), "allowed-ips", "10.207.0.2/32",
      "peer", encodeKey(publicKeyOf(knownFloodKey)), "allowed-ips", "10.207.0.50/32"]);
    gw.exec(["ip", "addr", "add", "10.207.0.1/24", "dev", gwIf]);
    gw.exec(["ip", "link", "set", gwIf, "mtu", "1420", "up"]);
    return { client, gw, flood, gwKey, knownFloodKey, server, gateway, cleanup: async () => { for (const ns of [client, flood, gw]) await ns.destroy(); } };
  }

  const conf = join(dir, "gw.conf");
  writeFileSync(conf, [
    "[Interface]", `PrivateKey = ${encodeKey(gwKey)}`, "Address = 10.207.0.1/24", `ListenPort = ${GW_PORT}`, "",
    "[Peer]", `PublicKey = ${encodeKey(publicKeyOf(clientKey))}`, "AllowedIPs = 10.207.0.2/32", "",
    "[Peer]", `PublicKey = ${encodeKey(publicKeyOf(knownFloodKey))}`, "AllowedIPs = 10.207.0.50/32", "",
  ].join("\n"));
  const gateway: Subprocess<"ignore", "pipe", "pipe"> = spawn(
    ["ip", "netns", "exec", gw.name, "bun", "run", join(ROOT, "src/cli.ts"), "up", "--config", conf, "--interface", `gfg${tag}`, "--admin", "127.0.0.1:18081", "--data", join(dir, "data")],
    { cwd: ROOT, env: { ...process.env, GLASSGATE_LOG: "warn", GLASSGATE_ADMIN_TOKEN: ADMIN_TOKEN }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  await waitFor("glassgate TUN", () => gw.exec(["ip", "link", "show", `gfg${tag}`], { allowFail: true }).includes("UP"), 20_000);
  return {
    client, gw, flood, gwKey, knownFloodKey, server, gateway,
    cleanup: async () => {
      gateway.kill("SIGTERM");
      await Promise.race([gateway.exited, Bun.sleep(3000)]);
      if (gateway.exitCode === null) gateway.kill("SIGKILL");
      for (const ns of [client, flood, gw]) await ns.destroy();
    },
  };
}

async function iperf(t: Topology): Promise<number> {
  const server = t.gw.start(["iperf3", "-s", "-1", "-B", "10.207.0.1"]);
  await Bun.sleep(300);
  const out = t.client.exec(["iperf3", "-c", "10.207.0.1", "-t", String(SECONDS), "-J"], { allowFail: true });
  await Promise.race([server.exited, Bun.sleep(2000)]);
  try {
    return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
  } catch {
    return NaN;
  }
}

interface FloodReport { mode: string; sent: number; rate: number; cookies: number; cpuSeconds: number }

type FloodMode = "junk" | "unknown" | "known";
const MODES: FloodMode[] = ["junk", "unknown", "known"];

/** CPU seconds the gateway process has used so far (utime + stime from /proc, 100 ticks/s). */
function gatewayCpu(t: Topology): number {
  const fields = readFileSync(`/proc/${t.gateway.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A gateway that exited is the finding, not its missing /proc entry: say how it ended and what it wrote. */
async function stillRunning(t: Topology): Promise<void> {
  if (t.gateway.exitCode === null && t.gateway.signalCode === null) return;
  const stderr = t.gateway.stderr instanceof ReadableStream ? await new Response(t.gateway.stderr).text() : "";
  throw new Error(`the ${t.server} gateway exited (code ${t.gateway.exitCode}, signal ${t.gateway.signalCode}) during the flood bench: ${stderr.slice(-2000)}`);
}

/** iperf3 through the tunnel, and the gateway's CPU (cores) meanwhile. */
async function measured(t: Topology): Promise<{ gbps: number; cpu: number }> {
  await stillRunning(t);
  const c0 = gatewayCpu(t);
  const t0 = performance.now();
  const gbps = await iperf(t);
  await stillRunning(t);
  return { gbps, cpu: (gatewayCpu(t) - c0) / ((performance.now() - t0) / 1000) };
}

async function iperfUnderFlood(t: Topology, mode: FloodMode, rate: number): Promise<{ gbps: number; cpu: number; flood: FloodReport }> {
  const args = ["bun", join(import.meta.dir, "initiation-flooder.ts"), encodeKey(publicKeyOf(t.gwKey)), "10.206.1.1", String(GW_PORT), mode];
  if (mode === "known") args.push(encodeKey(t.knownFloodKey));
  args.push(String(rate), String(SECONDS + 1.5));
  const flooder = t.flood.start(args);
  const reader = flooder.stdout.getReader();
  let text = "";
  while (!text.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`flooder exited before it was ready: ${await new Response(flooder.stderr).text()}`);
    text += new TextDecoder().decode(value);
  }
  await Bun.sleep(500); // let the flood reach its steady state before measuring
  const { gbps, cpu } = await measured(t);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  await flooder.exited;
  const line = text.split("\n").find((l) => l.startsWith("{"));
  if (!line) throw new Error(`flooder printed no report: ${text} ${await new Response(flooder.stderr).text()}`);
  return { gbps, cpu, flood: JSON.parse(line) };
}

function metrics(t: Topology): string {
  const script = `const r = await fetch("http://127.0.0.1:18081/metrics", { headers: { authorization: "Bearer ${ADMIN_TOKEN}" } }); process.stdout.write(await r.text());`;
  return t.gw.exec(["bun", "-e", script], { allowFail: true });
}

export async function runHandshakeFloodBench(): Promise<void> {
  const skip = skipReason(["ip", "wg", "wireguard-go", "iperf3"]);
  if (skip) {
    console.log(`\nhandshake flood bench skipped: ${skip}`);
    return;
  }
  console.log(`\nHandshake flood: iperf3 ${SECONDS}s through an established tunnel from a wireguard-go client, without and with a flood from one source ` +
    `(junk control, then initiations with valid mac1) at ${RATES.join(" and ")} datagrams/s; ${ROUNDS} alternating rounds, medians; servers: ${SERVERS.join(", ")}`);
  const kept: Record<string, number> = {};
  for (const server of SERVERS) {
    const r = await series(server);
    for (const [k, v] of Object.entries(r)) kept[`${server} ${k}`] = v;
  }
  if (SERVERS.length === 2) {
    console.log("share kept, glassgate vs wireguard-go under the same flood:");
    for (const rate of RATES) {
      for (const mode of MODES) {
        const g = kept[`glassgate ${mode}@${rate}`]!;
        const w = kept[`wireguard-go ${mode}@${rate}`]!;
        console.log(`  ${`${mode}@${rate}`.padEnd(14)} glassgate ${(g * 100).toFixed(1)} %, wireguard-go ${(w * 100).toFixed(1)} %`);
      }
    }
  }
}

/** One server's rounds; returns the share of throughput kept per `mode@rate`. */
async function series(server: Server): Promise<Record<string, number>> {
  console.log(`${server} as the server:`);
  const t = await setup(uniqueTag(), server);
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  type Run = { gbps: number; cpu: number; flood?: FloodReport };
  const runs = new Map<string, Run[]>();
  const add = (key: string, r: Run) => runs.set(key, [...(runs.get(key) ?? []), r]);
  const kept: Record<string, number> = {};
  try {
    await waitFor("tunnel up", () => t.client.exec(["ping", "-c", "1", "-W", "1", "10.207.0.1"], { allowFail: true }).includes("1 received"), 20_000, 200);
    await iperf(t); // warm-up (JIT, socket buffers), not counted
    for (let round = 0; round < ROUNDS; round++) {
      const line: string[] = [];
      const none = await measured(t);
      add("none", none);
      line.push(`none ${none.gbps.toFixed(3)}`);
      for (const rate of RATES) {
        for (const mode of MODES) {
          const r = await iperfUnderFlood(t, mode, rate);
          add(`${mode}@${rate}`, r);
          line.push(`${mode}@${rate} ${r.gbps.toFixed(3)}`);
        }
      }
      console.log(`  round ${round + 1} (Gbit/s): ${line.join(", ")}`);
    }
    const none = runs.get("none")!;
    const base = median(none.map((r) => r.gbps));
    console.log(`  no flood               ${base.toFixed(3)} Gbit/s, server CPU ${(median(none.map((r) => r.cpu)) * 100).toFixed(0)} % of a core`);
    for (const rate of RATES) {
      for (const mode of MODES) {
        const rs = runs.get(`${mode}@${rate}`)!;
        const gbps = median(rs.map((r) => r.gbps));
        kept[`${mode}@${rate}`] = gbps / base;
        const achieved = median(rs.map((r) => r.flood!.rate));
        const flooderCpu = median(rs.map((r) => r.flood!.cpuSeconds / (SECONDS + 1.5)));
        const name = mode === "junk" ? "junk (control)" : `${mode}-key initiations`;
        console.log(`  ${name.padEnd(22)} @ ${String(rate).padStart(5)}/s: ${gbps.toFixed(3)} Gbit/s, kept ${((gbps / base) * 100).toFixed(1)} %${mode === "junk" || server !== "glassgate" ? "" : " (goal ≥ 90 %)"}; ` +
          `achieved ${Math.round(achieved)}/s; server CPU ${(median(rs.map((r) => r.cpu)) * 100).toFixed(0)} %, flooder CPU ${(flooderCpu * 100).toFixed(0)} % of a core` +
          (mode === "junk" ? "" : `; cookies the flooder answered ${rs.map((r) => r.flood!.cookies).join("/")}`));
      }
    }
    if (server === "glassgate") {
      const drops = metrics(t).split("\n").filter((l) => /^glassgate_packets_dropped_total\{reason="(mac1|under_load|handshake_\w+|unknown_peer|replayed_initiation|initiation_flood|unknown_session)"\}/.test(l));
      console.log(`  gateway drops over the whole series:\n    ${drops.join("\n    ")}`);
    }
  } finally {
    await t.cleanup();
  }
  return kept;
}

if (import.meta.main) await runHandshakeFloodBench();
