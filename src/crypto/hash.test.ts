import { expect, test } from "bun:test";
import { blake2s } from "@noble/hashes/blake2.js";
import { constantTimeEqual, hash, hashNoble, hmac, kdf1, kdf2, kdf3, mac } from "./hash.ts";
import { decodeKey, encodeKey, generatePrivateKey, keyToU256Decimal, publicKeyOf, sharedSecret } from "./x25519.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const utf8 = (s: string) => new TextEncoder().encode(s);

test("BLAKE2s-256 of 'abc' matches RFC 7693 Appendix B", () => {
  expect(hex(hash(utf8("abc")))).toBe("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
  expect(hex(hash(utf8("a"), utf8("bc")))).toBe(hex(hash(utf8("abc"))));
});

test("HMAC is RFC 2104 over BLAKE2s (64-byte blocks)", () => {
  const key = utf8("key");
  const pad = (b: number) => {
    const p = new Uint8Array(64).fill(b);
    key.forEach((k, i) => (p[i]! ^= k));
    return p;
  };
  const inner = blake2s(new Uint8Array([...pad(0x36), ...utf8("msg")]));
  const outer = blake2s(new Uint8Array([...pad(0x5c), ...inner]));
  expect(hex(hmac(key, utf8("msg")))).toBe(hex(outer));
});

test("KDF outputs chain as the whitepaper defines", () => {
  const ck = new Uint8Array(32).fill(7);
  const input = utf8("input");
  const t0 = hmac(ck, input);
  const t1 = hmac(t0, Uint8Array.of(1));
  const t2 = hmac(t0, t1, Uint8Array.of(2));
  const t3 = hmac(t0, t2, Uint8Array.of(3));
  expect(hex(kdf1(ck, input))).toBe(hex(t1));
  expect(kdf2(ck, input).map(hex)).toEqual([hex(t1), hex(t2)]);
  expect(kdf3(ck, input).map(hex)).toEqual([hex(t1), hex(t2), hex(t3)]);
});

test("MAC is keyed BLAKE2s with 16-byte output", () => {
  const key = new Uint8Array(32).fill(1);
  expect(hex(mac(key, utf8("x")))).toBe(hex(blake2s(utf8("x"), { key, dkLen: 16 })));
});

test("constantTimeEqual", () => {
  expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
  expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
  expect(constantTimeEqual(Uint8Array.of(1), Uint8Array.of(1, 2))).toBe(false);
});

test("X25519 matches RFC 7748 §6.1 and agrees both ways", () => {
  const alice = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
  const bob = Buffer.from("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", "hex");
  expect(hex(publicKeyOf(alice))).toBe("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  expect(hex(sharedSecret(alice, publicKeyOf(bob))!)).toBe("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
});

test("a low-order public key yields no shared secret", () => {
  expect(sharedSecret(generatePrivateKey(), new Uint8Array(32))).toBeUndefined();
});

test("keys round-trip through wg's base64 and bad keys name the problem", () => {
  const k = generatePrivateKey();
  expect(k[0]! & 7).toBe(0);
  expect(k[31]! & 0xc0).toBe(0x40);
  expect(hex(decodeKey(encodeKey(k)))).toBe(hex(k));
  expect(() => decodeKey("not-a-key")).toThrow('"not-a-key" is not a WireGuard key');
  expect(() => decodeKey("A".repeat(43) + "=")).not.toThrow();
});

test("u256 decimal form is stable and numeric", () => {
  const k = new Uint8Array(32);
  k[0] = 1;
  expect(keyToU256Decimal(k)).toBe("1");
  k[31] = 0x80;
  expect(keyToU256Decimal(k)).toBe((2n ** 255n + 1n).toString());
});

test("HASH (native BLAKE2s when present) equals noble's on random inputs split into random parts", () => {
  const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
  for (let i = 0; i < 300; i++) {
    const parts = Array.from({ length: 1 + (i % 4) }, (_, j) => random((i * 37 + j * 11) % 200));
    expect(Buffer.from(hash(...parts)).toString("hex")).toBe(Buffer.from(hashNoble(...parts)).toString("hex"));
  }
  expect(Buffer.from(hash(new TextEncoder().encode("abc"))).toString("hex")).toBe("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
});
