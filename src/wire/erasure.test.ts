// Forward secrecy in memory: once a handshake is done (or given up), the DH outputs, chaining
// keys, message keys and ephemeral private keys it produced are overwritten with zeros; only
// the transport keys of the live session remain. The crypto helpers are wrapped to record every
// secret they hand out, then the test checks what is left in them.
import { afterAll, expect, mock, test } from "bun:test";
import * as realHash from "../crypto/hash.ts";
import * as realX25519 from "../crypto/x25519.ts";

const real = { ...realHash };
const realX = { ...realX25519 };
let recording = false;
const secrets: { what: string; bytes: Uint8Array }[] = [];
const record = <T extends Uint8Array | undefined>(what: string, bytes: T): T => {
  if (recording && bytes) secrets.push({ what, bytes });
  return bytes;
};
mock.module("../crypto/hash.ts", () => ({
  ...real,
  kdf1: (k: Uint8Array, i: Uint8Array) => record("kdf1", real.kdf1(k, i)),
  kdf2: (k: Uint8Array, i: Uint8Array) => real.kdf2(k, i).map((x) => record("kdf2", x)),
  kdf3: (k: Uint8Array, i: Uint8Array) => real.kdf3(k, i).map((x) => record("kdf3", x)),
}));
mock.module("../crypto/x25519.ts", () => ({
  ...realX,
  sharedSecret: (priv: Uint8Array, pub: Uint8Array) => record("dh", realX.sharedSecret(priv, pub)),
  generateKeyPair: (random?: (n: number) => Uint8Array) => {
    const kp = realX.generateKeyPair(random);
    record("ephemeral private", kp.privateKey);
    return kp;
  },
}));
afterAll(() => {
  recording = false;
  mock.restore();
});

const { WirePair, ipv4Packet } = await import("../../test/support/wire-pair.ts");
const { REKEY_ATTEMPT_TIME, REKEY_TIMEOUT } = await import("./constants.ts");
const { LocalIdentity } = await import("./identity.ts");
const { createInitiation, staticSharedSecret } = await import("./handshake.ts");
const { CookieJar } = await import("./cookie.ts");
const { nobleAead } = await import("../crypto/aead-noble.ts");

const isZero = (b: Uint8Array) => b.every((x) => x === 0);
/**
 * The static-static DH a peer precomputes (lazily, at its first initiation) and keeps for its
 * lifetime, as wireguard-go's precomputedStaticStatic: not a handshake secret, erased by zeroize.
 */
const staticStatic = (w: InstanceType<typeof WirePair>) => {
  const ss = [staticSharedSecret(w.a.identity, w.b.identity.publicKey)!, staticSharedSecret(w.b.identity, w.a.identity.publicKey)!];
  return (b: Uint8Array) => ss.some((x) => x.length === b.length && x.every((v, i) => v === b[i]));
};

test("after a handshake only the session's transport keys remain; DH outputs, chaining and message keys are zeroed", () => {
  const w = new WirePair({ seed: 11, psk: true });
  secrets.length = 0;
  recording = true;
  w.a.peer.send(ipv4Packet(new Uint8Array([1])), w.now);
  w.advance(1_000);
  recording = false;
  expect(w.b.received).toHaveLength(1);
  const live = new Set<Uint8Array>();
  for (const side of [w.a, w.b]) {
    for (const kp of [side.peer.keypairs.current, side.peer.keypairs.next, side.peer.keypairs.previous]) {
      if (kp) live.add(kp.sendKey).add(kp.recvKey);
    }
  }
  expect(live.size).toBe(4); // one session, two directions, both sides
  expect(secrets.filter((s) => s.what === "dh").length).toBeGreaterThanOrEqual(4); // es, ss, ee, se at least
  const kept = staticStatic(w);
  const left = secrets.filter((s) => !live.has(s.bytes) && !isZero(s.bytes) && !kept(s.bytes)).map((s) => s.what);
  expect(left).toEqual([]);
});

test("a handshake given up after REKEY_ATTEMPT_TIME leaves no ephemeral key or chaining key behind", () => {
  const w = new WirePair({ seed: 12, faults: { loss: 1 } });
  secrets.length = 0;
  recording = true;
  w.a.peer.connect(w.now);
  w.advance(REKEY_ATTEMPT_TIME + 3 * REKEY_TIMEOUT);
  recording = false;
  expect(w.a.events.some((e) => e.type === "handshake_failed")).toBe(true);
  expect(secrets.filter((s) => s.what === "ephemeral private").length).toBeGreaterThan(10); // every retransmission
  const kept = staticStatic(w);
  expect(secrets.filter((s) => !isZero(s.bytes) && !kept(s.bytes)).map((s) => s.what)).toEqual([]);
});

test("an initiation from a key we do not know leaves nothing behind at the responder", () => {
  const w = new WirePair({ seed: 13 });
  const stranger = new LocalIdentity(realX.generatePrivateKey(w.random), w.random);
  const built = createInitiation(nobleAead, stranger, w.b.identity.publicKey, staticSharedSecret(stranger, w.b.identity.publicKey)!, 7, w.now, w.random)!;
  new CookieJar(w.b.identity.publicKey).stamp(built.message, w.now);
  secrets.length = 0;
  recording = true;
  w.inject("b", built.message);
  recording = false;
  expect(w.b.peer.drops.get("unknown_peer")).toBe(1);
  expect(secrets.filter((s) => s.what === "dh")).toHaveLength(2); // es and ss were computed, then erased
  expect(secrets.filter((s) => !isZero(s.bytes)).map((s) => s.what)).toEqual([]);
});
