// Peers at scale (issue 11 item 4): how long `glassgate up` takes to be ready, and how big it is,
// with 1 and with 10 000 configured peers (in the config file, in the store); and what 10 000 idle
// peers cost the data path: throughput and gateway CPU-seconds per GB for one busy wireguard-go
// client, alone vs among 10 000 idle peers. Needs root, wireguard-go, wg and iperf3; everything it
// creates is removed at the end. `BENCH_SCALE_PEERS` changes the 10 000.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/crypto/x25519.ts";
import { Store } from "../src/store/index.ts";
import { peers as peersTable } from "../src/store/schema.ts";
import { Netns, sh, skipReason, uniqueTag, waitFor } from "../test/support/netns.ts";

const ROOT = join(import.meta.dir, "..");
const PEERS = Number(process.env.BENCH_SCALE_PEERS ?? 10_000);
const SECONDS = Number(process.env.BENCH_TUNNEL_SECONDS ?? 10);

/**
 * The n-th idle peer: a random 32-byte public key (idle peers never handshake, so no private key
 * is needed — and deriving 10 000 would take the bench longer than the gateway) and a /32 in
 * 10.100.0.0/16 from .2 on (.1 is the gateway, the busy client sits outside at 10.99.0.2).
 */
export function idlePeer(n: number): { publicKey: string; allowedIp: string } {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const host = n + 2;
  return { publicKey: encodeKey(key), allowedIp: `10.100.${host >> 8}.${host & 255}/32` };
}

/** `[Peer]` sections for `count` idle peers, as a wg-quick file holds them. */
export function idlePeerSections(count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = idlePeer(i);
    out.push("[Peer]", `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.allowedIp}`, "");
  }
  return out.join("\n");
}

/**
 * `count` idle peers written into the store under `dataDir`, rows shaped as the admin API makes
 * them, in one transaction (PeerRepository.create checks every address against every row — fine
 * for a person, quadratic for 10 000 at once). Offset by `offset` so both sources can coexist.
 */
export function seedStorePeers(dataDir: string, count: number, offset = 50_000): void {
  const store = Store.open(dataDir);
  try {
    const now = Date.now();
    store.db.transaction((tx) => {
      for (let i = 0; i < count; i++) {
        const p = idlePeer(offset + i);
        tx.insert(peersTable).values({ id: crypto.randomUUID(), name: `idle-${i}`, publicKey: p.publicKey, allowedIps: p.allowedIp, persistentKeepalive: 0, enabled: true, createdAt: now, updatedAt: now }).run();
      }
    });
  } finally {
    store.close();
  }
}

export interface StartedGateway {
  process: Subprocess<"ignore", "pipe", "pipe">;
  /** Milliseconds from spawn to the "gateway up" log line. */
  readyMs: number;
  log: () => string;
  stop: () => Promise<number | null>;
}

/** Starts `glassgate up` in `ns` and waits for "gateway up" (the admin answers /healthz from then on). */
export async function startGateway(ns: Netns, conf: string, dataDir: string, ifname: string, adminPort: number, env: Record<string, string> = {}, bunFlags: string[] = []): Promise<StartedGateway> {
  const t0 = performance.now();
  const p: Subprocess<"ignore", "pipe", "pipe"> = spawn(
    ["ip", "netns", "exec", ns.name, "bun", ...bunFlags, "run", join(ROOT, "src/cli.ts"), "up", "--config", conf, "--interface", ifname, "--admin", `127.0.0.1:${adminPort}`, "--data", dataDir],
    { cwd: ROOT, env: { ...process.env, GLASSGATE_LOG: "info", GLASSGATE_ADMIN_TOKEN: "bench-token", ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  let log = "";
  let readyAt = 0;
  void (async () => {
    for await (const chunk of p.stderr) {
      log += new TextDecoder().decode(chunk);
      if (!readyAt && log.includes('"msg":"gateway up"')) readyAt = performance.now();
    }
  })();
  await waitFor("glassgate to be up", () => {
    if (p.exitCode !== null) throw new Error(`glassgate exited ${p.exitCode}: ${log.slice(-2000)}`);
    return readyAt > 0;
  }, 120_000, 10);
  return {
    process: p,
    readyMs: readyAt - t0,
    log: () => log,
    stop: async () => {
      if (p.exitCode !== null) return p.exitCode;
      p.kill("SIGTERM");
      const code = await Promise.race([p.exited, Bun.sleep(10_000).then(() => null)]);
      if (code === null) p.kill("SIGKILL");
      return code;
    },
  };
}

/** Resident set size in MB (VmRSS), and user+system CPU seconds of every thread, from /proc. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function cpuSeconds(pid: number): number {
  // Fields after the parenthesised command name: utime is the 14th field, stime the 15th (proc(5)).
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

function gatewayConf(dir: string, key: Uint8Array, extraPeers: string): string {
  const conf = join(dir, "gw.conf");
  writeFileSync(conf, `[Interface]\nPrivateKey = ${encodeKey(key)}\nAddress = 10.100.0.1/16\nListenPort = 51820\n\n${extraPeers}`, { mode: 0o600 });
  return conf;
}

interface StartupRow {
  label: string;
  readyMs: number;
  /** CPU-seconds the gateway had used when it said "gateway up": the start's cost even on a busy host. */
  readyCpu: number;
  rssMb: number;
  idleCpuPerSec: number;
}

/** One gateway start in a fresh namespace: ready time, RSS once up, and CPU per second while idle. */
async function measureStartup(label: string, filePeers: number, storePeers: number): Promise<StartupRow> {
  const tag = uniqueTag();
  const ns = new Netns(`gg-sc-${tag}`);
  const dir = mkdtempSync(join(tmpdir(), "gg-scale-"));
  try {
    const data = join(dir, "data");
    if (storePeers) seedStorePeers(data, storePeers);
    const conf = gatewayConf(dir, generatePrivateKey(), idlePeerSections(filePeers));
    const gw = await startGateway(ns, conf, data, `gsc${tag}`, 18090);
    try {
      const readyCpu = cpuSeconds(gw.process.pid);
      const rss = rssMb(gw.process.pid);
      // Idle cost: the periodic timers (peer re-apply, samples) with nothing happening.
      const c0 = cpuSeconds(gw.process.pid);
      await Bun.sleep(12_000);
      const idle = (cpuSeconds(gw.process.pid) - c0) / 12;
      return { label, readyMs: gw.readyMs, readyCpu, rssMb: Math.max(rss, rssMb(gw.process.pid)), idleCpuPerSec: idle };
    } finally {
      await gw.stop();
    }
  } finally {
    await ns.destroy();
  }
}

/** One busy wireguard-go client + iperf3 to the gateway's tunnel address; the gateway's CPU per GB. */
async function measureBusy(label: string, idle: number): Promise<{ label: string; gbits: number; cpuPerGb: number }> {
  const tag = uniqueTag();
  const a = new Netns(`gg-sa-${tag}`);
  const b = new Netns(`gg-sb-${tag}`);
  const dir = mkdtempSync(join(tmpdir(), "gg-scale-"));
  try {
    sh(["ip", "link", "add", `sva${tag}`, "type", "veth", "peer", "name", `svb${tag}`]);
    sh(["ip", "link", "set", `sva${tag}`, "netns", a.name]);
    sh(["ip", "link", "set", `svb${tag}`, "netns", b.name]);
    a.exec(["ip", "addr", "add", "10.203.0.1/24", "dev", `sva${tag}`]);
    b.exec(["ip", "addr", "add", "10.203.0.2/24", "dev", `svb${tag}`]);
    a.exec(["ip", "link", "set", `sva${tag}`, "up"]);
    b.exec(["ip", "link", "set", `svb${tag}`, "up"]);
    const ka = generatePrivateKey();
    const kb = generatePrivateKey();
    const wgIf = `wsa${tag}`;
    a.start(["wireguard-go", "-f", wgIf], { LOG_LEVEL: "error" });
    await waitFor(wgIf, () => a.exec(["ip", "link", "show", wgIf], { allowFail: true }).includes(wgIf));
    writeFileSync(join(dir, "key"), encodeKey(ka));
    a.exec(["wg", "set", wgIf, "private-key", join(dir, "key"), "listen-port", "51820", "peer", encodeKey(publicKeyOf(kb)), "allowed-ips", "10.100.0.0/16", "endpoint", "10.203.0.2:51820"]);
    a.exec(["ip", "addr", "add", "10.99.0.2/32", "dev", wgIf]);
    a.exec(["ip", "link", "set", wgIf, "mtu", "1420", "up"]);
    a.exec(["ip", "route", "add", "10.100.0.0/16", "dev", wgIf]);
    const busy = `[Peer]\nPublicKey = ${encodeKey(publicKeyOf(ka))}\nAllowedIPs = 10.99.0.2/32\n\n`;
    const conf = gatewayConf(dir, kb, busy + idlePeerSections(idle));
    // Info level: "gateway up" is an info line (and nothing logs per packet at info).
    const gw = await startGateway(b, conf, join(dir, "data"), `gsb${tag}`, 18091);
    try {
      await waitFor("path up", () => a.exec(["ping", "-c", "1", "-W", "1", "10.100.0.1"], { allowFail: true }).includes("1 received"), 20_000, 200);
      const server = b.start(["iperf3", "-s", "-1", "-B", "10.100.0.1"]);
      await Bun.sleep(300);
      const c0 = cpuSeconds(gw.process.pid);
      const out = a.exec(["iperf3", "-c", "10.100.0.1", "-t", String(SECONDS), "-J"], { allowFail: true });
      const cpu = cpuSeconds(gw.process.pid) - c0;
      await Promise.race([server.exited, Bun.sleep(2000)]);
      const end = JSON.parse(out).end;
      const bytes: number = end.sum_received.bytes;
      return { label, gbits: end.sum_received.bits_per_second / 1e9, cpuPerGb: cpu / (bytes / 1e9) };
    } finally {
      await gw.stop();
    }
  } finally {
    await a.destroy();
    await b.destroy();
  }
}

export async function runPeersAtScaleBench(): Promise<void> {
  const skip = skipReason(["ip", "wg", "wireguard-go", "iperf3"]);
  if (skip) {
    console.log(`\npeers-at-scale bench skipped: ${skip}`);
    return;
  }
  if (!process.env.BENCH_SCALE_BUSY_ONLY) await startupRows();
  if (process.env.BENCH_SCALE_STARTUP_ONLY) return;
  await busyRows();
}

async function startupRows(): Promise<void> {
  console.log(`\nPeers at scale: start to "gateway up", RSS once up, CPU while idle (goal: ${PEERS} peers ready < 2 s, RSS < 300 MB)`);
  for (const [label, file, store] of [["1 peer (file)", 1, 0], [`${PEERS} peers (file)`, PEERS, 0], [`${PEERS} peers (store)`, 0, PEERS], [`${PEERS} + ${PEERS} (file + store)`, PEERS, PEERS]] as const) {
    const r = await measureStartup(label, file, store);
    console.log(`${r.label.padEnd(32)} ready ${(r.readyMs / 1000).toFixed(2).padStart(6)} s (${r.readyCpu.toFixed(2).padStart(5)} CPU-s)  RSS ${r.rssMb.toFixed(0).padStart(4)} MB  idle CPU ${(r.idleCpuPerSec * 100).toFixed(1).padStart(5)} %`);
  }
}

async function busyRows(): Promise<void> {
  console.log(`\nOne busy wireguard-go client (iperf3 TCP ${SECONDS}s), alone vs among ${PEERS} idle peers`);
  const rows = [];
  for (const [label, idle] of [["1 peer", 0], [`1 busy + ${PEERS} idle`, PEERS]] as const) {
    const r = await measureBusy(label, idle);
    rows.push(r);
    console.log(`${r.label.padEnd(32)} ${r.gbits.toFixed(3).padStart(7)} Gbit/s  gateway ${r.cpuPerGb.toFixed(2).padStart(6)} CPU-s/GB`);
  }
  console.log(`ratio CPU-s/GB with ${PEERS} idle vs alone: ${(rows[1]!.cpuPerGb / rows[0]!.cpuPerGb).toFixed(2)}× (goal: ~1.00×)`);
}

if (import.meta.main) await runPeersAtScaleBench();
