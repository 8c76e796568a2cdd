// Prometheus text exposition (format 0.0.4) of the gateway's counters and gauges. Names follow
// Prometheus conventions: base units, `_total` for counters, `_bytes` for sizes.
import type { Tunnel } from "../tunnel/index.ts";

export interface LoopCounters {
  turns: number;
  batchErrors: number;
  maxUdpBatch: number;
  maxTunBatch: number;
}

export interface MetricsSources {
  tunnel: Tunnel;
  loop?: { stats: LoopCounters; depths(): { udp: number; tun: number } };
  now: number;
}

type Sample = [labels: Record<string, string>, value: number];

function family(out: string[], name: string, type: "counter" | "gauge", help: string, samples: Sample[]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`);
    out.push(`${name}${l.length ? `{${l.join(",")}}` : ""} ${value}`);
  }
}

export function renderMetrics(src: MetricsSources): string {
  const { tunnel, now } = src;
  let connections = 0, sessions = 0, rxB = 0, txB = 0, rxP = 0, txP = 0, hsI = 0, hsC = 0, hsF = 0;
  const drops = new Map<string, number>();
  for (const [reason, n] of Object.entries(tunnel.tunnelDrops())) drops.set(reason, n ?? 0);
  for (const c of tunnel.connections()) {
    const p = c.peer;
    if (p.keypairs.current?.canReceive(now)) connections++;
    sessions += p.keypairs.indices().length;
    rxB += p.stats.rxBytes;
    txB += p.stats.txBytes;
    rxP += p.stats.rxPackets;
    txP += p.stats.txPackets;
    hsI += p.stats.handshakesInitiated;
    hsC += p.stats.handshakesCompleted;
    hsF += p.stats.handshakesFailed;
    for (const [reason, n] of Object.entries(p.drops.snapshot())) drops.set(reason, (drops.get(reason) ?? 0) + (n ?? 0));
  }
  const out: string[] = [];
  family(out, "glassgate_peers", "gauge", "Configured peers.", [[{}, [...tunnel.connections()].length]]);
  family(out, "glassgate_connections", "gauge", "Peers with a live WireGuard session.", [[{}, connections]]);
  family(out, "glassgate_sessions", "gauge", "Live WireGuard sessions (previous, current, next) over all peers.", [[{}, sessions]]);
  family(out, "glassgate_received_bytes_total", "counter", "WireGuard transport bytes received (UDP payload).", [[{}, rxB]]);
  family(out, "glassgate_sent_bytes_total", "counter", "WireGuard transport bytes sent (UDP payload).", [[{}, txB]]);
  family(out, "glassgate_received_packets_total", "counter", "WireGuard transport packets received.", [[{}, rxP]]);
  family(out, "glassgate_sent_packets_total", "counter", "WireGuard transport packets sent.", [[{}, txP]]);
  family(out, "glassgate_handshakes_initiated_total", "counter", "Handshake initiations sent.", [[{}, hsI]]);
  family(out, "glassgate_handshakes_completed_total", "counter", "Handshakes completed (either role).", [[{}, hsC]]);
  family(out, "glassgate_handshakes_failed_total", "counter", "Handshakes given up after REKEY_ATTEMPT_TIME.", [[{}, hsF]]);
  family(out, "glassgate_packets_dropped_total", "counter", "Datagrams and packets dropped, by reason.", [...drops].sort().map(([reason, n]) => [{ reason }, n] as Sample));
  if (src.loop) {
    const d = src.loop.depths();
    family(out, "glassgate_queue_depth", "gauge", "Packets waiting in a data-plane queue.", [[{ queue: "udp_rx" }, d.udp], [{ queue: "tun_rx" }, d.tun]]);
    family(out, "glassgate_event_loop_turns_total", "counter", "Event loop turns.", [[{}, src.loop.stats.turns]]);
    family(out, "glassgate_batch_errors_total", "counter", "Event loop turns that collected per-packet errors.", [[{}, src.loop.stats.batchErrors]]);
  }
  return out.join("\n") + "\n";
}
