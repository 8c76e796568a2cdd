// Our controlled ICE agent against werift-ice, an independent implementation, as the controlling
// client: (a) host candidates only, (b) both sides behind MASQUERADE NATs so only srflx works;
// and roles swapped: our controlling agent (a client's) against werift-ice controlled. Each
// side runs in a namespace the test creates; after nomination datagrams flow both ways over the pair.
import { afterAll, describe, expect, test } from "bun:test";
import { Netns, sh, skipReason, uniqueTag } from "./support/netns.ts";
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

/** A veth pair between two namespaces, named inside each (werift ignores interfaces named veth*). */
function link(a: Netns, aIf: string, aAddr: string, b: Netns, bIf: string, bAddr: string) {
  const tmpA = `ia${uniqueTag()}`;
  const tmpB = `ib${uniqueTag()}`;
  sh(["ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB]);
  sh(["ip", "link", "set", tmpA, "netns", a.name, "name", aIf]);
  sh(["ip", "link", "set", tmpB, "netns", b.name, "name", bIf]);
  a.exec(["ip", "addr", "add", aAddr, "dev", aIf]);
  b.exec(["ip", "addr", "add", bAddr, "dev", bIf]);
  a.exec(["ip", "link", "set", aIf, "up"]);
  b.exec(["ip", "link", "set", bIf, "up"]);
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
    const tag = uniqueTag();
    const cl = new Netns(`icecl${tag}`);
    const clnat = new Netns(`icecn${tag}`);
    const inet = new Netns(`icein${tag}`);
    const gwnat = new Netns(`icegn${tag}`);
    const gw = new Netns(`icegw${tag}`);
    cleanups.push(() => cl.destroy(), () => clnat.destroy(), () => inet.destroy(), () => gwnat.destroy(), () => gw.destroy());

    // client 192.168.7.2 → NAT 203.0.113.1 → "internet" (STUN at 203.0.113.254) ← NAT 198.51.100.1 ← gateway 10.7.0.2
    link(cl, "lan0", "192.168.7.2/24", clnat, "lan0", "192.168.7.1/24");
    link(clnat, "wan0", "203.0.113.1/24", inet, "a0", "203.0.113.254/24");
    link(gwnat, "wan0", "198.51.100.1/24", inet, "b0", "198.51.100.254/24");
    link(gw, "lan0", "10.7.0.2/24", gwnat, "lan0", "10.7.0.1/24");
    cl.exec(["ip", "route", "add", "default", "via", "192.168.7.1"]);
    gw.exec(["ip", "route", "add", "default", "via", "10.7.0.1"]);
    clnat.exec(["ip", "route", "add", "default", "via", "203.0.113.254"]);
    gwnat.exec(["ip", "route", "add", "default", "via", "198.51.100.254"]);
    for (const ns of [clnat, inet, gwnat]) ns.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for (const nat of [clnat, gwnat]) {
      nat.exec(["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE"]);
      // Unsolicited datagrams die silently, as at a home router. Without this, the first check that
      // reaches a NAT before its own side punched the hole leaves a conntrack entry for that 4-tuple
      // (and draws an ICMP error); the NAT then maps the outgoing hole to another port, and both NATs
      // end up behaving as symmetric ones. Dropped in INPUT, the entry is never confirmed.
      nat.exec(["iptables", "-A", "INPUT", "-i", "wan0", "-p", "udp", "-j", "DROP"]);
    }

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
