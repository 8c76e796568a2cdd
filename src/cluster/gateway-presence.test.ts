import { expect, test } from "bun:test";
import type { ConnectionView } from "../telemetry/view.ts";
import type { ProblemView } from "../telemetry/problems.ts";
import { gatewayHealth, gatewayLive, isUnreadable, MAX_LIVE_CONNECTIONS, MAX_LIVE_PROBLEMS, readGatewayLive } from "./gateway-presence.ts";

function conn(cid: number, lastHandshake: string | null, extra: Partial<ConnectionView & { peer_name: string | null }> = {}): ConnectionView & { peer_name?: string | null } {
  return {
    cid, public_key: `key-${cid}`, endpoint: "192.0.2.1:51820", sessions: [], last_handshake: lastHandshake, rx_bytes: 10, tx_bytes: 20, rx_packets: 1, tx_packets: 2,
    handshakes: { initiated: 0, completed: 1, failed: 0 }, allowed_ips: [], drops: {}, state: "connected", state_since: "2026-01-01T00:00:00.000Z", ...extra,
  };
}

function problem(i: number): ProblemView {
  return { kind: "endpoint_unreachable", cid: i, public_key: null, source: null, title: `problem ${i}`, likely_cause: "", fix: "", since: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), last_seen: "", count: i };
}

test("a publish names peers by name when known, else by key, newest handshake first, never-connected last", () => {
  const live = gatewayLive([conn(1, "2026-01-01T00:00:01.000Z"), conn(2, null), conn(3, "2026-01-01T00:00:03.000Z", { peer_name: "laptop", path: "relay via 198.51.100.1:3478" })], [problem(1)]);
  expect(live.connections.map((c) => [c.cid, c.peer])).toEqual([[3, "laptop"], [1, "key-1"], [2, "key-2"]]);
  expect(live.connections[0]).toEqual({ cid: 3, peer: "laptop", public_key: "key-3", endpoint: "192.0.2.1:51820", path: "relay via 198.51.100.1:3478", rx_bytes: 10, tx_bytes: 20, last_handshake: "2026-01-01T00:00:03.000Z", state: "connected" });
  expect(live.problems).toEqual([{ kind: "endpoint_unreachable", title: "problem 1", since: "2026-01-01T00:00:01.000Z", count: 1, cid: 1 }]);
  // What is published reads back as it was.
  expect(readGatewayLive(JSON.stringify(live))).toEqual({ ...live, unreadable: null });
});

test("a publish keeps at most 500 connections (the newest) and 50 problems (the newest)", () => {
  const many = Array.from({ length: 700 }, (_, i) => conn(i + 1, new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString()));
  const live = gatewayLive(many, Array.from({ length: 80 }, (_, i) => problem(i)));
  expect(live.connections.length).toBe(MAX_LIVE_CONNECTIONS);
  expect(live.connections[0]!.cid).toBe(700);
  expect(live.connections.at(-1)!.cid).toBe(201);
  expect(live.problems.length).toBe(MAX_LIVE_PROBLEMS);
  expect(live.problems[0]!.title).toBe("problem 79");
});

test("another gateway's bad rows read as unreadable, the good ones as they are, and nothing throws", () => {
  const good = { cid: 1, peer: "a", endpoint: null, rx_bytes: 1, tx_bytes: 2, last_handshake: null };
  const read = readGatewayLive(JSON.stringify({
    connections: [good, { cid: -1, peer: "b" }, "text", { ...good, peer: "x".repeat(10_000) }],
    problems: [{ kind: "stale", title: "t", since: "2026-01-01T00:00:00.000Z" }, { kind: 7 }],
  }));
  expect(read.unreadable).toBeNull();
  expect(read.connections[0]).toEqual(good);
  expect(read.connections.slice(1).map((r) => isUnreadable(r))).toEqual([true, true, true]);
  expect((read.connections[1] as { unreadable: string }).unreadable).toContain("cid");
  expect(read.problems.map((r) => isUnreadable(r))).toEqual([false, true]);
});

test("a publish that is not JSON, not the shape, or too long is unreadable as a whole; none yet is empty", () => {
  expect(readGatewayLive(null)).toEqual({ connections: [], problems: [], unreadable: null });
  expect(readGatewayLive("{").unreadable).toBe("unreadable: not JSON");
  expect(readGatewayLive("[]").unreadable).toBe("unreadable: not {connections, problems}");
  expect(readGatewayLive(JSON.stringify({ connections: [], problems: [], pad: "x".repeat(2 * 1024 * 1024) })).unreadable).toContain("characters");
  // Beyond the bounds, rows are cut, not rejected.
  const rows = Array.from({ length: 600 }, (_, i) => ({ cid: i, peer: "p", endpoint: null, rx_bytes: 0, tx_bytes: 0, last_handshake: null }));
  expect(readGatewayLive(JSON.stringify({ connections: rows, problems: [] })).connections.length).toBe(MAX_LIVE_CONNECTIONS);
});

test("a gateway is up while its last seen is within 3 heartbeats, then stale since that last seen", () => {
  const seen = Date.parse("2026-11-29T10:00:00.000Z");
  expect(gatewayHealth(seen, seen + 15_000, 5000)).toEqual({ health: "up", stale_since: null });
  expect(gatewayHealth(seen, seen + 15_001, 5000)).toEqual({ health: "stale", stale_since: "2026-11-29T10:00:00.000Z" });
  expect(gatewayHealth(seen, seen + 25_000, 10_000).health).toBe("up");
});
