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

function ping(c: HaClient, target = GW_TUNNEL_IP): boolean {
  return sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", target], { allowFail: true }).includes("3 received");
}

describe.skipIf(skip !== undefined)("replies leave from the address the client dialled", () => {
  let world: HaWorld;
  let second: HaClient;
  let own: HaClient;
  let going: HaClient;

  beforeAll(async () => {
    world = new HaWorld(uniqueTag());
    second = await world.addClient(0);
    own = await world.addClient(0);
    going = await world.addClient(0);
    const gw = world.gws.a;
    world.takeOver("a"); // FLOATING as a secondary address of gw-a's uplink
    gw.ns.exec(["ip", "addr", "add", `${GOING}/24`, "dev", UPLINK]);
    own.ns.exec(["wg", "set", own.wgIf, "peer", world.gwPublicKey, "endpoint", `${gw.ownIp}:${WG_PORT}`]);
    going.ns.exec(["wg", "set", going.wgIf, "peer", world.gwPublicKey, "endpoint", `${GOING}:${WG_PORT}`]);
    await world.start("a", world.writeConfig([second, own, going]));
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
    await waitFor("the client to follow the gateway's remaining address", () => world.clientEndpoint(going) === `${gw.ownIp}:${WG_PORT}`, 5_000);
  }, 30_000);
});
