// GatewayNode with ICE clients on simulated time: a controlling test double plays the client's ICE
// agent, a glassgate WirePeer its WireGuard side, and the datagrams move only through the node's
// one-socket API (handleNetworkInput / drainTransmits), as the event loop moves them.
import { expect, test } from "bun:test";
import { parseCidr } from "../ip/address.ts";
import { ControllingDouble } from "../../test/support/ice-world.ts";
import { GATEWAY, TunnelClients, type SimClient } from "../../test/support/tunnel-clients.ts";
import { TestRelay } from "../../test/support/turn-relay.ts";
import { icmpEcho } from "../../test/support/icmp.ts";
import { looksLikeStun } from "../ice/stun.ts";
import type { Endpoint } from "../wire/index.ts";
import { DatagramBatch, TunBatch } from "./batches.ts";
import { GatewayNode, NET_DELIVERED, TUN_SENT, type NodeEvent } from "./gateway-node.ts";
import { ROLLOVER_DEBOUNCE_MS, isIceEvent } from "./ice-connections.ts";
import { logIceEvent } from "./ice-log.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import { isTimelineEvent } from "../../admin/views/connections.ts";

const key = (e: Endpoint) => `${e.address}:${e.port}`;
const RELAY: Endpoint = { address: "203.0.113.50", port: 3478 };
const RELAYED: Endpoint = { address: "203.0.113.50", port: 50000 };
const gwCreds = { ufrag: "gwuf", pwd: "gateway-password-0123456789" };
const clCreds = { ufrag: "cluf", pwd: "client-password-0123456789ab" };

interface Opts {
  /** Datagrams between the client and the gateway's host address are lost (only the relay works). */
  blockDirect?: boolean;
  relay?: boolean;
}

function world(opts: Opts = {}) {
  const sim = new TunnelClients();
  const logs: LogLine[] = [];
  const logger = new Logger(parseLogFilter("info"), memorySink(logs));
  const node = new GatewayNode({ tunnel: sim.gw, iceLog: logger.target("ice"), turnLog: logger.target("turn") });
  const c: SimClient = sim.client();
  const double = new ControllingDouble(clCreds, gwCreds, [c.addr], 7);
  const relay = opts.relay ? new TestRelay({ address: RELAY, username: "u", password: "p", relayV4: RELAYED }) : undefined;
  const tunOut = new TunBatch(64);
  const udpOut = new DatagramBatch(64);
  const events: NodeEvent[] = [];
  const delivered: Uint8Array[] = [];
  let now = sim.now;
  node.setHostAddresses([GATEWAY], now);
  if (relay) node.setRelays([{ id: "r1", addr: [RELAY], username: "u", password: "p" }], now);

  const toNode = (data: Uint8Array, from: Endpoint) => {
    tunOut.clear();
    if (node.handleNetworkInput(data, 0, data.length, from, now, tunOut) === NET_DELIVERED) {
      delivered.push(tunOut.data.slice(tunOut.offset(0), tunOut.offset(0) + tunOut.lengths[0]!));
    }
  };
  /** The client side of the wire: STUN to its ICE double, the rest to its WireGuard peer. */
  const toClient = (data: Uint8Array, from: Endpoint) => {
    if (looksLikeStun(data)) double.handle(data, from, c.addr, now);
    else c.peer.handleInput(data, from, now);
  };
  /** The gateway sent `data` to `to`: the relay, or the client directly. */
  const fromGateway = (data: Uint8Array, to: Endpoint) => {
    if (relay && key(to) === key(RELAY)) {
      if (data[0]! >= 0x40 && data[0]! <= 0x4f) {
        const peer = relay.channels.get((data[0]! << 8) | data[1]!);
        const len = (data[2]! << 8) | data[3]!;
        if (peer && key(peer) === key(c.addr)) toClient(data.slice(4, 4 + len), RELAYED);
        return;
      }
      const answer = relay.answer(data, GATEWAY);
      if (answer) toNode(answer, RELAY);
      return;
    }
    if (key(to) !== key(c.addr) || opts.blockDirect) return;
    toClient(data, GATEWAY);
  };
  /** The client sent `data` to `to`: the gateway's host address, or its relayed address. */
  const fromClient = (data: Uint8Array, to: Endpoint) => {
    if (relay && key(to) === key(RELAYED)) {
      const entry = [...relay.channels].find(([, p]) => key(p) === key(c.addr));
      if (!entry) return;
      const framed = new Uint8Array(4 + data.length);
      framed[0] = entry[0] >> 8;
      framed[1] = entry[0] & 0xff;
      framed[2] = data.length >> 8;
      framed[3] = data.length & 0xff;
      framed.set(data, 4);
      toNode(framed, RELAY);
      return;
    }
    if (key(to) !== key(GATEWAY) || opts.blockDirect) return;
    toNode(data, c.addr);
  };
  const settle = () => {
    for (let round = 0; round < 50; round++) {
      let moved = false;
      for (const o of double.out.splice(0)) {
        moved = true;
        fromClient(o.data, o.to);
      }
      for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) {
        moved = true;
        // The client sends WireGuard over the pair its ICE agent nominated.
        fromClient(t.data, double.nominated ? double.nominated.remote : GATEWAY);
      }
      udpOut.clear();
      node.drainTransmits(udpOut);
      for (let i = 0; i < udpOut.count; i++) {
        moved = true;
        fromGateway(udpOut.data.slice(udpOut.offset(i), udpOut.offset(i) + udpOut.lengths[i]!), udpOut.to[i]!);
      }
      for (let e = node.pollEvent(); e; e = node.pollEvent()) {
        events.push(e);
        if (isIceEvent(e)) logIceEvent(logger.target("ice"), logger.target("turn"), e);
      }
      if (!moved) break;
    }
  };
  /** Runs timers (node and double) until `until`, settling after each. */
  const run = (ms: number) => {
    const until = now + ms;
    for (;;) {
      const a = node.pollTimeout() ?? Infinity;
      const b = double.nextTimeout();
      const at = Math.min(a, b);
      if (at > until) break;
      now = Math.max(now, at);
      sim.now = now;
      if (a <= now) node.handleTimeout(now);
      if (b <= now) double.tick(now);
      settle();
    }
    now = until;
    sim.now = now;
  };
  const upsert = (over: Partial<{ localIce: typeof gwCreds; psk: Uint8Array }> = {}) =>
    node.upsertClient({ clientId: "client-1", publicKey: c.local.publicKey, presharedKey: over.psk, localIce: over.localIce ?? gwCreds, remoteIce: clCreds, allowedIPs: [parseCidr(`${c.ip}/32`)] }, now);
  return { logs, sim, node, c, double, relay, events, delivered, settle, run, upsert, tunOut, udpOut, get now() { return now; } };
}

const ping = (c: SimClient, seq: number) => icmpEcho({ src: c.ip, dst: "10.50.0.9", type: 8, id: 1, seq, payload: Uint8Array.of(seq) });

test("a client reaches the gateway over its host candidate: nominated, then its WireGuard packets reach the TUN", () => {
  const w = world();
  const { cid } = w.upsert();
  const local = w.events.find((e) => e.type === "local_candidates") ?? (w.settle(), w.events.find((e) => e.type === "local_candidates"));
  expect(local).toMatchObject({ type: "local_candidates", clientId: "client-1" });
  expect((local as { candidates: string[] }).candidates.join()).toContain(`${GATEWAY.address} ${GATEWAY.port} typ host`);
  w.node.addRemoteCandidates("client-1", [`candidate:1 1 udp 2130706431 ${w.c.addr.address} ${w.c.addr.port} typ host`], w.now);
  w.double.addRemote(GATEWAY);
  w.run(3000);
  expect(w.node.pathOf(cid)).toBe("direct host");
  w.c.peer.send(ping(w.c, 1), w.now);
  w.settle();
  expect(w.delivered.length).toBe(1);
  // The answer from the TUN goes back over the same pair.
  const reply = icmpEcho({ src: "10.50.0.9", dst: w.c.ip, type: 0, id: 1, seq: 1, payload: Uint8Array.of(1) });
  w.udpOut.clear();
  expect(w.node.handleTunInput(reply, 0, reply.length, w.now, w.udpOut)).toBe(TUN_SENT);
  expect(key(w.udpOut.to[0]!)).toBe(key(w.c.addr));
  expect(w.events.some((e) => e.type === "ice" && e.cid === cid && e.event.kind === "nominated")).toBe(true);
});

test("with direct paths blocked, the relay carries checks and WireGuard both ways, framed as ChannelData", () => {
  const w = world({ relay: true, blockDirect: true });
  w.run(100); // allocation
  const { cid } = w.upsert();
  w.settle();
  const signalled = w.events.filter((e) => e.type === "local_candidates").flatMap((e) => (e as { candidates: string[] }).candidates);
  expect(signalled.join()).toContain(`${RELAYED.address} ${RELAYED.port} typ relay`);
  w.node.addRemoteCandidates("client-1", [`candidate:1 1 udp 2130706431 ${w.c.addr.address} ${w.c.addr.port} typ host`], w.now);
  w.double.addRemote(GATEWAY);
  w.double.addRemote(RELAYED);
  w.run(5000);
  expect(w.node.pathOf(cid)).toBe(`relay via ${RELAY.address}:${RELAY.port}`);
  w.c.peer.send(ping(w.c, 1), w.now);
  w.settle();
  expect(w.delivered.length).toBe(1);
  const reply = icmpEcho({ src: "10.50.0.9", dst: w.c.ip, type: 0, id: 1, seq: 1, payload: Uint8Array.of(1) });
  w.udpOut.clear();
  expect(w.node.handleTunInput(reply, 0, reply.length, w.now, w.udpOut)).toBe(TUN_SENT);
  expect(key(w.udpOut.to[0]!)).toBe(key(RELAY));
  expect(w.udpOut.data[0]! & 0xf0).toBe(0x40); // ChannelData
  const got: Uint8Array[] = [];
  w.c.peer.handleInput(w.udpOut.data.slice(4, w.udpOut.lengths[0]!), RELAYED, w.now);
  for (let e = w.c.peer.pollEvent(); e; e = w.c.peer.pollEvent()) if (e.type === "data") got.push(e.packet);
  expect(got.length).toBe(1);
  expect(w.node.ice.relays.bytes().sent).toBeGreaterThan(0);
});

test("an unchanged upsert keeps the connection (rolling the session over at most every 20 s); new credentials replace it with a new index", () => {
  const w = world();
  const first = w.upsert();
  w.node.addRemoteCandidates("client-1", [`candidate:1 1 udp 2130706431 ${w.c.addr.address} ${w.c.addr.port} typ host`], w.now);
  w.double.addRemote(GATEWAY);
  w.run(3000);
  w.c.peer.send(ping(w.c, 1), w.now);
  w.settle();
  const again = w.upsert();
  expect(again).toEqual({ cid: first.cid, replaced: false });
  const initiations = () => w.events.filter((e) => e.type === "handshake_initiated" && e.cid === first.cid).length;
  const before = initiations();
  w.run(ROLLOVER_DEBOUNCE_MS + 1000);
  w.upsert();
  w.settle();
  expect(initiations()).toBe(before + 1);
  w.upsert(); // within 20 s of the last rollover: nothing
  w.settle();
  expect(initiations()).toBe(before + 1);
  const replaced = w.upsert({ localIce: { ufrag: "gwuf2", pwd: "another-gateway-password-0123" } });
  expect(replaced.replaced).toBe(true);
  expect(replaced.cid).not.toBe(first.cid);
  expect(w.node.tunnel.connection(first.cid)).toBeUndefined();
});

test("nothing is torn down while the control plane is silent; removeClient says goodbye before the connection goes", () => {
  const w = world();
  const { cid } = w.upsert();
  w.node.addRemoteCandidates("client-1", [`candidate:1 1 udp 2130706431 ${w.c.addr.address} ${w.c.addr.port} typ host`], w.now);
  w.double.addRemote(GATEWAY);
  w.run(3000);
  w.c.peer.send(ping(w.c, 1), w.now);
  w.settle();
  // Ten minutes with no portal calls at all, the client's ICE still checking: still there, still connected.
  for (let i = 0; i < 10; i++) {
    w.run(60_000);
    w.c.peer.send(ping(w.c, i + 2), w.now);
    w.settle();
  }
  expect(w.node.pathOf(cid)).toBe("direct host");
  expect(w.delivered.length).toBe(11);
  const before = w.sim.clients[0]!;
  const controlBefore: number[] = [];
  w.node.removeClient("client-1", w.now);
  w.udpOut.clear();
  w.node.drainTransmits(w.udpOut);
  expect(w.udpOut.count).toBeGreaterThan(0);
  for (let i = 0; i < w.udpOut.count; i++) before.peer.handleInput(w.udpOut.data.slice(w.udpOut.offset(i), w.udpOut.offset(i) + w.udpOut.lengths[i]!), GATEWAY, w.now);
  for (let e = before.peer.pollEvent(); e; e = before.peer.pollEvent()) if (e.type === "data" && e.packet.length === 48 && e.packet[6] === 0xff) controlBefore.push(1);
  expect(controlBefore.length).toBe(1);
  expect(w.node.tunnel.connection(cid)).toBeUndefined();
});

test("the connection's Timeline shows its ICE life: candidates, the pair that worked, the nomination and the path", () => {
  const w = world({ relay: true, blockDirect: true });
  w.run(100);
  const { cid } = w.upsert();
  w.node.addRemoteCandidates("client-1", [`candidate:1 1 udp 2130706431 ${w.c.addr.address} ${w.c.addr.port} typ host`], w.now);
  w.double.addRemote(GATEWAY);
  w.double.addRemote(RELAYED);
  w.run(5000);
  const timeline = w.logs.filter((l) => l.cid === cid && isTimelineEvent(l)).map((l) => l.msg);
  expect(timeline).toContain("ice candidate added");
  expect(timeline).toContain("ice pair succeeded");
  expect(timeline).toContain("ice pair nominated");
  expect(timeline).toContain("connection path changed");
  const nominated = w.logs.find((l) => l.msg === "ice pair nominated")!;
  expect(nominated.relayed).toBe(true);
  expect(w.logs.find((l) => l.msg === "connection path changed")!.path).toBe(`relay via ${RELAY.address}:${RELAY.port}`);
  expect(w.logs.some((l) => l.msg === "relay allocated")).toBe(true);
});

test("a standalone node (no ICE client, no relay) hands every datagram to the tunnel: STUN is a WireGuard drop, nothing else runs", () => {
  const sim = new TunnelClients();
  const node = new GatewayNode({ tunnel: sim.gw });
  const tunOut = new TunBatch(4);
  const stun = new Uint8Array(20);
  stun[1] = 1; // binding request
  stun.set([0x21, 0x12, 0xa4, 0x42], 4);
  node.handleNetworkInput(stun, 0, stun.length, { address: "192.0.2.9", port: 1 }, sim.now, tunOut);
  expect(node.counters.stun + node.counters.stunUnclaimed).toBe(0);
  expect(sim.gw.tunnelDrops().truncated ?? 0).toBe(0);
  expect(Object.values(sim.gw.tunnelDrops()).reduce((a, b) => a + (b ?? 0), 0)).toBe(1);
  expect(node.pollTimeout()).toBeUndefined();
});
