import { afterEach, expect, test } from "bun:test";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { Tunnel } from "../tunnel/index.ts";
import { WirePair, seededRandom } from "../../test/support/wire-pair.ts";
import { spawnSync } from "bun";
import { missingCommands } from "../../test/support/netns.ts";
import { GatewayMetrics, type DnsCounters } from "./metrics.ts";

const hasPromtool = missingCommands(["promtool"]).length === 0;
if (!hasPromtool) console.warn("skipping promtool check metrics: promtool missing (.ci/run installs Debian prometheus)");
/** promtool's lint of a scrape: empty output and exit 0 when clean. */
function promtoolCheck(text: string): string {
  const r = spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text) });
  return `${r.stdout.toString()}${r.stderr.toString()}${r.exitCode === 0 ? "" : `exit ${r.exitCode}`}`;
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function tunnelWithPeer() {
  const random = seededRandom(5);
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
  const conn = tunnel.upsertPeer({ publicKey: new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random }).identity.publicKey, allowedIPs: [parseCidr("10.99.0.2/32")] });
  // Two drops the metrics must report by reason.
  tunnel.decapsulate(new Uint8Array(3), { address: "192.0.2.1", port: 1 }, new Uint8Array(100), 0);
  tunnel.encapsulate(Uint8Array.of(0x45, ...new Uint8Array(19)), new Uint8Array(100), 0);
  return { tunnel, conn };
}

test("Prometheus names follow conventions: _total counters, base units, reasons as labels", async () => {
  const { tunnel, conn } = tunnelWithPeer();
  const m = new GatewayMetrics({ tunnel, clock: () => 0, perPeer: { enabled: true, cap: 10 } });
  cleanup.push(() => m.shutdown());
  m.onEvent({ type: "handshake_completed", cid: conn.cid, session: 1, role: "initiator", remote: { address: "192.0.2.1", port: 1 }, rttMs: 42 });
  const text = await m.prometheusText();
  for (const line of [
    "# TYPE glassgate_received_bytes_total counter",
    "# TYPE glassgate_sent_packets_total counter",
    "# TYPE glassgate_handshakes_completed_total counter",
    "# TYPE glassgate_connections gauge",
    "glassgate_peers 1",
    'glassgate_packets_dropped_total{reason="truncated"} 1',
    'glassgate_packets_dropped_total{reason="no_route"} 1',
    "# TYPE glassgate_handshake_duration_seconds histogram",
    'glassgate_handshake_duration_seconds_bucket{role="initiator",le="0.05"} 1',
    'glassgate_handshake_duration_seconds_bucket{role="initiator",le="0.025"} 0',
    `glassgate_peer_received_bytes_total{cid="${conn.cid}",public_key="${conn.publicKey}"} 0`,
  ]) expect(text).toContain(line);
  expect(text).not.toContain("# UNIT"); // plain Prometheus 0.0.4 text, which promtool accepts
});

test("portal mode: per-peer series also carry the portal's client id", async () => {
  const { tunnel, conn } = tunnelWithPeer();
  const m = new GatewayMetrics({ tunnel, clock: () => 0, perPeer: { enabled: true, cap: 10 }, clientId: (cid) => (cid === conn.cid ? "client-1" : undefined) });
  cleanup.push(() => m.shutdown());
  expect(await m.prometheusText()).toContain(`glassgate_peer_sent_bytes_total{cid="${conn.cid}",public_key="${conn.publicKey}",client_id="client-1"} 0`);
});

test("per-peer series are off by default and capped when on", async () => {
  const { tunnel } = tunnelWithPeer();
  const off = new GatewayMetrics({ tunnel, clock: () => 0 });
  const capped = new GatewayMetrics({ tunnel, clock: () => 0, perPeer: { enabled: true, cap: 0 } });
  cleanup.push(() => off.shutdown(), () => capped.shutdown());
  expect(await off.prometheusText()).not.toContain("glassgate_peer_");
  expect(await capped.prometheusText()).not.toContain("glassgate_peer_received_bytes_total{");
});

test("OTLP/HTTP: the real exporter delivers the same metrics to a local receiver", async () => {
  const bodies: { type: string; body: Uint8Array }[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      if (new URL(req.url).pathname === "/v1/metrics") bodies.push({ type: req.headers.get("content-type") ?? "", body: new Uint8Array(await req.arrayBuffer()) });
      return new Response("{}", { headers: { "content-type": "application/json" } });
    },
  });
  cleanup.push(() => server.stop(true));
  const { tunnel } = tunnelWithPeer();
  const m = new GatewayMetrics({ tunnel, clock: () => 0, otlpEndpoint: `http://127.0.0.1:${server.port}`, otlpIntervalMs: 100 });
  cleanup.push(() => m.shutdown());
  const deadline = Date.now() + 10_000;
  while (bodies.length === 0 && Date.now() < deadline) await Bun.sleep(50);
  expect(bodies.length).toBeGreaterThan(0);
  expect(bodies[0]!.type).toContain("application/json");
  // Decode the OTLP/JSON ExportMetricsServiceRequest and find our series in it.
  const req = JSON.parse(new TextDecoder().decode(bodies[0]!.body)) as {
    resourceMetrics: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeMetrics: { scope: { name: string }; metrics: { name: string; sum?: { dataPoints: { asInt?: string | number; asDouble?: number; attributes: { key: string; value: { stringValue?: string } }[] }[] } }[] }[] }[];
  };
  const rm = req.resourceMetrics[0]!;
  expect(rm.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue).toBe("glassgate");
  const metrics = rm.scopeMetrics.flatMap((s) => s.metrics);
  expect(metrics.map((x) => x.name)).toContain("glassgate.received.bytes");
  const dropped = metrics.find((x) => x.name === "glassgate.packets.dropped")!;
  const truncated = dropped.sum!.dataPoints.find((p) => p.attributes.some((a) => a.key === "reason" && a.value.stringValue === "truncated"))!;
  expect(Number(truncated.asInt ?? truncated.asDouble)).toBe(1);
});

test("a responder's handshakes fill the latency histogram: response sent → first transport packet, role responder", async () => {
  const { tunnel } = tunnelWithPeer();
  const m = new GatewayMetrics({ tunnel, clock: () => 0 });
  cleanup.push(() => m.shutdown());
  // b answers a's initiation; a confirms with a keepalive one round trip (2 × 37 ms) after b's response.
  const w = new WirePair({ seed: 17, faults: { latencyMs: 37 } });
  w.a.peer.connect(w.now);
  w.advance(1_000);
  const confirmed = w.b.events.filter((e) => e.type === "session_confirmed");
  expect(confirmed).toHaveLength(1);
  expect(confirmed[0]).toMatchObject({ rttMs: 74 });
  for (const e of w.b.events) m.onEvent({ ...e, cid: 1 });
  const text = await m.prometheusText();
  expect(text).toContain('glassgate_handshake_duration_seconds_bucket{role="responder",le="0.05"} 0');
  expect(text).toContain('glassgate_handshake_duration_seconds_bucket{role="responder",le="0.1"} 1');
  expect(text).toContain('glassgate_handshake_duration_seconds_sum{role="responder"} 0.074');
  expect(text).toContain('glassgate_handshake_duration_seconds_count{role="responder"} 1');
  expect(text).not.toContain('role="initiator"'); // b never initiated
});

test("the UDP socket buffer sizes in effect are gauges by direction, and follow a runtime resize", async () => {
  const { tunnel } = tunnelWithPeer();
  let buffers = { recv: 16777216, send: 8388608 };
  const m = new GatewayMetrics({ tunnel, clock: () => 0, socketBuffers: () => buffers });
  cleanup.push(() => m.shutdown());
  const text = await m.prometheusText();
  expect(text).toContain("# TYPE glassgate_udp_socket_buffer_bytes gauge");
  expect(text).toContain('glassgate_udp_socket_buffer_bytes{direction="recv"} 16777216');
  expect(text).toContain('glassgate_udp_socket_buffer_bytes{direction="send"} 8388608');
  buffers = { recv: 262144, send: 262144 };
  expect(await m.prometheusText()).toContain('glassgate_udp_socket_buffer_bytes{direction="recv"} 262144');
});

test("the DNS counters are in /metrics: _total counters labelled by reason or outcome, and gauges for names and sessions", async () => {
  const { tunnel } = tunnelWithPeer();
  const c: DnsCounters = {
    queries: { answered: 5, forwarded: 4, refused: 3, limited: 2, error: 1 },
    upstream: { answered: 4, timed_out: 1, busy: 0, send_error: 0 },
    upstreamDrops: { wrong_source: 2, wrong_id: 1, wrong_question: 0, malformed: 0 },
    lookups: { resolved: 7, no_addresses: 1, failed: 2 },
    proxyNamesRefused: { client_limit: 2, table_limit: 0, range_exhausted: 0 },
    natEvicted: { client_limit: 9, table_limit: 0, displaced: 1 },
    natRefused: { client_limit: 0, table_limit: 3 },
    natPortsRemapped: 6,
    proxyNames: 12,
    natSessions: 40,
  };
  const m = new GatewayMetrics({ tunnel, clock: () => 0, dns: () => c });
  cleanup.push(() => m.shutdown());
  const text = await m.prometheusText();
  for (const line of [
    "# TYPE glassgate_dns_queries_total counter",
    'glassgate_dns_queries_total{outcome="limited"} 2',
    'glassgate_dns_upstream_queries_total{outcome="timed_out"} 1',
    "# TYPE glassgate_dns_upstream_replies_dropped_total counter",
    'glassgate_dns_upstream_replies_dropped_total{reason="wrong_source"} 2',
    'glassgate_dns_resource_lookups_total{outcome="failed"} 2',
    'glassgate_dns_proxy_names_refused_total{reason="client_limit"} 2',
    'glassgate_dns_nat_sessions_evicted_total{reason="client_limit"} 9',
    'glassgate_dns_nat_sessions_evicted_total{reason="displaced"} 1',
    'glassgate_dns_nat_flows_refused_total{reason="table_limit"} 3',
    "# TYPE glassgate_dns_proxy_names gauge",
    "glassgate_dns_proxy_names 12",
    "glassgate_dns_nat_sessions 40",
    "glassgate_dns_nat_ports_remapped_total 6",
  ]) expect(text).toContain(line);
  // Counters only grow: a later collection reports the new values.
  c.upstreamDrops.wrong_id = 5;
  const m2 = new GatewayMetrics({ tunnel, clock: () => 1, dns: () => c });
  cleanup.push(() => m2.shutdown());
  expect(await m2.prometheusText()).toContain('glassgate_dns_upstream_replies_dropped_total{reason="wrong_id"} 5');
});

test.skipIf(!hasPromtool)("promtool check metrics finds nothing to complain about in the whole scrape, DNS counters included", async () => {
  const { tunnel, conn } = tunnelWithPeer();
  const zero = { a: 0 };
  const m = new GatewayMetrics({
    tunnel, clock: () => 0, perPeer: { enabled: true, cap: 10 },
    gatewayDrops: () => [["dns_nat_full", 1]],
    dns: () => ({ queries: { answered: 1 }, upstream: zero, upstreamDrops: { wrong_source: 1 }, lookups: zero, proxyNamesRefused: { client_limit: 1 }, natEvicted: { table_limit: 1 }, natRefused: zero, natPortsRemapped: 1, proxyNames: 1, natSessions: 1 }),
  });
  cleanup.push(() => m.shutdown());
  m.onEvent({ type: "handshake_completed", cid: conn.cid, session: 1, role: "initiator", remote: { address: "192.0.2.1", port: 1 }, rttMs: 42 });
  const text = await m.prometheusText();
  expect(text).toContain("glassgate_dns_nat_sessions_evicted_total");
  expect(promtoolCheck(text)).toBe("");
});

test("per-peer series follow the peers: with churn, /metrics never holds more than the cap, and removed peers' series go", async () => {
  const random = seededRandom(9);
  const tunnel = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
  let now = 0;
  const m = new GatewayMetrics({ tunnel, clock: () => now, perPeer: { enabled: true, cap: 3 } });
  cleanup.push(() => m.shutdown());
  const series = async () => (now++, await m.prometheusText()).split("\n").filter((l) => l.startsWith("glassgate_peer_received_bytes_total{"));
  let last: string[] = [];
  for (let round = 0; round < 20; round++) {
    const keys = Array.from({ length: 3 }, () => new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random }).identity.publicKey);
    for (const [i, k] of keys.entries()) tunnel.upsertPeer({ publicKey: k, allowedIPs: [parseCidr(`10.99.${round}.${i + 2}/32`)] });
    last = await series();
    expect(last.length).toBeLessThanOrEqual(3);
    for (const k of keys) tunnel.removePeer(k);
  }
  expect(last).toHaveLength(3);
  expect(await series()).toEqual([]);
});

test("connections are counted by proven state and problems by kind", async () => {
  const { tunnel, conn } = tunnelWithPeer();
  const { ConnectionStates } = await import("./connection-state.ts");
  const states = new ConnectionStates();
  states.added(conn.cid, 0);
  // Answered, never confirmed (a wrong preshared key): not a connection yet.
  states.onEvent({ type: "handshake_completed", cid: conn.cid, session: 1, role: "responder", remote: { address: "192.0.2.1", port: 1 } }, 0);
  const m = new GatewayMetrics({ tunnel, clock: () => 0, connectionStates: () => states.counts(), problems: () => [["psk_mismatch", 1]] });
  cleanup.push(() => m.shutdown());
  const text = await m.prometheusText();
  expect(text).toContain('glassgate_connection_states{state="awaiting_confirmation"} 1');
  expect(text).toContain('glassgate_connection_states{state="connected"} 0');
  expect(text).toContain('glassgate_problems{kind="psk_mismatch"} 1');
  if (hasPromtool) expect(promtoolCheck(text)).toBe("");
});

test("portal mode: ICE candidate pairs by state, TURN relayed bytes by direction and allocation failures by reason", async () => {
  const { tunnel } = tunnelWithPeer();
  const m = new GatewayMetrics({ tunnel, clock: () => 0, ice: () => ({ pairs: { waiting: 1, in_progress: 2, succeeded: 3, failed: 0 }, relayBytes: { sent: 1200, received: 3400 }, allocationFailures: { auth: 2 } }) });
  cleanup.push(() => m.shutdown());
  const text = await m.prometheusText();
  expect(text).toContain('glassgate_ice_candidate_pairs{state="succeeded"} 3');
  expect(text).toContain('glassgate_turn_relayed_bytes_total{direction="received"} 3400');
  expect(text).toContain('glassgate_turn_allocation_failures_total{reason="auth"} 2');
  if (hasPromtool) expect(promtoolCheck(text)).toBe("");
});
