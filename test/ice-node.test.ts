// ICE through the gateway's real data path: GatewayNode inside the real EventLoop with the real
// UDP socket and a real TUN device (support/ice-node-shell.ts), werift-ice as the controlling client
// with glassgate's own WireGuard client side (support/werift-client.ts, WG=1). The test plays the
// portal (credentials, keys and candidates both ways). Each case ends with ICMP echoes from the
// client through the tunnel to the gateway's TUN address: the kernel behind the TUN answers, so a
// reply proves the packet reached the TUN and the answer found its way back over the same pair.
//   (a) host candidates on loopback; (b) both sides behind MASQUERADE NATs, srflx from the relay's
//   binding answers; (c) direct UDP blocked, only the relay through coturn works.
import { afterAll, describe, expect, test } from "bun:test";
import { Netns, skipReason, uniqueTag } from "./support/netns.ts";
import { natTopology } from "./support/nat-topology.ts";
import { JsonPeer, type Line } from "./support/json-peer.ts";
import { coturn } from "./support/coturn-netns.ts";

const SKIP = skipReason(["ip", "iptables", "turnserver"]);

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** The portal's part: keys, credentials and candidates both ways; then wait for nomination. */
async function connect(gateway: JsonPeer, client: JsonPeer) {
  const gwHello = await gateway.next("hello");
  const clHello = await client.next("hello");
  gateway.send({ kind: "client", ufrag: clHello.ufrag, pwd: clHello.pwd, publicKey: clHello.publicKey, candidates: clHello.candidates });
  const cands = await gateway.next("candidates");
  client.send({ kind: "remote", ufrag: gwHello.ufrag, pwd: gwHello.pwd, candidates: cands.candidates, gatewayPublicKey: gwHello.publicKey });
  let nominated: Line, connected: Line;
  try {
    connected = await client.next("connected", 30_000);
    nominated = await gateway.next("nominated", 10_000);
  } catch (err) {
    console.error("gateway:", JSON.stringify(gateway.lines.slice(-40)), gateway.stderr.join("\n"));
    console.error("client:", JSON.stringify(client.lines.slice(-20)), client.stderr.join("\n"));
    throw err;
  }
  return { gwHello, clHello, cands, nominated, connected };
}

/** Echo requests through the tunnel to the gateway's TUN address; every reply must come back. */
async function pingThrough(gateway: JsonPeer, client: JsonPeer, count = 5) {
  client.send({ kind: "ping", count, dst: "10.99.0.1" });
  await client.next("wg_handshake", 10_000);
  // The first ping may have waited for the handshake (staged); later ones go at once.
  client.send({ kind: "ping", count, dst: "10.99.0.1" });
  await waitCount(client, (l) => l.kind === "wg_data" && l.icmpType === 0, count, 10_000);
  gateway.send({ kind: "stats" });
  return gateway.next("stats");
}

async function waitCount(p: JsonPeer, pred: (l: Line) => boolean, n: number, ms: number) {
  const end = performance.now() + ms;
  while (p.lines.filter(pred).length < n) {
    if (performance.now() > end) throw new Error(`${p.name}: ${p.lines.filter(pred).length}/${n} lines; stderr: ${p.stderr.slice(-5).join(" | ")}`);
    await Bun.sleep(20);
  }
}

const timings: string[] = [];
afterAll(() => {
  if (timings.length) console.log(`time to a nominated pair (werift connected / gateway nominated):\n  ${timings.join("\n  ")}`);
});

describe.skipIf(SKIP !== undefined)("ICE through the gateway's data path (werift-ice client, WireGuard over the pair, real TUN)", () => {
  if (SKIP) console.warn(`skipping ICE data-path tests: ${SKIP}`);

  test("host candidates on loopback: the pair is direct host and pings through the tunnel come back", async () => {
    const ns = new Netns(`icnlo${uniqueTag()}`);
    cleanups.push(() => ns.destroy());
    const gateway = new JsonPeer(ns, "gateway", "ice-node-shell.ts", { HOST_ADDRESSES: "127.0.0.1", PORT: "51820" });
    const client = new JsonPeer(ns, "werift", "werift-client.ts", { HOST_ADDRESS: "127.0.0.1", WG: "1" });
    cleanups.push(() => gateway.stop(), () => client.stop());
    const { nominated, connected } = await connect(gateway, client);
    timings.push(`host:  ${(connected.ms as number).toFixed(1)} ms / ${(nominated.ms as number).toFixed(1)} ms (${nominated.pair})`);
    expect(nominated.path).toBe("direct host");
    const stats = await pingThrough(gateway, client);
    expect((stats.counters as { delivered: number }).delivered).toBeGreaterThanOrEqual(5);
    expect(stats.path).toBe("direct host");
  }, 60_000);

  test("both sides behind MASQUERADE NATs: srflx (learnt from the relay's binding answers) is the path", async () => {
    // The relay refuses the gateway's credentials: its binding answers still give the srflx
    // candidate (as a Firezone gateway learns it), and no relayed pair can win the race.
    const { cl, inet, gw } = natTopology("icn", cleanups);
    const turn = await coturn(inet, "203.0.113.254", cleanups);
    const gateway = new JsonPeer(gw, "gateway", "ice-node-shell.ts", { HOST_ADDRESSES: "10.7.0.2", PORT: "51820", TURN_SERVER: turn.server, TURN_USER: "gw", TURN_PASSWORD: "not-the-password" });
    const client = new JsonPeer(cl, "werift", "werift-client.ts", { STUN_SERVER: "203.0.113.254:3478", WG: "1" });
    cleanups.push(() => gateway.stop(), () => client.stop());
    const { cands, nominated, connected } = await connect(gateway, client);
    timings.push(`srflx: ${(connected.ms as number).toFixed(1)} ms / ${(nominated.ms as number).toFixed(1)} ms (${nominated.pair})`);
    expect(cands.candidates as string[]).toContainEqual(expect.stringMatching(/ 198\.51\.100\.1 \d+ typ srflx raddr 10\.7\.0\.2 /));
    expect(nominated.path).toBe("srflx");
    const stats = await pingThrough(gateway, client);
    expect(stats.path).toBe("srflx");
    expect((stats.relays as { failures: Record<string, number> }[])[0]!.failures).toEqual({ auth: 1 });
  }, 90_000);

  test("direct UDP blocked: the relay through coturn carries the checks and the tunnel (relay via …)", async () => {
    const ns = new Netns(`icnrl${uniqueTag()}`);
    cleanups.push(() => ns.destroy());
    // Only the relay's ports pass: gateway ↔ coturn (3478) and client ↔ relayed addresses (3500–3560).
    ns.exec(["iptables", "-A", "INPUT", "-p", "udp", "-m", "multiport", "!", "--ports", "3478,3500:3560", "-j", "DROP"]);
    const turn = await coturn(ns, "127.0.0.1", cleanups);
    const gateway = new JsonPeer(ns, "gateway", "ice-node-shell.ts", { HOST_ADDRESSES: "127.0.0.1", PORT: "51820", TURN_SERVER: turn.server, TURN_USER: "gw", TURN_PASSWORD: "gw-secret" });
    const client = new JsonPeer(ns, "werift", "werift-client.ts", { HOST_ADDRESS: "127.0.0.1", WG: "1" });
    cleanups.push(() => gateway.stop(), () => client.stop());
    const { cands, nominated, connected } = await connect(gateway, client);
    timings.push(`relay: ${(connected.ms as number).toFixed(1)} ms / ${(nominated.ms as number).toFixed(1)} ms (${nominated.pair})`);
    expect(cands.candidates as string[]).toContainEqual(expect.stringMatching(/ 127\.0\.0\.1 35\d\d typ relay/));
    expect(nominated.path).toBe("relay via 127.0.0.1:3478");
    const stats = await pingThrough(gateway, client);
    expect(stats.path).toBe("relay via 127.0.0.1:3478");
    const bytes = stats.relayBytes as { sent: number; received: number };
    expect(bytes.sent).toBeGreaterThan(0);
    expect(bytes.received).toBeGreaterThan(0);
  }, 90_000);
});
