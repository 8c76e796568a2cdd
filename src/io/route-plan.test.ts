import { expect, test } from "bun:test";
import fc from "fast-check";
import { formatCidr, parseCidr } from "../ip/address.ts";
import { cidrContains, hostConflict, planRoutes, type HostRoute, type WantedRoute } from "./route-plan.ts";
import { parseIpRoutes } from "./routes.ts";

const TUN = "glassgate0";
const peerA = { cid: 1, publicKey: "A".repeat(43) + "=", name: "alice" };
const peerB = { cid: 2, publicKey: "B".repeat(43) + "=" };
const want = (cidr: string, peer: WantedRoute["peer"] = peerA): WantedRoute => ({ prefix: parseCidr(cidr), peer });
const route = (dst: string, dev: string | undefined, gateway?: string, type = "unicast"): HostRoute => ({ prefix: parseCidr(dst), dev, gateway, type });

/** A typical host: eth0 on 192.168.1.0/24 with the default route, a docker bridge, our TUN's own subnet. */
const HOST: HostRoute[] = [
  route("0.0.0.0/0", "eth0", "192.168.1.1"),
  route("192.168.1.0/24", "eth0"),
  route("172.17.0.0/16", "docker0"),
  route("10.50.0.0/16", "eth0", "192.168.1.254"),
  route("10.99.0.0/24", TUN),
  route("::/0", "eth0", "fe80::1"),
  route("2001:db8:1::/64", "eth0"),
  route("fe80::/64", "eth0"),
];
const keys = (cs: { prefix: { family: 4 | 6; bytes: Uint8Array; prefix: number } }[]) => cs.map((c) => formatCidr(c.prefix));

test("a peer's own tunnel address and a LAN behind it are routed into the TUN", () => {
  const plan = planRoutes([want("10.99.0.2/32"), want("10.60.0.0/16"), want("fd00:99::2/128")], HOST, TUN, new Set());
  expect(keys(plan.add)).toEqual(["10.99.0.2/32", "10.60.0.0/16", "fd00:99::2/128"]);
  expect(plan.refused).toEqual([]);
});

test("a prefix the host already routes through another device is refused, naming that route", () => {
  const plan = planRoutes([want("10.50.0.0/16"), want("172.17.0.0/16", peerB)], HOST, TUN, new Set());
  expect(plan.add).toEqual([]);
  expect(plan.refused.map((r) => [formatCidr(r.prefix), r.peer.cid, r.conflict])).toEqual([
    ["10.50.0.0/16", 1, "10.50.0.0/16 via 192.168.1.254 dev eth0"],
    ["172.17.0.0/16", 2, "172.17.0.0/16 dev docker0"],
  ]);
});

test("a prefix inside or covering a network the host is attached to is refused", () => {
  const plan = planRoutes([want("192.168.1.128/25"), want("192.168.1.7/32"), want("192.168.0.0/16"), want("2001:db8::/32"), want("2001:db8:1::5/128")], HOST, TUN, new Set());
  expect(plan.add).toEqual([]);
  expect(plan.refused.map((r) => [formatCidr(r.prefix), r.conflict])).toEqual([
    ["192.168.1.128/25", "192.168.1.0/24 dev eth0"],
    ["192.168.1.7/32", "192.168.1.0/24 dev eth0"],
    ["192.168.0.0/16", "192.168.1.0/24 dev eth0"],
    ["2001:db8::/32", "2001:db8:1::/64 dev eth0"],
    ["2001:db8:1::5/128", "2001:db8:1::/64 dev eth0"],
  ]);
});

test("a default route, the 0.0.0.0/1 + 128.0.0.0/1 split and 2000::/3 are refused; 10.0.0.0/8 is not", () => {
  const plan = planRoutes([want("0.0.0.0/0"), want("0.0.0.0/1"), want("128.0.0.0/1"), want("::/0"), want("2000::/3"), want("10.0.0.0/8", peerB)],
    HOST.filter((r) => r.dev !== "eth0" || r.prefix.prefix === 0), TUN, new Set());
  expect(plan.refused.map((r) => formatCidr(r.prefix))).toEqual(["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "::/0", "2000::/3"]);
  expect(plan.refused[1]!.conflict).toBe("default via 192.168.1.1 dev eth0");
  expect(keys(plan.add)).toEqual(["10.0.0.0/8"]);
  // Even on a host without a default route (a bare namespace), a /1 is not a peer route.
  expect(planRoutes([want("128.0.0.0/1")], [], TUN, new Set()).refused).toHaveLength(1);
});

test("a route a peer no longer needs is removed; one still wanted is kept, not re-added", () => {
  const installed = new Set(["10.99.0.2/32", "10.99.0.3/32"]);
  const host = [...HOST, route("10.99.0.2/32", TUN), route("10.99.0.3/32", TUN)];
  const plan = planRoutes([want("10.99.0.2/32")], host, TUN, installed);
  expect(plan.add).toEqual([]);
  expect(plan.remove.map(formatCidr)).toEqual(["10.99.0.3/32"]);
  expect([...plan.installed]).toEqual(["10.99.0.2/32"]);
});

test("the kernel's own route for the tunnel subnet is neither re-added nor ever removed", () => {
  const plan = planRoutes([want("10.99.0.0/24")], HOST, TUN, new Set());
  expect(plan.add).toEqual([]);
  expect(plan.refused).toEqual([]);
  expect(planRoutes([], HOST, TUN, plan.installed).remove).toEqual([]);
});

test("two peers with the same prefix get one route, removed only when neither needs it", () => {
  const first = planRoutes([want("10.70.0.0/24"), want("10.70.0.0/24", peerB)], HOST, TUN, new Set());
  expect(keys(first.add)).toEqual(["10.70.0.0/24"]);
  expect(planRoutes([want("10.70.0.0/24", peerB)], HOST, TUN, first.installed).remove).toEqual([]);
  expect(planRoutes([], HOST, TUN, first.installed).remove.map(formatCidr)).toEqual(["10.70.0.0/24"]);
});

test("no accepted route ever shares or overlaps an on-link network of another device (property)", () => {
  const v4 = (minPrefix: number) => fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: minPrefix, max: 32 }))
    .map(([n, p]) => parseCidr(`${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${p}`));
  // An on-link default (a point-to-point uplink) contains everything: the prefix-length rule covers it.
  fc.assert(fc.property(fc.array(v4(1), { maxLength: 6 }), fc.array(v4(0), { maxLength: 6 }), (lans, peers) => {
    const host = lans.map((c, i) => ({ prefix: c, dev: `eth${i}`, type: "unicast" }));
    const plan = planRoutes(peers.map((c) => ({ prefix: c, peer: peerA })), host, TUN, new Set());
    for (const a of plan.add) {
      expect(a.prefix.prefix).toBeGreaterThanOrEqual(8);
      for (const l of lans) expect(cidrContains(l, a.prefix) || cidrContains(a.prefix, l)).toBe(false);
    }
    // Every distinct wanted prefix is either added or refused.
    expect(new Set([...keys(plan.add), ...plan.refused.map((r) => formatCidr(r.prefix))]).size).toBe(new Set(peers.map(formatCidr)).size);
  }));
});

test("ip's JSON route listing is read as the kernel means it (default, host routes, blackholes)", () => {
  const v4 = parseIpRoutes(JSON.stringify([
    { dst: "default", gateway: "192.0.2.1", dev: "eth0", flags: [] },
    { dst: "192.0.2.0/24", dev: "eth0", protocol: "kernel", scope: "link", prefsrc: "192.0.2.2", flags: [] },
    { dst: "198.51.100.7", dev: "eth1", flags: [] },
    { type: "blackhole", dst: "203.0.113.0/24", flags: [] },
  ]), 4);
  expect(v4.map((r) => [formatCidr(r.prefix), r.dev, r.gateway, r.type])).toEqual([
    ["0.0.0.0/0", "eth0", "192.0.2.1", "unicast"],
    ["192.0.2.0/24", "eth0", undefined, "unicast"],
    ["198.51.100.7/32", "eth1", undefined, "unicast"],
    ["203.0.113.0/24", undefined, undefined, "blackhole"],
  ]);
  const v6 = parseIpRoutes('[{"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"default","gateway":"fd00::1","dev":"eth0"}]', 6);
  expect(v6.map((r) => formatCidr(r.prefix))).toEqual(["fe80::/64", "::/0"]);
  // A blackhole for the same prefix is a route the host has: refused too.
  expect(planRoutes([want("203.0.113.0/24")], v4, TUN, new Set()).refused[0]!.conflict).toBe("blackhole 203.0.113.0/24");
});

test("a tunnel subnet the host is already attached to is a conflict; a free one is not", () => {
  const others = HOST.filter((r) => r.dev !== TUN);
  expect(hostConflict(parseCidr("192.168.1.0/24"), others)).toEqual({ reason: "the host already has a route for this prefix", conflict: "192.168.1.0/24 dev eth0" });
  expect(hostConflict(parseCidr("172.17.5.0/24"), others)?.conflict).toBe("172.17.0.0/16 dev docker0");
  expect(hostConflict(parseCidr("10.99.0.0/24"), others)).toBeUndefined();
});
