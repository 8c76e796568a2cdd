import { expect, spyOn, test } from "bun:test";
import { LOW_ORDER_KEYS, LOW_ORDER_KEYS_HEX } from "../../test/support/low-order-keys.ts";
import { decodeKey, generatePrivateKey, isUsablePublicKey, publicKeyOf, publicKeyProblem, sharedSecret } from "./x25519.ts";

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
