// An HA pair: two `glassgate up` processes sharing one WireGuard key (one config file) behind a
// floating address, as keepalived runs them. A stock wireguard-go client pings through gw-a; gw-a
// crashes and the address moves to gw-b; the client carries on through gw-b once it re-handshakes.
// The outage is measured from the client's own ping timestamps and printed: it is bounded by the
// client's WireGuard timers, not by the gateways (README, "High availability").
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { skipReason, uniqueTag, waitFor } from "./support/netns.ts";
import { watch, type Watched } from "./support/process-lines.ts";
import { FLOATING, GW_TUNNEL_IP, HaWorld, WG_PORT, outage, parsePingLine, type HaClient, type Reply } from "./support/ha-world.ts";

const skip = skipReason(["ip", "wg", "wireguard-go", "ping"]);
if (skip) console.warn(`skipping HA pair test: ${skip}`);

/** A ping running for the whole test: 10 per second, each reply timestamped by ping itself (-D). */
function pinger(c: HaClient): { replies: Reply[]; out: Watched } {
  const p = c.ns.start(["ping", "-D", "-n", "-i", "0.1", "-W", "1", GW_TUNNEL_IP]);
  const out = watch(p, "ping");
  const replies: Reply[] = [];
  // process-lines keeps non-JSON lines as {text}; parse them as they come.
  let seen = 0;
  const timer = setInterval(() => {
    for (; seen < out.lines.length; seen++) {
      const r = parsePingLine(String(out.lines[seen]!.text ?? ""));
      if (r) replies.push(r);
    }
  }, 20);
  void p.exited.then(() => clearInterval(timer));
  return { replies, out };
}

function latestHandshake(c: HaClient): number {
  return Number(c.ns.exec(["wg", "show", c.wgIf, "latest-handshakes"]).trim().split(/\s+/)[1] ?? 0);
}

describe.skipIf(skip !== undefined)("HA pair: one key, one floating address, two gateways", () => {
  let world: HaWorld;
  let client: HaClient;

  beforeAll(async () => {
    world = new HaWorld(uniqueTag());
    client = await world.addClient(25);
    const config = world.writeConfig([client]);
    world.takeOver("a");
    await world.start("a", config);
    await world.start("b", config);
  }, 90_000);

  afterAll(async () => {
    await world?.destroy();
  });

  test("a client of gw-a carries on through gw-b after gw-a crashes and the address moves", async () => {
    const { replies } = pinger(client);
    await waitFor("replies through gw-a", () => replies.length >= 5, 15_000);
    // Replies leave from the floating address (the route's src), so the client stays pointed at it.
    expect(world.clientEndpoint(client)).toBe(`${FLOATING}:${WG_PORT}`);
    expect(world.connections("a").find((x) => x.public_key === client.publicKey)?.handshakes.completed).toBeGreaterThanOrEqual(1);
    expect(world.connections("b").find((x) => x.public_key === client.publicKey)?.handshakes.completed ?? 0).toBe(0);
    const handshakeBefore = latestHandshake(client);

    const failedAt = Date.now() / 1000;
    await world.crash("a");
    world.takeOver("b");
    // The client sends into a session gw-b never had: gw-b drops those packets (unknown receiver
    // index; WireGuard has no message to say so), until the client's own timer starts a handshake.
    await waitFor("a reply through gw-b", () => replies.some((r) => r.at > failedAt), 45_000, 100);
    const o = outage(replies, failedAt)!;
    const handshakeAfter = latestHandshake(client);
    console.log(
      `HA failover: last reply ${o.before.at.toFixed(3)} (seq ${o.before.seq}), first after ${o.after.at.toFixed(3)} (seq ${o.after.seq}): ` +
        `gap ${o.gapS.toFixed(2)} s, ${o.lost} pings unanswered; client re-handshook ${(handshakeAfter - failedAt).toFixed(0)} s after the crash`,
    );
    expect(handshakeAfter).toBeGreaterThan(handshakeBefore);
    expect(world.clientEndpoint(client)).toBe(`${FLOATING}:${WG_PORT}`);
    expect(world.connections("b").find((x) => x.public_key === client.publicKey)?.handshakes.completed).toBeGreaterThanOrEqual(1);
    // And it keeps going through gw-b.
    const n = replies.length;
    await waitFor("more replies through gw-b", () => replies.length >= n + 5, 10_000);
  }, 90_000);
});
