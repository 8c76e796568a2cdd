// Gateway metrics on the gateway's OpenTelemetry SDK (otel.ts), exported two ways: Prometheus text
// (serialised on demand for the admin server's /metrics) and OTLP/HTTP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set.
// Counters the data plane already keeps are read through observable instruments at collection
// time, so the hot path pays nothing; queue depths are sampled once per second.
// Names carry their unit (Prometheus conventions: base units, `_total` added to counters).
import type { Attributes, ObservableResult } from "@opentelemetry/api";
import type { Tunnel, TunnelEvent } from "../tunnel/index.ts";
import { Telemetry } from "./otel.ts";

export interface LoopSource {
  stats: { turns: number; batchErrors: number; maxUdpBatch: number; maxTunBatch: number };
  depths(): { udp: number; tun: number };
}

export interface MetricsOptions {
  tunnel: Tunnel;
  /** Drops decided by the gateway core (resources, filters, malformed packets). */
  gatewayDrops?: () => Iterable<[string, number]>;
  loop?: LoopSource;
  clock: () => number;
  /** Per-peer series (labelled by cid and public key) are opt-in and capped. */
  perPeer?: { enabled: boolean; cap: number };
  /** The gateway's SDK (otel.ts); without one these metrics get an SDK of their own, built from the three fields below. */
  telemetry?: Telemetry;
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT); metrics go to `${url}/v1/metrics`. */
  otlpEndpoint?: string;
  otlpIntervalMs?: number;
  serviceVersion?: string;
  /** The UDP sockets' buffer sizes in effect (getsockopt), which runtime tuning may change. */
  socketBuffers?: () => { recv: number; send: number };
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
    let snap = this.#snapshot();
    let snapAt = -1;
    const fresh = () => {
      const now = opts.clock();
      if (now !== snapAt) {
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
      gauge("glassgate.event_loop.max_batch.udp", "Largest UDP batch handled in one turn.", () => loop.stats.maxUdpBatch);
      gauge("glassgate.event_loop.max_batch.tun", "Largest TUN batch handled in one turn.", () => loop.stats.maxTunBatch);
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
    if (opts.perPeer?.enabled) {
      const cap = opts.perPeer.cap;
      const perPeer = (r: ObservableResult<Attributes>, read: (c: PeerCounters) => number) => {
        for (const c of fresh().perPeer.slice(0, cap)) r.observe(read(c), { cid: String(c.cid), public_key: c.publicKey });
      };
      m.createObservableCounter("glassgate.peer.received.bytes", { description: "Per peer (opt-in, capped): bytes received." }).addCallback((r) => perPeer(r, (c) => c.rxBytes));
      m.createObservableCounter("glassgate.peer.sent.bytes", { description: "Per peer (opt-in, capped): bytes sent." }).addCallback((r) => perPeer(r, (c) => c.txBytes));
      m.createObservableGauge("glassgate.peer.last_handshake.seconds", { description: "Per peer (opt-in, capped): Unix time of the last handshake." })
        .addCallback((r) => perPeer(r, (c) => c.lastHandshakeAt / 1000));
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

  prometheusText(): Promise<string> {
    return this.#telemetry.prometheusText();
  }

  /** Stops sampling; a shared SDK is flushed and ended by its owner (Telemetry.shutdown). */
  async shutdown(): Promise<void> {
    if (this.#sampler) clearInterval(this.#sampler);
    if (this.#ownsTelemetry) await this.#telemetry.shutdown();
  }

  #snapshot() {
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

interface PeerCounters {
  cid: number;
  publicKey: string;
  rxBytes: number;
  txBytes: number;
  lastHandshakeAt: number;
}
