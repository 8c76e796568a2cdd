import { expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import type { Aead } from "../crypto/aead.ts";
import { loadSodiumAead } from "../crypto/aead-sodium.ts";
import { superPacket, tcpPacket } from "../ip/fixtures/offload-packets.ts";
import { TcpSegmenter } from "../ip/tcp-segment.ts";
import { parseCidr } from "../ip/address.ts";
import { parseResource } from "../gateway/index.ts";
import { GATEWAY, TunnelClients, type SimClient } from "../../test/support/tunnel-clients.ts";
import { icmpEcho, parseEcho } from "../../test/support/icmp.ts";
import { PacketView } from "../ip/packet.ts";
import { DatagramBatch, TunBatch } from "./batches.ts";
import { GatewayNode, NET_DELIVERED, NET_DENIED, NET_NONE, TUN_SENT, TUN_STAGED, isGatewayEvent, type NodeEvent } from "./gateway-node.ts";

/** A node in front of the simulated clients; datagrams move only through the node's API. */
function world(clients = 1, aead?: Aead) {
  const sim = new TunnelClients(42, aead);
  const node = new GatewayNode({ tunnel: sim.gw });
  const cs: SimClient[] = [];
  for (let i = 0; i < clients; i++) {
    const c = sim.client();
    sim.gw.upsertPeer({ publicKey: c.local.publicKey, allowedIPs: [parseCidr(`${c.ip}/32`)] });
    cs.push(c);
  }
  const tunOut = new TunBatch(64);
  const udpOut = new DatagramBatch(64);
  const events: NodeEvent[] = [];
  const results: number[] = [];
  /** Client → node, node → client, until quiet; the TunBatch keeps what the node delivered. */
  const settle = () => {
    for (let round = 0; round < 20; round++) {
      let moved = false;
      for (const c of cs) {
        for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) {
          moved = true;
          // At an offset inside a bigger buffer, as a batched UDP shell hands datagrams over.
          const buf = new Uint8Array(t.data.length + 100);
          buf.set(t.data, 37);
          results.push(node.handleNetworkInput(buf, 37, t.data.length, c.addr, sim.now, tunOut));
        }
      }
      udpOut.clear();
      node.drainTransmits(udpOut);
      for (let i = 0; i < udpOut.count; i++) {
        moved = true;
        const c = cs.find((c) => c.addr.address === udpOut.to[i]!.address && c.addr.port === udpOut.to[i]!.port)!;
        c.peer.handleInput(udpOut.data.slice(udpOut.offset(i), udpOut.offset(i) + udpOut.lengths[i]!), GATEWAY, sim.now);
      }
      for (let e = node.pollEvent(); e; e = node.pollEvent()) events.push(e);
      if (!moved) break;
    }
  };
  const received = (c: SimClient) => {
    const out: Uint8Array[] = [];
    for (let e = c.peer.pollEvent(); e; e = c.peer.pollEvent()) if (e.type === "data") out.push(e.packet);
    return out;
  };
  return { sim, node, cs, tunOut, udpOut, events, results, settle, received };
}

const ping = (c: SimClient, dst: string, seq = 1) => icmpEcho({ src: c.ip, dst, type: 8, id: 7, seq, payload: Uint8Array.of(seq) });

test("a client's packet lands in a TUN slot, and the answer from the TUN goes back encrypted in a datagram slot", () => {
  const w = world();
  const a = w.cs[0]!;
  a.peer.send(ping(a, "10.50.0.9"), w.sim.now);
  w.settle();
  expect(w.events.some((e) => e.type === "handshake_completed" && e.cid === w.sim.gw.connectionFor(parseCidr(`${a.ip}/32`).bytes)!.cid)).toBe(true);
  expect(w.results).toContain(NET_DELIVERED);
  expect(w.tunOut.count).toBe(1);
  const inner = w.tunOut.data.slice(w.tunOut.offset(0), w.tunOut.offset(0) + w.tunOut.lengths[0]!);
  expect(parseEcho(inner)).toMatchObject({ src: a.ip, dst: "10.50.0.9", type: 8, seq: 1 });

  // The reply, read from the TUN at an offset (a ring slot), encrypted into the batch.
  const reply = icmpEcho({ src: "10.50.0.9", dst: a.ip, type: 0, id: 7, seq: 1, payload: Uint8Array.of(1) });
  const ring = new Uint8Array(4096);
  ring.set(reply, 300);
  const out = new DatagramBatch(8);
  expect(w.node.handleTunInput(ring, 300, reply.length, w.sim.now, out)).toBe(TUN_SENT);
  expect(out.count).toBe(1);
  expect(out.to[0]).toEqual(a.addr);
  a.peer.handleInput(out.data.slice(out.offset(0), out.offset(0) + out.lengths[0]!), GATEWAY, w.sim.now);
  expect(w.received(a).map((p) => parseEcho(p)?.type)).toEqual([0]);
});

test("a packet to a client without a session is staged; the node's transmits start the handshake and then deliver it", () => {
  const w = world();
  const a = w.cs[0]!;
  const c = w.sim.gw.connectionFor(parseCidr(`${a.ip}/32`).bytes)!;
  w.sim.gw.upsertPeer({ publicKey: a.local.publicKey, allowedIPs: [parseCidr(`${a.ip}/32`)], endpoint: a.addr });
  const reply = icmpEcho({ src: "10.50.0.9", dst: a.ip, type: 0, id: 7, seq: 4, payload: Uint8Array.of(4) });
  const out = new DatagramBatch(8);
  expect(w.node.handleTunInput(reply, 0, reply.length, w.sim.now, out)).toBe(TUN_STAGED);
  expect(out.count).toBe(0);
  w.settle();
  expect(w.events.some((e) => e.type === "handshake_completed" && e.cid === c.cid)).toBe(true);
  expect(w.received(a).map((p) => parseEcho(p)?.seq)).toEqual([4]);
});

test("a denied packet is not delivered; the client gets the ICMP denial from the node's transmits", () => {
  const w = world();
  const a = w.cs[0]!;
  w.node.gateway.policy.upsertResource(parseResource({ type: "cidr", id: "lan", address: "10.50.1.0/24" }));
  a.peer.send(ping(a, "10.50.0.9"), w.sim.now);
  w.settle();
  expect(w.results).toContain(NET_DENIED);
  expect(w.tunOut.count).toBe(0);
  expect(w.node.counters.denied).toBe(1);
  expect(w.node.counters.replies).toBe(1);
  const got = w.received(a);
  expect(got.length).toBe(1);
  const v = new PacketView();
  expect(v.parse(got[0]!)).toBeUndefined();
  expect([v.src(), v.dst(), v.icmpType]).toEqual(["10.50.0.9", a.ip, 3]);
  const denied = w.events.find(isGatewayEvent);
  expect(denied).toMatchObject({ type: "denied", reason: "no_resource" });
});

test("authorization expiry is the node's timeout: pollTimeout names it, handleTimeout reports it", () => {
  const w = world();
  const a = w.cs[0]!;
  const cid = w.sim.gw.connectionFor(parseCidr(`${a.ip}/32`).bytes)!.cid;
  w.node.gateway.policy.upsertResource(parseResource({ type: "cidr", id: "lan", address: "10.50.1.0/24" }));
  w.node.gateway.policy.authorize(cid, "lan", w.sim.now + 60_000);
  expect(w.node.pollTimeout()).toBe(w.sim.now + 60_000);
  w.node.handleTimeout(w.sim.now + 59_999);
  expect(w.node.pollEvent()).toBeUndefined();
  w.node.handleTimeout(w.sim.now + 60_000);
  expect(w.node.pollEvent()).toEqual({ type: "authorization_expired", cid, rid: "lan" });
  expect(w.node.pollTimeout()).toBeUndefined();
});

test("keepalive traffic of a connected client is NET_NONE, and a goodbye leaves through the node's transmits", () => {
  const w = world();
  const a = w.cs[0]!;
  a.peer.send(ping(a, "10.50.0.9"), w.sim.now);
  w.settle();
  w.results.length = 0;
  a.peer.send(new Uint8Array(0), w.sim.now);
  w.settle();
  expect(w.results).toEqual([NET_NONE]);
  expect(w.node.goodbye(w.sim.now)).toBe(1);
  const out = new DatagramBatch(4);
  expect(w.node.drainTransmits(out)).toBe(1);
  expect(out.to[0]).toEqual(a.addr);
});

/** Per-turn peer visits of 50 turns of one busy client, with `idle` idle connections beside it. */
function busyTurns(idle: number): number[] {
  const sim = new TunnelClients();
  const node = new GatewayNode({ tunnel: sim.gw });
  const busy = sim.client();
  sim.gw.upsertPeer({ publicKey: busy.local.publicKey, allowedIPs: [parseCidr(`${busy.ip}/32`)] });
  // Idle peers: configured, never heard from — nothing to do during the turns below.
  sim.idlePeers(idle);
  const tunOut = new TunBatch(64);
  const udpOut = new DatagramBatch(64);
  const visits: number[] = [];
  for (let seq = 1; seq <= 50; seq++) {
    busy.peer.send(ping(busy, "10.50.0.9", seq), sim.now);
    const before = sim.gw.work.timerVisits + sim.gw.work.queueVisits;
    // One turn of the IO loop: network input, due timers, outputs.
    sim.turn(node, busy, tunOut, udpOut);
    while (node.pollEvent());
    tunOut.clear();
    visits.push(sim.gw.work.timerVisits + sim.gw.work.queueVisits - before);
    sim.now += 3000; // 150 s simulated: the busy peer's keepalive and rekey timers fire on the way
    busy.peer.handleTimeout(sim.now);
  }
  // The first ping waited for the handshake and went out one turn late; the last is still in flight.
  expect(node.counters.delivered).toBeGreaterThanOrEqual(49);
  return visits;
}

test("per-turn work does not grow with idle peers: 10 000 idle connections beside a busy one cost no visit", () => {
  const alone = busyTurns(0);
  expect(alone.some((v) => v > 0)).toBe(true);
  // The same turns, peer visit for peer visit (visits counted, not time).
  expect(busyTurns(10_000)).toEqual(alone);
}, 120_000);

test("steady traffic both ways allocates nothing per packet: datagrams at ring offsets in, plain packets and super-packets out", () => {
  // libsodium, as the gateway runs it (noble allocates per call by design: it is the reference).
  const w = world(1, loadSodiumAead());
  const a = w.cs[0]!;
  a.peer.send(ping(a, "10.50.0.9"), w.sim.now);
  w.settle();
  w.tunOut.clear();
  // 600 transport datagrams from the client, placed in a 64-slot "ring" the way GatewayUdp hands them over.
  const datagrams: Uint8Array[] = [];
  for (let i = 0; i < 600; i++) {
    a.peer.send(ping(a, "10.50.0.9", i & 0xff), w.sim.now);
    for (let t = a.peer.pollTransmit(); t; t = a.peer.pollTransmit()) datagrams.push(t.data);
  }
  const ring = new Uint8Array(64 * 2048);
  const from = a.addr;
  const reply = ping(a, "10.50.0.9"); // any packet routed to the client
  reply.set(parseCidr(`${a.ip}/32`).bytes, 16);
  reply.set([10, 50, 0, 9], 12);
  const sp = superPacket(tcpPacket({ src: [10, 50, 0, 9], dst: [...parseCidr(`${a.ip}/32`).bytes], seq: 1, payload: new Uint8Array(1300 * 8).fill(7) }), 1300);
  const readSlot = new Uint8Array(sp.length + 6);
  readSlot.set(sp, 6);
  const node = w.node;
  node.segmenter = new TcpSegmenter();
  const receive = (from0: number, to: number) => {
    for (let i = from0; i < to; i++) {
      const d = datagrams[i]!;
      const at = (i & 63) * 2048;
      ring.set(d, at);
      node.handleNetworkInput(ring, at, d.length, from, w.sim.now, w.tunOut);
      w.tunOut.clear();
    }
  };
  const send = (n: number) => {
    for (let i = 0; i < n; i++) {
      node.handleTunInput(reply, 0, reply.length, w.sim.now, w.udpOut);
      const count = node.beginTunRead(readSlot, 6, sp.length);
      for (let s = 0; s < count; ) s = node.encryptSegments(w.sim.now, w.udpOut, s);
      w.udpOut.clear();
    }
  };
  /** Object types with ≥ 300 more live instances after `f` than before (heapStats' own snapshot object accounts for ~175 Objects). */
  const grownBy = (f: () => void): string[] => {
    Bun.gc(true);
    const before = heapStats().objectTypeCounts;
    f();
    const after = heapStats().objectTypeCounts;
    return Object.entries(after).filter(([k, n]) => n - (before[k] ?? 0) >= 300).map(([k, n]) => `${k} +${n - (before[k] ?? 0)}`);
  };
  const interleaved = (from0: number, to: number) => {
    for (let i = from0; i < to; i++) {
      receive(i, i + 1);
      send(1);
    }
  };
  interleaved(0, 200); // warm-up: views for every ring slot, JIT tiers
  // 400 datagrams in; 400 packets + 400 super-packets (3200 segments) out: one object per packet of
  // any type would show as ≥ 400. Interleaved first (a send after every receive re-arms the peer's
  // jittered timer, which once drew fresh random bytes per packet), then each direction alone.
  expect(grownBy(() => interleaved(200, 600))).toEqual([]);
  expect(grownBy(() => receive(200, 600))).toEqual([]);
  expect(grownBy(() => send(400))).toEqual([]);
  expect(node.counters.delivered).toBeGreaterThanOrEqual(600);
  expect(node.counters.sent).toBeGreaterThanOrEqual(600 * 9);
});
