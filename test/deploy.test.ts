// The docker-compose deployment, kept from rotting: the compose file and every file it and the
// Dockerfile reference; the Prometheus config; and every Grafana panel's query, run by a real
// Prometheus against a live gateway with a connected wireguard-go client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN_TOKEN, Topology } from "./support/topology.ts";
import { missingCommands, sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const ROOT = join(import.meta.dir, "..");
const hasCompose = missingCommands(["docker-compose"]).length === 0;
const hasPromtool = missingCommands(["promtool"]).length === 0;
if (!hasCompose) console.warn("skipping docker-compose checks: docker-compose missing (.ci/run installs Debian docker-compose)");
if (!hasPromtool) console.warn("skipping Prometheus checks: promtool missing (.ci/run installs Debian prometheus)");

interface Panel {
  title: string;
  targets: { expr: string }[];
}
interface Dashboard {
  title: string;
  panels: Panel[];
  templating: { list: { name: string; query: { query: string } }[] };
}
const dashboards: Dashboard[] = readdirSync(join(ROOT, "dashboards")).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(readFileSync(join(ROOT, "dashboards", f), "utf8")));

/** A throwaway copy of the deploy files, as a fresh checkout has them (optionally with .env). */
function composeWorkdir(withEnv: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), "gg-compose-"));
  for (const f of ["docker-compose.yml", "Dockerfile", ".dockerignore", "deploy", "dashboards"]) cpSync(join(ROOT, f), join(dir, f), { recursive: true });
  if (withEnv) writeFileSync(join(dir, ".env"), readFileSync(join(ROOT, ".env.example"), "utf8"));
  return dir;
}

describe("docker-compose", () => {
  test.skipIf(!hasCompose)("docker-compose config accepts the file as checked out (no .env needed) and with .env", () => {
    const bare = spawnSync(["docker-compose", "config", "-q"], { cwd: composeWorkdir(false) });
    expect(bare.stderr.toString()).toBe("");
    expect(bare.exitCode).toBe(0);
    const dir = composeWorkdir(true);
    const r = spawnSync(["docker-compose", "config"], { cwd: dir });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    const cfg = Bun.YAML.parse(r.stdout.toString()) as { services: Record<string, Record<string, unknown>> };
    expect(Object.keys(cfg.services).sort()).toEqual(["coturn", "gateway", "grafana", "otel-collector", "prometheus"]);
    expect(cfg.services.coturn!.profiles).toEqual(["portal"]);
    expect(cfg.services.gateway!.cap_add).toEqual(["NET_ADMIN"]);
    expect(JSON.stringify(cfg.services.gateway!.ports)).toContain("127.0.0.1");
    expect(JSON.stringify(cfg.services.grafana!.environment)).toContain('"GF_AUTH_ANONYMOUS_ENABLED":"false"');
  });

  test("every file and build context the compose file and Dockerfile reference exists", () => {
    const compose = Bun.YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as {
      services: Record<string, { build?: string; volumes?: string[] }>;
    };
    const missing: string[] = [];
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.build && !existsSync(join(ROOT, svc.build, "Dockerfile"))) missing.push(`${name}: build ${svc.build}`);
      for (const v of svc.volumes ?? []) {
        const src = v.split(":")[0]!;
        if (src.startsWith(".") && !existsSync(join(ROOT, src))) missing.push(`${name}: ${src}`);
      }
    }
    for (const line of readFileSync(join(ROOT, "Dockerfile"), "utf8").split("\n")) {
      const m = /^COPY (?!--from)(.+) \S+$/.exec(line.trim());
      if (m) for (const src of m[1]!.split(/\s+/)) if (!existsSync(join(ROOT, src))) missing.push(`Dockerfile: ${src}`);
    }
    expect(missing).toEqual([]);
    expect(readFileSync(join(ROOT, "Dockerfile"), "utf8")).toContain("HEALTHCHECK");
    expect(readFileSync(join(ROOT, ".gitignore"), "utf8")).toContain(".env");
  });

  test.skipIf(!hasPromtool)("promtool check config passes for the Prometheus config", () => {
    const dir = mkdtempSync(join(tmpdir(), "gg-prom-"));
    writeFileSync(join(dir, "token"), "x\n");
    // The container path of the secret does not exist here; point it at a real file.
    const cfg = readFileSync(join(ROOT, "deploy/prometheus/prometheus.yml"), "utf8").replace("/run/glassgate/admin_token", join(dir, "token"));
    writeFileSync(join(dir, "prometheus.yml"), cfg);
    const r = spawnSync(["promtool", "check", "config", join(dir, "prometheus.yml")]);
    expect(r.exitCode).toBe(0);
  });

  test("dashboards only use metric names the gateway exports", () => {
    const exported = new Set(readFileSync(join(ROOT, "src/telemetry/metrics.ts"), "utf8").match(/"glassgate\.[a-z_.]+"/g)!.map((n) => n.slice(1, -1).replace(/\./g, "_")));
    for (const d of dashboards) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          for (const name of t.expr.match(/glassgate_[a-z_]+/g) ?? []) {
            const base = name.replace(/_(total|bucket|sum|count)$/, "");
            expect([...exported].some((e) => e === base)).toBe(true);
          }
        }
      }
    }
  });
});

const netSkip = skipReason(["ip", "wg", "wireguard-go", "ping", "prometheus", "promtool"]);
if (netSkip) console.warn(`skipping live Prometheus scrape test: ${netSkip}`);

describe.skipIf(netSkip !== undefined)("a real Prometheus scraping a live gateway", () => {
  let topo: Topology;
  let token: string;
  const PROM = "127.0.0.1:19090";

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 2);
    for (const c of topo.clients) await topo.configureClient(c);
    const dir = mkdtempSync(join(tmpdir(), "gg-prom-live-"));
    // As in docker-compose: the gateway creates the token file, Prometheus reads the same file.
    // Client 1's endpoint is in the gateway config, so the gateway can initiate to it (and time it).
    await topo.startGateway(
      { GLASSGATE_METRICS_PER_PEER: "1", GLASSGATE_ADMIN_TOKEN: "", GLASSGATE_ADMIN_TOKEN_FILE: join(dir, "token"), GLASSGATE_ADMIN_TOKEN_CREATE: "1" },
      2,
      { withEndpoints: [1] },
    );
    token = readFileSync(join(dir, "token"), "utf8").trim();
    expect(token).toMatch(/^gg_[A-Za-z0-9_-]{43}$/);
    expect(topo.api("/metrics", ADMIN_TOKEN).status).toBe(401); // the file's token replaced the test default
    writeFileSync(join(dir, "prometheus.yml"), [
      "global: { scrape_interval: 1s, evaluation_interval: 1s }",
      "scrape_configs:",
      "  - job_name: glassgate",
      `    authorization: { type: Bearer, credentials_file: ${join(dir, "token")} }`,
      "    static_configs: [ { targets: ['127.0.0.1:8080'] } ]",
    ].join("\n"));
    topo.gw.start(["prometheus", `--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=${PROM}`]);
    // Traffic for every panel: client 0 connects (gateway responds), the gateway initiates to
    // client 1 (a handshake round trip to time), and garbage gives drops by reason.
    expect(sh(["ip", "netns", "exec", topo.clients[0]!.ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", topo.lanIp], { allowFail: true })).toContain("3 received");
    expect(topo.lan.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", topo.clients[1]!.tunnelIp], { allowFail: true })).toMatch(/[1-3] received/);
    sh(["ip", "netns", "exec", topo.clients[0]!.ns.name, "bun", "-e",
      `import d from "node:dgram"; const s = d.createSocket("udp4"); s.send(new Uint8Array(5), 52625, "${topo.gwUnderlayFor(topo.clients[0]!)}", () => s.close());`]);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  function promQuery(expr: string): { resultType: string; result: unknown[] } {
    const script = `const r = await fetch("http://${PROM}/api/v1/query?query=" + encodeURIComponent(${JSON.stringify(expr)}));` +
      `process.stdout.write(await r.text());`;
    const body = JSON.parse(topo.gw.exec(["bun", "-e", script])) as { status: string; error?: string; data: { resultType: string; result: unknown[] } };
    if (body.status !== "success") throw new Error(`${expr}: ${body.error}`);
    return body.data;
  }

  test("promtool check metrics passes on the live /metrics", () => {
    const text = topo.api("/metrics", token).body;
    const r = spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text) });
    expect(r.stdout.toString() + r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });

  test("every expression of every dashboard panel returns at least one series", async () => {
    // Enough scrapes for rate() windows to have two samples.
    await waitFor("Prometheus to have scraped the gateway", () => promQuery('up{job="glassgate"} == 1').result.length > 0, 30_000, 500);
    await Bun.sleep(6_000);
    const peer = (promQuery('glassgate_peer_received_bytes_total{job="glassgate"} > 0').result[0] as { metric: { public_key: string } } | undefined)?.metric.public_key;
    expect(peer).toBeDefined();
    const empty: string[] = [];
    for (const d of dashboards) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          const expr = t.expr.replaceAll("$__rate_interval", "30s").replaceAll("$peer", peer!);
          if (promQuery(expr).result.length === 0) empty.push(`${d.title} / ${p.title}: ${expr}`);
        }
      }
      for (const v of d.templating.list) {
        const m = /^label_values\((.+), (\w+)\)$/.exec(v.query.query)!;
        if (promQuery(m[1]!).result.length === 0) empty.push(`${d.title} / variable ${v.name}`);
      }
    }
    expect(empty).toEqual([]);
  }, 60_000);
});
