// Curve25519 key agreement and the key encodings `wg` uses. The scalar multiplication runs in
// Bun's native crypto (BoringSSL through node:crypto KeyObjects, ~0.1 ms) when it is there and
// agrees with @noble/curves on a known vector; noble (~1.5 ms in JS) stays the reference and the
// fallback. 10 000 peers each need one static-static X25519 at start: 15 s in JS, ~1 s native.
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";

export const KEY_LENGTH = 32;

export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** A new clamped private key, as `wg genkey` makes. `random` lets tests be deterministic. */
export function generatePrivateKey(random: (n: number) => Uint8Array = randomBytes): Uint8Array {
  const k = random(KEY_LENGTH);
  // Clamp like wg genkey so the printed key is byte-identical to what wg would store.
  k[0]! &= 248;
  k[31]! = (k[31]! & 127) | 64;
  return k;
}

export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return native ? nativePublicKey(privateKey) : x25519.getPublicKey(privateKey);
}

export function generateKeyPair(random?: (n: number) => Uint8Array): KeyPair {
  const privateKey = generatePrivateKey(random);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/**
 * X25519(priv, pub). Returns undefined for a low-order public key (all-zero shared secret), which
 * the whitepaper requires us to reject rather than derive keys from.
 */
export function sharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  try {
    const s = native ? nativeSharedSecret(privateKey, publicKey) : x25519.getSharedSecret(privateKey, publicKey);
    let acc = 0;
    for (let i = 0; i < s.length; i++) acc |= s[i]!;
    return acc === 0 ? undefined : s;
  } catch {
    // noble throws on an all-zero result itself; either way it is a low-order point.
    return undefined;
  }
}

/** The reference (noble) X25519, for tests that cross-check the native path against it. */
export function sharedSecretNoble(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  return checkedSecret(() => x25519.getSharedSecret(privateKey, publicKey));
}

function checkedSecret(f: () => Uint8Array): Uint8Array | undefined {
  try {
    const s = f();
    let acc = 0;
    for (let i = 0; i < s.length; i++) acc |= s[i]!;
    return acc === 0 ? undefined : s;
  } catch {
    return undefined;
  }
}

// DER wrappers (RFC 8410) around a raw 32-byte X25519 key: PKCS#8 for a private key, SPKI for a
// public one. node:crypto takes keys only as KeyObjects; these prefixes are the whole encoding.
const PKCS8_X25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
const SPKI_X25519 = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00]);

function der(prefix: Uint8Array, key: Uint8Array): Buffer {
  const out = Buffer.alloc(prefix.length + KEY_LENGTH);
  out.set(prefix, 0);
  out.set(key, prefix.length);
  return out;
}

/**
 * The gateway's static private key is used for every peer's precomputation and every handshake:
 * its KeyObject is made once per key array (a WeakMap, so a dropped key's object goes with it).
 * The bytes it was made from are kept beside it and compared on use, so an array rewritten in
 * place (zeroized, or reused by a caller) never answers with its old key.
 */
const privateKeyObjects = new WeakMap<Uint8Array, { bytes: Uint8Array; key: KeyObject }>();

function privateKeyObject(privateKey: Uint8Array): KeyObject {
  const cached = privateKeyObjects.get(privateKey);
  if (cached) {
    let diff = 0;
    for (let i = 0; i < KEY_LENGTH; i++) diff |= cached.bytes[i]! ^ privateKey[i]!;
    if (diff === 0) return cached.key;
  }
  const key = createPrivateKey({ key: der(PKCS8_X25519, privateKey), format: "der", type: "pkcs8" });
  privateKeyObjects.set(privateKey, { bytes: Uint8Array.from(privateKey), key });
  return key;
}

function nativeSharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_LENGTH || publicKey.length !== KEY_LENGTH) throw new Error("X25519 keys are 32 bytes");
  // BoringSSL throws on an all-zero result (a low-order point); the caller's check covers the rest.
  const pub = createPublicKey({ key: der(SPKI_X25519, publicKey), format: "der", type: "spki" });
  return new Uint8Array(diffieHellman({ privateKey: privateKeyObject(privateKey), publicKey: pub }));
}

function nativePublicKey(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_LENGTH) throw new Error("X25519 keys are 32 bytes");
  const spki = createPublicKey(privateKeyObject(privateKey)).export({ format: "der", type: "spki" });
  return new Uint8Array(spki.subarray(SPKI_X25519.length));
}

/**
 * Whether the native path is used: only when it exists and gives RFC 7748 §5.2's second X25519
 * vector (scalar and u with bits noble and the RFC treat specially: clamping, bit 255 of u).
 * A runtime without X25519 in node:crypto, or one that disagrees, gets noble — never wrong keys.
 */
const native: boolean = (() => {
  try {
    const hex = (h: string) => Uint8Array.from(h.match(/../g)!, (b) => parseInt(b, 16));
    const scalar = hex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d");
    const u = hex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493");
    const expected = hex("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
    const got = nativeSharedSecret(scalar, u);
    return got.length === KEY_LENGTH && got.every((b, i) => b === expected[i]);
  } catch {
    return false;
  }
})();

/** Which X25519 implementation this process uses (logged at start, asserted in tests). */
export const X25519_BACKEND: "native" | "noble" = native ? "native" : "noble";

/**
 * The u-coordinates of every point of small order (orders 1, 2, 4, 8 on the curve and its
 * twist), bit 255 cleared since X25519 ignores it: 0, 1, the two points of order 8, and p − 1,
 * p, p + 1 (non-canonical forms of −1, 0, 1). libsodium refuses exactly these (x25519_ref10.c,
 * has_small_order); no other u gives an all-zero secret with a clamped scalar.
 */
const SMALL_ORDER: readonly Uint8Array[] = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map((h) => Uint8Array.from(h.match(/../g)!, (b) => parseInt(b, 16)));

/**
 * Can this be a peer's public key? 32 bytes, and not a low-order point (the identity, points of
 * order 2, 4, 8, and their non-canonical encodings): X25519 with those gives an all-zero secret
 * for every private key, which the whitepaper requires us to refuse. Every key entry (config
 * file, admin API/UI, store rows at load) checks this, so nothing downstream ever meets one.
 * A table lookup, not a scalar multiplication (~1.5 ms in JS): a config with 10 000 peers is
 * checked at start without waiting 15 s for it.
 */
export function isUsablePublicKey(key: Uint8Array): boolean {
  if (key.length !== KEY_LENGTH) return false;
  for (const bad of SMALL_ORDER) {
    let diff = (key[31]! & 0x7f) ^ bad[31]!;
    for (let i = 0; i < 31; i++) diff |= key[i]! ^ bad[i]!;
    if (diff === 0) return false;
  }
  return true;
}

/** Why `text` cannot be a peer public key, or undefined when it can. Messages quote the key. */
export function publicKeyProblem(text: string): string | undefined {
  let key: Uint8Array;
  try {
    key = decodeKey(text);
  } catch (err) {
    return (err as Error).message;
  }
  if (!isUsablePublicKey(key)) return `"${text.trim()}" is a low-order point (X25519 with it gives an all-zero secret): not a usable public key`;
  return undefined;
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** Base64 as `wg` prints keys. */
export function encodeKey(key: Uint8Array): string {
  return Buffer.from(key).toString("base64");
}

/** Parses a base64 WireGuard key; the error names what was wrong so config errors can quote it. */
export function decodeKey(text: string): Uint8Array {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$/.test(trimmed)) {
    throw new Error(`"${cap(trimmed)}" is not a WireGuard key (44 base64 characters encoding 32 bytes)`);
  }
  return new Uint8Array(Buffer.from(trimmed, "base64"));
}

/** Echoed values stay readable: a pasted megabyte is not repeated in an error. */
function cap(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

/**
 * A public key as an unsigned 256-bit decimal (bytes read little-endian) — the form used for
 * Sentry grouping: one stable, opaque, numeric token per key.
 */
export function keyToU256Decimal(key: Uint8Array): string {
  let n = 0n;
  for (let i = key.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(key[i]!);
  return n.toString(10);
}
