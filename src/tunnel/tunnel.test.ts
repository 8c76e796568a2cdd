// Many clients behind one gateway Tunnel: demux by session index, AllowedIPs routing both ways.
import { expect, test } from "bun:test";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { LocalIdentity, WirePeer, connectionIdOf, type Endpoint } from "../wire/index.ts";
import { seededRandom } from "../../test/support/wire-pair.ts";
import { icmpEcho, parseEcho } from "../../test/support/icmp.ts";
import { Tunnel, type PacketOwner } from "./tunnel.ts";
import { GOODBYE_EVENT, controlEventOf, goodbyePacket } from "./goodbye.ts";

const GW: Endpoint = { address: "192.0.2.1", port: 52625 };

function setup(clients = 3) {
  const random = seededRandom(42);
  let now = 1_760_000_000_000;
  const gw = new Tunnel({ aead: nobleAead, privateKey: generatePrivateKey(random), random });
  const cs = Array.from({ length: clients }, (_, i) => {
    const local = new LocalIdentity(generatePrivateKey(random), random);
    const addr: Endpoint = { address: `198.51.100.${i + 1}`, port: 40000 + i };
    const ip = `10.99.0.${i + 2}`;
    const peer = new WirePeer({ aead: nobleAead, local, remoteStatic: gw.identity.publicKey, connectionId: 100 + i, endpoint: GW, random });
    const conn = gw.upsertPeer({ publicKey: local.publicKey, allowedIPs: [parseCidr(`${ip}/32`)] });
    return { local, addr, ip, peer, conn, inbox: [] as Uint8Array[] };
  });
  const out = new Uint8Array(70000);
  /** Delivers everything in flight until quiet; returns inner packets the gateway decrypted. */
  const settle = () => {
    const atGw: { packet: Uint8Array; cid: number }[] = [];
    for (let round = 0; round < 20; round++) {
      let moved = false;
      for (const c of cs) {
        for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) {
          moved = true;
          const owner: PacketOwner = { conn: undefined };
          const n = gw.decapsulate(t.data, c.addr, out, now, 0, owner);
          if (n > 0) atGw.push({ packet: out.slice(0, n), cid: owner.conn!.cid });
        }
      }
      for (let t = gw.pollTransmit(); t; t = gw.pollTransmit()) {
        moved = true;
        const c = cs.find((c) => c.addr.address === t.to.address && c.addr.port === t.to.port)!;
        c.peer.handleInput(t.data, GW, now);
      }
      for (const c of cs) for (let e = c.peer.pollEvent(); e; e = c.peer.pollEvent()) if (e.type === "data") c.inbox.push(e.packet);
      if (!moved) break;
    }
    while (gw.pollEvent());
    return atGw;
  };
  return { gw, cs, settle, out, now: () => now, advance: (ms: number) => (now += ms) };
}

const echo = (src: string, dst: string, seq: number, type: 0 | 8 = 8) => icmpEcho({ src, dst, type, id: 1, seq, payload: Uint8Array.of(seq) });

test("three clients connect; each packet is demuxed to its own connection by session index", () => {
  const { gw, cs, settle, out, now } = setup(3);
  for (const [i, c] of cs.entries()) c.peer.send(echo(c.ip, "10.50.0.9", i), now());
  const got = settle();
  expect(got).toHaveLength(3);
  for (const [i, c] of cs.entries()) {
    const g = got.find((x) => parseEcho(x.packet)!.seq === i)!;
    expect(g.cid).toBe(c.conn.cid);
    expect(parseEcho(g.packet)!.src).toBe(c.ip);
    // The client's session index names the gateway's connection in its top 24 bits.
    expect(c.conn.peer.keypairs.current ?? c.conn.peer.keypairs.next).toBeDefined();
    const idx = (c.conn.peer.keypairs.current ?? c.conn.peer.keypairs.next)!.localIndex;
    expect(connectionIdOf(idx)).toBe(c.conn.cid);
  }
  // Replies route by destination (AllowedIPs) to the right client.
  for (const [i, c] of cs.entries()) {
    const owner: PacketOwner = { conn: undefined };
    const n = gw.encapsulate(echo("10.50.0.9", c.ip, i, 0), out, now(), owner);
    expect(n).toBeGreaterThan(0);
    expect(owner.conn!.cid).toBe(c.conn.cid);
    c.peer.handleInput(out.slice(0, n), GW, now());
    const e = c.peer.pollEvent();
    expect(e?.type).toBe("data");
    expect(parseEcho((e as { packet: Uint8Array }).packet)!.seq).toBe(i);
  }
});

test("a client sending from an address it does not own is dropped as allowed_ips", () => {
  const { gw, cs, settle, now } = setup(2);
  cs[0]!.peer.send(echo(cs[0]!.ip, "10.50.0.9", 1), now());
  expect(settle()).toHaveLength(1);
  cs[0]!.peer.send(echo(cs[1]!.ip, "10.50.0.9", 2), now()); // spoofs client 1's address
  expect(settle()).toHaveLength(0);
  expect(gw.tunnelDrops().allowed_ips).toBe(1);
});

test("a destination no peer owns is no_route; an unknown index is unknown_session", () => {
  const { gw, out, now } = setup(1);
  expect(gw.encapsulate(echo("10.50.0.9", "10.123.0.1", 1, 0), out, now())).toBe(-1);
  expect(gw.tunnelDrops().no_route).toBe(1);
  const fake = new Uint8Array(48);
  fake[0] = 4;
  fake.set([1, 2, 3, 4], 4);
  expect(gw.decapsulate(fake, { address: "203.0.113.5", port: 1 }, out, now())).toBe(-1);
  expect(gw.tunnelDrops().unknown_session).toBe(1);
  expect(gw.pollTransmit()).toBeUndefined();
});

test("an initiation from a key the gateway does not know is dropped, unanswered", () => {
  const { gw, out, now } = setup(0);
  const random = seededRandom(9);
  const stranger = new WirePeer({ aead: nobleAead, local: new LocalIdentity(generatePrivateKey(random), random), remoteStatic: gw.identity.publicKey, connectionId: 1, endpoint: GW, random });
  stranger.connect(now());
  expect(gw.decapsulate(stranger.pollTransmit()!.data, { address: "203.0.113.5", port: 1 }, out, now())).toBe(-1);
  expect(gw.tunnelDrops().unknown_peer).toBe(1);
  expect(gw.pollTransmit()).toBeUndefined();
});

test("upsert with the same keys keeps the session; a new preshared key replaces the connection", () => {
  const { gw, cs, settle, now } = setup(1);
  const c = cs[0]!;
  c.peer.send(echo(c.ip, "10.50.0.9", 1), now());
  settle();
  const same = gw.upsertPeer({ publicKey: c.local.publicKey, allowedIPs: [parseCidr(`${c.ip}/32`), parseCidr("10.77.0.0/16")] });
  expect(same).toBe(c.conn);
  expect(same.peer.keypairs.indices().length).toBeGreaterThan(0);
  const replaced = gw.upsertPeer({ publicKey: c.local.publicKey, presharedKey: new Uint8Array(32).fill(1), allowedIPs: [] });
  expect(replaced).not.toBe(c.conn);
  expect(replaced.cid).not.toBe(c.conn.cid);
  expect(gw.connection(c.conn.cid)).toBeUndefined();
  expect(gw.removePeer(c.local.publicKey)).toBe(true);
  expect([...gw.connections()]).toHaveLength(0);
});

test("on shutdown every connected peer gets a goodbye, then keys are erased", () => {
  const { gw, cs, settle, now } = setup(2);
  cs[0]!.peer.send(echo(cs[0]!.ip, "10.50.0.9", 1), now());
  settle();
  expect(gw.goodbye(now())).toBe(1); // only the peer with a session
  const t = gw.pollTransmit()!;
  expect(t.to).toEqual(cs[0]!.addr);
  cs[0]!.peer.handleInput(t.data, GW, now());
  const e = cs[0]!.peer.pollEvent();
  expect(e?.type).toBe("data");
  expect(controlEventOf((e as { packet: Uint8Array }).packet)).toBe(GOODBYE_EVENT);
  expect(gw.goodbyeTo(cs[1]!.conn.cid, now())).toBe(false); // no session, nothing to say
  expect(gw.goodbyeTo(cs[0]!.conn.cid, now())).toBe(true);
  expect(gw.pollTransmit()?.to).toEqual(cs[0]!.addr);
  gw.zeroize();
  expect(gw.identity.privateKey.every((b) => b === 0)).toBe(true);
});

test("a goodbye from a client ends its sessions: nothing more goes out on them, the next packet needs a new handshake", () => {
  const { gw, cs, settle, out, now, advance } = setup(2);
  const [a, b] = cs as [(typeof cs)[0], (typeof cs)[0]];
  a.peer.send(echo(a.ip, "10.50.0.9", 1), now());
  b.peer.send(echo(b.ip, "10.50.0.9", 1), now());
  expect(settle()).toHaveLength(2);
  const oldSession = a.peer.keypairs.current!;

  a.peer.send(goodbyePacket(), now());
  const t = a.peer.pollTransmit()!;
  expect(gw.decapsulate(t.data, a.addr, out, now())).toBe(-1); // nothing for the TUN
  expect(gw.tunnelDrops().allowed_ips).toBeUndefined(); // not mistaken for a spoofed packet
  expect(gw.pollEvent()).toEqual({ type: "goodbye_received", cid: a.conn.cid });
  expect(a.conn.peer.keypairs.indices()).toEqual([]);
  // The other client keeps its session.
  expect(b.conn.peer.keypairs.current).toBeDefined();

  // A packet on the session the client threw away is refused; no keepalive or rekey goes out later.
  a.peer.send(echo(a.ip, "10.50.0.9", 2), now());
  expect(a.peer.keypairs.current).toBe(oldSession);
  expect(gw.decapsulate(a.peer.pollTransmit()!.data, a.addr, out, now())).toBe(-1);
  expect(a.conn.peer.drops.snapshot().unknown_session).toBe(1);
  advance(30_000);
  gw.handleTimeout(now());
  for (let x = gw.pollTransmit(); x; x = gw.pollTransmit()) expect(x.to).not.toEqual(a.addr);

  // Traffic towards the client waits for a fresh handshake, which then works.
  expect(gw.encapsulate(echo("10.50.0.9", a.ip, 3, 0), out, now())).toBe(0);
  expect(gw.pollTransmit()?.data[0]).toBe(1); // an initiation to the client
});

test("a goodbye is never forwarded, even from a peer whose AllowedIPs hold ::/0; other control events are dropped", () => {
  const { gw, cs, settle, out, now } = setup(1);
  const a = cs[0]!;
  gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`), parseCidr("::/0")] });
  a.peer.send(echo(a.ip, "10.50.0.9", 1), now());
  expect(settle()).toHaveLength(1);
  const assigned = goodbyePacket();
  assigned[40] = 0; // AssignedIps: only ever gateway → client
  a.peer.send(assigned, now());
  expect(gw.decapsulate(a.peer.pollTransmit()!.data, a.addr, out, now())).toBe(-1);
  expect(gw.tunnelDrops().unexpected_control).toBe(1);
  a.peer.send(goodbyePacket(), now());
  expect(gw.decapsulate(a.peer.pollTransmit()!.data, a.addr, out, now())).toBe(-1);
  expect(gw.pollEvent()?.type).toBe("goodbye_received");
});

test("a peer added with an endpoint and persistent keepalive gets an initiation at the next timeout, added live or updated", () => {
  const { gw, now } = setup(0);
  const random = seededRandom(7);
  const keys = [0, 1, 2].map(() => new LocalIdentity(generatePrivateKey(random), random).publicKey);
  const there: Endpoint = { address: "203.0.113.5", port: 51820 };
  gw.upsertPeer({ publicKey: keys[0]!, allowedIPs: [parseCidr("10.99.1.2/32")], endpoint: there, persistentKeepalive: 25 });
  // Without an endpoint there is nothing to bring up, and nothing is counted as dropped.
  const lone = gw.upsertPeer({ publicKey: keys[1]!, allowedIPs: [parseCidr("10.99.1.3/32")], persistentKeepalive: 25 });
  // Existing peer, keepalive turned on by an update.
  const later = gw.upsertPeer({ publicKey: keys[2]!, allowedIPs: [parseCidr("10.99.1.4/32")], endpoint: { ...there, port: 51821 } });
  gw.upsertPeer({ publicKey: keys[2]!, allowedIPs: [parseCidr("10.99.1.4/32")], persistentKeepalive: 25 });
  expect(gw.pollTimeout()).toBeLessThanOrEqual(now());
  gw.handleTimeout(now());
  const sent = [];
  for (let t = gw.pollTransmit(); t; t = gw.pollTransmit()) sent.push(t);
  expect(sent.map((t) => [t.data[0], t.data.length, t.to.port]).sort()).toEqual([[1, 148, 51820], [1, 148, 51821]]);
  expect(lone.peer.drops.total).toBe(0);
  expect(later.peer.stats.handshakesInitiated).toBe(1);
});

test("handshakes for another gateway key are sampled by source in a bounded ring; a source outside AllowedIPs is kept per connection", () => {
  const { gw, cs, settle, now } = setup(1);
  const random = seededRandom(9);
  const stranger = new WirePeer({ aead: nobleAead, local: new LocalIdentity(generatePrivateKey(random), random), remoteStatic: new LocalIdentity(generatePrivateKey(random), random).publicKey, connectionId: 7, endpoint: GW, random });
  const out = new Uint8Array(2000);
  for (let i = 0; i < 40; i++) {
    stranger.connect(now() + i * 6000);
    const t = stranger.pollTransmit()!;
    gw.decapsulate(t.data, { address: `203.0.113.${i}`, port: 1000 + i }, out, now());
  }
  expect(gw.tunnelDrops().mac1).toBe(40);
  const all = gw.handshakeDropsSince(0);
  expect(all).toHaveLength(16); // the newest 16: a flood is sampled, not recorded
  expect(all.at(-1)).toMatchObject({ seq: 40, reason: "mac1", address: "203.0.113.39", port: 1039 });
  expect(gw.handshakeDropsSince(40)).toEqual([]);

  const c = cs[0]!;
  c.peer.send(echo(c.ip, "10.50.0.9", 1), now());
  settle();
  c.peer.send(echo("10.99.0.77", "10.50.0.9", 2), now());
  settle();
  expect(cs[0]!.conn.rejectedSources.count).toBe(1);
  expect([...cs[0]!.conn.rejectedSources.last.subarray(0, 4)]).toEqual([10, 99, 0, 77]);
});

test("under load the gateway limits each source's handshakes and counts the rest as handshake_rate_limited", () => {
  const { gw, cs, out, now, advance } = setup(1);
  const c = cs[0]!;
  gw.identity.cookies.forceUnderLoad = true;
  c.peer.connect(now());
  const first = c.peer.pollTransmit()!;
  expect(gw.decapsulate(first.data, c.addr, out, now())).toBe(-1);
  expect(gw.tunnelDrops().under_load).toBe(1);
  c.peer.handleInput(gw.pollTransmit()!.data, GW, now()); // the cookie
  advance(6_000);
  c.peer.handleTimeout(now()); // retransmission, now with mac2
  const withMac2 = c.peer.pollTransmit()!.data;
  for (let i = 0; i < 30; i++) gw.decapsulate(withMac2, c.addr, out, now());
  expect(gw.tunnelDrops().handshake_rate_limited).toBe(25);
  expect(c.conn.peer.stats.handshakesCompleted).toBe(1); // the first of the burst was answered
});
