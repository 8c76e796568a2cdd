import { expect, test } from "bun:test";
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
