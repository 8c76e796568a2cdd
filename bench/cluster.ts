// Several gateways on one PostgreSQL (issue 14): `bun run bench:cluster`. 3 gateways (each `glassgate
// up` in its own namespace, own --data and key) on one private PostgreSQL holding 1 000 peers: how
// long each takes to be ready (all three started together, as a cluster restart does — they meet
// at the migration lock), then 100 peer changes (50 creates, then their 50 deletes) through the
// first gateway's admin API, one at a time, and how long each takes to reach the other two: from
// the API request to the other gateway's own log line for it ("peer applied" / "peer removed from
// the data plane", stamped by that gateway's clock — the same host clock as ours). References in
// the same run: one gateway alone on SQLite with the same peers, and one alone on PostgreSQL.
// Not part of `bun run bench`: it needs PostgreSQL and a few minutes. Needs root (namespaces,
// runuser), the postgresql server binaries, ip. BENCH_CLUSTER_GATEWAYS / _PEERS / _CHANGES change
// the 3 / 1000 / 100.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { encodeKey, generatePrivateKey } from "../src/crypto/x25519.ts";
import { PgStore } from "../src/store/pg-store.ts";
import { peers as pgPeers } from "../src/store/schema-pg.ts";
import { Netns, skipReason, uniqueTag, vethInto, waitFor } from "../test/support/netns.ts";
import { postgresSkipReason, TestPostgres } from "../test/support/postgres.ts";
import { watch, type Line, type Watched } from "../test/support/process-lines.ts";
import { idlePeer, seedStorePeers } from "./peers-at-scale.ts";
import { cpuSeconds } from "./support.ts";

const ROOT = join(import.meta.dir, "..");
const GATEWAYS = Number(process.env.BENCH_CLUSTER_GATEWAYS ?? 3);
const PEERS = Number(process.env.BENCH_CLUSTER_PEERS ?? 1000);
const CHANGES = Number(process.env.BENCH_CLUSTER_CHANGES ?? 100);
/** Creates timed on each reference gateway. */
const REF_CREATES = 20;
const TOKEN = "bench-cluster-token-0123456789";

interface Gw {
  label: string;
  admin: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  log: Watched;
  spawnedAt: number;
}

interface Ready {
  upMs: number;
  /** CPU-seconds the gateway had used when it said "gateway up": waiting (the lock, the database) costs none. */
  upCpu: number;
  peersMs: number;
}

/** Wall-clock milliseconds with a fraction (log lines carry wall-clock ISO times). */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
const ms = (v: number) => `${v.toFixed(1).padStart(7)} ms`;
const secs = (v: number) => `${(v / 1000).toFixed(2).padStart(7)} s`;
const stats = (a: number[]) => {
  const s = sorted(a);
  return `p50 ${ms(quantile(s, 0.5))}  p99 ${ms(quantile(s, 0.99))}  max ${ms(s.at(-1)!)}`;
};

/** PEERS rows as the admin API would make them, in one transaction, straight into PostgreSQL. */
async function seed(url: string): Promise<void> {
  const pg = await PgStore.open(url, "bench-seed"); // also applies the migrations
  try {
    const rows = Array.from({ length: PEERS }, (_, i) => {
      const p = idlePeer(i);
      return { id: crypto.randomUUID(), name: `idle-${i}`, publicKey: p.publicKey, allowedIps: p.allowedIp, persistentKeepalive: 0, enabled: true };
    });
    await pg.db.transaction(async (tx) => {
      for (let i = 0; i < rows.length; i += 500) await tx.insert(pgPeers).values(rows.slice(i, i + 500));
    });
  } finally {
    await pg.close();
  }
}

async function api(gw: Gw, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`http://${gw.admin}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

class Bench {
  readonly tag = uniqueTag();
  readonly dir = mkdtempSync(join(tmpdir(), "gg-cluster-"));
  readonly namespaces: Netns[] = [];
  /** Every gateway started (stopped in the end whatever happens). */
  readonly gws: Gw[] = [];
  #slots = 0;

  /**
   * A gateway in a namespace of its own with a veth to the host (so this process reaches its admin
   * API). Returns the spawn, so several prepared gateways can be spawned back to back.
   */
  prepare(label: string, env: Record<string, string>): () => Gw {
    const k = this.#slots++;
    const ns = new Netns(`gg-cl${k}-${this.tag}`);
    this.namespaces.push(ns);
    const { nsAddr } = vethInto(ns, `clh${k}${this.tag}`, `cln${k}${this.tag}`, (Number(this.tag) + k) % 16000);
    const conf = join(this.dir, `${label}.conf`);
    writeFileSync(conf, `[Interface]\nPrivateKey = ${encodeKey(generatePrivateKey())}\nAddress = 10.100.0.1/16\nListenPort = 51820\n`, { mode: 0o600 });
    return () => {
      const spawnedAt = nowMs();
      const proc = spawn(
        ["ip", "netns", "exec", ns.name, "bun", "run", join(ROOT, "src/cli.ts"), "up", "--config", conf, "--interface", `gcl${k}${this.tag}`,
          "--admin", `${nsAddr}:8080`, "--data", this.dataDir(label)],
        { cwd: ROOT, env: { ...process.env, GLASSGATE_LOG: "info", GLASSGATE_ADMIN_TOKEN: TOKEN, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      const g = { label, admin: `${nsAddr}:8080`, proc, log: watch(proc, label, "stderr"), spawnedAt };
      this.gws.push(g);
      return g;
    };
  }

  dataDir(label: string): string {
    return join(this.dir, `data-${label}`);
  }

  async stop(list: Gw[]): Promise<void> {
    for (const g of list) if (g.proc.exitCode === null) g.proc.kill("SIGTERM");
    for (const g of list) {
      if ((await Promise.race([g.proc.exited, Bun.sleep(10_000).then(() => null)])) === null) g.proc.kill("SIGKILL");
    }
  }

  async destroy(): Promise<void> {
    await this.stop(this.gws);
    for (const ns of this.namespaces) await ns.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Spawn → "gateway up", and spawn → the API lists every seeded peer (store or mirror filled). */
async function readyOf(g: Gw): Promise<Ready> {
  const up = await g.log.next((l) => l.msg === "gateway up", "gateway up", 120_000);
  const upCpu = cpuSeconds(g.proc.pid);
  const upMs = Date.parse(String(up.ts)) - g.spawnedAt;
  await waitFor(`${g.label} to list ${PEERS} peers`, async () => {
    const r = await api(g, "GET", "/api/peers");
    return r.status === 200 && (r.json.peers as { source?: string }[]).filter((p) => p.source !== "file").length >= PEERS;
  }, 60_000, 50);
  return { upMs, upCpu, peersMs: nowMs() - g.spawnedAt };
}

/** `n` creates through `g`'s API, one at a time: each request's duration (ms). */
async function timedCreates(g: Gw, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = idlePeer(PEERS + 500 + i);
    const t0 = nowMs();
    const r = await api(g, "POST", "/api/peers", { name: `${g.label}-${i}`, publicKey: p.publicKey, allowedIps: p.allowedIp });
    if (r.status !== 201) throw new Error(`POST /api/peers on ${g.label}: ${r.status} ${JSON.stringify(r.json)}`);
    out.push(nowMs() - t0);
  }
  return out;
}

export async function runClusterBench(): Promise<void> {
  const skip = skipReason(["ip"]) ?? postgresSkipReason();
  if (skip) {
    console.log(`\ncluster bench skipped: ${skip}`);
    return;
  }
  const bench = new Bench();
  const pg = TestPostgres.start();
  try {
    // References: one gateway alone on SQLite with the same peers in its store, then one alone on
    // (another database of) the same PostgreSQL.
    const refs: { label: string; ready: Ready; createMs: number[] }[] = [];
    seedStorePeers(bench.dataDir("solo-sqlite"), PEERS, 0);
    const soloUrl = pg.createDatabase("glassgate_solo");
    await seed(soloUrl);
    const solos = [
      ["1 gateway alone, SQLite (reference)", bench.prepare("solo-sqlite", {})],
      ["1 gateway alone, PostgreSQL", bench.prepare("solo-pg", { DATABASE_URL: soloUrl })],
    ] as const;
    for (const [label, spawnIt] of solos) {
      const g = spawnIt();
      const ready = await readyOf(g);
      refs.push({ label, ready, createMs: await timedCreates(g, REF_CREATES) });
      await bench.stop([g]);
    }

    // The cluster: GATEWAYS gateways on one database, spawned together.
    const url = pg.createDatabase("glassgate_bench");
    await seed(url);
    const spawns = Array.from({ length: GATEWAYS }, (_, k) => bench.prepare(`gw${k}`, { DATABASE_URL: url }));
    const cluster = spawns.map((s) => s());
    const ready = await Promise.all(cluster.map(readyOf));

    // CHANGES changes through gw0, one at a time; each waits until every other gateway has it.
    const writer = cluster[0]!;
    const others = cluster.slice(1);
    const apiMs: number[] = [];
    const ownMs: number[] = [];
    const fromRequest: number[] = [];
    const fromResponse: number[] = [];
    const created: { id: string; publicKey: string }[] = [];
    let missed = 0;
    const cpu0 = cluster.map((g) => cpuSeconds(g.proc.pid));
    for (let i = 0; i < CHANGES; i++) {
      let match: (l: Line) => boolean;
      const t0 = nowMs();
      if (i < CHANGES / 2) {
        const p = idlePeer(PEERS + 1000 + i);
        const name = `change-${i}`;
        const r = await api(writer, "POST", "/api/peers", { name, publicKey: p.publicKey, allowedIps: p.allowedIp });
        if (r.status !== 201) throw new Error(`POST /api/peers: ${r.status} ${JSON.stringify(r.json)}`);
        created.push({ id: r.json.id, publicKey: p.publicKey });
        match = (l) => l.msg === "peer applied" && l.peer === name;
      } else {
        const c = created[i - Math.ceil(CHANGES / 2)]!;
        const r = await api(writer, "DELETE", `/api/peers/${c.id}`);
        if (r.status !== 204) throw new Error(`DELETE /api/peers: ${r.status} ${JSON.stringify(r.json)}`);
        match = (l) => l.msg === "peer removed from the data plane" && l.public_key === c.publicKey;
      }
      const t1 = nowMs();
      apiMs.push(t1 - t0);
      ownMs.push(Date.parse(String((await writer.log.next(match, `change ${i} on the writer`, 10_000)).ts)) - t0);
      for (const g of others) {
        try {
          const at = Date.parse(String((await g.log.next(match, `change ${i}`, 10_000)).ts));
          fromRequest.push(at - t0);
          fromResponse.push(at - t1);
        } catch {
          missed++;
        }
      }
    }

    const cpuPerChange = cluster.map((g, k) => ((cpuSeconds(g.proc.pid) - cpu0[k]!) / CHANGES) * 1000);
    console.log(`\nCluster: ${GATEWAYS} gateways on one PostgreSQL ${basename(dirname(pg.bin))} (unix socket), ${PEERS} peers; this host has ${navigator.hardwareConcurrency} cores`);
    console.log(`${"".padEnd(40)} 'gateway up' (CPU-s)     ${PEERS} peers listed   POST /api/peers p50 (${REF_CREATES}, one at a time)`);
    const cpu = (v: number) => `(${v.toFixed(2).padStart(5)})`;
    for (const r of refs) console.log(`${r.label.padEnd(40)} ${secs(r.ready.upMs)} ${cpu(r.ready.upCpu)}     ${secs(r.ready.peersMs)}      ${ms(quantile(sorted(r.createMs), 0.5))}`);
    for (const [k, r] of ready.entries()) console.log(`${`gw${k} (${GATEWAYS} started together)`.padEnd(40)} ${secs(r.upMs)} ${cpu(r.upCpu)}     ${secs(r.peersMs)}`);
    console.log(`\n${CHANGES} peer changes through gw0's API (${Math.ceil(CHANGES / 2)} creates, then their deletes), one at a time, seen by ${others.length} other gateways (${fromRequest.length} samples${missed ? `, ${missed} MISSED within 10 s` : ""})`);
    console.log(`${"API request → response on gw0".padEnd(44)} ${stats(apiMs)}`);
    console.log(`${"API request → gw0's own log line".padEnd(44)} ${stats(ownMs)}`);
    console.log(`${"API request → other gateway's log line".padEnd(44)} ${stats(fromRequest)}`);
    console.log(`${"API response → other gateway's log line".padEnd(44)} ${stats(fromResponse)}`);
    console.log(`CPU per change: ${cluster.map((g, k) => `${g.label}${k === 0 ? " (writer)" : ""} ${cpuPerChange[k]!.toFixed(0)} ms`).join(", ")}`);
    const within1s = fromRequest.filter((v) => v <= 1000).length;
    console.log(`within 1 s of the request (the issue's goal): ${within1s}/${fromRequest.length + missed}`);
  } finally {
    await bench.destroy();
    pg.stop();
  }
}

if (import.meta.main) await runClusterBench();
