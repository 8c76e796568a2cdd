// Hostile and broken datagrams: each is dropped with a counted reason, never throws out of the
// core, and never produces a reply.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { WirePair, ipv4Packet } from "../../test/support/wire-pair.ts";
import { INITIATION_SIZE, MAX_DATAGRAM_SIZE, MESSAGE_INITIATION, RESPONSE_SIZE } from "./constants.ts";
import type { DropReason } from "./drops.ts";
import { messageType } from "./messages.ts";
import { DECAP_NONE, WirePeer } from "./peer.ts";
import { LocalIdentity } from "./identity.ts";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey } from "../crypto/x25519.ts";

function connected(): WirePair {
  const w = new WirePair({ seed: 99 });
  w.a.peer.send(ipv4Packet(new Uint8Array([1])), w.now);
  w.advance(1_000);
  expect(w.b.received).toHaveLength(1);
  return w;
}

/** Feeds `data` to b directly and reports what happened, asserting the invariants on the way. */
function feed(w: WirePair, data: Uint8Array) {
  const peer = w.b.peer;
  const before = peer.drops.snapshot();
  const total = peer.drops.total;
  const out = new Uint8Array(MAX_DATAGRAM_SIZE);
  let result = 0;
  expect(() => (result = peer.decapsulate(data, w.a.addr, out, w.now))).not.toThrow();
  const reply = peer.pollTransmit();
  const after = peer.drops.snapshot();
  const reasons = (Object.keys(after) as DropReason[]).filter((r) => (after[r] ?? 0) !== (before[r] ?? 0));
  return { result, reply, dropped: peer.drops.total - total, reasons };
}

/** A real, valid datagram of each kind, captured from a live exchange. */
function captured(w: WirePair) {
  const init = w.delivered.find((d) => messageType(d.data) === 1)!.data;
  const resp = w.delivered.find((d) => messageType(d.data) === 2)!.data;
  const out = new Uint8Array(256);
  const n = w.a.peer.encapsulate(ipv4Packet(new Uint8Array([7, 7, 7])), out, w.now);
  return { init, resp, transport: out.slice(0, n) };
}

describe("each kind of bad datagram is dropped with its reason, silently", () => {
  const w = connected();
  const { init, resp, transport } = captured(w);
  const cases: [string, Uint8Array, DropReason][] = [
    ["empty", new Uint8Array(0), "truncated"],
    ["3 bytes", Uint8Array.of(4, 0, 0), "truncated"],
    ["oversized", new Uint8Array(MAX_DATAGRAM_SIZE + 1).fill(4, 0, 1), "oversized"],
    ["type 0", new Uint8Array(64), "unknown_type"],
    ["type 5", Uint8Array.of(5, 0, 0, 0, ...new Uint8Array(60)), "unknown_type"],
    ["non-zero reserved byte", Uint8Array.of(4, 1, 0, 0, ...transport.subarray(4)), "unknown_type"],
    ["truncated initiation", init.subarray(0, INITIATION_SIZE - 1), "truncated"],
    ["initiation with trailing byte", Uint8Array.of(...init, 0), "wrong_size"],
    ["truncated response", resp.subarray(0, RESPONSE_SIZE - 10), "truncated"],
    ["truncated cookie reply", Uint8Array.of(3, 0, 0, 0, 1, 2, 3), "truncated"],
    ["transport shorter than header + tag", transport.subarray(0, 31), "truncated"],
    ["initiation with wrong mac1", (() => { const x = init.slice(); x[120]! ^= 1; return x; })(), "mac1"],
    ["initiation for someone else (fields changed, mac1 stale)", (() => { const x = init.slice(); x[10]! ^= 1; return x; })(), "mac1"],
    ["a response addressed to the other peer (its mac1)", resp, "mac1"],
    ["transport to an unknown index", (() => { const x = transport.slice(); x[5]! ^= 0xff; return x; })(), "unknown_session"],
    ["transport with a flipped ciphertext byte", (() => { const x = transport.slice(); x[20]! ^= 1; return x; })(), "decrypt"],
    ["transport with a flipped tag byte", (() => { const x = transport.slice(); x[x.length - 1]! ^= 1; return x; })(), "decrypt"],
    ["transport with a counter past 2^53", (() => { const x = transport.slice(); x[15] = 0xff; return x; })(), "counter_limit"],
  ];
  for (const [name, data, reason] of cases) {
    test(`${name} → ${reason}`, () => {
      const r = feed(w, data);
      expect(r.result).toBe(DECAP_NONE);
      expect(r.reply).toBeUndefined();
      expect(r.dropped).toBe(1);
      expect(r.reasons).toEqual([reason]);
    });
  }

  test("the session still works after all of that", () => {
    const { transport: fresh } = captured(w);
    const r = feed(w, fresh);
    expect(r.result).toBeGreaterThan(0);
    expect(r.dropped).toBe(0);
  });
});

test("random datagrams never throw, never answer, and are each counted once", () => {
  const w = connected();
  const typed = fc.tuple(fc.integer({ min: 0, max: 6 }), fc.uint8Array({ maxLength: 200 })).map(([t, rest]) => Uint8Array.of(t, 0, 0, 0, ...rest));
  const sized = fc.constantFrom(148, 92, 64, 32, 48).chain((n) =>
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ minLength: n - 4, maxLength: n - 4 })).map(([t, rest]) => Uint8Array.of(t, 0, 0, 0, ...rest)),
  );
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), typed, sized), (data) => {
      const r = feed(w, data);
      expect(r.result).toBe(DECAP_NONE);
      expect(r.reply).toBeUndefined();
      expect(r.dropped).toBe(1);
    }),
    { numRuns: 3_000 },
  );
});

test("mutated real datagrams are dropped without reply (mac2, unchecked when not under load, aside)", () => {
  const w = connected();
  const { init, resp, transport } = captured(w);
  fc.assert(
    fc.property(fc.constantFrom(init, resp, transport), fc.nat(), fc.integer({ min: 1, max: 255 }), (orig, pos, flip) => {
      const isHandshake = orig !== transport;
      // mac2 (the last 16 bytes) is only checked under load, so a flip there changes nothing.
      const limit = isHandshake ? orig.length - 16 : orig.length;
      const x = orig.slice();
      x[pos % limit]! ^= flip;
      const r = feed(w, x);
      expect(r.result).toBe(DECAP_NONE);
      expect(r.reply).toBeUndefined();
      expect(r.dropped).toBe(1);
    }),
    { numRuns: 2_000 },
  );
});

test("a valid initiation from an unknown static key is dropped as unknown_peer", () => {
  const w = connected();
  const intruder = new WirePeer({
    aead: nobleAead,
    local: new LocalIdentity(generatePrivateKey(w.random), w.random),
    remoteStatic: w.b.identity.publicKey,
    connectionId: 5,
    endpoint: w.b.addr,
    random: w.random,
  });
  intruder.connect(w.now);
  const initiation = intruder.pollTransmit()!.data;
  expect(initiation[0]).toBe(MESSAGE_INITIATION);
  const r = feed(w, initiation);
  expect(r.reasons).toEqual(["unknown_peer"]);
  expect(r.reply).toBeUndefined();
});
