// Our controlled ICE agent against werift-ice, an independent implementation, as the controlling
// client: (a) host candidates only, (b) both sides behind MASQUERADE NATs so only srflx works;
// and roles swapped: our controlling agent (a client's) against werift-ice controlled. Each
// side runs in a namespace the test creates; after nomination datagrams flow both ways over the pair.
import { afterAll, describe, expect, test } from "bun:test";
import { Netns, skipReason, uniqueTag } from "./support/netns.ts";
import { natTopology } from "./support/nat-topology.ts";
import { JsonPeer, type Line } from "./support/json-peer.ts";

const SKIP = skipReason(["ip", "iptables"]);

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Introduces the two agents to each other (the portal's job), then waits for both to agree. */
async function connect(gateway: JsonPeer, client: JsonPeer) {
  const gwHello = await gateway.next("hello");
  const clHello = await client.next("hello");
  gateway.send({ kind: "remote", ufrag: clHello.ufrag, pwd: clHello.pwd, candidates: clHello.candidates });
  client.send({ kind: "remote", ufrag: gwHello.ufrag, pwd: gwHello.pwd, candidates: gwHello.candidates });
  let nominated: Line, connected: Line;
  try {
    nominated = await gateway.next("nominated");
    connected = await client.next("connected");
  } catch (err) {
    // What each side saw, for the failure report.
    console.error("gateway:", JSON.stringify(gateway.lines), gateway.stderr.join("\n"));
    console.error("client:", JSON.stringify(client.lines), client.stderr.join("\n"));
    throw err;
  }
  return { gwHello, clHello, nominated, connected };
}

/** A few datagrams each way over the selected pair; every one must arrive. */
async function exchange(gateway: JsonPeer, client: JsonPeer) {
  for (let i = 0; i < 5; i++) {
    client.send({ kind: "send", text: `to-gateway ${i}` });
    gateway.send({ kind: "send", text: `to-client ${i}` });
  }
  for (let i = 0; i < 5; i++) {
    await gateway.next("data", 5_000, (l) => l.text === `to-gateway ${i}`);
    await client.next("data", 5_000, (l) => l.text === `to-client ${i}`);
  }
}

describe.skipIf(SKIP !== undefined)("ICE interop with werift-ice (controlling client)", () => {
  if (SKIP) console.warn(`skipping ICE interop tests: ${SKIP}`);

  test("host candidates on loopback: werift nominates, datagrams flow both ways", async () => {
    const ns = new Netns(`icelo${uniqueTag()}`);
    cleanups.push(() => ns.destroy());
    const gateway = new JsonPeer(ns, "gateway", "ice-gateway-shell.ts", { HOST_ADDRESSES: "127.0.0.1" });
    const client = new JsonPeer(ns, "werift", "werift-client.ts", { HOST_ADDRESS: "127.0.0.1" });
    cleanups.push(() => gateway.stop(), () => client.stop());

    const { nominated, connected } = await connect(gateway, client);
    console.log(`host: nominated after ${(nominated.ms as number).toFixed(1)} ms (gateway), werift connected after ${(connected.ms as number).toFixed(1)} ms; pair ${nominated.local} <- ${nominated.remote}`);
    expect(nominated.local).toMatch(/^host 127\.0\.0\.1:/);
    expect(nominated.remote).toMatch(/^host 127\.0\.0\.1:/);
    await exchange(gateway, client);
  }, 60_000);

  test("roles swapped: our controlling agent nominates, werift-ice (controlled) accepts, datagrams flow both ways", async () => {
    const ns = new Netns(`icecr${uniqueTag()}`);
    cleanups.push(() => ns.destroy());
    const ours = new JsonPeer(ns, "controlling", "ice-gateway-shell.ts", { HOST_ADDRESSES: "127.0.0.1", ICE_ROLE: "controlling" });
    const werift = new JsonPeer(ns, "werift", "werift-client.ts", { HOST_ADDRESS: "127.0.0.1", ICE_ROLE: "controlled" });
    cleanups.push(() => ours.stop(), () => werift.stop());

    const { nominated, connected } = await connect(ours, werift);
    console.log(`controlling: selected after ${(nominated.ms as number).toFixed(1)} ms (ours), werift connected after ${(connected.ms as number).toFixed(1)} ms; pair ${nominated.local} -> ${nominated.remote}`);
    expect(nominated.local).toMatch(/^host 127\.0\.0\.1:/);
    expect(nominated.remote).toMatch(/^host 127\.0\.0\.1:/);
    // werift's side of the pair is ours, mirrored: the USE-CANDIDATE check went where we carry data.
    expect(connected.remote).toBe(nominated.local);
    expect(connected.local).toBe(nominated.remote);
    // The checks we sent said ICE-CONTROLLING, and nothing drew a role conflict.
    const events = ours.lines.filter((l) => l.kind === "event").map((l) => l.event as { kind: string; state?: string });
    expect(events.filter((e) => e.kind === "state").map((e) => e.state)).toEqual(["connected"]);
    await exchange(ours, werift);
  }, 60_000);

  test("both sides behind MASQUERADE NATs: only the srflx path works, and it is nominated", async () => {
    const { cl, inet, gw } = natTopology("ice", cleanups);

    const stunServer = new JsonPeer(inet, "stun", "stun-responder.ts", { PORT: "3478", HOST: "203.0.113.254" });
    cleanups.push(() => stunServer.stop());
    await stunServer.next("listening");

    const gateway = new JsonPeer(gw, "gateway", "ice-gateway-shell.ts", { HOST_ADDRESSES: "10.7.0.2", STUN_SERVER: "203.0.113.254:3478" });
    const client = new JsonPeer(cl, "werift", "werift-client.ts", { STUN_SERVER: "203.0.113.254:3478" });
    cleanups.push(() => gateway.stop(), () => client.stop());

    const { gwHello, clHello, nominated, connected } = await connect(gateway, client);
    console.log(`srflx: nominated after ${(nominated.ms as number).toFixed(1)} ms (gateway), werift connected after ${(connected.ms as number).toFixed(1)} ms; gateway pair ${nominated.local} <- ${nominated.remote}; werift pair ${connected.local} -> ${connected.remote}`);
    expect(gwHello.candidates as string[]).toContainEqual(expect.stringMatching(/ 198\.51\.100\.1 \d+ typ srflx raddr 10\.7\.0\.2 /));
    expect(clHello.candidates as string[]).toContainEqual(expect.stringMatching(/ 203\.0\.113\.1 \d+ typ srflx/));
    // The only way through: the client's NAT address, whatever the gateway calls it (srflx or learnt prflx).
    expect(nominated.remote).toMatch(/^(srflx|prflx) 203\.0\.113\.1:\d+$/);
    expect(nominated.local).toMatch(/^host 10\.7\.0\.2:/);
    await exchange(gateway, client);
  }, 90_000);
});
