// The timer state machine of whitepaper §6, driven by handleTimeout on simulated time.
import { expect, test } from "bun:test";
import { WirePair, ipv4Packet } from "../../test/support/wire-pair.ts";
import {
  KEEPALIVE_TIMEOUT,
  MAX_TIMER_HANDSHAKES,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX,
} from "./constants.ts";
import type { WireEvent } from "./peer.ts";

const packet = (n = 0) => ipv4Packet(new Uint8Array([1, 2, 3, n]), n);
const ofType = <T extends WireEvent["type"]>(events: WireEvent[], type: T) =>
  events.filter((e): e is Extract<WireEvent, { type: T }> => e.type === type);

function connected(opts: ConstructorParameters<typeof WirePair>[0] = {}): WirePair {
  const w = new WirePair(opts);
  w.a.peer.send(packet(), w.now);
  w.advance(1_000);
  expect(w.b.received).toHaveLength(1);
  w.a.events.length = 0;
  w.b.events.length = 0;
  return w;
}

test("an unanswered handshake is retried every REKEY_TIMEOUT + jitter, then given up", () => {
  const w = new WirePair({ faults: { loss: 1 } });
  const times: number[] = [];
  w.a.peer.send(packet(), w.now);
  for (let i = 0; i < 200; i++) {
    w.advance(1_000);
  }
  for (const e of ofType(w.a.events, "handshake_initiated")) times.push(e.attempt);
  expect(times.length).toBe(MAX_TIMER_HANDSHAKES + 2); // first try + retries until attempts exceed the limit
  expect(ofType(w.a.events, "handshake_failed")).toHaveLength(1);
  expect(w.a.peer.stats.handshakesFailed).toBe(1);
  expect(w.a.peer.drops.get("handshake_timeout")).toBe(1); // the staged packet was dropped
  expect(w.a.peer.pollTimeout()).toBeDefined(); // the zero-keys timer stays armed
});

test("retransmissions are spaced REKEY_TIMEOUT plus up to 334 ms of jitter", () => {
  const w = new WirePair({ faults: { loss: 1 } });
  w.a.peer.connect(w.now);
  const sentAt: number[] = [w.now];
  for (let i = 0; i < 40_000 && sentAt.length < 8; i++) {
    const before = w.a.peer.stats.handshakesInitiated;
    w.advance(1);
    if (w.a.peer.stats.handshakesInitiated > before) sentAt.push(w.now);
  }
  const gaps = sentAt.slice(1).map((t, i) => t - sentAt[i]!);
  for (const g of gaps) {
    expect(g).toBeGreaterThanOrEqual(REKEY_TIMEOUT);
    expect(g).toBeLessThan(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1);
  }
  expect(new Set(gaps).size).toBeGreaterThan(1); // jitter really varies
});

test("a peer that receives data and has nothing to say sends a keepalive after 10 s", () => {
  const w = connected();
  const aRx = w.a.peer.stats.rxPackets;
  // connected() already spent 1 s after b received the packet.
  w.advance(KEEPALIVE_TIMEOUT - 1_500);
  expect(w.a.peer.stats.rxPackets).toBe(aRx);
  w.advance(1_000);
  expect(w.a.peer.stats.rxPackets).toBe(aRx + 1);
  expect(w.a.received).toHaveLength(0); // a keepalive delivers no packet
});

test("persistent keepalive fires every interval while idle", () => {
  const w = connected({ persistentKeepalive: 25 });
  const rx = w.b.peer.stats.rxPackets;
  // Only a has it. b's keepalive for a's data arrived at 10 s, so a's fire at 35, 60, 85, 110 s.
  w.advance(120_000);
  expect(w.b.peer.stats.rxPackets - rx).toBe(4);
  expect(w.b.received).toHaveLength(1); // keepalives deliver nothing
});

test("data sent without any answer for KEEPALIVE + REKEY_TIMEOUT starts a new handshake", () => {
  const w = connected();
  w.advance(20_000); // settle keepalives
  w.a.events.length = 0;
  w.faults = { loss: 1 };
  const sentAt = w.now;
  w.a.peer.send(packet(1), w.now);
  w.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT - 10);
  expect(ofType(w.a.events, "handshake_initiated")).toHaveLength(0);
  w.advance(REKEY_TIMEOUT_JITTER_MAX + 20);
  const init = ofType(w.a.events, "handshake_initiated");
  expect(init).toHaveLength(1);
  expect(w.now - sentAt).toBeGreaterThanOrEqual(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
});

test("session keys are erased 3 × REJECT_AFTER_TIME after the last handshake", () => {
  const w = connected();
  w.advance(3 * REJECT_AFTER_TIME - 30_000);
  expect(ofType(w.a.events, "keys_zeroed")).toHaveLength(0);
  w.advance(31_000);
  expect(ofType(w.a.events, "keys_zeroed")).toHaveLength(1);
  expect(w.a.peer.keypairs.indices()).toHaveLength(0);
  expect(w.a.peer.pollTimeout()).toBeUndefined();
});

test("a session past REJECT_AFTER_TIME is never used to send; the packet waits for a new handshake", () => {
  const w = connected();
  w.faults = { loss: 1 };
  w.advance(REJECT_AFTER_TIME);
  const out = new Uint8Array(2048);
  expect(w.a.peer.encapsulate(packet(2), out, w.now)).toBe(0);
  w.faults = {};
  w.advance(REKEY_TIMEOUT + 1_000);
  expect(w.b.received.map((p) => p[23])).toContain(2);
});

test("crossing REKEY_AFTER_MESSAGES triggers a rekey on the next send", () => {
  const w = connected();
  w.advance(20_000);
  const kp = w.a.peer.keypairs.current!;
  expect(kp.isInitiator).toBe(true);
  kp.sendCounter = REKEY_AFTER_MESSAGES + 1;
  const before = w.a.peer.stats.handshakesInitiated;
  w.a.peer.send(packet(3), w.now);
  expect(w.a.peer.stats.handshakesInitiated).toBe(before + 1);
});

test("the responder's new session waits for the initiator's first packet, then becomes current", () => {
  const w = new WirePair();
  w.a.peer.connect(w.now);
  w.pump();
  w.advance(11); // initiation delivered to b: it answered, holding the session as `next`
  expect(w.b.peer.keypairs.next).toBeDefined();
  expect(w.b.peer.keypairs.current).toBeUndefined();
  w.advance(100); // response reaches a, which confirms with a keepalive
  expect(w.b.peer.keypairs.current).toBeDefined();
  expect(w.b.peer.keypairs.next).toBeUndefined();
  expect(ofType(w.b.events, "session_confirmed")).toHaveLength(1);
});

test("an authenticated packet from a new address moves the endpoint (roaming)", () => {
  const w = connected();
  const out = new Uint8Array(256);
  const n = w.a.peer.encapsulate(packet(4), out, w.now);
  w.b.peer.handleInput(out.slice(0, n), { address: "10.0.0.9", port: 4444 }, w.now);
  expect(w.b.peer.endpoint).toEqual({ address: "10.0.0.9", port: 4444 });
  expect(ofType(drain(w.b.peer), "endpoint_changed")).toHaveLength(1);
});

function drain(peer: WirePair["a"]["peer"]): WireEvent[] {
  const out: WireEvent[] = [];
  for (let e = peer.pollEvent(); e; e = peer.pollEvent()) out.push(e);
  return out;
}

test("a peer with an endpoint and persistent keepalive brings the tunnel up by itself, nothing sent by the user", () => {
  const w = new WirePair({ persistentKeepalive: 25 });
  expect(w.a.peer.pollTimeout()).toBeLessThanOrEqual(w.now); // due at once, before any traffic
  w.advance(1_000);
  expect(ofType(w.a.events, "handshake_initiated")).toHaveLength(1);
  expect(w.a.peer.stats.handshakesCompleted).toBe(1);
  // The keepalive that started it went through and confirmed the responder's session.
  expect(ofType(w.b.events, "session_confirmed")).toHaveLength(1);
  expect(w.b.peer.keypairs.current).toBeDefined();
  expect(w.b.received).toHaveLength(0);
});

test("turning persistent keepalive on for a live peer starts its handshake; changing the interval does not", () => {
  const w = new WirePair();
  w.advance(60_000);
  expect(w.a.peer.stats.handshakesInitiated).toBe(0); // without it, an idle peer stays silent
  w.a.peer.setPersistentKeepalive(25);
  w.advance(1_000);
  expect(w.a.peer.stats.handshakesCompleted).toBe(1);
  const rx = w.b.peer.stats.rxPackets;
  w.a.peer.setPersistentKeepalive(30); // already on: the next one comes on schedule, not at once
  w.advance(1_000);
  expect(w.b.peer.stats.rxPackets).toBe(rx);
});
