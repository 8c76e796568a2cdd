// The AEAD seam: WireGuard needs ChaCha20-Poly1305 (RFC 8439, transport and handshake) and
// XChaCha20-Poly1305 (cookie replies). Two interchangeable backends implement it: @noble/ciphers
// (the reference, always there) and libsodium through bun:ffi (the fast path).
//
// The shape is chosen for the data path: the caller owns every buffer, results are lengths, and a
// failed authentication is a return value (-1), not an exception, so no object is made per packet.

export const TAG_LENGTH = 16;
export const NONCE_LENGTH = 12;
export const XNONCE_LENGTH = 24;
export const AEAD_KEY_LENGTH = 32;

export type AeadBackendName = "noble" | "libsodium";

export interface Aead {
  readonly name: AeadBackendName;
  /** Encrypts `plaintext`, writing ciphertext‖tag to `out` (needs plaintext.length + 16 bytes). Returns bytes written. */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, out: Uint8Array): number;
  /** Decrypts ciphertext‖tag into `out`. Returns the plaintext length, or -1 when authentication fails. */
  open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array, out: Uint8Array): number;
  /** As `seal`, with XChaCha20-Poly1305 and a 24-byte nonce. */
  xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, out: Uint8Array): number;
  /** As `open`, with XChaCha20-Poly1305 and a 24-byte nonce. */
  xopen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array, out: Uint8Array): number;
  /**
   * Data path: encrypts buf[offset, offset+length) in place and writes the tag right after it
   * (buf needs 16 spare bytes there). Returns length + 16. No subarray views on the fast backend.
   */
  sealInPlace(key: Uint8Array, nonce: Uint8Array, buf: Uint8Array, offset: number, length: number): number;
  /**
   * Data path: decrypts src[srcOffset, srcOffset+sealedLength) (ciphertext‖tag) into dst at
   * dstOffset (0 if omitted: a batch slot is written in place, no view per packet).
   * Returns the plaintext length, or -1 when authentication fails or dst is too small.
   */
  openFrom(key: Uint8Array, nonce: Uint8Array, src: Uint8Array, srcOffset: number, sealedLength: number, dst: Uint8Array, dstOffset?: number): number;
}

export const EMPTY = new Uint8Array(0);

/** Allocating conveniences for the control path (handshakes, cookies), where clarity beats reuse. */
export function sealToNew(aead: Aead, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + TAG_LENGTH);
  aead.seal(key, nonce, plaintext, ad, out);
  return out;
}

export function openToNew(aead: Aead, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | undefined {
  if (sealed.length < TAG_LENGTH) return undefined;
  const out = new Uint8Array(sealed.length - TAG_LENGTH);
  return aead.open(key, nonce, sealed, ad, out) < 0 ? undefined : out;
}
