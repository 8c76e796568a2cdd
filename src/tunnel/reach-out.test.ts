// Tunnel.reachOut, sans-IO: an HA pair's new master (same static key as the crashed one) starts
// the handshake to where the old master last saw a client, so the client does not wait out its
// own 15 s re-handshake timer. The attempt goes there; the peer's endpoint does not change unless
// the client answers.
import { expect, test } from "bun:test";
import { nobleAead } from "../crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey } from "../crypto/x25519.ts";
import { parseCidr } from "../ip/address.ts";
import { LocalIdentity, MESSAGE_INITIATION, REACH_OUT_INTERVAL, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT, WirePeer, messageType, type Endpoint, type Transmit } from "../wire/index.ts";
import { seededRandom } from "../../test/support/wire-pair.ts";
import { icmpEcho, parseEcho } from "../../test/support/icmp.ts";
import { Tunnel } from "./tunnel.ts";

const FLOATING: Endpoint = { address: "203.0.113.10", port: 52625 };
const CLIENT: Endpoint = { address: "198.51.100.7", port: 51820 };
/** What a PeerSpec may say about the client (a stale address); reachOut must leave it alone. */
const CONFIGURED: Endpoint = { address: "192.0.2.99", port: 4444 };

function pair(configured?: Endpoint) {
  const random = seededRandom(7);
  let now = 1_760_000_000_000;
  const gwKey = generatePrivateKey(random);
  // Two gateways, one key: the HA pair.
  const a = new Tunnel({ aead: nobleAead, privateKey: gwKey, random });
  const b = new Tunnel({ aead: nobleAead, privateKey: gwKey, random });
  const local = new LocalIdentity(generatePrivateKey(random), random);
  const client = new WirePeer({ aead: nobleAead, local, remoteStatic: a.identity.publicKey, connectionId: 9, endpoint: FLOATING, random });
  const spec = { publicKey: local.publicKey, allowedIPs: [parseCidr("10.98.0.2/32")], endpoint: configured };
  a.upsertPeer(spec);
  const connB = b.upsertPeer(spec);
  const out = new Uint8Array(70000);
  const drain = (t: Tunnel): Transmit[] => {
    const all: Transmit[] = [];
    for (let x = t.pollTransmit(); x; x = t.pollTransmit()) all.push(x);
    while (t.pollEvent());
    return all;
  };
  /** Client ⇄ gateway `gw` until quiet (the client's datagrams all reach `gw`; gw's reach the client). */
  const exchange = (gw: Tunnel) => {
    for (let round = 0; round < 10; round++) {
      let moved = false;
      for (let x = client.pollTransmit(); x; x = client.pollTransmit()) {
        moved = true;
        gw.decapsulate(x.data, CLIENT, out, now);
      }
      for (const x of drain(gw)) {
        moved = true;
        client.handleInput(x.data, FLOATING, now);
      }
      if (!moved) break;
    }
    while (client.pollEvent());
  };
  const ping = (seq: number) => icmpEcho({ src: "10.98.0.2", dst: "10.98.0.1", type: 8, id: 1, seq, payload: Uint8Array.of(seq) });
  return { a, b, connB, client, key: encodeKey(local.publicKey), out, drain, exchange, ping, now: () => now, advance: (ms: number) => (now += ms) };
}

test("the new master reaches out with one initiation to the client's last endpoint, and the client's next packet is answered", () => {
  const w = pair();
  // The client talks to gw-a (the master).
  w.client.send(w.ping(1), w.now());
  w.exchange(w.a);
  expect(w.a.connections().next().value!.peer.hasLiveSession(w.now())).toBe(true);
  // gw-a crashes; gw-b (no session) reaches out to where gw-a saw the client.
  w.advance(1000);
  expect(w.b.reachOut(w.key, CLIENT, w.now())).toBe("initiated");
  const sent = w.drain(w.b);
  expect(sent).toHaveLength(1);
  expect(messageType(sent[0]!.data)).toBe(MESSAGE_INITIATION);
  expect(sent[0]!.to).toEqual(CLIENT);
  // The client accepts (same static key, newer timestamp), answers; gw-b completes the session.
  w.client.handleInput(sent[0]!.data, FLOATING, w.now());
  w.exchange(w.b);
  expect(w.connB.peer.hasLiveSession(w.now())).toBe(true);
  expect(w.connB.peer.endpoint).toEqual(CLIENT);
  // The client's next ping decrypts at gw-b at once (no 15 s wait for its own timer).
  w.client.send(w.ping(2), w.now());
  const x = w.client.pollTransmit()!;
  const n = w.b.decapsulate(x.data, CLIENT, w.out, w.now());
  expect(n).toBeGreaterThan(0);
  expect(parseEcho(w.out.subarray(0, n))!.seq).toBe(2);
});

test("reachOut does not change the configured endpoint: an unanswered attempt retries there, then the peer is as it was", () => {
  const w = pair(CONFIGURED);
  w.drain(w.b);
  expect(w.b.reachOut(w.key, CLIENT, w.now())).toBe("initiated");
  expect(w.connB.peer.endpoint).toEqual(CONFIGURED);
  const first = w.drain(w.b);
  expect(first.map((t) => t.to)).toEqual([CLIENT]);
  // Nobody answers: WireGuard's own retransmissions follow the attempt, never the configured address…
  const tos: Endpoint[] = [];
  for (let t = 0; t < REKEY_ATTEMPT_TIME + 20_000; t += 500) {
    w.advance(500);
    w.b.handleTimeout(w.now());
    for (const x of w.drain(w.b)) tos.push(x.to);
  }
  expect(tos.length).toBeGreaterThan(0);
  expect(tos.every((e) => e.address === CLIENT.address && e.port === CLIENT.port)).toBe(true);
  // …and once the attempt is given up, the next handshake goes where the peer spec says.
  expect(w.connB.peer.stats.handshakesFailed).toBe(1);
  expect(w.connB.peer.endpoint).toEqual(CONFIGURED);
  w.advance(REKEY_TIMEOUT);
  w.connB.peer.connect(w.now());
  w.b.touch(w.connB.cid);
  expect(w.drain(w.b).map((t) => t.to)).toEqual([CONFIGURED]);
});

test("reachOut is rate limited per peer, refused over a live session, and names a peer this gateway does not have", () => {
  const w = pair();
  expect(w.b.reachOut(w.key, CLIENT, w.now())).toBe("initiated");
  expect(w.drain(w.b)).toHaveLength(1);
  w.advance(REACH_OUT_INTERVAL - 1);
  expect(w.b.reachOut(w.key, CLIENT, w.now())).toBe("rate_limited");
  expect(w.drain(w.b)).toHaveLength(0);
  w.advance(1);
  expect(w.b.reachOut(w.key, CLIENT, w.now())).toBe("initiated");
  const again = w.drain(w.b);
  expect(again.filter((t) => messageType(t.data) === MESSAGE_INITIATION)).toHaveLength(1);
  // The client answers: now gw-b has a live session and leaves it alone.
  w.client.handleInput(again.at(-1)!.data, FLOATING, w.now());
  w.exchange(w.b);
  w.advance(REACH_OUT_INTERVAL);
  expect(w.b.reachOut(w.key, CLIENT, w.now())).toBe("live_session");
  expect(w.drain(w.b)).toHaveLength(0);
  expect(w.b.reachOut(encodeKey(new Uint8Array(32).fill(9)), CLIENT, w.now())).toBe("unknown_peer");
});
