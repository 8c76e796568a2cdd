// The standalone gateway, assembled: config → tunnel core → TUN + UDP + event loop → admin API.
// This is the composition root `glassgate up` runs; each part it wires lives in its own folder.
import { lookup } from "node:dns/promises";
import { hostname } from "node:os";
import { createAdminApp } from "../../admin/app.ts";
import type { WireguardConfig } from "../config/index.ts";
import { selectAead } from "../crypto/select.ts";
import { encodeKey, publicKeyOf, randomBytes } from "../crypto/x25519.ts";
import { formatCidr, formatIp, parseCidr, type Cidr } from "../ip/address.ts";
import { EventLoop } from "../io/event-loop.ts";
import { GatewayNode, logIceEvent, type IceNodeEvent } from "../node/index.ts";
import { TunReader } from "../io/tun-reader.ts";
import { errnoName } from "../io/errno.ts";
import { Throttle } from "../telemetry/throttle.ts";
import { TUN_TX_QUEUE_LEN } from "../io/tun.ts";
import { reportSocketBuffers, WANTED_SOCKET_BUFFER } from "../io/udp.ts";
import { GatewayUdp } from "../io/udp-socket.ts";
import { dataPlaneFields, openTun, openUdp, type DataPlaneChoices } from "./data-plane-io.ts";
import { looseLogFields } from "../io/private-files.ts";
import { hostConflict, readHostRoutes, runIp, TunRoutes } from "../io/routes.ts";
import { GatewayMetrics } from "../telemetry/metrics.ts";
import { SERVICE_VERSION, Telemetry } from "../telemetry/otel.ts";
import { ThroughputRing } from "../telemetry/throughput.ts";
import { TouchedSince, touchedFeed } from "../telemetry/touched.ts";
import { HandshakeSpans, traceStoreWrites, withSpan } from "../telemetry/tracing.ts";
import { DnsResponder, filterText, GatewayCore } from "../gateway/index.ts";
import { dnsCounters, DnsService, systemResolver } from "./dns-service.ts";
import { ResourceSync } from "./resource-sync.ts";
import { connectionViews, unattributedDrops } from "../telemetry/view.ts";
import { ConnectionStates } from "../telemetry/connection-state.ts";
import { ProblemDetector, problemView } from "../telemetry/problems.ts";
import { Logger, logMs, type TargetLogger } from "../telemetry/log.ts";
import type { LogRing } from "../telemetry/log-ring.ts";
import type { SentryReporter } from "../telemetry/sentry.ts";
import type { AdminGateway } from "../../admin/types.ts";
import { clientConfigText, filePeerOwner, nextFreeAddress } from "../config/index.ts";
import { filePeerId, Store, type PeerRow } from "../store/index.ts";
import { parseIp } from "../ip/address.ts";
import type { PgStore } from "../store/pg-store.ts";
import type { ClusterPeers } from "../cluster/cluster-peers.ts";
import type { ClusterResources } from "../cluster/cluster-resources.ts";
import { AuditShipper } from "../cluster/audit-shipper.ts";
import { CLUSTER_HEARTBEAT_MS, gatewayLive, STANDALONE_HEARTBEAT_MS } from "../cluster/gateway-presence.ts";
import { PresencePublisher, type PresenceSnapshot } from "../cluster/presence-publisher.ts";
import { ConnectionHistory } from "./peer-history.ts";
import { PeerSync } from "./peer-sync.ts";
import { testPolicy } from "./policy-test.ts";
import { CaptureService } from "./capture-control.ts";
import { ConnectionAudit } from "./connection-audit.ts";
import { Tunnel, type TunnelEvent } from "../tunnel/index.ts";
import { formatEndpoint, sessionField, type Endpoint } from "../wire/index.ts";

export interface StandaloneOptions {
  config: WireguardConfig;
  /** The in-memory log ring the logger also writes to (the admin's log viewer reads it). */
  logs: LogRing;
  /** When SENTRY_DSN is set: gets the connection lookup and admin URL once they exist. */
  sentry?: SentryReporter;
  /** First admin, created when the store has none (GLASSGATE_ADMIN_USER / _PASSWORD). */
  firstAdmin?: { username: string; password: string; generated?: boolean };
  /** What clients should dial, for generated configs (GLASSGATE_ENDPOINT); else the admin request's host. */
  publicEndpoint?: string;
  trafficSampleSeconds?: number;
  /** A peer without a confirmed session this long after its creation is a problem (GLASSGATE_NEVER_CONNECTED_SECONDS, default 600). */
  neverConnectedSeconds?: number;
  /** Audit events and traffic samples older than this are deleted (GLASSGATE_RETENTION_DAYS, default 90). */
  retentionDays?: number;
  /** OTLP export and per-peer series (see telemetry/metrics.ts); traces when `tracesUrl` is set (telemetry/otel.ts). */
  metrics?: { otlpEndpoint?: string; otlpIntervalMs?: number; perPeer?: { enabled: boolean; cap: number }; tracesUrl?: string };
  interfaceName: string;
  listenPort: number;
  admin: { hostname: string; port: number };
  adminToken: string | undefined;
  /** GLASSGATE_ADMIN_SECURE_COOKIE=1: admin cookies are Secure (served over HTTPS). */
  adminSecureCookie?: boolean;
  /** GLASSGATE_TRUSTED_PROXY: reverse proxies whose X-Forwarded-Proto/-For the admin believes. */
  trustedProxies?: string[];
  dataDir: string;
  keepDefaultBuffers: boolean;
  /** GLASSGATE_OFFLOAD / GLASSGATE_UDP_GSO (both default on): see data-plane-io.ts. */
  dataPlane?: DataPlaneChoices;
  logger: Logger;
  /** Portal mode (portal-run.ts): what it adds to this composition. Absent: standalone. */
  portal?: PortalHooks;
  /**
   * DATABASE_URL: the PostgreSQL store several gateways share (opened by the CLI with this data
   * dir's gid; closed here on shutdown). Peers then live there (cluster/cluster-peers.ts) and the
   * SQLite peers table in --data is their mirror; this gateway publishes its presence there each
   * CLUSTER_HEARTBEAT_MS, copies its SQLite audit rows there (cluster/audit-shipper.ts), and its
   * admin shows every gateway, the shared audit and the shared peers. Absent: SQLite alone.
   */
  pg?: PgStore;
}

/** What portal mode plugs into the standalone composition. */
export interface PortalHooks {
  /** The node's ICE events: the portal session signals gathered candidates to the clients. */
  onIceEvent(e: IceNodeEvent, now: number): void;
  /** An authorization's expiry (the node's sweep): the portal session says goodbye when it was the last. */
  onExpired(cid: number, rid: string, now: number): void;
  /** The portal's id of the client behind a cid (metric labels). */
  clientId(cid: number): string | undefined;
  /** The admin's portal views (Overview, connections). */
  admin?: Pick<AdminGateway, "portal" | "connectionPortal">;
}

/** The running parts portal mode drives after start (its TUN addresses and DNS come with `init`). */
export interface GatewayParts {
  node: GatewayNode;
  tunnel: Tunnel;
  core: GatewayCore;
  tunName: string;
  gid: string;
  /** Run an event-loop turn (after a change made outside it). */
  wake(): void;
  /** Starts the DNS service on `listen` (tunnel addresses) once; later calls are ignored. */
  startDns(listen: Uint8Array[], port: number, upstream: string | undefined): Promise<void>;
}

export interface RunningGateway {
  publicKey: string;
  udpPort: number;
  adminUrl: string;
  shutdown(reason: string): Promise<void>;
  /**
   * Settles with the error when the gateway failed at run time (the event loop's fatal path, or
   * `fail()`): by then it is already shutting down with goodbyes; the process should exit 1.
   */
  failed: Promise<unknown>;
  /** A fatal error from outside the event loop (e.g. an uncaught exception): log, goodbye, shut down. */
  fail(err: unknown): void;
  parts: GatewayParts;
}

/**
 * Adds tunnel addresses to the TUN. One the host already routes elsewhere would be shadowed or
 * shadow it: said loudly, and the address stands (the operator's, or the portal's, choice).
 */
export function addTunAddresses(tunName: string, addresses: Cidr[], log: TargetLogger, field = "[Interface] Address"): void {
  const hostRoutes = readHostRoutes().filter((r) => r.dev !== tunName);
  for (const a of addresses) {
    const clash = hostConflict(parseCidr(formatCidr(a)), hostRoutes);
    if (clash) log.error(`tunnel Address overlaps a network the host already routes: fix ${field}`, { address: formatCidr(a), interface: tunName, ...clash });
  }
  for (const a of addresses) ip(["addr", "add", formatCidr(a), "dev", tunName]);
}

/** How often the Overview's gateway-wide rates are sampled (120 points: the last 10 minutes). */
const RATE_SAMPLE_MS = 5000;

/**
 * Shutdown budget: the CLI leaves after SHUTDOWN_DEADLINE_MS whatever is still running (a stop
 * must not hang on an unreachable collector). The exporters' bounded waits plus the local steps
 * (the TUN reader takes up to 500 ms) stay well inside it.
 */
export const SHUTDOWN_DEADLINE_MS = 2000;
const EXPORT_FLUSH_MS = 400;
const SENTRY_FLUSH_MS = 700;

/** Monotonic milliseconds anchored to the Unix epoch: what the sans-IO cores take as `now`. */
export const clock = (): number => performance.timeOrigin + performance.now();

const ip = (args: string[]): void => void runIp(args);

async function resolveEndpoint(host: string, port: number): Promise<Endpoint> {
  const { address } = await lookup(host);
  return { address, port };
}

export function logEvent(log: TargetLogger, e: TunnelEvent, tunnel: Tunnel): void {
  switch (e.type) {
    case "handshake_completed":
      // A responder has proven nothing yet: "completed" waits for the client's first packet
      // (session_confirmed below), which a wrong preshared key never sends.
      if (e.role === "initiator") log.info("handshake completed", { cid: e.cid, session: sessionField(e.session), remote: formatEndpoint(e.remote), role: e.role, rtt_ms: logMs(e.rttMs) });
      else if (log.enabled("debug")) log.debug("handshake response sent", { cid: e.cid, session: sessionField(e.session), remote: formatEndpoint(e.remote) });
      break;
    case "handshake_failed":
      log.warn("handshake gave up", { cid: e.cid, attempts: e.attempts });
      break;
    case "endpoint_changed":
      log.info("endpoint changed", { cid: e.cid, remote: formatEndpoint(e.to), from: e.from ? formatEndpoint(e.from) : undefined });
      break;
    case "keys_zeroed":
      log.info("session keys erased after inactivity", { cid: e.cid });
      break;
    case "handshake_initiated":
      if (log.enabled("debug")) log.debug("handshake initiated", { cid: e.cid, session: sessionField(e.session), attempt: e.attempt, remote: formatEndpoint(e.to) });
      break;
    case "goodbye_received":
      // Firezone clients say goodbye when they leave: their sessions are gone at once (#10400).
      log.info("peer said goodbye", { cid: e.cid });
      break;
    case "session_confirmed": {
      // A responder's new session carried its first authenticated packet: key confirmation.
      const remote = tunnel.connection(e.cid)?.peer.endpoint;
      log.info("handshake completed", { cid: e.cid, session: sessionField(e.session), remote: remote ? formatEndpoint(remote) : undefined, role: "responder", rtt_ms: logMs(e.rttMs) });
      break;
    }
    default:
      break;
  }
}

/** How often the audit shipper copies new local rows to PostgreSQL. */
const AUDIT_SHIP_MS = 1000;
/** What stopping may spend on the last audit copy: rows it does not get to are shipped at the next start. */
const AUDIT_SHIP_FLUSH_MS = 500;

/** Above this many config file peers, start logs one "peers configured" line instead of one per peer. */
const PEER_LINES = 32;

export async function runStandalone(opts: StandaloneOptions): Promise<RunningGateway> {
  const log = opts.logger.target("gateway");
  const cfg = opts.config;
  const onLoose = (f: Parameters<typeof looseLogFields>[0]) => log.warn("secret file was readable by others", looseLogFields(f));
  const store = Store.open(opts.dataDir, { onLoosePermissions: onLoose });
  const gid = store.gid;
  const pg = opts.pg;
  if (pg && pg.gid !== gid) throw new Error(`the PostgreSQL store was opened for gateway ${pg.gid}, but ${opts.dataDir} is gateway ${gid}`);
  log.info("store", pg ? { dialect: "postgresql", server: pg.server, mirror: opts.dataDir } : { dialect: "sqlite", data: opts.dataDir });
  // Shared peers: loaded into the mirror before the first peer sync reads it. A change heard later
  // re-applies peers once the data plane exists (peersChangedHook is set below; until then the first
  // sync reads the mirror anyway).
  let peersChangedHook = (): void => undefined;
  // A data dir that ran standalone would lose its own peers and resources to the mirror: refused.
  const standaloneRows = pg ? await import("../cluster/standalone-rows.ts") : undefined;
  if (pg && standaloneRows) {
    try {
      await standaloneRows.refuseStandaloneRows(store, pg, opts.dataDir);
    } catch (err) {
      store.close();
      throw err;
    }
  }
  // Loaded only with a database: the PostgreSQL schema and client are no cost for a SQLite gateway.
  const clusterPeers: ClusterPeers | undefined = pg ? await (await import("../cluster/cluster-peers.ts")).ClusterPeers.start({ pg, local: store, gid, onChange: () => peersChangedHook(), log: opts.logger.target("cluster") }) : undefined;
  // Shared resources and authorizations, the same way: mirrored before the first resource sync.
  let resourcesChangedHook = (): void => undefined;
  const clusterResources: ClusterResources | undefined = pg
    ? await (await import("../cluster/cluster-resources.ts")).ClusterResources.start({ pg, local: store, gid, onChange: () => resourcesChangedHook(), log: opts.logger.target("cluster") })
    : undefined;
  standaloneRows?.markMirror(store);
  // The one OpenTelemetry SDK: metrics (Prometheus + OTLP) and, with an endpoint, traces.
  const { tracesUrl, ...metricsOpts } = opts.metrics ?? {};
  const telemetry = new Telemetry({ gid, otlpEndpoint: metricsOpts.otlpEndpoint, otlpIntervalMs: metricsOpts.otlpIntervalMs, tracesUrl });
  traceStoreWrites(telemetry.tracer, store);
  const handshakeSpans = new HandshakeSpans(telemetry.tracer);
  if (opts.firstAdmin && store.auth.userCount() === 0) {
    await store.auth.createUser(opts.firstAdmin.username, opts.firstAdmin.password, "env");
    log.info("first admin created", { username: opts.firstAdmin.username });
    // Shown once, on the console only (not in the log ring the UI serves).
    if (opts.firstAdmin.generated) process.stderr.write(`glassgate: first admin "${opts.firstAdmin.username}" has the generated password: ${opts.firstAdmin.password}\n`);
  }

  const aead = selectAead(opts.logger.target("crypto"));
  const tunnel = new Tunnel({ aead, privateKey: cfg.interface.privateKey, random: randomBytes, mtu: cfg.interface.mtu });
  // Resources and authorizations (Firezone's gateway core); with none configured, a plain WireGuard server.
  const gatewayCore = new GatewayCore();
  for (const r of cfg.resources) gatewayCore.policy.upsertResource(r);
  for (const { domain, err } of gatewayCore.nat.proxies.restore(store.proxyAssignments.all(), clock())) {
    opts.logger.target("dns").error("saved DNS proxy addresses skipped", { domain, err });
  }
  const dnsResponder = new DnsResponder(gatewayCore.policy, gatewayCore.nat, (domain, v4, v6, slot) =>
    store.proxyAssignments.save({ domain, slot, v4: v4.map(formatIp), v6: v6.map(formatIp) }));
  dnsResponder.restoreRoutes();
  for (const p of cfg.peers) {
    const endpoint = p.endpoint ? await resolveEndpoint(p.endpoint.host, p.endpoint.port) : undefined;
    const conn = tunnel.upsertPeer({ publicKey: p.publicKey, presharedKey: p.presharedKey, allowedIPs: p.allowedIPs, endpoint, persistentKeepalive: p.persistentKeepalive });
    for (const g of p.resources) gatewayCore.policy.authorize(conn.cid, g.rid, g.expiresAt);
    // One line per peer for a handful; with thousands, one summary (10 000 lines cost ~1 s and fill the log ring).
    if (cfg.peers.length <= PEER_LINES) log.info("peer configured", { cid: conn.cid, public_key: conn.publicKey, allowed_ips: p.allowedIPs.map(formatCidr).join(","), remote: endpoint ? formatEndpoint(endpoint) : undefined });
  }
  if (cfg.peers.length > PEER_LINES) log.info("peers configured", { count: cfg.peers.length, with_endpoint: cfg.peers.filter((p) => p.endpoint).length });

  if (gatewayCore.policy.enforcing) log.info("resources enforced", { resources: cfg.resources.map((r) => r.id).join(","), authorizations: cfg.peers.reduce((n, p) => n + p.resources.length, 0) });

  const filePeers = new Set(cfg.peers.map((p) => encodeKey(p.publicKey)));
  // Connection states and named problems: fed by tunnel events, peer changes and a 1 s sample.
  /** When a peer without a store row (a config file peer) counts as created: this start. */
  const peersSince = clock();
  const fileEndpoints = new Set(cfg.peers.filter((p) => p.endpoint).map((p) => encodeKey(p.publicKey)));
  const states = new ConnectionStates();
  const gatewayPublicKey = encodeKey(publicKeyOf(cfg.interface.privateKey));
  const problems = new ProblemDetector({ gatewayPublicKey, neverConnectedMs: opts.neverConnectedSeconds !== undefined ? opts.neverConnectedSeconds * 1000 : undefined });
  const plog = opts.logger.target("problems");
  const drainProblems = () => {
    for (let ch = problems.pollChange(); ch; ch = problems.pollChange()) {
      const p = ch.problem;
      const fields = { kind: p.kind, cid: p.cid, public_key: p.public_key, source: p.source, count: p.count };
      if (ch.type === "cleared") {
        plog.info("problem cleared", { ...fields, title: p.title, superseded_by: ch.superseded_by });
        continue;
      }
      plog.warn(p.title, { ...fields, likely_cause: p.likely_cause, fix: p.fix });
      try {
        opts.sentry?.reportProblem(p);
      } catch {
        // Reporting must never take the gateway down with it.
      }
    }
  };
  /** New connections enter the state machine and the detector (created: the store row's time, else start). */
  const trackPeers = (now: number, storeRows: readonly PeerRow[]) => {
    const rows = new Map(storeRows.map((p) => [p.publicKey, p]));
    for (const c of tunnel.connections()) {
      const row = rows.get(c.publicKey);
      const endpoint = row ? row.endpoint !== null && row.endpoint !== "" : fileEndpoints.has(c.publicKey);
      problems.peerAdded(c.cid, c.publicKey, Math.min(row?.createdAt ?? peersSince, now), endpoint);
      if (!states.get(c.cid) || states.get(c.cid)!.state === "expired" || states.get(c.cid)!.state === "disabled") states.added(c.cid, now);
    }
    states.retain((cid) => tunnel.connection(cid) !== undefined);
    problems.retain((cid) => tunnel.connection(cid) !== undefined, now);
    problems.setAddressClashes(sync.clashes, now);
    drainProblems();
  };
  // A store peer's Endpoint hostname resolves off the data path; when it does, peers apply again.
  let reapply = (): void => undefined;
  const sync = new PeerSync(tunnel, store, filePeers, opts.logger.target("peers"), {
    // Several gateways: only the peers served by this one (served_by).
    gid: pg ? gid : undefined,
    fileOwners: cfg.peers.map(filePeerOwner),
    resolveHost: async (host) => (await lookup(host)).address,
    onResolved: () => reapply(),
    onRemoved: (cid, _key, reason, now) => {
      states.removed(cid, reason, now);
      problems.peerRemoved(cid, now);
    },
  });
  const storePeers = sync.apply(clock());
  trackPeers(clock(), sync.rows);
  // Adding the peers touched every connection: no activity for the samplers (they start from
  // zero counters, and trackPeers entered them in the state machine and the detector).
  tunnel.takeTouched();
  // Several gateways: only the resources served by this one (served_by).
  const resourceSync = new ResourceSync(gatewayCore.policy, tunnel, store, cfg.resources.map((r) => r.id), opts.logger.target("gateway"), pg ? gid : undefined);
  resourceSync.apply(clock());

  const dataPlane: DataPlaneChoices = opts.dataPlane ?? { offload: true, udpGso: true };
  const tun = openTun(opts.interfaceName, dataPlane);
  // Host routes for the AllowedIPs of peers in the data plane (file peers, enabled store peers):
  // never one the host already has (io/route-plan.ts), and gone again when no peer needs it.
  const routes = new TunRoutes(tun.name, opts.logger.target("routes"));
  const wantedRoutes = (storeRows: readonly PeerRow[]) => {
    const names = new Map(storeRows.map((p) => [p.publicKey, p.name]));
    return [...tunnel.connections()].flatMap((c) =>
      c.allowedIPs.map((prefix) => ({ prefix, peer: { cid: c.cid, publicKey: c.publicKey, name: names.get(c.publicKey) } })));
  };
  const routeTunnel = (storeRows: readonly PeerRow[]) => void routes.sync(wantedRoutes(storeRows));
  /** The start's routes: `ip` adds them (10 000: ~0.5 s of kernel work) while the start goes on; awaited before "gateway up". */
  let routesAdded: Promise<unknown> = Promise.resolve();
  try {
    // The tunnel subnet gets a connected route on the TUN.
    addTunAddresses(tun.name, cfg.interface.addresses, log);
    ip(["link", "set", "dev", tun.name, "mtu", String(cfg.interface.mtu), "up"]);
    const adding = routes.syncInBackground(wantedRoutes(sync.rows)).then(() => undefined, (err: unknown) => err);
    routesAdded = adding.then((err) => {
      if (err !== undefined) throw new Error(`configuring ${tun.name}`, { cause: err });
    });
    try {
      // A longer queue absorbs bursts towards the TUN instead of dropping them (Firezone #10231).
      ip(["link", "set", "dev", tun.name, "txqueuelen", String(TUN_TX_QUEUE_LEN)]);
    } catch (err) {
      log.warn("TUN tx queue left at the kernel default", { interface: tun.name, txqueuelen: TUN_TX_QUEUE_LEN, err });
    }
  } catch (err) {
    tun.close();
    throw new Error(`configuring ${tun.name}`, { cause: err });
  }

  const audit = new ConnectionAudit(store, tunnel);
  // Old cids resolve to their peer after a restart; kept log lines name their cid's peer.
  const history = new ConnectionHistory(store, tunnel, gid);
  history.start(cfg.peers, Date.now());
  opts.logs.persisted?.attach(store.logs, (cid) => history.keyOf(cid));
  // Errors that can repeat per packet or per turn: a few lines per 10 s each, then a count.
  const ioLog = opts.logger.target("io");
  const ioThrottle = new Throttle({ windowMs: 10_000, burst: 3 });
  const captures = new CaptureService(tunnel, store, clock);
  let onFatal: (err: unknown) => void = () => undefined;
  let metrics: GatewayMetrics | undefined;
  // The one core: tunnel, policy and NAT; the loop feeds it and flushes its batches.
  const node = new GatewayNode({ tunnel, gateway: gatewayCore, captures: captures.captures });
  const iceLog = opts.logger.target("ice");
  const turnLog = opts.logger.target("turn");
  const loop = new EventLoop({
    node,
    tun,
    clock,
    onEvent: (e, now) => {
      // Inside the handshake's span: its log line and audit row carry the handshake's trace.
      withSpan(handshakeSpans.onEvent(e, now), () => {
        // Portal mode: a connection's lines also name this gateway and the portal's client (control path only).
        const tlog = opts.logger.target("tunnel");
        logEvent(opts.portal ? tlog.with({ gid, client_id: opts.portal.clientId(e.cid) }) : tlog, e, tunnel);
        audit.onEvent(e);
        states.onEvent(e, now);
        problems.onEvent(e, now);
        drainProblems();
      });
      metrics?.onEvent(e);
    },
    onIceEvent: (e, now) => {
      // The connection's ICE life (candidates, checks, the nominated pair, relays) on its timeline.
      logIceEvent(iceLog, turnLog, e);
      opts.portal?.onIceEvent(e, now);
    },
    onGatewayEvent: (e) => {
      const glog = opts.logger.target("gateway");
      if (e.type === "denied") glog.info("packet denied", { cid: e.cid, rid: e.rid, reason: e.reason, src: e.src, dst: e.dst, protocol: e.protocol, port: e.dstPort, count: e.count });
      else {
        // Logged once, with a goodbye when it was the client's last resource (resource-sync.ts,
        // or the portal session, which also forgets the client).
        if (opts.portal) opts.portal.onExpired(e.cid, e.rid, clock());
        else resourceSync.onExpired(e.cid, e.rid, clock());
        loop.wake();
      }
    },
    onFatal: (err) => onFatal(err),
    onBatchErrors: (errors, turn) => {
      const suppressed = ioThrottle.admit("batch", clock());
      if (suppressed !== undefined) ioLog.warn("per-packet errors in one event-loop turn", { count: errors.length, turn, err: errors[0], suppressed: suppressed || undefined });
    },
    onTunReadError: (f) => {
      const suppressed = f.lost ? 0 : ioThrottle.admit(`tun_read:${f.errno}`, clock());
      if (suppressed !== undefined) ioLog.error("TUN read failed", { interface: tun.name, errno: errnoName(f.errno), consecutive: f.consecutive, lost: f.lost, suppressed: suppressed || undefined });
    },
  });
  const iolog = opts.logger.target("io");
  const udp = await openUdp({
    port: opts.listenPort,
    udpGso: dataPlane.udpGso,
    aqm: dataPlane.aqm !== false,
    // Portal mode: ICE chooses and checks its own local candidates; answering from the arrival
    // address under it broke the relayed path (test/portal-client-e2e.test.ts "relayed", 3 of 3
    // runs) for a reason not yet found, so it stays off there until it is.
    stickySource: !opts.portal,
    onReadable: loop.wake,
    onDatagram: loop.onDatagram,
    // Send errors can come per packet (a firewall's EPERM, an unreachable endpoint): throttled.
    onError: (err) => {
      const suppressed = ioThrottle.admit(`udp:${(err as NodeJS.ErrnoException).code ?? err.message.slice(0, 64)}`, clock());
      if (suppressed !== undefined) ioLog.error("UDP socket error", { err, suppressed: suppressed || undefined });
    },
    keepDefaultBuffers: opts.keepDefaultBuffers,
    log: iolog,
  }).catch((err) => {
    tun.close();
    throw err;
  });
  iolog.info("data plane", { interface: tun.name, ...dataPlaneFields(tun, udp, { ...dataPlane, stickySource: !opts.portal }) });
  reportSocketBuffers(udp, opts.keepDefaultBuffers ? undefined : { recv: WANTED_SOCKET_BUFFER, send: WANTED_SOCKET_BUFFER }, iolog);
  // DNS resources: clients use the gateway's tunnel address as their resolver (DNS = in their config).
  let dns: DnsService | undefined;
  const startDns = async (addresses: Uint8Array[], port: number, configured: string | undefined): Promise<void> => {
    if (dns) return;
    const upstream = configured ?? systemResolver();
    if (!upstream) throw new Error("DNS resources need an upstream resolver: set DNS = in [Interface] or a nameserver in /etc/resolv.conf");
    const listen = addresses.filter((a) => a.length === 4).map((a) => formatIp(a));
    for (const a of addresses) gatewayCore.serveDnsOn(a, port);
    dns = await DnsService.start({ listen, listenPort: port, upstream, responder: dnsResponder, nat: gatewayCore.nat, tunnel, clock, log: opts.logger.target("dns"), wake: () => loop.wake(), tracer: telemetry.tracer });
  };
  // (Resources added through the API later need a restart for the resolver to start.)
  if ([...cfg.resources, ...store.resources.list()].some((r) => r.type === "dns")) {
    await startDns(cfg.interface.addresses.map((a) => a.bytes), 53, cfg.interface.dns[0]);
  }
  const reader = new TunReader(tun.fd, cfg.interface.mtu, { onReadable: loop.wake, onReadError: loop.onTunReadError, vnetHeader: tun.vnetHeader });
  loop.attach(udp, reader);
  // The gateway core's drops, plus the receive queue's CoDel drops (no connection is blamed: the
  // queue is shared), so the Overview and glassgate_packets_dropped_total both show them.
  const gatewayDrops = (): Iterable<[string, number]> =>
    udp instanceof GatewayUdp && udp.aqmDropped > 0 ? [...gatewayCore.drops, ["queue_delay", udp.aqmDropped]] : gatewayCore.drops;
  metrics = new GatewayMetrics({ tunnel, loop, clock, gatewayDrops, socketBuffers: () => udp.buffers, dns: () => dnsCounters(gatewayCore.nat, dns), connectionStates: () => states.counts(), problems: () => problems.counts(), clientId: opts.portal?.clientId, ice: () => node.iceMetrics(), batchedUdp: udp instanceof GatewayUdp ? udp : undefined, tunOffload: tun.vnetHeader, ...metricsOpts, telemetry });

  // `periodic`: the 10 s tick, which skips everything below when the store has nothing new
  // (PeerSync.apply's mark): the rest walks every connection, O(configured peers) per tick.
  const applyPeers = (periodic = false) => {
    const r = sync.apply(clock(), { unlessUnchanged: periodic });
    if (!r.unchanged) {
      trackPeers(clock(), sync.rows);
      resourceSync.apply(clock());
      routeTunnel(sync.rows);
      audit.sweep();
      history.observe(Date.now());
      captures.sweep();
    } else {
      feedTouched();
      history.observeTouched(Date.now(), touchedForHistory);
    }
    loop.wake();
    return r;
  };
  reapply = () => {
    // Runs from a DNS answer: a failure here is logged, never an unhandled rejection (fatal).
    try {
      applyPeers();
    } catch (err) {
      log.error("peer sync failed", { err });
    }
  };
  peersChangedHook = reapply;
  // A resource or authorization changed (this admin, or another gateway's through the mirror).
  const applyResources = (): void => {
    resourceSync.apply(clock());
    dnsResponder.restoreRoutes();
    loop.wake();
  };
  resourcesChangedHook = () => {
    try {
      applyResources();
    } catch (err) {
      log.error("resource sync failed", { err });
    }
  };
  // The Overview's live charts: gateway-wide rates every few seconds, in memory (the store keeps per-peer history).
  const startedAt = Date.now();
  // A takeover's handshakes leave from GLASSGATE_ENDPOINT's address when it is an IP address.
  const takeoverSource = publicEndpointAddress(opts.publicEndpoint);
  // This gateway's row in the store's gateways table; its endpoint only when GLASSGATE_ENDPOINT says it.
  const registration = { gid, name: hostname(), publicKey: gatewayPublicKey, endpoint: opts.publicEndpoint, version: SERVICE_VERSION };
  store.gateways.register(registration, startedAt);
  // What this gateway publishes on each heartbeat: its connections and problems, bounded.
  const presence = (): PresenceSnapshot => {
    const views = history.withPeers(connectionViews(tunnel, clock(), states, (cid) => node.pathOf(cid)));
    return { connectedPeers: views.filter((v) => v.state === "connected").length, live: gatewayLive(views, problems.problems().map(problemView)) };
  };
  const clog = opts.logger.target("cluster");
  // Last seen moves every STANDALONE_HEARTBEAT_MS in SQLite (and every CLUSTER_HEARTBEAT_MS in
  // PostgreSQL when clustered); a row an operator deleted comes back.
  const localPresence = new PresencePublisher({ store: store.gateways, registration, snapshot: presence, where: "sqlite", log });
  const pgPresence = opts.pg ? new PresencePublisher({ store: opts.pg.gateways, registration, snapshot: presence, where: "postgres", log: clog }) : undefined;
  // At once, not a beat later: the row's count and live state are still the last run's.
  await localPresence.publishOnce(startedAt);
  await pgPresence?.publishOnce(startedAt);
  const shipper = opts.pg ? new AuditShipper({ local: store, pg: opts.pg, gid, log: clog }) : undefined;
  const rates = new ThroughputRing(startedAt);
  const touchedForProblems = new TouchedSince();
  const touchedForRates = new TouchedSince();
  const touchedForTraffic = new TouchedSince();
  const touchedForHistory = new TouchedSince();
  const feedTouched = touchedFeed(() => tunnel.takeTouched(), [touchedForProblems, touchedForRates, touchedForTraffic, touchedForHistory]);
  const app = createAdminApp({
    envToken: opts.adminToken,
    log: opts.logger.target("admin"),
    tracer: telemetry.tracer,
    secureCookie: opts.adminSecureCookie,
    trustedProxies: opts.trustedProxies,
    store,
    logs: opts.logs,
    ...(clusterPeers && clusterResources && pg ? { peers: clusterPeers, resources: clusterResources, cluster: { gid, gateways: () => pg.gateways.list(), audit: pg.audit, heartbeatMs: CLUSTER_HEARTBEAT_MS } } : {}),
    gateway: {
      gid,
      connections: () => {
        const views = history.withPeers(connectionViews(tunnel, clock(), states, (cid) => node.pathOf(cid)));
        const who = opts.portal?.admin?.connectionPortal;
        if (!who) return views;
        return views.map((v) => {
          const p = who(v.cid);
          return p ? { ...v, portal: { client_id: p.client_id, name: p.name } } : v;
        });
      },
      connectionState: (cid) => {
        const e = states.get(cid);
        return e ? { state: e.state, since: new Date(e.since).toISOString() } : undefined;
      },
      // Newest first, as the Overview lists them.
      problems: () => problems.problems().sort((a, b) => b.since - a.since).map(problemView),
      // TURN relays exist only when a portal hands them out.
      ...(opts.portal ? { relays: () => node.relayViews(clock()) } : {}),
      facts: () => ({
        public_key: gatewayPublicKey, udp_port: udp.port, version: SERVICE_VERSION, gid, started_at: new Date(startedAt).toISOString(), aead: aead.name,
        udp_buffers: udp.buffers, queue_depths: loop.depths(), unattributed_drops: unattributedDrops(tunnel, gatewayDrops()),
        ...(udp instanceof GatewayUdp ? { receive_queue: { managed: udp.aqm, delay_ms: udp.queueDelayMs } } : {}),
        traffic_sample_seconds: opts.trafficSampleSeconds ?? 60, throughput: rates.points(),
      }),
      metrics: () => metrics!.prometheusText(),
      // In cluster mode the shared peer store's own write already re-applied the mirror (onChange):
      // a second pass here would cost a full apply (~55 ms at 1 000 peers) per admin change for nothing.
      peersChanged: () => {
        if (!clusterPeers) applyPeers();
      },
      // POST /api/takeover: the initiation leaves through the loop's next turn, from the address
      // clients dialled (the floating one, which HA pairs set as GLASSGATE_ENDPOINT) — not the
      // kernel's preferred source, which would pull the client to this node's own address and away
      // from the one that moves on the next failover.
      reachOut: (publicKey, to) => {
        if (takeoverSource !== undefined && "answerFrom" in udp) udp.answerFrom(to, takeoverSource);
        const r = node.reachOut(publicKey, to, clock());
        loop.wake();
        return r;
      },
      setSocketBuffers: (wanted) => {
        const was = udp.buffers;
        const now = udp.resize(wanted);
        iolog.info("UDP socket buffers resized", { recv_wanted: wanted.recv, send_wanted: wanted.send, udp_recv_buffer: now.recv, udp_send_buffer: now.send, was_recv: was.recv, was_send: was.send });
        reportSocketBuffers(udp, wanted, iolog);
        return now;
      },
      resources: () => {
        const apiIds = new Set(store.resources.list().map((r) => r.id));
        const keys = new Map([...tunnel.connections()].map((c) => [c.cid, c.publicKey]));
        const grants = new Map<string, { cid: number; public_key?: string; expires_at: string | null }[]>();
        for (const c of tunnel.connections()) {
          for (const g of gatewayCore.policy.authorizations(c.cid)) {
            const list = grants.get(g.rid) ?? [];
            list.push({ cid: c.cid, public_key: keys.get(c.cid), expires_at: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString() });
            grants.set(g.rid, list);
          }
        }
        return [...gatewayCore.policy.resources()].map((r) => ({
          id: r.id,
          name: r.name,
          type: r.type,
          address: r.type === "cidr" ? formatCidr(r.address) : r.type === "dns" ? r.pattern : "0.0.0.0/0, ::/0 (public)",
          filters: r.filters.map(filterText).join(", "),
          source: apiIds.has(r.id) && !cfg.resources.some((x) => x.id === r.id) ? ("api" as const) : ("file" as const),
          authorizations: grants.get(r.id) ?? [],
        }));
      },
      // In cluster mode the shared resource store's own write already re-applied (onChange).
      resourcesChanged: () => {
        if (!clusterResources) applyResources();
      },
      capture: captures,
      ...opts.portal?.admin,
      policyTest: (q) => testPolicy({ tunnel, core: gatewayCore, storePeers: () => store.peers.list() }, q, clock()),
      filePeers: () => cfg.peers.map((p) => ({
        line: p.line,
        id: filePeerId(encodeKey(p.publicKey)),
        public_key: encodeKey(p.publicKey),
        allowed_ips: p.allowedIPs.map(formatCidr),
        endpoint: p.endpoint ? `${p.endpoint.host.includes(":") ? `[${p.endpoint.host}]` : p.endpoint.host}:${p.endpoint.port}` : null,
        persistent_keepalive: p.persistentKeepalive ?? 0,
        preshared_key: p.presharedKey !== undefined,
      })),
      nextAddress: () => nextFreeAddress(cfg, store.peers.list().flatMap((p) => PeerSync.allowedIpsOrNone(p))),
      clientConfig: (p, host) =>
        p.clientPrivateKey
          ? clientConfigText({
              name: p.name,
              privateKey: p.clientPrivateKey,
              address: PeerSync.allowedIpsOrNone(p).map(formatCidr)[0] ?? "",
              gatewayPublicKey,
              presharedKey: p.presharedKey ?? undefined,
              allowedIPs: cfg.interface.addresses.map((a) => formatCidr(parseCidr(formatCidr(a)))),
              endpoint: opts.publicEndpoint ?? `${host.includes(":") ? `[${host}]` : host}:${udp.port}`,
            })
          : undefined,
    },
  });
  const retentionMs = (opts.retentionDays ?? 90) * 24 * 3600_000;
  const prune = () => {
    const cutoff = Date.now() - retentionMs;
    const n = store.audit.prune(cutoff);
    store.traffic.prune(cutoff);
    store.history.prune(cutoff);
    store.logs.prune(cutoff);
    if (n > 0) log.info("audit retention applied", { deleted: n, retention_days: opts.retentionDays ?? 90 });
  };
  await routesAdded;
  prune();
  // Housekeeping that fails (a busy or full disk) is an error to see, not a reason to stop
  // moving packets: only what escapes everything is fatal (cli.ts).
  const every = (what: string, ms: number, f: () => unknown) =>
    setInterval(() => {
      try {
        f();
      } catch (err) {
        log.error(`${what} failed`, { err });
      }
    }, ms);
  const retentionTimer = every("audit retention", 3600_000, prune);
  // Expiry is checked every 10 s; traffic history is sampled every trafficSampleSeconds.
  localPresence.start(STANDALONE_HEARTBEAT_MS);
  pgPresence?.start(CLUSTER_HEARTBEAT_MS);
  shipper?.start(AUDIT_SHIP_MS);
  const expiryTimer = every("peer and resource sync", 10_000, () => {
    applyPeers(true);
    // (The NAT sweep and authorization expiry are the node's timers now: see GatewayNode.handleTimeout.)
    // Proxy names unused for a day (and without live NAT sessions) give back their addresses and row.
    const reclaimed = dnsResponder.reclaimIdle(clock());
    if (reclaimed.length > 0) {
      store.proxyAssignments.remove(reclaimed);
      opts.logger.target("dns").info("idle DNS proxy names reclaimed", { count: reclaimed.length, first: reclaimed[0] });
    }
  });
  // Per-packet evidence (drops by source, sources outside AllowedIPs) is read from counters the
  // data path keeps, once a second; so are "stale" and "never connected", which no event announces.
  // Each sampler visits the connections touched since its last run (telemetry/touched.ts), not
  // every configured peer: 10 000 idle peers cost these timers nothing.
  const problemTimer = every("problem detection", 1000, () => {
    const now = clock();
    feedTouched();
    const touched = touchedForProblems.take().live;
    problems.sample(tunnel, now, touched);
    states.sampleTouched(touched, now);
    drainProblems();
  });
  const trafficTimer = every("traffic sampling", (opts.trafficSampleSeconds ?? 60) * 1000, () => {
    feedTouched();
    const t = touchedForTraffic.take();
    store.traffic.sample(Date.now(), t.live.map((c) => ({ publicKey: c.publicKey, rxBytes: c.peer.stats.rxBytes, txBytes: c.peer.stats.txBytes })), { forget: t.removed.map((c) => c.publicKey) });
  });
  const rateTimer = every("throughput sampling", RATE_SAMPLE_MS, () => {
    feedTouched();
    const t = touchedForRates.take();
    rates.sampleChanged(Date.now(), t.live.map((c) => ({ cid: c.cid, rxBytes: c.peer.stats.rxBytes, txBytes: c.peer.stats.txBytes, handshakesCompleted: c.peer.stats.handshakesCompleted, handshakesFailed: c.peer.stats.handshakesFailed })), t.removed.map((c) => c.cid));
  });
  // The app limits bodies per route (admin/middleware/limits.ts); this is Bun's outer bound.
  const server = Bun.serve({ hostname: opts.admin.hostname, port: opts.admin.port, maxRequestBodySize: 1024 * 1024, fetch: (req, srv) => app.fetch(req, srv) });
  const adminUrl = `http://${opts.admin.hostname.includes(":") ? `[${opts.admin.hostname}]` : opts.admin.hostname}:${server.port}`;
  const publicKey = gatewayPublicKey;
  if (opts.sentry) {
    opts.sentry.adminUrl = adminUrl;
    opts.sentry.gid = gid;
    opts.sentry.connection = (cid) => connectionViews(tunnel, clock(), states).find((c) => c.cid === cid);
  }
  log.info("gateway up", {
    gid,
    interface: tun.name,
    listen_port: udp.port,
    public_key: publicKey,
    peers: cfg.peers.length,
    store_peers: storePeers.upserted,
    store_peers_skipped: storePeers.skipped || undefined,
    admin: adminUrl,
    aead: aead.name,
    udp_recv_buffer: udp.buffers.recv,
    udp_send_buffer: udp.buffers.send,
    endpoint: opts.publicEndpoint ?? null,
  });
  if (!opts.publicEndpoint) {
    // Generated client configs then dial the host the admin was opened with: right on a LAN, wrong
    // through `ssh -L` (127.0.0.1). Said once here; the config page warns when it happens.
    log.info(`client configs will dial the admin's request host on UDP ${udp.port}: set GLASSGATE_ENDPOINT=<public host or IP>:${udp.port} so they carry the address clients reach`);
  }
  if (!opts.adminToken && store.auth.userCount() === 0) {
    log.warn("no admin user yet: set GLASSGATE_ADMIN_USER and GLASSGATE_ADMIN_PASSWORD, or run `glassgate admin create`");
  }

  let down: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> =>
    (down ??= (async () => {
      log.info("shutting down", { reason });
      localPresence.stop();
      pgPresence?.stop();
      clearInterval(expiryTimer);
      clearInterval(trafficTimer);
      clearInterval(problemTimer);
      clearInterval(rateTimer);
      clearInterval(retentionTimer);
      const told = node.goodbye(clock());
      loop.stop(); // flushes the goodbyes, then accepts nothing more
      // Each step on its own: after a fatal error (say, a full disk) one failing step must not
      // leave the rest undone.
      const step = async (what: string, f: () => unknown) => {
        try {
          await f();
        } catch (err) {
          log.error(`shutdown: ${what} failed`, { err });
        }
      };
      // Steps that wait on other hosts (PostgreSQL, a collector, Sentry) each get a bounded share
      // of the deadline, and say when they ran out rather than keeping the process past it.
      const unfinished: string[] = [];
      const bounded = (what: string, ms: number, f: () => Promise<unknown>) =>
        step(what, async () => {
          let done = false;
          await Promise.race([f().finally(() => (done = true)), Bun.sleep(ms)]);
          if (!done) unfinished.push(what);
        });
      // The records first, before any step that waits on something else: the CLI leaves after
      // SHUTDOWN_DEADLINE_MS whatever is still running, and a slow step (a Sentry delivery in flight)
      // used to take the connection.closed rows and "gateway down" with it.
      await step("auditing open connections", () => audit.shutdown());
      await step("recording connection ids", () => history.observe(Date.now(), true));
      // The traffic since the last periodic sample (up to a minute of it) would be lost otherwise.
      await step("sampling traffic", () => store.traffic.sample(Date.now(), connectionViews(tunnel, clock(), states).map((c) => ({ publicKey: c.public_key, rxBytes: c.rx_bytes, txBytes: c.tx_bytes }))));
      await step("ending packet captures", () => captures.shutdown());
      // Then the audit rows written so far (connection.closed above) go to PostgreSQL, within a
      // bound: what does not make it stays in SQLite and is shipped at the next start.
      if (shipper) await bounded("shipping the audit to PostgreSQL", AUDIT_SHIP_FLUSH_MS, () => shipper.stop());
      await Bun.sleep(50); // let the goodbye sends complete before the sockets close
      tunnel.zeroize();
      await step("closing DNS", () => dns?.close());
      await step("closing UDP", () => udp.close());
      await step("stopping the TUN reader", () => reader.stop());
      await step("closing the TUN", () => tun.close());
      await step("stopping the admin server", () => server.stop(true));
      handshakeSpans.close(clock());
      await bounded("flushing metrics and traces", EXPORT_FLUSH_MS, async () => {
        await metrics?.shutdown();
        await telemetry.shutdown();
      });
      await bounded("flushing Sentry", SENTRY_FLUSH_MS, async () => opts.sentry?.close(SENTRY_FLUSH_MS));
      await step("writing kept log lines", () => opts.logs.persisted?.close());
      await step("stopping peer notifications", () => clusterPeers?.close());
      await step("stopping resource notifications", () => clusterResources?.close());
      await step("closing the store", () => store.close());
      await step("closing PostgreSQL", () => pg?.close());
      log.info("gateway down", { goodbyes_sent: told, unfinished: unfinished.length ? unfinished : undefined });
    })());

  // A fatal error closes like SIGTERM does — every connected peer is told goodbye — then exits 1.
  let reportFailure!: (err: unknown) => void;
  const failed = new Promise<unknown>((resolve) => (reportFailure = resolve));
  let failedOnce = false;
  onFatal = (err) => {
    if (failedOnce) return;
    failedOnce = true;
    log.error("fatal error: saying goodbye to every peer and shutting down", { err });
    reportFailure(err);
    void shutdown("fatal error").catch(() => undefined);
  };

  const parts: GatewayParts = { node, tunnel, core: gatewayCore, tunName: tun.name, gid, wake: () => loop.wake(), startDns };
  return { publicKey, udpPort: udp.port, adminUrl, shutdown, failed, fail: (err) => onFatal(err), parts };
}

/** The IP address in a "host:port" / "[v6]:port" endpoint, or undefined (unset, or a name). */
export function publicEndpointAddress(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  const m = /^\[([^\]]+)\]:\d+$/.exec(endpoint) ?? /^([^:]+):\d+$/.exec(endpoint);
  const host = m?.[1];
  return host !== undefined && parseIp(host) !== undefined ? host : undefined;
}
