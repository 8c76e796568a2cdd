#!/usr/bin/env bun
// glassgate command line. Exit codes (DESIGN.md §3): 0 ok, 1 runtime failure, 2 bad config/usage.
import { clashMessage, clashWith, ConfigError, createPeer, DEFAULT_LISTEN_PORT, filePeerOwner, newGatewayConfigText, nextFreeAddress, parseConfig, readConfigText, type AddressOwner } from "./config/index.ts";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf } from "./crypto/x25519.ts";
import { formatCidr, parseCidr, parseIp } from "./ip/address.ts";
import { join } from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { Logger, errorChain, parseLogFilter, stderrSink } from "./telemetry/log.ts";
import { LogRing, fanOut } from "./telemetry/log-ring.ts";
import { PersistedLogs } from "./telemetry/persisted-logs.ts";
import type { SentryReporter } from "./telemetry/sentry.ts";
import { DB_FILE, GATEWAY_ID_FILE, gatewayId, Store, storePeerOwner, UserExistsError } from "./store/index.ts";
import { databaseServer, storeLocation } from "./store/database-url.ts";
import { EnvError, envFlag } from "./config/env.ts";
import { ensurePrivateDir, looseLogFields, PRIVATE_FILE_MODE, tightenPrivate, writePrivateFile, type OnLoose } from "./io/private-files.ts";

/** Outside `up` (no logger yet): a loose secret file is reported on stderr. */
const warnLooseOnStderr: OnLoose = (f) =>
  process.stderr.write(`glassgate: warning: ${f.path} was mode ${f.mode} (readable by others), now ${f.now}${f.reason ? ` (${f.reason})` : ""}\n`);

const USAGE = `usage: glassgate <command>

  up --config FILE [--init] [--interface NAME] [--listen-port N] [--admin HOST:PORT] [--data DIR]
                         run the standalone gateway (needs root or CAP_NET_ADMIN for the TUN device);
                         --init creates FILE with a new key when it does not exist
  up --portal [--interface NAME] [--listen-port N] [--admin HOST:PORT] [--data DIR]
                         portal mode: a Firezone gateway driven by the portal (FIREZONE_API_URL,
                         FIREZONE_TOKEN or FIREZONE_TOKEN_FILE, FIREZONE_ID, FIREZONE_NAME); exits 2
                         when the portal refuses or expires the token, 1 when it gives up otherwise
  admin create --data DIR --username NAME   (password read from stdin)
                         create an admin user for the web UI
  admin passwd --data DIR --username NAME   (password read from stdin)
                         set an admin's password; their browser sessions are logged out
  admin token --data DIR --name NAME       print a new API token (shown once)
  peers add --config FILE --endpoint HOST[:PORT] [--name NAME] [--address IP] [--dns IP] [--out FILE] [--data DIR]
                         add a peer to the gateway config and print its client config (the address
                         is one no file peer and no admin UI peer in DIR's database uses)
  takeover [--admin HOST:PORT]
                         (cluster mode) start a handshake with the clients the other gateways last
                         saw: run from keepalived's notify_master; calls this gateway's admin API
                         (POST /api/takeover) with GLASSGATE_ADMIN_TOKEN or _FILE
  keygen                 print a new private key (like \`wg genkey\`)
  pubkey                 read a private key on stdin, print its public key (like \`wg pubkey\`)
  check-config FILE      validate a wg-quick style config and summarise it
`;

class UsageError extends Error {}

async function readStdin(): Promise<string> {
  return await new Response(Bun.stdin.stream()).text();
}

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "keygen":
        out(encodeKey(generatePrivateKey()) + "\n");
        return 0;
      case "pubkey": {
        const text = (await readStdin()).trim();
        let key: Uint8Array;
        try {
          key = decodeKey(text);
        } catch (err) {
          throw new UsageError(`pubkey: ${(err as Error).message}`);
        }
        out(encodeKey(publicKeyOf(key)) + "\n");
        return 0;
      }
      case "up":
        return await up(rest);
      case "admin":
        return await adminCommand(rest, out);
      case "peers":
        if (rest[0] !== "add") throw new UsageError(`peers: unknown subcommand "${rest[0] ?? ""}" (try: peers add)`);
        return await peersAdd(rest.slice(1), out);
      case "takeover":
        return await takeover(rest, out);
      case "check-config": {
        const file = rest[0];
        if (!file) throw new UsageError("check-config: missing FILE");
        const f = Bun.file(file);
        if (!(await f.exists())) throw new UsageError(`check-config: ${file}: no such file`);
        const c = parseConfig(await readConfigText(file), file);
        out(`${file}: ok\n`);
        out(`  interface  public key ${encodeKey(publicKeyOf(c.interface.privateKey))}, listen port ${c.interface.listenPort}, ` +
          `mtu ${c.interface.mtu}, address ${c.interface.addresses.map(formatCidr).join(", ") || "(none)"}\n`);
        for (const p of c.peers) {
          const ep = p.endpoint ? `${p.endpoint.host}:${p.endpoint.port}` : "(learnt when it connects)";
          out(`  peer       ${encodeKey(p.publicKey)} allowed ${p.allowedIPs.map(formatCidr).join(", ") || "(none)"} endpoint ${ep}\n`);
        }
        return 0;
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError || err instanceof EnvError) {
      process.stderr.write(`glassgate: ${err.message}\n`);
      if (err instanceof UsageError && !err.message.includes(":")) process.stderr.write(USAGE);
      return 2;
    }
    // Runtime failure: the whole cause chain on one line ("creating TUN …: needs root …: EPERM").
    process.stderr.write(`glassgate: ${errorChain(err)}\n`);
    if (debugEnabled() && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

/** GLASSGATE_DEBUG: stack traces on runtime failures. A bad value here must not hide the real error. */
function debugEnabled(): boolean {
  try {
    return envFlag(process.env, "GLASSGATE_DEBUG");
  } catch {
    return true;
  }
}

/** Parses a command's flags strictly; an unknown or malformed flag is a usage error naming the command. */
function flags<T extends ParseArgsOptionsConfig>(command: string, args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message}`);
  }
}

function parsePort(flag: string, value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535) throw new UsageError(`${flag}: "${value}" is not a port (0–65535)`);
  return Number(value);
}

/**
 * A whole-number environment variable within [min, max], or undefined when unset. "abc", "-1" or
 * "1e9" used to pass as NaN or nonsense (a sample interval of 0 ms, a per-peer cap of -1 meaning
 * "all but one"): now a usage error naming the variable and the range.
 */
function envInt(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const v = env[name];
  if (v === undefined || v === "") return undefined;
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`${name}: ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)} is not a whole number from ${min} to ${max}`);
  }
  return Number(v);
}

/** "127.0.0.1:8080", "[::1]:8080" or ":8080" (all addresses). */
function parseHostPort(flag: string, value: string): { hostname: string; port: number } {
  const m = /^\[([^\]]+)\]:([0-9]+)$/.exec(value) ?? /^([^:]*):([0-9]+)$/.exec(value);
  if (!m) throw new UsageError(`${flag}: "${value}" is not HOST:PORT`);
  return { hostname: m[1] || "0.0.0.0", port: parsePort(flag, m[2]!) };
}

/** GLASSGATE_PUBLIC_ADMIN_URL: the admin as people reach it, for links from Sentry events. */
function parsePublicAdminUrl(value: string | undefined): string | undefined {
  if (!value) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash) {
    throw new UsageError(`GLASSGATE_PUBLIC_ADMIN_URL: ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)} is not an http(s) URL without query (e.g. https://gateway.example.com/admin)`);
  }
  return url.href.replace(/\/+$/, "");
}

/** GLASSGATE_TRUSTED_PROXY: comma-separated addresses whose X-Forwarded-Proto/-For the admin believes. */
function parseTrustedProxies(value: string | undefined): string[] | undefined {
  if (!value?.trim()) return undefined;
  return value.split(",").map((a) => a.trim()).filter(Boolean).map((a) => {
    if (!parseIp(a)) throw new UsageError(`GLASSGATE_TRUSTED_PROXY: ${JSON.stringify(a.slice(0, 64))} is not an IP address`);
    return a;
  });
}

/**
 * GLASSGATE_ADMIN_TOKEN_FILE; with GLASSGATE_ADMIN_TOKEN_CREATE=1 a missing file is created with a
 * new token, so a fresh compose stack needs no setup. The token opens the whole API: the file is
 * 0600, and tightened at start if not. GLASSGATE_ADMIN_TOKEN_GROUP_READABLE=1 makes it 0640 instead:
 * for a scraper that runs as another user but in the gateway's group (compose adds Prometheus to it)
 * — never readable by others.
 */
function adminTokenFromFile(env: NodeJS.ProcessEnv, onLoose: OnLoose): string | undefined {
  const file = env.GLASSGATE_ADMIN_TOKEN_FILE;
  const mode = envFlag(env, "GLASSGATE_ADMIN_TOKEN_GROUP_READABLE") ? 0o640 : PRIVATE_FILE_MODE;
  if (file && !existsSync(file) && envFlag(env, "GLASSGATE_ADMIN_TOKEN_CREATE")) {
    writePrivateFile(file, `gg_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}\n`, { exclusive: true, mode });
    process.stderr.write(`glassgate: created admin token file ${file}\n`);
  } else if (file) tightenPrivate(file, mode, onLoose);
  return readSecretFile("GLASSGATE_ADMIN_TOKEN_FILE", file);
}

/**
 * The first admin: GLASSGATE_ADMIN_USER with GLASSGATE_ADMIN_PASSWORD (or _FILE). With a user but no
 * password, a random one is generated and printed once (used only if no admin exists yet).
 */
function firstAdmin(env: NodeJS.ProcessEnv): { username: string; password: string; generated?: boolean } | undefined {
  if (!env.GLASSGATE_ADMIN_USER) return undefined;
  const password = env.GLASSGATE_ADMIN_PASSWORD || readSecretFile("GLASSGATE_ADMIN_PASSWORD_FILE", env.GLASSGATE_ADMIN_PASSWORD_FILE);
  if (password) return { username: env.GLASSGATE_ADMIN_USER, password };
  return { username: env.GLASSGATE_ADMIN_USER, password: Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("base64url"), generated: true };
}

/** Docker-secret style `*_FILE` variables: the value is the file's content, trimmed. */
function readSecretFile(name: string, file: string | undefined): string | undefined {
  if (!file) return undefined;
  if (!existsSync(file)) throw new UsageError(`${name}: "${file}" does not exist`);
  return readFileSync(file, "utf8").trim() || undefined;
}

/**
 * `glassgate takeover`: POST /api/takeover on the local admin (admin/routes/takeover.ts) and print
 * its answer. Exit 1 when the gateway refuses (standalone: 409) or cannot be reached, so
 * keepalived logs the failure.
 */
async function takeover(args: string[], out: (s: string) => void): Promise<number> {
  const values = flags("takeover", args, { admin: { type: "string" } });
  const env = process.env;
  const admin = parseHostPort("--admin", values.admin ?? env.GLASSGATE_ADMIN ?? "127.0.0.1:8080");
  const token = env.GLASSGATE_ADMIN_TOKEN || readSecretFile("GLASSGATE_ADMIN_TOKEN_FILE", env.GLASSGATE_ADMIN_TOKEN_FILE);
  if (!token) throw new UsageError("takeover: needs GLASSGATE_ADMIN_TOKEN or GLASSGATE_ADMIN_TOKEN_FILE (the admin API's bearer token)");
  // An admin listening on every address is reached on loopback.
  const host = admin.hostname === "0.0.0.0" ? "127.0.0.1" : admin.hostname === "::" ? "::1" : admin.hostname;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${admin.port}/api/takeover`;
  let r: Response;
  try {
    r = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    throw new Error(`takeover: POST ${url}`, { cause: err });
  }
  const body = await r.text();
  if (!r.ok) throw new Error(`takeover: POST ${url}: ${r.status} ${body.slice(0, 500)}`);
  out(body.endsWith("\n") ? body : `${body}\n`);
  return 0;
}

/** `glassgate up`: flags beat environment, which beats the config file, which beats defaults. */
async function up(args: string[]): Promise<number> {
  const values = flags("up", args, {
    config: { type: "string" },
    init: { type: "boolean" },
    portal: { type: "boolean" },
    interface: { type: "string" },
    "listen-port": { type: "string" },
    admin: { type: "string" },
    data: { type: "string" },
  });
  const env = process.env;
  // Every yes/no variable read before anything is written, so a bad value changes nothing.
  const keepDefaultBuffers = envFlag(env, "FIREZONE_NO_INC_BUF");
  const perPeerMetrics = envFlag(env, "GLASSGATE_METRICS_PER_PEER");
  // Data-path offloads are on unless turned off (=0): unset means the fastest path the kernel allows.
  const dataPlane = { offload: env.GLASSGATE_OFFLOAD === undefined || envFlag(env, "GLASSGATE_OFFLOAD"), udpGso: env.GLASSGATE_UDP_GSO === undefined || envFlag(env, "GLASSGATE_UDP_GSO"), aqm: env.GLASSGATE_AQM === undefined || envFlag(env, "GLASSGATE_AQM") };
  envFlag(env, "GLASSGATE_ADMIN_TOKEN_CREATE");
  envFlag(env, "GLASSGATE_ADMIN_TOKEN_GROUP_READABLE");
  const adminSecureCookie = envFlag(env, "GLASSGATE_ADMIN_SECURE_COOKIE");
  const trustedProxies = parseTrustedProxies(env.GLASSGATE_TRUSTED_PROXY);
  // DATABASE_URL: several gateways share peers, audit and gateways through PostgreSQL; each keeps
  // its SQLite store in --data for its local state and as a mirror of the shared peers.
  let location: ReturnType<typeof storeLocation>;
  try {
    location = storeLocation(env);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // Portal mode's peers come from the portal: a shared database would have nothing to share.
  if (location.kind === "postgres" && values.portal) throw new UsageError("DATABASE_URL: up --portal keeps its state in --data (the portal says who connects); unset DATABASE_URL / DATABASE_URL_FILE");
  // Portal mode: no config file; the portal says who may connect (settings errors name the variable).
  let portal: import("./portal/index.ts").PortalSettings | undefined;
  if (values.portal) {
    if (values.config || values.init) throw new UsageError("up --portal: --config and --init are for standalone mode (the portal configures the gateway)");
    const { portalSettings } = await import("./portal/settings.ts");
    try {
      portal = portalSettings(env, (p) => readFileSync(p, "utf8"));
    } catch (err) {
      throw new UsageError(errorChain(err));
    }
  }
  const configFile = portal ? undefined : (values.config ?? env.GLASSGATE_CONFIG);
  if (!portal && !configFile) throw new UsageError("up: missing --config FILE (or GLASSGATE_CONFIG), or --portal");
  if (configFile && values.init && !existsSync(configFile)) {
    // First start: a fresh key, readable by the owner only.
    writePrivateFile(configFile, newGatewayConfigText(), { exclusive: true });
    process.stderr.write(`glassgate: created ${configFile} with a new key; add clients with: bun run glassgate peers add --config ${configFile} --endpoint <this host's address>\n`);
  }
  if (configFile && !(await Bun.file(configFile).exists())) throw new UsageError(`up: ${configFile}: no such file`);
  const config = configFile ? parseConfig(await readConfigText(configFile), configFile) : undefined;
  const portText = values["listen-port"] ?? env.GLASSGATE_LISTEN_PORT;
  const interfaceName = values.interface ?? env.GLASSGATE_INTERFACE ?? "glassgate0";
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(interfaceName)) throw new UsageError(`--interface: "${interfaceName}" is not an interface name (1–15 of A-Z a-z 0-9 _ . -)`);
  const numbers = {
    trafficSampleSeconds: envInt(env, "GLASSGATE_TRAFFIC_SAMPLE_SECONDS", 1, 86_400),
    retentionDays: envInt(env, "GLASSGATE_RETENTION_DAYS", 1, 36_500),
    otlpIntervalMs: envInt(env, "OTEL_METRIC_EXPORT_INTERVAL", 1000, 86_400_000),
    perPeerCap: envInt(env, "GLASSGATE_METRICS_PER_PEER_CAP", 0, 100_000),
    neverConnectedSeconds: envInt(env, "GLASSGATE_NEVER_CONNECTED_SECONDS", 1, 365 * 86_400),
  };
  const publicAdminUrl = parsePublicAdminUrl(env.GLASSGATE_PUBLIC_ADMIN_URL);
  let logger: Logger;
  const logs = new LogRing(10_000);
  // Warnings, errors and connection lines also go to the store (once it is open: run.ts), batched.
  logs.persistTo(new PersistedLogs());
  // @sentry/bun is loaded only when SENTRY_DSN asks for it: importing it costs ~0.4 s of every start.
  let sentry: SentryReporter | undefined;
  let sink = fanOut(stderrSink, logs.sink);
  if (env.SENTRY_DSN) {
    const { reportingSink, SentryReporter } = await import("./telemetry/sentry.ts");
    sentry = new SentryReporter({ dsn: env.SENTRY_DSN, environment: env.SENTRY_ENVIRONMENT, publicAdminUrl });
    sink = reportingSink(sentry, sink);
  }
  try {
    logger = new Logger(parseLogFilter(env.GLASSGATE_LOG), sink);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  // The config holds the gateway's private key (and peers' preshared keys).
  const onLoose: OnLoose = (f) => logger.log("warn", "gateway", "secret file was readable by others", looseLogFields(f));
  if (configFile) tightenPrivate(configFile, PRIVATE_FILE_MODE, onLoose);

  // Loaded for `up` only: the OpenTelemetry SDK alone takes ~0.3 s to import, which keygen,
  // pubkey, peers and check-config have no use for.
  const { runStandalone, SHUTDOWN_DEADLINE_MS } = await import("./standalone/run.ts");
  const { tracesUrlFromEnv } = await import("./telemetry/otel.ts");
  const dataDir = values.data ?? env.GLASSGATE_DATA_DIR ?? "./data";
  const pg = location.kind === "postgres" ? await openSharedStore(location.url, dataDir, onLoose) : undefined;
  const common = {
    interfaceName,
    listenPort: portText !== undefined ? parsePort("--listen-port", portText) : (config?.interface.listenPort ?? DEFAULT_LISTEN_PORT),
    admin: parseHostPort("--admin", values.admin ?? env.GLASSGATE_ADMIN ?? "127.0.0.1:8080"),
    adminToken: env.GLASSGATE_ADMIN_TOKEN || adminTokenFromFile(env, onLoose),
    adminSecureCookie,
    trustedProxies,
    dataDir,
    keepDefaultBuffers,
    dataPlane,
    logger,
    logs,
    sentry,
    firstAdmin: firstAdmin(env),
    publicEndpoint: env.GLASSGATE_ENDPOINT || undefined,
    trafficSampleSeconds: numbers.trafficSampleSeconds,
    retentionDays: numbers.retentionDays,
    neverConnectedSeconds: numbers.neverConnectedSeconds,
    metrics: {
      otlpEndpoint: env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT?.replace(/\/v1\/metrics\/?$/, "") || env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined,
      otlpIntervalMs: numbers.otlpIntervalMs,
      perPeer: { enabled: perPeerMetrics, cap: numbers.perPeerCap ?? 100 },
      tracesUrl: tracesUrlFromEnv(env),
    },
  };
  let portalFailed: Promise<{ exitCode: number; message: string }> | undefined;
  let gw;
  if (portal) {
    const { runPortal } = await import("./standalone/portal-run.ts");
    const pg = await runPortal({ ...common, settings: portal, dnsPort: envInt(env, "GLASSGATE_PORTAL_DNS_PORT", 1, 65535) });
    portalFailed = pg.portalFailed;
    gw = pg;
  } else {
    try {
      gw = await runStandalone({ ...common, config: config!, pg });
    } catch (err) {
      await pg?.close().catch(() => undefined);
      throw err;
    }
  }

  return await new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      // The goodbye, flush and key erasure get SHUTDOWN_DEADLINE_MS; then we leave regardless,
      // saying so (the shutdown bounds its own waits, so this is the last resort).
      const deadline = setTimeout(() => {
        logger.log("error", "gateway", "shutdown did not finish in time: exiting", { deadline_ms: SHUTDOWN_DEADLINE_MS });
        resolve(0);
      }, SHUTDOWN_DEADLINE_MS);
      gw.shutdown(signal).then(
        () => {
          clearTimeout(deadline);
          resolve(0);
        },
        (err) => {
          logger.log("error", "gateway", "shutdown failed", { err });
          resolve(1);
        },
      );
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
    // A fatal error (the event loop's, or one escaping any callback) closes like SIGTERM, exit 1.
    process.on("uncaughtException", (err) => gw.fail(err));
    process.on("unhandledRejection", (err) => gw.fail(err));
    // The portal refused us for good: goodbye to every client, then the channel's exit code.
    void portalFailed?.then(({ exitCode }) => {
      const deadline = setTimeout(() => resolve(exitCode), SHUTDOWN_DEADLINE_MS);
      gw.shutdown("portal connection failed").finally(() => {
        clearTimeout(deadline);
        resolve(exitCode);
      });
    });
    void gw.failed.then(() => {
      const deadline = setTimeout(() => resolve(1), SHUTDOWN_DEADLINE_MS);
      gw.shutdown("fatal error").finally(() => {
        clearTimeout(deadline);
        resolve(1);
      });
    });
  });
}

/** `glassgate admin create|token`: identities for the admin server, stored in the data dir. */
async function adminCommand(args: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  const values = flags("admin", rest, { data: { type: "string" }, username: { type: "string" }, name: { type: "string" } });
  const store = Store.open(values.data ?? process.env.GLASSGATE_DATA_DIR ?? "./data", { onLoosePermissions: warnLooseOnStderr });
  try {
    if (sub === "create") {
      if (!values.username) throw new UsageError("admin create: missing --username NAME");
      const password = (await readStdin()).replace(/\r?\n$/, "");
      try {
        await store.auth.createUser(values.username, password, "cli");
      } catch (err) {
        if (err instanceof UserExistsError) throw new UsageError(`admin create: ${err.message}; to set a new password: glassgate admin passwd --username ${values.username} (password on stdin)`);
        throw new UsageError(`admin create: ${(err as Error).message}`);
      }
      out(`admin ${values.username} created\n`);
      return 0;
    }
    if (sub === "passwd") {
      if (!values.username) throw new UsageError("admin passwd: missing --username NAME");
      const password = (await readStdin()).replace(/\r?\n$/, "");
      let ended: number;
      try {
        ended = await store.auth.setPassword(values.username, password, "cli");
      } catch (err) {
        throw new UsageError(`admin passwd: ${(err as Error).message}`);
      }
      out(`password of ${values.username} changed; ${ended} session(s) logged out\n`);
      return 0;
    }
    if (sub === "token") {
      if (!values.name) throw new UsageError("admin token: missing --name NAME");
      out(store.auth.createToken(values.name, "cli") + "\n");
      return 0;
    }
    throw new UsageError(`admin: unknown subcommand "${sub ?? ""}" (create, passwd or token)`);
  } finally {
    store.close();
  }
}

/** `glassgate peers add`: appends a [Peer] to the gateway config, prints the client's config. */
async function peersAdd(args: string[], out: (s: string) => void): Promise<number> {
  const values = flags("peers add", args, {
    config: { type: "string" },
    endpoint: { type: "string" },
    name: { type: "string" },
    address: { type: "string" },
    dns: { type: "string" },
    out: { type: "string" },
    data: { type: "string" },
  });
  if (!values.config) throw new UsageError("peers add: missing --config FILE (the gateway's)");
  if (!values.endpoint) throw new UsageError("peers add: missing --endpoint HOST[:PORT] (how clients reach this gateway)");
  const f = Bun.file(values.config);
  if (!(await f.exists())) throw new UsageError(`peers add: ${values.config}: no such file`);
  const cfg = parseConfig(await readConfigText(values.config), values.config);
  const hasPort = /^\[.+\]:\d+$/.test(values.endpoint) || /^[^:]+:\d+$/.test(values.endpoint);
  const bare = values.endpoint.includes(":") && !values.endpoint.startsWith("[") ? `[${values.endpoint}]` : values.endpoint;
  const endpoint = hasPort ? values.endpoint : `${bare}:${cfg.interface.listenPort}`;
  // Peers added in the admin UI/API live in the data dir's database, not in the file: their
  // addresses are taken too.
  const storeOwners = storePeerOwners(values.data ?? process.env.GLASSGATE_DATA_DIR ?? "./data");
  const address = values.address ?? nextFreeAddress(cfg, storeOwners.flatMap((o) => o.allowedIPs));
  const name = values.name ?? `peer ${address}`;
  let created;
  try {
    created = createPeer(cfg, { name, address, endpoint, dns: values.dns });
  } catch (err) {
    throw new UsageError(`peers add: --address: ${(err as Error).message}`);
  }
  const clash = clashWith({ label: `"${name}"`, allowedIPs: [parseCidr(address)] }, [...cfg.peers.map(filePeerOwner), ...storeOwners]);
  if (clash) throw new UsageError(`peers add: --address: ${clashMessage(clash)}`);
  // Validate the result before touching the file: a bad edit must change nothing.
  parseConfig((await readConfigText(values.config)) + created.gatewaySection, values.config);
  // The section carries a preshared key: the file it joins must be private.
  tightenPrivate(values.config, PRIVATE_FILE_MODE, warnLooseOnStderr);
  appendFileSync(values.config, created.gatewaySection);
  if (values.out) {
    writePrivateFile(values.out, created.clientConfig);
    process.stderr.write(`glassgate: added ${name} (${created.publicKey}, ${address}); client config in ${values.out}\n`);
  } else {
    process.stderr.write(`glassgate: added ${name} (${created.publicKey}, ${address}); restart the gateway to apply\n`);
    out(created.clientConfig);
  }
  return 0;
}

/** The admin UI/API's peers in a data dir, when it has a database (never creates one). */
function storePeerOwners(dataDir: string): AddressOwner[] {
  if (!existsSync(join(dataDir, DB_FILE))) return [];
  const store = Store.open(dataDir, { onLoosePermissions: warnLooseOnStderr });
  try {
    return store.peers.list().map(storePeerOwner);
  } finally {
    store.close();
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));

/**
 * The PostgreSQL store for DATABASE_URL, stamping this gateway's id (kept in --data, which is made
 * here when new). Errors say where the database is, never the URL itself: it may hold a password.
 */
async function openSharedStore(url: string, dataDir: string, onLoose: OnLoose): Promise<import("./store/pg-store.ts").PgStore> {
  const { PgStore } = await import("./store/pg-store.ts");
  ensurePrivateDir(dataDir, onLoose, (name) => name.startsWith(DB_FILE) || name === GATEWAY_ID_FILE);
  const gid = gatewayId(dataDir, onLoose);
  try {
    return await PgStore.open(url, gid);
  } catch (err) {
    throw new Error(`DATABASE_URL: cannot use PostgreSQL at ${databaseServer(url)}`, { cause: err });
  }
}
