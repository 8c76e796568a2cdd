// A gateway that must reach out first: its config names a client's Endpoint with a
// PersistentKeepalive, and the client (stock wireguard-go) knows no address for the gateway, so
// the tunnel exists only if glassgate starts the handshake by itself, as wireguard-go would.
// A second, stock client initiates as usual, so the handshake latency metric gets both roles.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Topology } from "./support/topology.ts";
import { sh, skipReason, uniqueTag, waitFor } from "./support/netns.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping gateway-initiated tunnel test: ${skip}`);

describe.skipIf(skip !== undefined)("gateway that initiates (Endpoint + PersistentKeepalive) and responds", () => {
  let topo: Topology;

  beforeAll(async () => {
    topo = new Topology(uniqueTag(), 2);
    await topo.configureClient(topo.clients[0]!, 0, { endpoint: false });
    await topo.configureClient(topo.clients[1]!); // a stock client: it initiates, the gateway responds
    await topo.startGateway({}, 2, { withEndpoints: [0], peerLines: { 0: ["PersistentKeepalive = 25"] } });
  });

  afterAll(async () => {
    if (topo?.gateway && topo.gateway.exitCode !== null && topo.gateway.exitCode !== 0) console.error(`glassgate log:\n${topo.gatewayLog}`);
    await topo?.destroy();
  });

  test("the gateway brings the tunnel up on start; the client, which has no endpoint, can then ping it", async () => {
    const c = topo.clients[0]!;
    // Nothing is sent from the client: its wireguard-go learns the gateway's address from the
    // initiation, and counts the handshake once the gateway's keepalive confirms the session.
    await waitFor("the client to see a handshake", () => Number(c.ns.exec(["wg", "show", c.wgIf, "latest-handshakes"]).trim().split(/\s+/)[1]) > 0, 10_000);
    expect(c.ns.exec(["wg", "show", c.wgIf, "endpoints"])).toContain(`${topo.gwUnderlayFor(c)}:52625`);
    const conn = topo.connections().find((x) => x.public_key === c.publicKey)!;
    expect(conn.handshakes.completed).toBeGreaterThanOrEqual(1);
    const out = sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2", topo.gwTunnelIp], { allowFail: true });
    expect(out).toContain("3 received");
  });

  test("handshake latency is measured in both roles: initiator toward that client, responder for a client that initiates", async () => {
    const c = topo.clients[1]!;
    const out = sh(["ip", "netns", "exec", c.ns.name, "ping", "-c", "2", "-i", "0.2", "-W", "2", topo.gwTunnelIp], { allowFail: true });
    expect(out).toContain("2 received");
    // The responder's sample lands when the client's first transport packet confirms the session.
    await waitFor("a responder latency sample", () => topo.metric("glassgate_handshake_duration_seconds_count", '{role="responder"}') >= 1);
    expect(topo.metric("glassgate_handshake_duration_seconds_count", '{role="initiator"}')).toBeGreaterThanOrEqual(1);
    expect(topo.metric("glassgate_handshake_duration_seconds_sum", '{role="responder"}')).toBeLessThan(5);
  });
});
