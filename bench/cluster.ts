// Several gateways on one PostgreSQL (issue 14): `bun run bench:cluster`. 3 gateways (each `glassgate
// up` in its own namespace, own --data and key) on one private PostgreSQL holding 1 000 peers: how
// long each takes to be ready (all three started together, as a cluster restart does — they meet
// at the migration lock), then 100 peer changes (50 creates, then their 50 deletes) through the
// first gateway's admin API, one at a time, and how long each takes to reach the other two: from
// the API request to the other gateway's own log line for it ("peer applied" / "peer removed from
// the data plane", stamped by that gateway's clock — the same host clock as ours). Not part of
// `bun run bench`: it needs PostgreSQL and about a minute. Needs root (namespaces, runuser), the
// postgresql server binaries, ip. BENCH_CLUSTER_GATEWAYS / _PEERS / _CHANGES change the 3 / 1000 / 100.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { spawn, type Subprocess } from "bun";
import { encodeKey, generatePrivateKey } from "../src/crypto/x25519.ts";
import { PgStore } from "../src/store/pg-store.ts";
import { peers as pgPeers } from "../src/store/schema-pg.ts";
import { Netns, skipReason, uniqueTag, vethInto, waitFor } from "../test/support/netns.ts";
import { postgresSkipReason, TestPostgres } from "../test/support/postgres.ts";
import { watch, type Watched } from "../test/support/process-lines.ts";
import { idlePeer } from "./peers-at-scale.ts";

const ROOT = join(import.meta.dir, "..");
const GATEWAYS = Number(process.env.BENCH_CLUSTER_GATEWAYS ?? 3);
const PEERS = Number(process.env.BENCH_CLUSTER_PEERS ?? 1000);
const CHANGES = Number(process.env.BENCH_CLUSTER_CHANGES ?? 100);
const TOKEN = "bench-cluster-token-0123456789";

interface Gw {
  index: number;
  ns: Netns;
  admin: string;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  log: Watched;
  spawnedAt: number;
}

/** Wall-clock milliseconds with a fraction (log lines carry wall-clock ISO times). */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** 1 000 rows as the admin API would make them, in one transaction, straight into PostgreSQL. */
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

export async function runClusterBench(): Promise<void> {
  const skip = skipReason(["ip"]) ?? postgresSkipReason();
  if (skip) {
    console.log(`\ncluster bench skipped: ${skip}`);
    return;
  }
  const tag = uniqueTag();
  const dir = mkdtempSync(join(tmpdir(), "gg-cluster-"));
  const pg = TestPostgres.start();
  const gws: Gw[] = [];
  const namespaces: Netns[] = [];
  try {
    const url = pg.createDatabase("glassgate_bench");
    await seed(url);

    // Start all gateways at once; each gets a veth to the host so this process reaches its admin.
    for (let k = 0; k < GATEWAYS; k++) {
      const ns = new Netns(`gg-cl${k}-${tag}`);
      namespaces.push(ns);
      const { nsAddr } = vethInto(ns, `clh${k}${tag}`, `cln${k}${tag}`, (Number(tag) + k) % 16000);
      const conf = join(dir, `gw${k}.conf`);
      writeFileSync(conf, `[Interface]\nPrivateKey = ${encodeKey(generatePrivateKey())}\nAddress = 10.100.0.1/16\nListenPort = 51820\n`, { mode: 0o600 });
      const spawnedAt = nowMs();
      const proc = spawn(
        ["ip", "netns", "exec", ns.name, "bun", "run", join(ROOT, "src/cli.ts"), "up", "--config", conf, "--interface", `gcl${k}${tag}`,
          "--admin", `${nsAddr}:8080`, "--data", join(dir, `data${k}`)],
        { cwd: ROOT, env: { ...process.env, GLASSGATE_LOG: "info", GLASSGATE_ADMIN_TOKEN: TOKEN, DATABASE_URL: url }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
      );
      gws.push({ index: k, ns, admin: `${nsAddr}:8080`, proc, log: watch(proc, `gw${k}`, "stderr"), spawnedAt });
    }
    const ready = await Promise.all(gws.map(async (g) => {
      const up = await g.log.next((l) => l.msg === "gateway up", "gateway up", 120_000);
      const upMs = Date.parse(String(up.ts)) - g.spawnedAt;
      // Ready for its peers: the API lists every seeded one (the local mirror is filled).
      await waitFor(`gw${g.index} to list ${PEERS} peers`, async () => {
        const r = await api(g, "GET", "/api/peers");
        return r.status === 200 && (r.json.peers as { source?: string }[]).filter((p) => p.source !== "file").length >= PEERS;
      }, 60_000, 50);
      return { upMs, peersMs: nowMs() - g.spawnedAt };
    }));

    // 100 changes through gw0, one at a time; each waits until both others have it.
    const writer = gws[0]!;
    const others = gws.slice(1);
    const fromRequest: number[] = [];
    const fromResponse: number[] = [];
    const apiMs: number[] = [];
    const created: { id: string; name: string; publicKey: string }[] = [];
    let missed = 0;
    for (let i = 0; i < CHANGES; i++) {
      const create = i < CHANGES / 2;
      let match: (l: Record<string, unknown>) => boolean;
      const t0 = nowMs();
      if (create) {
        const p = idlePeer(PEERS + 1000 + i);
        const name = `bench-change-${i}`;
        const r = await api(writer, "POST", "/api/peers", { name, publicKey: p.publicKey, allowedIps: p.allowedIp });
        if (r.status !== 201) throw new Error(`POST /api/peers: ${r.status} ${JSON.stringify(r.json)}`);
        created.push({ id: r.json.id, name, publicKey: p.publicKey });
        match = (l) => l.msg === "peer applied" && l.peer === name;
      } else {
        const c = created[i - Math.ceil(CHANGES / 2)]!;
        const r = await api(writer, "DELETE", `/api/peers/${c.id}`);
        if (r.status !== 204) throw new Error(`DELETE /api/peers: ${r.status} ${JSON.stringify(r.json)}`);
        match = (l) => l.msg === "peer removed from the data plane" && l.public_key === c.publicKey;
      }
      const t1 = nowMs();
      apiMs.push(t1 - t0);
      for (const g of others) {
        try {
          const line = await g.log.next(match, `change ${i}`, 10_000);
          const at = Date.parse(String(line.ts));
          fromRequest.push(at - t0);
          fromResponse.push(at - t1);
        } catch {
          missed++;
        }
      }
    }

    console.log(`\nCluster: ${GATEWAYS} gateways on one PostgreSQL ${basename(dirname(pg.bin))} (unix socket), ${PEERS} peers, started together on this host's ${navigator.hardwareConcurrency} cores`);
    console.log("gateway   'gateway up'   all peers listed");
    for (const [k, r] of ready.entries()) console.log(`gw${k}       ${(r.upMs / 1000).toFixed(2).padStart(7)} s     ${(r.peersMs / 1000).toFixed(2).padStart(7)} s`);
    const sort = (a: number[]) => [...a].sort((x, y) => x - y);
    const row = (label: string, a: number[]) => {
      const s = sort(a);
      console.log(`${label.padEnd(44)} p50 ${quantile(s, 0.5).toFixed(1).padStart(6)} ms  p99 ${quantile(s, 0.99).toFixed(1).padStart(6)} ms  max ${s.at(-1)!.toFixed(1).padStart(6)} ms`);
    };
    console.log(`\n${CHANGES} peer changes through gw0's API (${Math.floor(CHANGES / 2)} creates, then their deletes), seen by ${others.length} other gateways (${fromRequest.length} samples${missed ? `, ${missed} MISSED within 10 s` : ""})`);
    row("API request → response on gw0", apiMs);
    row("API request → other gateway's log line", fromRequest);
    row("API response → other gateway's log line", fromResponse);
  } finally {
    for (const g of gws) {
      if (g.proc.exitCode === null) g.proc.kill("SIGTERM");
      if ((await Promise.race([g.proc.exited, Bun.sleep(10_000).then(() => null)])) === null) g.proc.kill("SIGKILL");
    }
    for (const ns of namespaces) await ns.destroy();
    pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await runClusterBench();
