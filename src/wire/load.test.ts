// Handshake load as wireguard-go and Linux define it: a backlog of handshake work (modelled, as
// we have no queue), not a count per second; and under load a per-source limit after mac2, so a
// source that owns its address and answers cookies still cannot keep the thread busy with DH.
import { expect, test } from "bun:test";
import { WirePair } from "../../test/support/wire-pair.ts";
import {
  HANDSHAKE_QUEUE_SIZE,
  HANDSHAKE_SERVICE_RATE,
  MESSAGE_INITIATION,
  RATE_LIMIT_ALL_BACKLOG,
  REKEY_TIMEOUT,
  UNDER_LOAD_BACKLOG,
} from "./constants.ts";
import { nobleAead } from "../crypto/aead-noble.ts";
import { generatePrivateKey } from "../crypto/x25519.ts";
import { seededRandom } from "../../test/support/wire-pair.ts";
import { CookieJar, HandshakeLoad, screenHandshake } from "./cookie.ts";
import { createInitiation, staticSharedSecret } from "./handshake.ts";
import { LocalIdentity } from "./identity.ts";
import { messageType } from "./messages.ts";

/** A valid initiation from a to b (mac1 right), captured off the link. */
function capturedInitiation(w: WirePair): Uint8Array {
  w.a.peer.connect(w.now);
  w.advance(11);
  return w.delivered.find((d) => d.to === "b" && messageType(d.data) === MESSAGE_INITIATION)!.data;
}

test("a sustained 100 handshakes/s, more than the thread serves, puts the responder under load within three seconds", () => {
  const w = new WirePair({ seed: 21 });
  const init = capturedInitiation(w);
  let underLoadAfter: number | undefined;
  for (let i = 1; i <= 300 && underLoadAfter === undefined; i++) {
    w.advance(10);
    w.inject("b", init);
    if (w.b.identity.cookies.isUnderLoad(w.now)) underLoadAfter = i;
  }
  // 100/s arrive, 32/s are served: the backlog reaches 128 after ~1.9 s (≈ 190 messages).
  expect(underLoadAfter).toBeDefined();
  expect(underLoadAfter!).toBeGreaterThanOrEqual(UNDER_LOAD_BACKLOG);
  expect(underLoadAfter!).toBeLessThanOrEqual(300);
  // The message that tipped it, and every one after, gets a cookie instead of DH work.
  expect(w.b.peer.stats.cookiesSent).toBe(1);
  w.inject("b", init);
  expect(w.b.peer.stats.cookiesSent).toBe(2);
});

test("a stream below the service rate never puts the responder under load", () => {
  const w = new WirePair({ seed: 22 });
  const init = capturedInitiation(w);
  for (let i = 0; i < 400; i++) {
    w.advance(1000 / (HANDSHAKE_SERVICE_RATE - 4));
    w.inject("b", init);
    expect(w.b.identity.cookies.isUnderLoad(w.now)).toBe(false);
  }
  expect(w.b.peer.stats.cookiesSent).toBe(0);
});

test("the modelled queue drains at the service rate and stays under load for a second after the backlog falls below 1/8", () => {
  const load = new HandshakeLoad();
  for (let i = 0; i < UNDER_LOAD_BACKLOG; i++) expect(load.admit(0)).toBe(true);
  expect(load.isUnderLoad(0)).toBe(true);
  expect(load.backlog(500)).toBeCloseTo(UNDER_LOAD_BACKLOG - HANDSHAKE_SERVICE_RATE / 2);
  expect(load.isUnderLoad(999)).toBe(true); // backlog below 128, but within UNDER_LOAD_AFTER_TIME
  expect(load.isUnderLoad(1_000)).toBe(false);
  const full = new HandshakeLoad();
  let admitted = 0;
  for (let i = 0; i < HANDSHAKE_QUEUE_SIZE + 50; i++) if (full.admit(0)) admitted++;
  expect(admitted).toBe(HANDSHAKE_QUEUE_SIZE);
});

test("under load, a source with a valid cookie gets 5 handshakes at once and 20 per second, the rest dropped before any DH", () => {
  const w = new WirePair({ seed: 23 });
  w.b.identity.cookies.forceUnderLoad = true;
  w.a.peer.connect(w.now);
  w.advance(REKEY_TIMEOUT + 500); // cookie, then the retransmission with mac2 completes
  expect(w.b.peer.stats.handshakesCompleted).toBe(1);
  const withMac2 = w.delivered.filter((d) => d.to === "b" && messageType(d.data) === MESSAGE_INITIATION).at(-1)!.data;
  const before = { limited: w.b.peer.drops.get("handshake_rate_limited"), replayed: w.b.peer.drops.get("replayed_initiation") };
  w.advance(2_000); // the source's bucket refills
  for (let i = 0; i < 100; i++) w.inject("b", withMac2);
  // 5 reach the Diffie-Hellman work (and are refused there as replays), 95 never do.
  expect(w.b.peer.drops.get("replayed_initiation") - before.replayed).toBe(5);
  expect(w.b.peer.drops.get("handshake_rate_limited") - before.limited).toBe(95);
  for (let ms = 0; ms < 1_000; ms += 10) {
    w.advance(10);
    w.inject("b", withMac2);
  }
  expect(w.b.peer.drops.get("replayed_initiation") - before.replayed).toBe(5 + 20);
  expect(w.b.peer.stats.cookiesSent).toBe(1); // it had a valid cookie throughout
});

test("past half the queue, a flooding source is limited before mac1 is even checked", () => {
  const w = new WirePair({ seed: 24 });
  const load = w.b.identity.cookies.load;
  for (let i = 0; i < RATE_LIMIT_ALL_BACKLOG; i++) load.admit(w.now);
  const garbage = new Uint8Array(148);
  garbage[0] = MESSAGE_INITIATION;
  for (let i = 0; i < 50; i++) w.inject("b", garbage);
  expect(w.b.peer.drops.get("mac1")).toBe(5); // the burst got as far as mac1
  expect(w.b.peer.drops.get("handshake_rate_limited")).toBe(45);
});

test("a full queue drops handshake messages by name instead of doing their work", () => {
  const w = new WirePair({ seed: 25 });
  const init = capturedInitiation(w);
  const load = w.b.identity.cookies.load;
  for (let i = 0; i < HANDSHAKE_QUEUE_SIZE; i++) load.admit(w.now);
  w.inject("b", init, { address: "203.0.113.9", port: 1 });
  expect(w.b.peer.drops.get("handshake_queue_full")).toBe(1);
  expect(w.b.peer.stats.cookiesSent).toBe(0);
});

test("one source that answers cookies cannot fill the queue by itself, however long it floods: others still get in", () => {
  const random = seededRandom(26);
  const gw = new LocalIdentity(generatePrivateKey(random), random);
  const attacker = new LocalIdentity(generatePrivateKey(random), random);
  const from = { address: "198.51.100.66", port: 4000 };
  const msg = createInitiation(nobleAead, attacker, gw.publicKey, staticSharedSecret(attacker, gw.publicKey)!, 1, 0, random)!.message;
  const jar = new CookieJar(gw.publicKey);
  let now = 1_000_000;
  jar.stamp(msg, now);
  gw.cookies.forceUnderLoad = true;
  const first = screenHandshake(gw.cookies, nobleAead, msg, 1, from, now);
  expect(first.ok).toBe(false);
  expect(jar.consumeReply(nobleAead, (first as { cookieReply: Uint8Array }).cookieReply, now)).toBe(true);
  gw.cookies.forceUnderLoad = false;
  jar.stamp(msg, now); // now with mac2 for its address
  const outcomes = new Map<string, number>();
  // Five simulated minutes at 1000 initiations/s, each with a valid mac1 and mac2.
  for (let i = 0; i < 300_000; i++) {
    now += 1;
    const r = screenHandshake(gw.cookies, nobleAead, msg, 1, from, now);
    const k = r.ok ? "processed" : r.reason;
    outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  }
  expect(outcomes.get("handshake_queue_full") ?? 0).toBe(0);
  expect(outcomes.get("processed")!).toBeLessThanOrEqual(UNDER_LOAD_BACKLOG + 5 + 20 * 300); // DH work ≤ its 20/s
  expect(gw.cookies.load.backlog(now)).toBeLessThan(HANDSHAKE_QUEUE_SIZE);
  // Someone else, from another address, still reaches the queue (and gets a cookie: we are under load).
  const other = screenHandshake(gw.cookies, nobleAead, msg, 1, { address: "203.0.113.5", port: 5000 }, now);
  expect(other).toMatchObject({ ok: false, reason: "under_load" });
});
