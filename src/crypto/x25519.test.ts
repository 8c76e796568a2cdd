import { expect, spyOn, test } from "bun:test";
import { LOW_ORDER_KEYS, LOW_ORDER_KEYS_HEX } from "../../test/support/low-order-keys.ts";
import { x25519 } from "@noble/curves/ed25519.js";
import { decodeKey, generatePrivateKey, isUsablePublicKey, publicKeyOf, publicKeyProblem, sharedSecret, sharedSecretNoble, X25519_BACKEND } from "./x25519.ts";

test("every low-order point is refused as a public key, in every encoding", () => {
  for (const hex of LOW_ORDER_KEYS_HEX) {
    const key = Uint8Array.from(Buffer.from(hex, "hex"));
    expect(isUsablePublicKey(key)).toBe(false);
    // …because any private key would derive an all-zero secret with it.
    expect(sharedSecret(generatePrivateKey(), key)).toBeUndefined();
  }
});

test("real public keys are usable, and wrong lengths are not", () => {
  for (let i = 0; i < 8; i++) expect(isUsablePublicKey(publicKeyOf(generatePrivateKey()))).toBe(true);
  expect(isUsablePublicKey(new Uint8Array(31).fill(9))).toBe(false);
  expect(isUsablePublicKey(new Uint8Array(33).fill(9))).toBe(false);
});

test("publicKeyProblem names the key and why it cannot be used", () => {
  expect(publicKeyProblem(LOW_ORDER_KEYS[2]!)).toBe(`"${LOW_ORDER_KEYS[2]}" is a low-order point (X25519 with it gives an all-zero secret): not a usable public key`);
  expect(publicKeyProblem("abc")).toStartWith('"abc" is not a WireGuard key');
  expect(publicKeyProblem(Buffer.from(publicKeyOf(generatePrivateKey())).toString("base64"))).toBeUndefined();
});

test("a malformed key's echo is capped", () => {
  expect(() => decodeKey("x".repeat(10_000))).toThrow(/^"x{64}…" is not a WireGuard key/);
});

/** The reference: X25519 with one clamped scalar is all-zero exactly for small-order points (clamping makes scalars multiples of the cofactor). */
const probe = generatePrivateKey(() => new Uint8Array(32).fill(0x5a));
const zeroSecret = (key: Uint8Array) => sharedSecret(probe, key) === undefined;

test("the low-order check agrees with X25519 itself: every small-order point in every encoding, keys near p, and random strings", () => {
  const keys: Uint8Array[] = [];
  for (const hex of LOW_ORDER_KEYS_HEX) {
    const k = Uint8Array.from(Buffer.from(hex, "hex"));
    keys.push(k, Uint8Array.from(k, (b, i) => (i === 31 ? b ^ 0x80 : b)));
  }
  // Every u from p − 3 up to 2^255 − 1 (the non-canonical range), with bit 255 clear and set.
  for (let low = 0xe9; low <= 0xff; low++) {
    const k = new Uint8Array(32).fill(0xff);
    k[0] = low;
    k[31] = 0x7f;
    keys.push(k, Uint8Array.from(k, (b, i) => (i === 31 ? 0xff : b)));
  }
  for (let i = 0; i < 16; i++) keys.push(Uint8Array.of(i, ...new Uint8Array(31)));
  const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  for (let i = 0; i < 300; i++) keys.push(random(32), publicKeyOf(generatePrivateKey()));
  for (const k of keys) expect([Buffer.from(k).toString("hex"), isUsablePublicKey(k)]).toEqual([Buffer.from(k).toString("hex"), !zeroSecret(k)]);
});

test("checking peer keys does no scalar multiplication (a 10 000-peer config is not 15 s of X25519 at start)", () => {
  const mod = require("@noble/curves/ed25519.js") as { x25519: { getSharedSecret: (...a: unknown[]) => unknown } };
  const spy = spyOn(mod.x25519, "getSharedSecret");
  try {
    const keys = Array.from({ length: 1000 }, (_, i) => Uint8Array.of(...new Uint8Array(31).fill(i & 255), 0x40));
    for (const k of keys) expect(isUsablePublicKey(k)).toBe(true);
    expect(spy).toHaveBeenCalledTimes(0);
  } finally {
    spy.mockRestore();
  }
});

const hex = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const toHex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("hex") : undefined);

test("this Bun uses the native X25519 (BoringSSL), the fast path 10 000 peers need at start", () => {
  expect(X25519_BACKEND).toBe("native");
});

test("X25519 gives RFC 7748's test vectors (§5.2 and the §6.1 key exchange)", () => {
  // §5.2: u with bit 255 set in the second vector (it must be masked), scalars unclamped.
  expect(toHex(sharedSecret(hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"), hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))))
    .toBe("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
  expect(toHex(sharedSecret(hex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"), hex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"))))
    .toBe("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
  const alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const bob = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  expect(toHex(publicKeyOf(alice))).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  expect(toHex(publicKeyOf(bob))).toBe("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  expect(toHex(sharedSecret(alice, publicKeyOf(bob)))).toBe(shared);
  expect(toHex(sharedSecret(bob, publicKeyOf(alice)))).toBe(shared);
});

test("native X25519 agrees with noble on random keys, random u-coordinates (bit 255 set too) and low-order points", () => {
  const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  for (let i = 0; i < 120; i++) {
    const priv = i % 2 ? generatePrivateKey() : random(32); // unclamped scalars too: both clamp
    const pub = i % 3 === 0 ? random(32) : publicKeyOf(generatePrivateKey());
    expect(toHex(sharedSecret(priv, pub))).toBe(toHex(sharedSecretNoble(priv, pub)));
    expect(toHex(publicKeyOf(priv))).toBe(toHex(x25519.getPublicKey(priv)));
  }
  for (const h of LOW_ORDER_KEYS_HEX) {
    const k = hex(h);
    expect(sharedSecret(generatePrivateKey(), k)).toBeUndefined();
    expect(sharedSecretNoble(generatePrivateKey(), k)).toBeUndefined();
  }
}, 30_000);

test("a private key array rewritten in place is not answered with its old key", () => {
  const priv = generatePrivateKey();
  const pub = publicKeyOf(generatePrivateKey());
  const before = toHex(sharedSecret(priv, pub));
  priv.set(generatePrivateKey());
  expect(toHex(sharedSecret(priv, pub))).not.toBe(before);
  expect(toHex(sharedSecret(priv, pub))).toBe(toHex(sharedSecretNoble(priv, pub)));
});
