// Sticky source: glassgate answers a WireGuard client from the address the client's datagram arrived
// on, not from the source the kernel's route prefers. The gateway's namespace has two addresses on
// one interface (its own, the route's preferred source, and a second one, as a floating address or
// any multi-homed host has); a wireguard-go client whose Endpoint is the second address must keep it:
// a WireGuard client roams to wherever authenticated replies come from, so replies from the other
// address would pull it away (and on a failover, away from the address that moves).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { FLOATING, GW_TUNNEL_IP, HaWorld, SEGMENT, UPLINK, WG_PORT, type HaClient } from "./support/ha-world.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping sticky source tests: ${skip}`);

/** A third address on the gateway, dialled by one client and then removed under it. */
const GOING = `${SEGMENT}.101`;
/** IPv6 on the segment: two gateway addresses in one /64 (the kernel prefers one; the client dials the other). */
const V6 = { addrs: ["fd00:77::11", "fd00:77::100"], client: "fd00:77::2" };

function ping(c: HaClient, target = GW_TUNNEL_IP): boolean {
  return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", target], { allowFail: true }).includes("3 received");
}

describe.skipIf(skip !== undefined)("replies leave from the address the client dialled", () => {
  let world: HaWorld;
  let second: HaClient;
  let own: HaClient;
  let going: HaClient;
  let v6: HaClient;
  let v6Dialled = "";

  beforeAll(async () => {
    world = new HaWorld(uniqueTag());
    second = await world.addClient(0);
    own = await world.addClient(0);
    going = await world.addClient(0);
    v6 = await world.addClient(0);
    const gw = world.gws.a;
    world.takeOver("a"); // FLOATING as a secondary address of gw-a's uplink
    gw.ns.exec(["ip", "addr", "add", `${GOING}/24`, "dev", UPLINK]);
    own.ns.exec(["wg", "set", own.wgIf, "peer", world.gwPublicKey, "endpoint", `${gw.ownIp}:${WG_PORT}`]);
    going.ns.exec(["wg", "set", going.wgIf, "peer", world.gwPublicKey, "endpoint", `${GOING}:${WG_PORT}`]);
    for (const a of V6.addrs) gw.ns.exec(["ip", "addr", "add", `${a}/64`, "dev", UPLINK, "nodad"]);
    v6.ns.exec(["ip", "addr", "add", `${V6.client}/64`, "dev", UPLINK, "nodad"]);
    v6Dialled = V6.addrs.find((a) => a !== world.routeSource("a", V6.client))!;
    v6.ns.exec(["wg", "set", v6.wgIf, "peer", world.gwPublicKey, "endpoint", `[${v6Dialled}]:${WG_PORT}`]);
    await world.start("a", world.writeConfig([second, own, going, v6]));
  }, 60_000);

  afterAll(async () => {
    await world?.destroy();
  });

  test("a client that dialled the non-preferred address stays on it; one that dialled the preferred one stays on that", () => {
    // The premise: for a reply to either client, the kernel's route would pick the gateway's own address.
    expect(world.routeSource("a", second.segmentIp)).toBe(world.gws.a.ownIp);
    expect(ping(second)).toBe(true);
    expect(ping(own)).toBe(true);
    expect(world.clientEndpoint(second)).toBe(`${FLOATING}:${WG_PORT}`);
    expect(world.clientEndpoint(own)).toBe(`${world.gws.a.ownIp}:${WG_PORT}`);
  }, 30_000);

  test("IPv6: a client that dialled the non-preferred address stays on it", () => {
    expect(V6.addrs).toContain(world.routeSource("a", V6.client));
    expect(world.routeSource("a", V6.client)).not.toBe(v6Dialled);
    expect(ping(v6)).toBe(true);
    expect(world.clientEndpoint(v6)).toBe(`[${v6Dialled}]:${WG_PORT}`);
  }, 30_000);

  test("when the dialled address goes away, the gateway says so once and reaches the client from an address it still has", async () => {
    expect(ping(going)).toBe(true);
    expect(world.clientEndpoint(going)).toBe(`${GOING}:${WG_PORT}`);
    const gw = world.gws.a;
    gw.ns.exec(["ip", "addr", "del", `${GOING}/24`, "dev", UPLINK]);
    // Traffic from the gateway's side to the client: its first datagram names the gone address.
    const out = sh(["ip", "netns", "exec", gw.ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", going.tunnelIp], { allowFail: true });
    expect(out).toContain("3 received");
    await gw.log!.next((l) => String(l.msg ?? "").startsWith("a local address the gateway answered from went away"), "the refused-source warning", 5_000);
    expect(gw.log!.lines.filter((l) => String(l.msg ?? "").startsWith("a local address the gateway answered from went away"))).toHaveLength(1);
    const metrics = world.request("a", "GET", "/metrics").body;
    expect(Number(/^glassgate_udp_sticky_source_refused_total(?:\{[^}]*\})? (\S+)/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    await waitFor("the client to follow the gateway's remaining address", () => world.clientEndpoint(going) === `${gw.ownIp}:${WG_PORT}`, 5_000);
  }, 30_000);
});
