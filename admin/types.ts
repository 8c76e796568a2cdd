// What the admin server reads and writes: the gateway through `AdminGateway` (snapshots, never
// protocol objects), the store, the log ring. Shared by app.ts and every file in routes/.
import type { Tracer } from "@opentelemetry/api";
import type { AuditRepository, GatewayRow, PeerRow, ResourceStore, Store } from "../src/store/index.ts";
import type { PeerStore } from "../src/store/peers.ts";
import type { LogRing } from "../src/telemetry/log-ring.ts";
import type { TargetLogger } from "../src/telemetry/log.ts";
import type { ConnectionView } from "../src/telemetry/view.ts";
import type { PolicyQuery, PolicyTestResult } from "../src/standalone/policy-test.ts";
import type { CaptureControl } from "../src/standalone/capture-control.ts";
import type { RatePoint } from "../src/telemetry/throughput.ts";
import type { ProblemView } from "../src/telemetry/problems.ts";
import type { RelayView } from "../src/node/relays.ts";

/** Everything the admin may ask of the gateway. */
export interface AdminGateway {
  /** The gateway's stable id (store/gateway-id.ts): cid history is per gid. */
  gid?: string;
  connections(): ConnectionView[];
  /** Prometheus text exposition. */
  metrics(): string | Promise<string>;
  /** Re-apply the store's peers to the data plane (after a change in the UI or API). */
  peersChanged(): void;
  /** Re-apply the store's resources and authorizations to the gateway's policy. */
  resourcesChanged?(): void;
  /** Every resource the policy enforces (file and API), with who may reach it. */
  resources?(): ResourceView[];
  /** The config file's peers (read-only in the admin; their addresses are taken). */
  filePeers?(): FilePeerView[];
  /** A free tunnel address for a new peer. */
  nextAddress(): string;
  /** A wg-quick config for a peer created here, or undefined if we do not hold its private key. */
  clientConfig(peer: PeerRow, requestHost: string): string | undefined;
  /** Resizes the UDP sockets' buffers at run time (#10234); returns the sizes in effect (getsockopt). */
  setSocketBuffers?(wanted: { recv: number; send: number }): { recv: number; send: number };
  /**
   * The policy tester: what the data path would decide now for a packet from `peer` to `dst`,
   * with the decision path. Throws PolicyQueryError naming the field it cannot resolve.
   */
  policyTest?(q: PolicyQuery): PolicyTestResult;
  /** Per-connection packet capture of inner traffic (start throws CaptureError when it cannot). */
  capture?: CaptureControl;
  /** What the gateway is and how it runs now (the Overview's facts, live queues and rates). */
  facts?(): GatewayFacts;
  /**
   * The last known state of a connection, also after it left the data plane (expired, disabled:
   * telemetry/connection-state.ts), with when it entered it (ISO).
   */
  connectionState?(cid: number): { state: string; since: string } | undefined;
  /** Named problems the gateway has seen (telemetry/problems.ts), newest first. */
  problems?(): ProblemView[];
  /** Portal mode: the portal connection's state (the Overview). Absent standalone. */
  portal?(): PortalView;
  /** Portal mode: who the portal says a connection is, and each portal message that touched it. */
  connectionPortal?(cid: number): ConnectionPortalView | undefined;
  /**
   * A takeover (routes/takeover.ts): start a handshake with a configured peer at `endpoint` for
   * this attempt only — the peer's stored and applied endpoint stay as they were. `unknown_peer`:
   * not in this gateway's data plane (not served here).
   */
  reachOut?(publicKey: string, endpoint: { address: string; port: number }): "initiated" | "live_session" | "rate_limited" | "unknown_peer";
  /** Portal mode: the TURN relays (allocations, channels, lifetimes); absent in standalone mode. */
  relays?(): RelayView[];
}

/** The portal connection (channel.stats()), times as ISO strings. */
export interface PortalView {
  url: string;
  state: string;
  connected_since: string | null;
  last_message_at: string | null;
  reconnects: number;
  join_latency_ms: number | null;
  malformed: number;
  dropped: number;
  /** The addresses the last `init` gave this gateway. */
  ipv4: string | null;
  ipv6: string | null;
  clients: number;
}

export interface ConnectionPortalView {
  client_id: string;
  name: string | null;
  ipv4: string;
  ipv6: string;
  resources: { rid: string; expires_at: string | null }[];
  timeline: { at: string; event: string; rid?: string; detail?: string }[];
}

/** The gateway as the Overview shows it: identity, runtime, and the live rate ring. */
export interface GatewayFacts {
  public_key: string;
  udp_port: number;
  version: string;
  /** The gateway id (service.instance.id, logs' gid). */
  gid: string;
  /** When this process started serving (ISO, UTC). */
  started_at: string;
  /** AEAD backend in use (libsodium or noble). */
  aead: string;
  /** UDP socket buffers in effect (getsockopt; Linux reports twice the granted size). */
  udp_buffers: { recv: number; send: number };
  /** Packets waiting in the data-plane queues now. */
  queue_depths: { udp: number; tun: number };
  /**
   * The UDP receive queue (socket buffer + ring): whether CoDel manages it (GLASSGATE_AQM and kernel
   * receive timestamps), and how long the oldest datagram of the last batch waited (0: idle in the
   * last second). Absent on the node:dgram fallback, which cannot tell.
   */
  receive_queue?: { managed: boolean; delay_ms: number };
  /** Drops no connection can be blamed for (unknown sessions, junk, policy), by reason. */
  unattributed_drops: Record<string, number>;
  /** How often per-peer traffic is stored (GLASSGATE_TRAFFIC_SAMPLE_SECONDS): one connection chart point each. */
  traffic_sample_seconds: number;
  /** Gateway-wide rates over the last minutes, oldest first (telemetry/throughput.ts). */
  throughput: RatePoint[];
}

/** One named problem (what is wrong, the likely cause, the fix to try): telemetry/problems.ts's shape. */
export type { ProblemView } from "../src/telemetry/problems.ts";

/** A [Peer] of the config file, as the admin shows it (never its preshared key). */
export interface FilePeerView {
  /** Line of its [Peer] header: how the file (and messages) locate it. */
  line: number;
  /** Stable id: `file-` + a hash of the key (store/identity.ts). */
  id: string;
  public_key: string;
  allowed_ips: string[];
  endpoint: string | null;
  persistent_keepalive: number;
  preshared_key: boolean;
}

export interface ResourceView {
  id: string;
  name: string;
  type: string;
  address: string;
  filters: string;
  source: "file" | "api";
  authorizations: { cid: number; public_key?: string; expires_at: string | null }[];
}

/**
 * Cluster mode (DATABASE_URL): the gateways, audit and peers every gateway of the deployment shares,
 * in PostgreSQL. Absent standalone: the admin then reads its own data dir's store.
 */
export interface ClusterAdmin {
  /** This gateway's id: its own row's connections and problems are read live, not from its publish. */
  gid: string;
  /** Every gateway's row (gateways table): the Gateways page, and the peer form's "Served by". */
  gateways(): Promise<GatewayRow[]>;
  /** The shared audit trail: the Audit page and /api/audit read this instead of the local copy. */
  audit: AuditRepository;
  /** How often gateways publish (cluster/gateway-presence.ts CLUSTER_HEARTBEAT_MS when left out). */
  heartbeatMs?: number;
}

export interface AdminOptions {
  gateway: AdminGateway;
  store?: Store;
  /**
   * Where peer pages and the peer API read and write peers (awaited): in cluster mode the shared
   * peers (cluster/cluster-peers.ts: PostgreSQL, then the local mirror); absent, `store.peers`.
   */
  peers?: PeerStore;
  /**
   * Where resource pages and the resource API read and write resources and authorizations (awaited):
   * in cluster mode the shared ones (cluster/cluster-resources.ts); absent, `store.resources`.
   */
  resources?: ResourceStore;
  /** Cluster mode: the peer and resource forms offer "Served by". */
  cluster?: ClusterAdmin;
  logs?: LogRing;
  /** GLASSGATE_ADMIN_TOKEN: a bearer token for the JSON API and /metrics. */
  envToken?: string;
  /** Mark cookies Secure (GLASSGATE_ADMIN_SECURE_COOKIE=1: served over HTTPS by a proxy we cannot see). */
  secureCookie?: boolean;
  /**
   * Addresses of reverse proxies whose X-Forwarded-Proto / X-Forwarded-For are believed
   * (GLASSGATE_TRUSTED_PROXY); with `https` from one, cookies are Secure and the origin is https.
   */
  trustedProxies?: string[];
  /** Wall clock in Unix ms (login throttling); tests pass a fake one. */
  clock?: () => number;
  /** Where unexpected errors are logged (with their cause chain). */
  log?: TargetLogger;
  /** A span per request when the gateway exports traces (middleware/tracing.ts). */
  tracer?: Tracer;
}
