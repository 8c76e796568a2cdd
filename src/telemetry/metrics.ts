// Gateway metrics on the gateway's OpenTelemetry SDK (otel.ts), exported two ways: Prometheus text
// (serialised on demand for the admin server's /metrics) and OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set.
// Counters the data plane already keeps are read through observable instruments at collection
// time, so the hot path pays nothing; queue depths are sampled once per second.
// Names carry their unit (Prometheus conventions: base units, `_total` added to counters).
import type { Meter } from "@opentelemetry/api";
import type { Tunnel, TunnelEvent } from "../tunnel/index.ts";
import { Telemetry } from "./otel.ts";

export interface LoopSource {
  stats: {
    turns: number; batchErrors: number; maxUdpBatch: number; maxTunBatch: number; tunReadErrors: number; tunWriteErrors: number;
    udpIn?: number; udpOut?: number; tunIn?: number; tunOut?: number;
    tunSuperPackets?: number; tunSegments?: number; tunCoalescedWrites?: number; tunCoalescedSegments?: number;
  };
  depths(): { udp: number; tun: number };
}

/** The batched UDP socket (io/udp-socket.ts): what its syscalls carry and which offloads it has. */
export interface BatchedUdpSource {
  readonly sendSyscalls: number;
  readonly recvSyscalls: number;
  readonly received: number;
  /** GRO super-datagrams split into segments. */
  readonly coalesced: number;
  readonly gso: boolean;
  readonly gro: boolean;
  readonly recvBatch: number;
  /** Sends resent from the route's source because the address the peer reached us on went away. */
  readonly sourceRetries?: number;
  /** WireGuard data packets the receive queue's CoDel dropped, and the last measured queue delay (ms). */
  readonly aqmDropped?: number;
  readonly queueDelayMs?: number;
}

export interface MetricsOptions {
  tunnel: Tunnel;
  /** Drops decided by the gateway core (resources, filters, malformed packets). */
  gatewayDrops?: () => Iterable<[string, number]>;
  loop?: LoopSource;
  clock: () => number;
  /** Per-peer series (labelled by cid and public key) are opt-in and capped. */
  perPeer?: { enabled: boolean; cap: number };
  /** Portal mode: the portal's id of the client behind a cid, a `client_id` label on per-peer series. */
  clientId?: (cid: number) => string | undefined;
  /** The gateway's SDK (otel.ts); without one these metrics get an SDK of their own, built from the three fields below. */
  telemetry?: Telemetry;
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT); metrics go to `${url}/v1/metrics`. */
  otlpEndpoint?: string;
  otlpIntervalMs?: number;
  serviceVersion?: string;
  /** The UDP sockets' buffer sizes in effect (getsockopt), which runtime tuning may change. */
  socketBuffers?: () => { recv: number; send: number };
  /** The gateway's DNS: resolver, upstream forwarder, proxy names and the DNS-resource NAT. */
  dns?: () => DnsCounters;
  /** Connections per state (connection-state.ts): what the gateway has proven, not what it sent. */
  connectionStates?: () => Iterable<readonly [string, number]>;
  /** Named problems now, per kind (problems.ts). */
  problems?: () => Iterable<readonly [string, number]>;
  /** Portal mode: ICE candidate pairs by state, bytes relayed through TURN, allocation failures by reason (GatewayNode.iceMetrics). */
  ice?: () => IceMetrics;
  /** The batched UDP socket, when the gateway has one (not on the node:dgram fallback). */
  batchedUdp?: BatchedUdpSource;
  /** The TUN was opened with offloads (IFF_VNET_HDR + TSO). */
  tunOffload?: boolean;
}

export interface IceMetrics {
  pairs: Record<string, number>;
  relayBytes: { sent: number; received: number };
  allocationFailures: Partial<Record<string, number>>;
}

/** Handshake round-trip buckets (seconds): LAN to intercontinental plus retries. */
const RTT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class GatewayMetrics {
  readonly #telemetry: Telemetry;
  /** Whether shutdown() ends the SDK too (only one these metrics built themselves). */
  readonly #ownsTelemetry: boolean;
  readonly #sampler: ReturnType<typeof setInterval> | undefined;
  #depths = { udp: 0, tun: 0 };
  readonly #handshakeRtt;

  constructor(private readonly opts: MetricsOptions) {
    this.#ownsTelemetry = !opts.telemetry;
    this.#telemetry = opts.telemetry ?? new Telemetry({ otlpEndpoint: opts.otlpEndpoint, otlpIntervalMs: opts.otlpIntervalMs, serviceVersion: opts.serviceVersion });
    const m = this.#telemetry.meter;

    // One pass over the connections per collection feeds every aggregate instrument.
    // Taken at the first collection, not here: at start it walked 10 000 peers for nothing.
    let snap: MetricsSnapshot | undefined;
    let snapAt = -1;
    const fresh = () => {
      const now = opts.clock();
      if (!snap || now !== snapAt) {
        snap = this.#snapshot();
        snapAt = now;
      }
      return snap;
    };
    const gauge = (name: string, description: string, read: () => number) =>
      m.createObservableGauge(name, { description }).addCallback((r) => r.observe(read()));
    const counter = (name: string, description: string, read: () => number) =>
      m.createObservableCounter(name, { description }).addCallback((r) => r.observe(read()));

    gauge("glassgate.peers", "Peers in the data plane.", () => fresh().peers);
    gauge("glassgate.connections", "Peers with a live WireGuard session.", () => fresh().connections);
    gauge("glassgate.sessions", "Live WireGuard sessions (previous, current, next) over all peers.", () => fresh().sessions);
    counter("glassgate.received.bytes", "WireGuard transport bytes received (UDP payload).", () => fresh().rxBytes);
    counter("glassgate.sent.bytes", "WireGuard transport bytes sent (UDP payload).", () => fresh().txBytes);
    counter("glassgate.received.packets", "WireGuard transport packets received.", () => fresh().rxPackets);
    counter("glassgate.sent.packets", "WireGuard transport packets sent.", () => fresh().txPackets);
    counter("glassgate.handshakes.initiated", "Handshake initiations sent.", () => fresh().hsInitiated);
    counter("glassgate.handshakes.completed", "Handshakes completed, either role.", () => fresh().hsCompleted);
    counter("glassgate.handshakes.failed", "Handshakes given up after REKEY_ATTEMPT_TIME.", () => fresh().hsFailed);
    m.createObservableCounter("glassgate.packets.dropped", { description: "Datagrams and packets dropped, by reason." }).addCallback((r) => {
      for (const [reason, n] of fresh().drops) r.observe(n, { reason });
    });
    if (opts.loop) {
      const loop = opts.loop;
      m.createObservableGauge("glassgate.queue.depth", { description: "Packets waiting in a data-plane queue, sampled once per second." }).addCallback((r) => {
        r.observe(this.#depths.udp, { queue: "udp_rx" });
        r.observe(this.#depths.tun, { queue: "tun_rx" });
      });
      counter("glassgate.event_loop.turns", "Event loop turns.", () => loop.stats.turns);
      counter("glassgate.event_loop.batch_errors", "Event loop turns that collected per-packet errors.", () => loop.stats.batchErrors);
      m.createObservableCounter("glassgate.tun.errors", { description: "Failed TUN reads and writes (EAGAIN is not a failure), by operation." }).addCallback((r) => {
        r.observe(loop.stats.tunReadErrors, { op: "read" });
        r.observe(loop.stats.tunWriteErrors, { op: "write" });
      });
      gauge("glassgate.event_loop.max_batch.udp", "Largest UDP batch handled in one turn.", () => loop.stats.maxUdpBatch);
      gauge("glassgate.event_loop.max_batch.tun", "Largest TUN batch handled in one turn.", () => loop.stats.maxTunBatch);
      // The batched data path: how much each syscall carries (datagrams / syscalls) and the offloads.
      counter("glassgate.udp.datagrams.sent", "UDP datagrams handed to the kernel.", () => loop.stats.udpOut ?? 0);
      counter("glassgate.udp.datagrams.received", "UDP datagrams received (GRO super-datagrams count per segment).", () => loop.stats.udpIn ?? 0);
      counter("glassgate.tun.reads", "Reads from the TUN (offload mode: one may carry a super-packet).", () => loop.stats.tunIn ?? 0);
      counter("glassgate.tun.writes", "Writes to the TUN (offload mode: one may carry coalesced segments).", () => loop.stats.tunOut ?? 0);
      counter("glassgate.tun.super_packets", "TUN reads that held more than one segment (TSO/USO super-packets).", () => loop.stats.tunSuperPackets ?? 0);
      counter("glassgate.tun.segments", "Packets cut from TUN reads in offload mode (a plain packet counts one).", () => loop.stats.tunSegments ?? 0);
      counter("glassgate.tun.coalesced_writes", "TUN writes that carried merged TCP segments.", () => loop.stats.tunCoalescedWrites ?? 0);
      counter("glassgate.tun.coalesced_segments", "Decrypted TCP segments merged into those writes.", () => loop.stats.tunCoalescedSegments ?? 0);
      this.#sampler = setInterval(() => (this.#depths = loop.depths()), 1000);
      this.#sampler.unref?.();
    }
    if (opts.socketBuffers) {
      const read = opts.socketBuffers;
      m.createObservableGauge("glassgate.udp.socket.buffer.bytes", { description: "UDP socket buffer size in effect, as the kernel reports it (Linux: twice the granted size)." })
        .addCallback((r) => {
          const b = read();
          r.observe(b.recv, { direction: "recv" });
          r.observe(b.send, { direction: "send" });
        });
    }
    if (opts.batchedUdp) {
      const u = opts.batchedUdp;
      m.createObservableCounter("glassgate.udp.syscalls", { description: "Data-path UDP syscalls: sendmmsg/sendmsg (op=send), recvmmsg calls that returned datagrams (op=recv); datagrams / this = datagrams per call." })
        .addCallback((r) => {
          r.observe(u.sendSyscalls, { op: "send" });
          r.observe(u.recvSyscalls, { op: "recv" });
        });
      counter("glassgate.udp.gro.super_datagrams", "Received GRO super-datagrams (each split into its segments).", () => u.coalesced);
      gauge("glassgate.udp.recv_batch", "Messages per recvmmsg call.", () => u.recvBatch);
      counter("glassgate.udp.aqm.dropped", "WireGuard data packets dropped because the receive queue stood above CoDel's 5 ms target for 100 ms (the senders' TCP slows down; see GLASSGATE_AQM).", () => u.aqmDropped ?? 0);
      gauge("glassgate.udp.queue_delay.seconds", "How long the oldest datagram of the last receive batch waited since the kernel received it (socket buffer and ring), in seconds, sampled; 0 when idle for a second.", () => (u.queueDelayMs ?? 0) / 1000);
      counter("glassgate.udp.sticky_source.refused", "Sends whose source (the address the peer's datagrams arrived on) the kernel refused, as when a floating address moved away; resent from the route's source.", () => u.sourceRetries ?? 0);
    }
    m.createObservableGauge("glassgate.offload.enabled", { description: "Data-path offloads in effect (1 on, 0 off): UDP GSO, UDP GRO, TUN TSO (vnet header)." }).addCallback((r) => {
      r.observe(opts.batchedUdp?.gso ? 1 : 0, { offload: "udp_gso" });
      r.observe(opts.batchedUdp?.gro ? 1 : 0, { offload: "udp_gro" });
      r.observe(opts.tunOffload ? 1 : 0, { offload: "tun" });
    });
    if (opts.dns) registerDnsMetrics(m, opts.dns, opts.clock);
    if (opts.connectionStates) {
      const read = opts.connectionStates;
      m.createObservableGauge("glassgate.connection.states", { description: "Connections by state (awaiting_confirmation: answered, not yet confirmed by a packet)." })
        .addCallback((r) => {
          for (const [state, n] of read()) r.observe(n, { state });
        });
    }
    if (opts.problems) {
      const read = opts.problems;
      m.createObservableGauge("glassgate.problems", { description: "Named problems now, by kind (GET /api/problems has them in full)." }).addCallback((r) => {
        for (const [kind, n] of read()) r.observe(n, { kind });
      });
    }
    if (opts.ice) {
      const read = opts.ice;
      m.createObservableGauge("glassgate.ice.candidate_pairs", { description: "ICE candidate pairs over every client connection, by state." }).addCallback((r) => {
        for (const [state, n] of Object.entries(read().pairs)) r.observe(n, { state });
      });
      m.createObservableCounter("glassgate.turn.relayed.bytes", { description: "Payload bytes relayed through TURN channels, by direction (sent: to the relay)." }).addCallback((r) => {
        const b = read().relayBytes;
        r.observe(b.sent, { direction: "sent" });
        r.observe(b.received, { direction: "received" });
      });
      m.createObservableCounter("glassgate.turn.allocation.failures", { description: "TURN allocations that failed, by reason (auth, no_response, timeout, quota, …)." }).addCallback((r) => {
        for (const [reason, n] of Object.entries(read().allocationFailures)) r.observe(n ?? 0, { reason });
      });
    }
    this.#handshakeRtt = m.createHistogram("glassgate.handshake.duration.seconds", {
      description:
        "Handshake latency by role: initiator (initiation sent → response consumed), responder (response sent → first authenticated transport packet, key confirmation).",
      advice: { explicitBucketBoundaries: RTT_BUCKETS },
    });
  }

  /**
   * Control-path hook: feed tunnel events that carry measurements. Clients initiate in standalone
   * mode, so the responder's side is what fills the handshake histogram there.
   */
  onEvent(e: TunnelEvent): void {
    if (e.type === "handshake_completed" && e.rttMs !== undefined) this.#handshakeRtt.record(e.rttMs / 1000, { role: "initiator" });
    else if (e.type === "session_confirmed") this.#handshakeRtt.record(e.rttMs / 1000, { role: "responder" });
  }

  async prometheusText(): Promise<string> {
    return (await this.#telemetry.prometheusText()) + this.#perPeerText();
  }

  /**
   * Per-peer series (opt-in, at most `cap` peers), rendered here from the current peers rather
   * than through OTel instruments: the SDK keeps every attribute set an observable instrument
   * ever reported (cumulative temporality), so with peers coming and going the "capped" series
   * grew without bound and deleted peers stayed on /metrics forever. Prometheus only; OTLP gets
   * the aggregates.
   */
  #perPeerText(): string {
    const pp = this.opts.perPeer;
    if (!pp?.enabled || pp.cap <= 0) return "";
    const peers = this.#snapshot().perPeer.slice(0, pp.cap);
    if (peers.length === 0) return "";
    const label = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
    const family = (name: string, type: string, help: string, read: (c: PeerCounters) => number) =>
      `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n` +
      peers.map((c) => {
        const client = this.opts.clientId?.(c.cid);
        return `${name}{cid="${c.cid}",public_key="${label(c.publicKey)}"${client !== undefined ? `,client_id="${label(client)}"` : ""}} ${read(c)}\n`;
      }).join("");
    return (
      family("glassgate_peer_received_bytes_total", "counter", "Per peer (opt-in, capped): bytes received.", (c) => c.rxBytes) +
      family("glassgate_peer_sent_bytes_total", "counter", "Per peer (opt-in, capped): bytes sent.", (c) => c.txBytes) +
      family("glassgate_peer_last_handshake_seconds", "gauge", "Per peer (opt-in, capped): Unix time of the last handshake.", (c) => c.lastHandshakeAt / 1000)
    );
  }

  /** Stops sampling; a shared SDK is flushed and ended by its owner (Telemetry.shutdown). */
  async shutdown(): Promise<void> {
    if (this.#sampler) clearInterval(this.#sampler);
    if (this.#ownsTelemetry) await this.#telemetry.shutdown();
  }

  #snapshot(): MetricsSnapshot {
    const { tunnel, clock } = this.opts;
    const now = clock();
    const s = { peers: 0, connections: 0, sessions: 0, rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, hsInitiated: 0, hsCompleted: 0, hsFailed: 0, drops: new Map<string, number>(), perPeer: [] as PeerCounters[] };
    for (const [reason, n] of Object.entries(tunnel.tunnelDrops())) s.drops.set(reason, n ?? 0);
    for (const [reason, n] of this.opts.gatewayDrops?.() ?? []) s.drops.set(reason, (s.drops.get(reason) ?? 0) + n);
    for (const c of tunnel.connections()) {
      const p = c.peer;
      const st = p.stats;
      s.peers++;
      if (p.keypairs.current?.canReceive(now)) s.connections++;
      s.sessions += p.keypairs.indices().length;
      s.rxBytes += st.rxBytes;
      s.txBytes += st.txBytes;
      s.rxPackets += st.rxPackets;
      s.txPackets += st.txPackets;
      s.hsInitiated += st.handshakesInitiated;
      s.hsCompleted += st.handshakesCompleted;
      s.hsFailed += st.handshakesFailed;
      for (const [reason, n] of Object.entries(p.drops.snapshot())) s.drops.set(reason, (s.drops.get(reason) ?? 0) + (n ?? 0));
      if (this.opts.perPeer?.enabled) s.perPeer.push({ cid: c.cid, publicKey: c.publicKey, rxBytes: st.rxBytes, txBytes: st.txBytes, lastHandshakeAt: st.lastHandshakeAt });
    }
    return s;
  }
}

interface MetricsSnapshot {
  peers: number;
  connections: number;
  sessions: number;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  hsInitiated: number;
  hsCompleted: number;
  hsFailed: number;
  drops: Map<string, number>;
  perPeer: PeerCounters[];
}

interface PeerCounters {
  cid: number;
  publicKey: string;
  rxBytes: number;
  txBytes: number;
  lastHandshakeAt: number;
}

// ---- DNS counters ------------------------------------------------------------------------------
// Read at collection time from the counters the DNS service, its upstream forwarder, the proxy
// name allocator and the NAT keep anyway: nothing on the query or packet path. Every family is a
// counter with one label whose values are a fixed set (outcome / reason), so series stay bounded.

export interface DnsCounters {
  /** Queries to the gateway's resolver, by outcome (answered, forwarded, refused, limited, error). */
  queries: Record<string, number>;
  /** Queries the gateway sent (or could not send) upstream, by outcome (answered, timed_out, busy, client_busy, send_error). */
  upstream: Record<string, number>;
  /** Replies from upstream dropped, by reason (wrong_source, wrong_id, wrong_question, malformed). */
  upstreamDrops: Record<string, number>;
  /** The NAT's own lookups of DNS resources, by outcome (resolved, no_addresses, failed). */
  lookups: Record<string, number>;
  /** New proxy names refused, by reason (client_limit, table_limit, range_exhausted). */
  proxyNamesRefused: Record<string, number>;
  /** NAT sessions ended early, by reason (client_limit, table_limit: evicted; displaced). */
  natEvicted: Record<string, number>;
  /** New flows refused by the NAT, by reason (client_limit, table_limit). */
  natRefused: Record<string, number>;
  /** New NAT flows given another source port (their own collided with another flow's). */
  natPortsRemapped: number;
  proxyNames: number;
  natSessions: number;
}

function registerDnsMetrics(m: Meter, read: () => DnsCounters, clock: () => number): void {
  // One read per collection serves every instrument.
  let snap: DnsCounters | undefined;
  let snapAt = Number.NaN;
  const fresh = () => {
    const now = clock();
    if (!snap || now !== snapAt) (snap = read()), (snapAt = now);
    return snap;
  };
  const byLabel = (name: string, description: string, label: string, pick: (c: DnsCounters) => Record<string, number>) =>
    m.createObservableCounter(name, { description }).addCallback((r) => {
      for (const [value, n] of Object.entries(pick(fresh()))) r.observe(n, { [label]: value });
    });
  byLabel("glassgate.dns.queries", "Queries to the gateway's resolver, by outcome.", "outcome", (c) => c.queries);
  byLabel("glassgate.dns.upstream.queries", "Queries sent to the upstream resolver, by outcome.", "outcome", (c) => c.upstream);
  byLabel("glassgate.dns.upstream.replies.dropped", "Upstream replies dropped (not from the upstream, wrong id or question, malformed), by reason.", "reason", (c) => c.upstreamDrops);
  byLabel("glassgate.dns.resource.lookups", "The gateway's own lookups of DNS-resource names, by outcome.", "outcome", (c) => c.lookups);
  byLabel("glassgate.dns.proxy_names.refused", "New DNS-resource names refused a proxy address (SERVFAIL), by reason.", "reason", (c) => c.proxyNamesRefused);
  byLabel("glassgate.dns.nat.sessions.evicted", "DNS-resource NAT sessions ended to make room or displaced by another flow, by reason.", "reason", (c) => c.natEvicted);
  byLabel("glassgate.dns.nat.flows.refused", "New flows to DNS-resource proxy addresses refused for want of room, by reason.", "reason", (c) => c.natRefused);
  m.createObservableCounter("glassgate.dns.nat.ports.remapped", { description: "New DNS-resource NAT flows given another source port to avoid a collision." })
    .addCallback((r) => r.observe(fresh().natPortsRemapped));
  m.createObservableGauge("glassgate.dns.proxy_names", { description: "DNS-resource names holding proxy addresses." }).addCallback((r) => r.observe(fresh().proxyNames));
  m.createObservableGauge("glassgate.dns.nat.sessions", { description: "Live DNS-resource NAT sessions." }).addCallback((r) => r.observe(fresh().natSessions));
}
