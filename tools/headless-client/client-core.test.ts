// The headless client's core on simulated time, against the gateway double (GatewayNode + a
// controlled IceAgent) of test/support/headless-world.ts, with the test playing the portal.
import { describe, expect, test } from "bun:test";
import { icmpEcho, parseEcho } from "../../test/support/icmp.ts";
import { CLIENT_IP, GATEWAY_HOST, HeadlessWorld, RELAYED, RESOURCE } from "../../test/support/headless-world.ts";
import { encodeKey } from "../../src/crypto/x25519.ts";
import { ASSIGNED_IPS_EVENT, DOMAIN_STATUS_EVENT, controlPacket } from "./p2p-control.ts";

const ping = (seq: number) => icmpEcho({ src: CLIENT_IP, dst: "10.77.0.5", type: 8, id: 9, seq, payload: Uint8Array.of(seq) });
const pong = (seq: number) => icmpEcho({ src: "10.77.0.5", dst: CLIENT_IP, type: 0, id: 9, seq, payload: Uint8Array.of(seq) });

function connected(opts: { relay?: boolean; blockDirect?: boolean } = {}) {
  const w = new HeadlessWorld(opts);
  if (opts.blockDirect) w.directBlocked = true;
  w.init();
  w.run(w.now + 500); // relays allocate before the flow, as a client that just joined
  w.flowCreated();
  w.run(w.now + 3_000);
  return w;
}

describe("headless client core", () => {
  test("init: the interface, the resource's route, and a create_flow for it", () => {
    const w = new HeadlessWorld();
    w.init();
    expect(w.eventsOf("interface")).toEqual([{ type: "interface", ipv4: CLIENT_IP, ipv6: "fd00:2021:1111::9" }]);
    expect(w.eventsOf("routes").at(-1)!.cidrs).toEqual(["10.77.0.0/24"]);
    expect(w.portalOut).toEqual([{ event: "create_flow", payload: { resource_id: RESOURCE, connected_gateway_ids: [] } }]);
    expect(w.client.phase).toBe("requesting_flow");
    // A second init (the portal connection came back) asks for nothing new.
    w.init();
    expect(w.portalOut.filter((m) => m.event === "create_flow")).toHaveLength(1);
  });

  test("a resource the portal does not list: the flow fails without asking", () => {
    const w = new HeadlessWorld();
    w.portal({ event: "init", payload: { interface: { ipv4: CLIENT_IP, ipv6: "fd00::9", upstream_dns: [] }, resources: [], relays: [] } });
    expect(w.eventsOf("flow_failed")).toEqual([{ type: "flow_failed", resourceId: RESOURCE, reason: "not_in_init" }]);
    expect(w.portalOut).toEqual([]);
  });

  test("flow_creation_failed is reported with the portal's reason", () => {
    const w = new HeadlessWorld();
    w.init();
    w.portal({ event: "flow_creation_failed", payload: { resource_id: RESOURCE, reason: "forbidden" } });
    expect(w.eventsOf("flow_failed")).toEqual([{ type: "flow_failed", resourceId: RESOURCE, reason: "forbidden" }]);
    expect(w.client.phase).toBe("closed");
  });

  test("flow_created: candidates go to the gateway, ICE nominates the direct pair, WireGuard comes up, packets flow both ways", () => {
    const w = connected();
    const signalled = w.portalOut.find((m) => m.event === "broadcast_ice_candidates");
    expect(signalled).toMatchObject({ payload: { gateway_ids: ["gw-1"] } });
    expect(signalled!.event === "broadcast_ice_candidates" && signalled!.payload.candidates[0]).toMatch(/ 192\.168\.1\.10 40000 typ host/);
    expect(w.client.phase).toBe("connected");
    expect(w.eventsOf("connected")).toEqual([{ type: "connected", gatewayId: "gw-1", pair: "host 192.168.1.10:40000 -> host 198.51.100.1:52625", relayed: false }]);
    expect(w.gatewayIce.state).toBe("connected");
    expect(w.eventsOf("handshake_completed")).toHaveLength(1);
    // The gateway's tunnel addresses are routed too (its DNS for DNS resources).
    expect(w.eventsOf("routes").at(-1)!.cidrs).toEqual(["10.77.0.0/24", "100.64.0.1/32", "fd00:2021:1111::1/128"]);

    w.clientSends(ping(1));
    w.run(w.now + 100);
    expect(w.gatewayTun.map((p) => parseEcho(p)?.seq)).toEqual([1]);
    w.gatewaySends(pong(1));
    w.run(w.now + 100);
    expect(w.clientTun.map((p) => parseEcho(p))).toEqual([expect.objectContaining({ type: 0, seq: 1, src: "10.77.0.5" })]);
    expect(w.client.route?.to).toEqual(GATEWAY_HOST);
  });

  test("a packet sent before ICE finished is staged and delivered once WireGuard is up", () => {
    const w = new HeadlessWorld();
    w.init();
    w.flowCreated();
    w.clientSends(ping(7)); // nothing nominated yet
    w.run(w.now + 3_000);
    expect(w.gatewayTun.map((p) => parseEcho(p)?.seq)).toEqual([7]);
  });

  test("the direct path blocked: the pair through the TURN relay is nominated and packets go as ChannelData", () => {
    const w = connected({ relay: true, blockDirect: true });
    const c = w.eventsOf("connected").at(-1)!;
    expect(c.relayed).toBe(true);
    expect(c.pair).toBe(`relay ${RELAYED.address}:${RELAYED.port} -> host 198.51.100.1:52625`);
    const signalled = w.portalOut.flatMap((m) => (m.event === "broadcast_ice_candidates" ? m.payload.candidates : []));
    expect(signalled).toContainEqual(expect.stringMatching(/ 203\.0\.113\.5 50000 typ relay/));
    w.clientSends(ping(2));
    w.run(w.now + 100);
    expect(w.gatewayTun.map((p) => parseEcho(p)?.seq)).toEqual([2]);
    w.gatewaySends(pong(2));
    w.run(w.now + 100);
    expect(w.clientTun.map((p) => parseEcho(p)?.seq)).toEqual([2]);
    expect(w.relay!.channels.size).toBeGreaterThan(0);
  });

  test("the gateway's goodbye tears the connection down and says so; later packets go nowhere", () => {
    const w = connected();
    w.goodbye();
    w.run(w.now + 100);
    expect(w.eventsOf("goodbye")).toEqual([{ type: "goodbye", gatewayId: "gw-1" }]);
    expect(w.client.phase).toBe("closed");
    expect(w.client.route).toBeUndefined();
    const before = w.gatewayTun.length;
    w.clientSends(ping(3));
    w.run(w.now + 10_000);
    expect(w.gatewayTun.length).toBe(before);
    expect(w.client.drops.no_connection).toBe(1);
  });

  test("AssignedIps from the gateway routes the proxy addresses; DomainStatus is reported", () => {
    const w = connected();
    w.gatewayControl(controlPacket(ASSIGNED_IPS_EVENT, { resource: RESOURCE, domain: "app.internal.example", proxy_ips: ["100.96.0.1", "fd00:2021:1111:8000::1"] }));
    w.run(w.now + 100);
    expect(w.eventsOf("assigned_ips")).toHaveLength(1);
    expect(w.eventsOf("routes").at(-1)!.cidrs).toEqual(expect.arrayContaining(["100.96.0.1/32", "fd00:2021:1111:8000::1/128"]));
    w.gatewayControl(controlPacket(DOMAIN_STATUS_EVENT, { resource: RESOURCE, domain: "app.internal.example", status: "active" }));
    w.run(w.now + 100);
    expect(w.eventsOf("domain_status")).toEqual([{ type: "domain_status", body: { resource: RESOURCE, domain: "app.internal.example", status: "active" } }]);
    // Neither reached the client's TUN: control packets are the client's business.
    expect(w.clientTun).toEqual([]);
  });

  test("a malformed control body is counted and ignored", () => {
    const w = connected();
    const p = controlPacket(ASSIGNED_IPS_EVENT, { resource: RESOURCE });
    w.gatewayControl(p);
    w.run(w.now + 100);
    expect(w.client.drops.unknown_control).toBe(1);
    expect(w.eventsOf("assigned_ips")).toEqual([]);
  });

  test("resource_deleted removes the routes and ends the connection", () => {
    const w = connected();
    w.portal({ event: "resource_deleted", payload: RESOURCE });
    expect(w.eventsOf("resource_deleted")).toHaveLength(1);
    expect(w.eventsOf("routes").at(-1)!.cidrs).not.toContain("10.77.0.0/24");
    expect(w.client.phase).toBe("closed");
  });

  test("candidates the portal relays before flow_created are kept for the agent", () => {
    const w = new HeadlessWorld();
    w.init();
    w.portal({ event: "ice_candidates", payload: { gateway_id: "gw-1", candidates: w.gatewayIce.signalledCandidates() } });
    w.flowCreated();
    w.run(w.now + 3_000);
    expect(w.client.phase).toBe("connected");
    expect(encodeKey(w.client.identity.publicKey)).toHaveLength(44);
  });

  test("the gateway goes silent: ICE fails and the client says it is disconnected", () => {
    const w = connected();
    w.directBlocked = true;
    w.run(w.now + 60_000);
    expect(w.eventsOf("disconnected")).toHaveLength(1);
    expect(w.client.phase).toBe("closed");
  });
});
