// Cookies under load (whitepaper §5.3): a responder under load answers with a cookie instead of
// doing DH work; the initiator retries with mac2 and gets in.
import { expect, test } from "bun:test";
import { WirePair, ipv4Packet } from "../../test/support/wire-pair.ts";
import { COOKIE_REPLY_SIZE, MESSAGE_COOKIE_REPLY, REKEY_TIMEOUT, UNDER_LOAD_BACKLOG } from "./constants.ts";
import { messageType } from "./messages.ts";

test("under load, an initiation without mac2 gets a cookie; the retry with mac2 completes", () => {
  const w = new WirePair({ seed: 3 });
  w.b.identity.cookies.forceUnderLoad = true;
  w.a.peer.send(ipv4Packet(new Uint8Array([9])), w.now);
  w.advance(100);
  expect(w.b.peer.stats.cookiesSent).toBe(1);
  expect(w.b.peer.stats.handshakesCompleted).toBe(0);
  expect(w.b.peer.drops.get("under_load")).toBe(1);
  const cookieReplies = w.delivered.filter((d) => d.to === "a" && messageType(d.data) === MESSAGE_COOKIE_REPLY);
  expect(cookieReplies).toHaveLength(1);
  expect(cookieReplies[0]!.data.length).toBe(COOKIE_REPLY_SIZE);
  expect(w.a.events.some((e) => e.type === "cookie_received")).toBe(true);

  w.advance(REKEY_TIMEOUT + 500); // the retransmission carries mac2
  expect(w.b.peer.stats.handshakesCompleted).toBe(1);
  expect(w.b.received).toHaveLength(1);
  expect(w.b.peer.stats.cookiesSent).toBe(1);
});

test("a cookie is bound to the source address: the same mac2 from elsewhere gets another cookie", () => {
  const w = new WirePair({ seed: 4 });
  w.b.identity.cookies.forceUnderLoad = true;
  w.a.peer.connect(w.now);
  w.advance(REKEY_TIMEOUT + 500);
  expect(w.b.peer.stats.handshakesCompleted).toBe(1);
  // Replay a's (mac2-carrying) initiation from a different address: mac2 no longer matches.
  const lastInit = w.delivered.filter((d) => d.to === "b" && messageType(d.data) === 1).at(-1)!;
  w.inject("b", lastInit.data, { address: "10.0.0.66", port: 999 });
  expect(w.b.peer.stats.cookiesSent).toBe(2);
  expect(w.b.peer.stats.handshakesCompleted).toBe(1);
});

test("a flood of handshake messages switches load on by itself", () => {
  const w = new WirePair({ seed: 5 });
  w.a.peer.connect(w.now);
  // Capture a valid initiation from a and feed it many times within one second.
  w.advance(11);
  const first = w.delivered.find((d) => d.to === "b" && messageType(d.data) === 1)!;
  for (let i = 0; i < UNDER_LOAD_BACKLOG + 10; i++) w.inject("b", first.data);
  expect(w.b.identity.cookies.isUnderLoad(w.now)).toBe(true);
  expect(w.b.peer.stats.cookiesSent).toBeGreaterThan(0);
  // Replays before load was detected were refused by their timestamp, never answered twice.
  expect(w.b.peer.stats.handshakesCompleted).toBe(1);
  expect(w.b.peer.drops.get("replayed_initiation")).toBeGreaterThan(0);
  w.advance(2_000);
  expect(w.b.identity.cookies.isUnderLoad(w.now)).toBe(false);
});

test("a forged cookie reply is dropped and changes nothing", () => {
  const w = new WirePair({ seed: 6, faults: { loss: 1 } });
  w.a.peer.connect(w.now);
  w.pump();
  const fake = new Uint8Array(COOKIE_REPLY_SIZE);
  fake[0] = MESSAGE_COOKIE_REPLY;
  fake.set([0, 0x56, 0x34, 0x12], 4); // a's pending index (0x123456 << 8 | 0), little-endian
  w.inject("a", fake);
  expect(w.a.peer.drops.get("cookie_decrypt")).toBe(1);
  expect(w.a.events.some((e) => e.type === "cookie_received")).toBe(false);
});

test("an initiator under load sends a cookie for our response; we take it and the next response gets through", () => {
  const w = new WirePair({ seed: 8 });
  w.a.identity.cookies.forceUnderLoad = true; // a initiates, and is the one asking for a cookie
  w.a.peer.connect(w.now);
  w.advance(100);
  expect(w.a.peer.stats.cookiesSent).toBe(1);
  expect(w.a.peer.stats.handshakesCompleted).toBe(0);
  expect(w.b.peer.drops.get("unknown_session")).toBe(0);
  expect(w.b.events.some((e) => e.type === "cookie_received")).toBe(true);
  w.advance(REKEY_TIMEOUT + 500); // a retransmits; b's new response carries mac2
  expect(w.a.peer.stats.handshakesCompleted).toBe(1);
  expect(w.a.peer.stats.cookiesSent).toBe(1);
});
