// The docker-compose deployment, kept from rotting: the compose file and every file it and the
// Dockerfile reference; the Prometheus config; and every Grafana panel's query, run by a real
// Prometheus against a live gateway with a connected wireguard-go client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
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
  for (const f of ["docker-compose.yml", "Dockerfile", ".dockerignore", "deploy", "dashboards", "secrets"]) cpSync(join(ROOT, f), join(dir, f), { recursive: true });
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
    expect(Object.keys(cfg.services).sort()).toEqual(["coturn", "gateway", "gateway-a", "gateway-b", "grafana", "otel-collector", "postgres", "prometheus", "tempo", "tempo-init"]);
    expect(cfg.services.coturn!.profiles).toEqual(["portal"]);
    // What `docker compose up -d` starts is unchanged: the profiles' services stay out.
    expect(Object.entries(cfg.services).filter(([, s]) => !s.profiles).map(([n]) => n).sort()).toEqual(["gateway", "grafana", "otel-collector", "prometheus", "tempo", "tempo-init"]);
    expect(cfg.services.gateway!.cap_add).toEqual(["NET_ADMIN"]);
    expect(JSON.stringify(cfg.services.gateway!.ports)).toContain("127.0.0.1");
    expect(JSON.stringify(cfg.services.grafana!.environment)).toContain('"GF_AUTH_ANONYMOUS_ENABLED":"false"');
  });

  test.skipIf(!hasCompose)("the postgres profile: a pinned official PostgreSQL with a volume, a pg_isready healthcheck and its password from a secret file; two gateways that wait for it to be healthy", () => {
    type Service = {
      image?: string; profiles?: string[]; environment?: Record<string, string>; volumes?: string[]; ports?: string[];
      secrets?: { source: string }[]; healthcheck?: { test: string[] }; depends_on?: Record<string, { condition: string }>;
    };
    type Config = { services: Record<string, Service>; secrets: Record<string, { file: string }>; volumes: Record<string, unknown> };
    const dir = composeWorkdir(false);
    // Debian's docker-compose 1.29 validates every profile's services either way; both must pass.
    const without = spawnSync(["docker-compose", "config"], { cwd: dir });
    const withPg = spawnSync(["docker-compose", "--profile", "postgres", "config"], { cwd: dir });
    for (const r of [without, withPg]) {
      expect(r.stderr.toString()).toBe("");
      expect(r.exitCode).toBe(0);
    }
    const cfg = Bun.YAML.parse(withPg.stdout.toString()) as Config;
    const pg = cfg.services.postgres!;
    expect(pg.profiles).toEqual(["postgres"]);
    expect(pg.image).toMatch(/^postgres:\d+$/); // the official image, pinned by major version (data dirs do not upgrade across majors)
    expect(pg.environment!.POSTGRES_PASSWORD_FILE).toBe("/run/secrets/postgres_password");
    expect(pg.environment!.POSTGRES_PASSWORD).toBeUndefined();
    expect(pg.secrets!.map((x) => x.source)).toEqual(["postgres_password"]);
    expect(cfg.secrets.postgres_password!.file).toBe(join(dir, "secrets/postgres_password"));
    expect(pg.healthcheck!.test.slice(0, 2)).toEqual(["CMD", "pg_isready"]);
    const pgVolume = pg.volumes!.find((v) => v.includes(":/var/lib/postgresql/data"))!;
    expect(Object.keys(cfg.volumes)).toContain(pgVolume.split(":")[0]!);
    const pgUser = pg.environment!.POSTGRES_USER;
    expect(pg.healthcheck!.test.join(" ")).toContain(`-U ${pgUser}`);
    const gateways = ["gateway-a", "gateway-b"].map((n) => cfg.services[n]!);
    for (const gw of gateways) {
      expect(gw.profiles).toEqual(["postgres"]);
      expect(gw.image).toBe(cfg.services.gateway!.image!);
      expect(gw.depends_on!.postgres).toEqual({ condition: "service_healthy" });
      expect(gw.environment!.DATABASE_URL_FILE).toBe("/run/secrets/database_url");
      expect(gw.environment!.DATABASE_URL).toBeUndefined();
      expect(gw.volumes!.some((v) => v.endsWith(":/run/secrets:ro"))).toBe(true);
    }
    // Each gateway keeps its own SQLite (local state): separate data volumes.
    const dataOf = (s: Service) => s.volumes!.find((v) => /:\/data(:rw)?$/.test(v))!.split(":")[0];
    expect(new Set([cfg.services.gateway!, ...gateways].map(dataOf)).size).toBe(3);
    // Every service can run at once: no host port is published twice. docker-compose prints a
    // port as "ip:published:target/proto" or as an object.
    const hostPorts = Object.values(cfg.services).flatMap((s) => (s.ports ?? []) as unknown[]).map((p) => {
      if (typeof p === "string") {
        const m = /^(?:(.+):)?(\d+):\d+(?:\/(\w+))?$/.exec(p)!;
        return `${m[1] ?? ""}:${m[2]}/${m[3] ?? "tcp"}`;
      }
      const o = p as { published: number | string; protocol?: string; host_ip?: string };
      return `${o.host_ip ?? ""}:${o.published}/${o.protocol ?? "tcp"}`;
    });
    expect(hostPorts.length).toBe(8);
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  test("no password, token or secret sits in .env.example or in a service's environment (they are files in secrets/)", () => {
    const secretName = /PASSWORD|SECRET|DSN|TOKEN$|PRIVATE|_KEY$/;
    const envExample = readFileSync(join(ROOT, ".env.example"), "utf8").split("\n").filter((l) => /^[A-Z]/.test(l)).map((l) => l.split("=")[0]!);
    expect(envExample.filter((k) => secretName.test(k))).toEqual([]);
    const compose = Bun.YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, { environment?: Record<string, string> }> };
    const inEnv = Object.entries(compose.services).flatMap(([svc, s]) => Object.keys(s.environment ?? {}).filter((k) => secretName.test(k) && !k.endsWith("_FILE")).map((k) => `${svc}: ${k}`));
    expect(inEnv).toEqual([]);
  });

  test("the image keeps the admin UI on the container's loopback; compose opens it to the container network and publishes it on the host's loopback only", () => {
    expect(readFileSync(join(ROOT, "Dockerfile"), "utf8")).toMatch(/^\s*GLASSGATE_ADMIN=127\.0\.0\.1:8080\b/m);
    const gw = (Bun.YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, { environment: Record<string, string>; ports: string[] }> }).services.gateway!;
    expect(gw.environment.GLASSGATE_ADMIN).toBe("0.0.0.0:8080");
    expect(gw.ports.filter((p) => /:8080$/.test(p))).toEqual(["127.0.0.1:8080:8080"]);
  });

  test("only Prometheus may read the gateway's admin token: a 0640 file in the gateway's group, which compose adds Prometheus to", () => {
    const compose = Bun.YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, { environment?: Record<string, string>; group_add?: string[]; volumes?: string[] }> };
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    const gid = /groupadd --system --gid (\d+) glassgate/.exec(dockerfile)?.[1];
    expect(gid).toBe("10001");
    expect(dockerfile).toMatch(/install -d -o glassgate -g glassgate -m 0750 \/run\/glassgate/);
    expect(compose.services.gateway!.environment!.GLASSGATE_ADMIN_TOKEN_GROUP_READABLE).toBe("1");
    const readers = Object.entries(compose.services).filter(([, svc]) => (svc.volumes ?? []).some((v) => v.startsWith("gateway-token:"))).map(([name]) => name).sort();
    expect(readers).toEqual(["gateway", "prometheus"]);
    expect(compose.services.prometheus!.group_add).toEqual([gid!]);
    expect(Object.entries(compose.services).filter(([, svc]) => svc.group_add?.includes(gid!)).map(([n]) => n)).toEqual(["prometheus"]);
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

  test("traces flow gateway → collector → Tempo → Grafana: each hop points at the port the next one listens on", () => {
    type Compose = { services: Record<string, { image?: string; command?: string[]; volumes?: string[]; environment?: Record<string, string>; depends_on?: string[] }> };
    const compose = Bun.YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as Compose;
    const yaml = (f: string) => Bun.YAML.parse(readFileSync(join(ROOT, f), "utf8")) as any;
    // The gateway exports OTLP/HTTP to the collector's receiver.
    const collector = yaml("deploy/otel-collector/config.yaml");
    const otlpHttpPort = collector.receivers.otlp.protocols.http.endpoint.split(":").at(-1);
    expect(compose.services.gateway!.environment!.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(`http://otel-collector:${otlpHttpPort}`);
    // The collector has a traces pipeline from that receiver to an exporter aimed at Tempo.
    const traces = collector.service.pipelines.traces;
    expect(traces.receivers).toContain("otlp");
    const toTempo = (traces.exporters as string[]).map((e) => collector.exporters[e]).find((e) => /^tempo:\d+$/.test(e?.endpoint ?? ""));
    expect(toTempo).toBeDefined();
    // Tempo reads the config compose mounts, and receives OTLP/gRPC on the port the collector sends to.
    const tempo = compose.services.tempo!;
    expect(tempo.image).toMatch(/^grafana\/tempo:\d+\.\d+\.\d+$/);
    const configArg = tempo.command!.find((a) => a.startsWith("-config.file="))!.split("=")[1];
    expect(tempo.volumes).toContain(`./deploy/tempo/tempo.yaml:${configArg}:ro`);
    const tempoCfg = yaml("deploy/tempo/tempo.yaml");
    expect(tempoCfg.distributor.receivers.otlp.protocols.grpc.endpoint.split(":").at(-1)).toBe(toTempo.endpoint.split(":")[1]);
    // Tempo's data volume is the one tempo-init hands to Tempo's user.
    const data = tempo.volumes!.find((v) => v.endsWith(":/var/tempo"))!;
    expect(compose.services["tempo-init"]!.volumes).toEqual([data]);
    expect(tempoCfg.storage.trace.wal.path.startsWith("/var/tempo/")).toBe(true);
    // Grafana has a Tempo datasource on Tempo's HTTP port.
    const ds = yaml("deploy/grafana/provisioning/datasources/tempo.yaml").datasources.find((d: { type: string }) => d.type === "tempo");
    expect(ds.url).toBe(`http://tempo:${tempoCfg.server.http_listen_port}`);
    expect(compose.services.grafana!.volumes).toContain("./deploy/grafana/provisioning:/etc/grafana/provisioning:ro");
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
    const source = readFileSync(join(ROOT, "src/telemetry/metrics.ts"), "utf8");
    // OTel instruments ("glassgate.x.y") and the families rendered as Prometheus text ("glassgate_x_y_total").
    const exported = new Set([
      ...source.match(/"glassgate\.[a-z_.]+"/g)!.map((n) => n.slice(1, -1).replace(/\./g, "_")),
      ...(source.match(/"glassgate_[a-z_]+"/g) ?? []).map((n) => n.slice(1, -1).replace(/_(total|bucket|sum|count)$/, "")),
    ]);
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

/** Runs one of the deploy entrypoint scripts with `sh`, as the images do, in a scratch directory. */
function runEntrypoint(script: string, cwd: string, env: Record<string, string>, cmd: string[] = []): { code: number; out: string; err: string } {
  const r = spawnSync(["sh", join(ROOT, script), ...cmd], { cwd, env: { PATH: process.env.PATH!, ...env } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("secrets as files", () => {
  // The gateway's entrypoint ends with `bun run src/cli.ts up --init "$@"`: a stand-in cli.ts shows what it was given.
  function gatewayDir(): { dir: string; secrets: string } {
    const dir = mkdtempSync(join(tmpdir(), "gg-entry-"));
    mkdirSync(join(dir, "src"));
    writeFileSync(join(dir, "src/cli.ts"), "console.log(JSON.stringify({ args: process.argv.slice(2), pw: process.env.GLASSGATE_ADMIN_PASSWORD_FILE ?? null, dsn: process.env.SENTRY_DSN ?? null, dsnFile: process.env.SENTRY_DSN_FILE ?? null }));");
    mkdirSync(join(dir, "secrets"));
    return { dir, secrets: join(dir, "secrets") };
  }

  test("the gateway image uses secrets/glassgate_admin_password and secrets/sentry_dsn when present, and nothing when absent", () => {
    const { dir, secrets } = gatewayDir();
    const none = runEntrypoint("deploy/gateway/entrypoint.sh", dir, { GLASSGATE_SECRETS_DIR: secrets }, ["--listen-port", "1"]);
    expect(none.err).toBe("");
    expect(JSON.parse(none.out)).toEqual({ args: ["up", "--init", "--listen-port", "1"], pw: null, dsn: null, dsnFile: null });
    writeFileSync(join(secrets, "glassgate_admin_password"), "pw\n");
    writeFileSync(join(secrets, "sentry_dsn"), "https://key@sentry.example/1\n");
    const both = runEntrypoint("deploy/gateway/entrypoint.sh", dir, { GLASSGATE_SECRETS_DIR: secrets });
    expect(JSON.parse(both.out)).toEqual({ args: ["up", "--init"], pw: join(secrets, "glassgate_admin_password"), dsn: "https://key@sentry.example/1", dsnFile: null });
  });

  test.skipIf(process.getuid?.() !== 0 || missingCommands(["setpriv"]).length > 0)("the gateway image refuses to start when a secret file is there but unreadable, naming the file", () => {
    const { dir, secrets } = gatewayDir();
    chmodSync(dir, 0o755);
    chmodSync(secrets, 0o755);
    cpSync(join(ROOT, "deploy/gateway/entrypoint.sh"), join(dir, "entrypoint.sh"));
    writeFileSync(join(secrets, "glassgate_admin_password"), "pw\n", { mode: 0o600 });
    const r = spawnSync(["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups", "sh", join(dir, "entrypoint.sh")],
      { cwd: dir, env: { PATH: process.env.PATH!, GLASSGATE_SECRETS_DIR: secrets } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toContain(`${join(secrets, "glassgate_admin_password")} exists but uid 10001 cannot read it`);
    expect(r.stdout.toString()).toBe("");
  });

  test("git ignores files put in secrets/ but keeps the folder (compose mounts it)", () => {
    expect(spawnSync(["git", "check-ignore", "-q", "secrets/glassgate_admin_password"], { cwd: ROOT }).exitCode).toBe(0);
    expect(spawnSync(["git", "check-ignore", "-q", "secrets/README.md"], { cwd: ROOT }).exitCode).toBe(1);
  });

  test("the gateway image refuses to start when SENTRY_DSN_FILE names a missing file", () => {
    const { dir, secrets } = gatewayDir();
    const r = runEntrypoint("deploy/gateway/entrypoint.sh", dir, { GLASSGATE_SECRETS_DIR: secrets, SENTRY_DSN_FILE: "/nonexistent/dsn" });
    expect(r.code).toBe(1);
    expect(r.err).toContain('SENTRY_DSN_FILE: "/nonexistent/dsn" does not exist');
    expect(r.out).toBe("");
  });

  test("Grafana gets a generated admin password on its first start, printed once and kept; never admin/admin", () => {
    const dir = mkdtempSync(join(tmpdir(), "gg-grafana-"));
    const env = { GF_PATHS_DATA: join(dir, "data"), GLASSGATE_SECRETS_DIR: join(dir, "secrets") };
    mkdirSync(env.GF_PATHS_DATA);
    const show = ["sh", "-c", 'echo "password=$(cat "$GF_SECURITY_ADMIN_PASSWORD__FILE")"'];
    const first = runEntrypoint("deploy/grafana/entrypoint.sh", dir, env, show);
    expect(first.code).toBe(0);
    const generated = /generated password: (\S+)\n/.exec(first.out)?.[1];
    expect(generated).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(first.out).toContain(`password=${generated}`);
    expect(statSync(join(env.GF_PATHS_DATA, "glassgate_admin_password")).mode & 0o777).toBe(0o600);
    const second = runEntrypoint("deploy/grafana/entrypoint.sh", dir, env, show);
    expect(second.out).toBe(`password=${generated}\n`);
  });

  test("Grafana uses secrets/grafana_admin_password when present, and leaves an existing database's password alone", () => {
    const dir = mkdtempSync(join(tmpdir(), "gg-grafana-"));
    const env = { GF_PATHS_DATA: join(dir, "data"), GLASSGATE_SECRETS_DIR: join(dir, "secrets") };
    mkdirSync(env.GF_PATHS_DATA);
    mkdirSync(env.GLASSGATE_SECRETS_DIR);
    const show = ["sh", "-c", 'echo "file=${GF_SECURITY_ADMIN_PASSWORD__FILE:-none}"'];
    writeFileSync(join(env.GLASSGATE_SECRETS_DIR, "grafana_admin_password"), "chosen\n");
    expect(runEntrypoint("deploy/grafana/entrypoint.sh", dir, env, show).out).toBe(`file=${join(env.GLASSGATE_SECRETS_DIR, "grafana_admin_password")}\n`);
    rmSync(join(env.GLASSGATE_SECRETS_DIR, "grafana_admin_password"));
    writeFileSync(join(env.GF_PATHS_DATA, "grafana.db"), "");
    const existing = runEntrypoint("deploy/grafana/entrypoint.sh", dir, env, show);
    expect(existing.out).toContain("keeping the admin password of the existing database");
    expect(existing.out).toContain("file=none");
  });

  test("the compose file runs Grafana and coturn through their secret-file entrypoints", () => {
    const compose = Bun.YAML.parse(readFileSync(join(ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, { entrypoint: string[]; command?: string[]; volumes: string[] }> };
    const grafana = compose.services.grafana!;
    const mounted = grafana.volumes.find((v) => v.startsWith("./deploy/grafana/entrypoint.sh:"))!.split(":")[1];
    expect(grafana.entrypoint).toEqual(["/bin/sh", mounted!]);
    expect(grafana.command).toEqual(["/run.sh"]); // the Grafana image's own entrypoint
    expect(compose.services.coturn!.entrypoint.join(" ")).toContain("test -s /run/secrets/turn_secret ||");
    for (const svc of ["gateway", "grafana", "coturn"]) expect(compose.services[svc]!.volumes).toContain("./secrets:/run/secrets:ro");
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
