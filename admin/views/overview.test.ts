import { describe, expect, test } from "bun:test";
import type { PeerRow } from "../../src/store/index.ts";
import type { ConnectionView } from "../../src/telemetry/view.ts";
import type { GatewayFacts, ProblemView } from "../types.ts";
import { overview, type OverviewData } from "./overview.ts";

const NOW = Date.parse("2026-11-29T12:00:00Z");
const conn = (cid: number, over: Partial<ConnectionView> = {}): ConnectionView => ({
  cid, public_key: `KEY${cid}${"A".repeat(40)}=`, endpoint: "192.0.2.7:51820", sessions: [], last_handshake: null, rx_bytes: 0, tx_bytes: 0,
  rx_packets: 0, tx_packets: 0, handshakes: { initiated: 0, completed: 0, failed: 0 }, allowed_ips: ["10.99.0.2/32"], drops: {}, state: "connected", state_since: "2026-11-29T11:00:00.000Z", ...over,
});
const facts = (over: Partial<GatewayFacts> = {}): GatewayFacts => ({
  public_key: "GWKEYq0ULkZ3Pv7Z6nU0ZKpYX5TJ2uVZ6bqvTqkI3l0=", udp_port: 52625, version: "0.4.2", gid: "gw-7f3a", started_at: new Date(NOW - (3 * 3600 + 5 * 60) * 1000).toISOString(),
  aead: "libsodium", udp_buffers: { recv: 16 * 1024 * 1024, send: 8 * 1024 * 1024 }, queue_depths: { udp: 3, tun: 0 }, unattributed_drops: {}, traffic_sample_seconds: 60,
  throughput: [0, 1, 2].map((i) => ({ ts: NOW - (2 - i) * 5000, interval_s: 5, rx_bytes_per_s: 1000 * i, tx_bytes_per_s: 500 * i, handshakes: i, handshake_failures: 0 })),
  ...over,
});
const problem: ProblemView = {
  kind: "psk_mismatch", cid: 42, public_key: "KEY42", source: "198.51.100.9:40000", title: "Handshakes never confirmed",
  likely_cause: "The client's preshared key differs from the gateway's.", fix: "Copy the PresharedKey from the peer's config to the client.",
  since: "2026-11-29T11:50:00.000Z", last_seen: "2026-11-29T11:59:55.000Z", count: 12,
};
const peer = (id: string, name: string, expiresAt: number | null) => ({ id, name, publicKey: `P${id}`, expiresAt } as PeerRow);
const render = async (d: Partial<OverviewData>) => String(await overview({ conns: [], problems: [], peers: [], errors: 0, now: NOW, ...d }));

describe("overview", () => {
  test("shows the gateway's facts: key, port, version, gid, uptime, AEAD, buffers and queues", async () => {
    const out = await render({ facts: facts() });
    for (const s of ["GWKEYq0ULkZ3Pv7Z6nU0ZKpYX5TJ2uVZ6bqvTqkI3l0=", ">52625<", "0.4.2", "gw-7f3a", "3 h 5 min", "libsodium", "receive 16.0 MiB, send 8.0 MiB", "UDP 3, TUN 0"]) expect(out).toContain(s);
    expect(out).toContain('<time datetime="2026-11-29T08:55:00.000Z">2026-11-29 08:55:00 UTC</time>');
  });

  test("the receive queue: how long datagrams wait and whether CoDel manages it; nothing claimed where it is not measured", async () => {
    const busy = await render({ facts: facts({ receive_queue: { managed: true, delay_ms: 3.456 } }) });
    expect(busy).toContain('data-fact="receive_queue_delay">3.5 ms (oldest of the last batch)<');
    expect(busy).toContain('CoDel: data packets that wait over 5 ms for 100 ms are dropped (<span class="mono">queue_delay</span>)');
    expect(await render({ facts: facts({ receive_queue: { managed: true, delay_ms: 0 } }) })).toContain('data-fact="receive_queue_delay">idle<');
    const off = await render({ facts: facts({ receive_queue: { managed: false, delay_ms: 0 } }) });
    expect(off).toContain('data-fact="receive_queue_delay">not measured<');
    expect(off).toContain("off: the socket buffer drops only when full");
    // The node:dgram fallback cannot tell: no row at all.
    expect(await render({ facts: facts() })).not.toContain("receive_queue");
  });

  test("charts throughput in bit/s and handshakes from the live ring", async () => {
    const out = await render({ facts: facts() });
    expect(out).toContain('aria-label="Throughput (gateway-wide, WireGuard transport bytes)"');
    // 2000 B/s received = 16 kbit/s, under the top tick of 20 kbit/s
    expect(out).toContain(">20 kbit/s</text>");
    expect(out).toContain("bit/s</text>");
    expect(out).toContain("handshakes per 5 s");
  });

  test("without samples the charts say so", async () => {
    const out = await render({ facts: facts({ throughput: [] }) });
    expect(out).not.toContain("<svg");
    expect(out).toContain("No samples yet");
  });

  test("lists problems with cause, fix and a link to the connection; none is an explicit empty state", async () => {
    const out = await render({ problems: [problem] });
    expect(out).toContain("Handshakes never confirmed");
    expect(out).toContain('<a class="cid" href="/connections/42">42</a>');
    expect(out).toContain("The client&#39;s preshared key differs");
    expect(out).toContain("Copy the PresharedKey");
    expect(out).toContain("12×");
    expect(out).not.toContain("No problems detected");
    expect(await render({})).toContain('data-testid="problems-empty">No problems detected.');
  });

  test("drops by reason name the connections that caused them, biggest first, and the ones no connection caused", async () => {
    const out = await render({
      conns: [conn(7, { drops: { allowed_ips: 5 } }), conn(9, { drops: { allowed_ips: 20, replay: 1 } })],
      facts: facts({ unattributed_drops: { allowed_ips: 0, unknown_session: 4 } }),
    });
    const table = /<table data-testid="drops">.*?<\/table>/s.exec(out)![0];
    const rows = [...table.matchAll(/<tr data-reason="(\w+)"><td class="mono">\w+<\/td><td>(\d+)<\/td>\s*<td>(.*?)<\/td><\/tr>/gs)].map((m) => [m[1], m[2], m[3]!.replace(/<[^>]+>/g, "").trim()]);
    expect(rows).toEqual([
      ["allowed_ips", "25", "9 (20) 7 (5)"],
      ["unknown_session", "4", "no known connection (4)"],
      ["replay", "1", "9 (1)"],
    ]);
    expect(table).toContain('href="/connections/9"');
  });

  test("top talkers and peers expiring within a week, each linked", async () => {
    const out = await render({
      conns: [conn(1, { rx_bytes: 10, tx_bytes: 0, public_key: "Pa" }), conn(2, { rx_bytes: 5_000_000, tx_bytes: 1 }), conn(3)],
      peers: [peer("a", "laptop", NOW + 2 * 86400_000), peer("b", "old-phone", NOW - 3600_000), peer("c", "forever", null), peer("d", "later", NOW + 30 * 86400_000)],
    });
    const talkers = /data-testid="top-talkers">.*?<\/table>/s.exec(out)![0];
    expect([...talkers.matchAll(/href="\/connections\/(\d+)"/g)].map((m) => m[1])).toEqual(["2", "1"]);
    expect(talkers).toContain("laptop"); // cid 1's key belongs to the store peer "laptop"
    const expiring = /data-testid="expiring">.*?<\/table>/s.exec(out)![0];
    expect([...expiring.matchAll(/href="\/peers\/(\w+)">([\w-]+)</g)].map((m) => m[2])).toEqual(["old-phone", "laptop"]);
    expect(expiring).toContain("expired 1 h ago");
    expect(expiring).toContain("in 2 d");
  });

  test("the live part refreshes itself as one fragment", async () => {
    expect(await render({})).toContain('hx-get="/overview/live" hx-trigger="every 5s" hx-swap="outerHTML"');
  });

  test("portal mode: the portal's state, since when it is joined, last message, reconnects and join latency", async () => {
    const portal = { url: "wss://api.example/", state: "joined", connected_since: "2026-11-29T11:30:00.000Z", last_message_at: "2026-11-29T11:59:50.000Z", reconnects: 3, join_latency_ms: 41.7, malformed: 2, dropped: 0, ipv4: "100.64.0.1", ipv6: "fd00:2021:1111::1", clients: 1 };
    const out = await render({ facts: facts(), portal });
    const table = out.slice(out.indexOf('data-testid="portal"'));
    expect(table).toContain("<strong>joined</strong>");
    expect(table).toContain("(30 min)");
    expect(table).toContain("(10 s ago)");
    expect(table).toContain('data-portal="reconnects">3<');
    expect(table).toContain('data-portal="join_latency_ms">42 ms<');
    expect(table).toContain('data-portal="malformed">2<');
    expect(table).toContain("100.64.0.1 fd00:2021:1111::1");
    expect(await render({ facts: facts() })).not.toContain('data-testid="portal"');
  });
});

