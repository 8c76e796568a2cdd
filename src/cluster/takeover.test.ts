import { expect, test } from "bun:test";
import { encodeKey } from "../crypto/x25519.ts";
import type { LiveConnection } from "./gateway-presence.ts";
import { parseIpEndpoint, planTakeover, type TakeoverGateway } from "./takeover.ts";

const key = (n: number) => encodeKey(new Uint8Array(32).fill(n));
const K1 = key(1);
const K2 = key(2);
const K3 = key(3);

function gw(gid: string, lastSeen: number, connections: Partial<LiveConnection>[]): TakeoverGateway {
  const rows = connections.map((c, i) => ({ cid: i + 1, peer: c.public_key ?? "?", endpoint: null, rx_bytes: 0, tx_bytes: 0, last_handshake: null, ...c }));
  return { gid, lastSeen, live: JSON.stringify({ connections: rows, problems: [] }) };
}

test("each peer is reached at the newest endpoint any other gateway published; this gateway's own publish is ignored", () => {
  const plan = planTakeover([
    gw("self", 9, [{ public_key: K1, endpoint: "192.0.2.200:1", last_handshake: "2026-11-29T10:00:09.000Z" }]),
    gw("a", 5, [
      { public_key: K1, endpoint: "198.51.100.1:51820", last_handshake: "2026-11-29T10:00:05.000Z" },
      { public_key: K2, endpoint: "[2001:db8::2]:40000", last_handshake: "2026-11-29T10:00:01.000Z" },
    ]),
    gw("c", 6, [{ public_key: K1, endpoint: "198.51.100.9:51820", last_handshake: "2026-11-29T10:00:02.000Z" }]),
  ], "self", () => undefined);
  expect(plan.skipped).toEqual([]);
  expect(plan.targets).toEqual([
    { publicKey: K1, endpoint: { address: "198.51.100.1", port: 51820 }, seenBy: "a" },
    { publicKey: K2, endpoint: { address: "2001:db8::2", port: 40000 }, seenBy: "a" },
  ]);
});

test("peers without a usable endpoint are skipped with why; a name-only row from an older gateway is found by name", () => {
  const plan = planTakeover([
    gw("a", 5, [
      { public_key: K1, endpoint: null },
      { public_key: K2, endpoint: "vpn.example.com:51820", last_handshake: "2026-11-29T10:00:01.000Z" },
      { peer: "laptop", endpoint: "198.51.100.3:51820" },
      { peer: "ghost", endpoint: "198.51.100.4:51820" },
    ]),
  ], "self", (name) => (name === "laptop" ? K3 : undefined));
  expect(plan.targets).toEqual([{ publicKey: K3, endpoint: { address: "198.51.100.3", port: 51820 }, seenBy: "a" }]);
  expect(plan.skipped).toEqual([
    { peer: "ghost", reason: "unknown_name" },
    { peer: K1, reason: "no_endpoint" },
    { peer: K2, reason: "bad_endpoint" },
  ]);
});

test("an unreadable publish plans nothing instead of throwing", () => {
  expect(planTakeover([{ gid: "a", lastSeen: 1, live: "{not json" }, { gid: "b", lastSeen: 1, live: null }], "self", () => undefined)).toEqual({ targets: [], skipped: [] });
});

test("published endpoints parse as an IP address and a port only", () => {
  expect(parseIpEndpoint("10.77.0.2:51820")).toEqual({ address: "10.77.0.2", port: 51820 });
  expect(parseIpEndpoint("[::1]:1")).toEqual({ address: "::1", port: 1 });
  for (const bad of ["10.77.0.2", "10.77.0.2:0", "10.77.0.2:65536", "host:80", "::1:80", "[::1]80"]) expect(parseIpEndpoint(bad)).toBeUndefined();
});
