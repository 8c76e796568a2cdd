// BLAKE2s and the derivations WireGuard builds from it (whitepaper §5.4): HASH, MAC, HMAC and the
// HKDF-shaped KDF1..3. From @noble/hashes; HASH also from Bun's native BLAKE2s (node:crypto
// "blake2s256", ~10× faster) when it gives the known answer: every peer's mac1 and cookie keys
// are two HASHes, which for 10 000 peers at start was half a second in JS. Nothing here implements
// a primitive.
import { createHash } from "node:crypto";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac as nobleHmac } from "@noble/hashes/hmac.js";

/** BLAKE2s-256 over the concatenation of `parts`, without copying them together first. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  if (NATIVE_BLAKE2S) {
    const h = createHash("blake2s256");
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  }
  return hashNoble(...parts);
}

/** The reference HASH (noble), for tests that cross-check the native one. */
export function hashNoble(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ dkLen: 32 });
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Native BLAKE2s only when it exists and agrees with RFC 7693's "abc" vector. */
const NATIVE_BLAKE2S: boolean = (() => {
  try {
    return createHash("blake2s256").update("abc").digest("hex") === "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982";
  } catch {
    return false;
  }
})();

/** Keyed BLAKE2s with a 16-byte output: WireGuard's MAC (mac1, mac2, cookies). */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ dkLen: 16, key });
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HMAC-BLAKE2s-256. */
export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = nobleHmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** KDF_n(key, input) of the whitepaper: τ0 = HMAC(key, input), τi = HMAC(τ0, τ(i-1) ‖ i). */
export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  t0.fill(0);
  return t1;
}

export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  t0.fill(0);
  return [t1, t2];
}

export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = hmac(key, input);
  const t1 = hmac(t0, ONE);
  const t2 = hmac(t0, t1, TWO);
  const t3 = hmac(t0, t2, THREE);
  t0.fill(0);
  return [t1, t2, t3];
}

/** Compares two byte strings in time that depends only on their length. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
