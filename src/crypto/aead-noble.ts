// The reference AEAD backend: @noble/ciphers, pure TypeScript, always available.
import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { EMPTY, TAG_LENGTH, type Aead } from "./aead.ts";

type Cipher = typeof chacha20poly1305;

function seal(cipher: Cipher, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, out: Uint8Array): number {
  const n = plaintext.length + TAG_LENGTH;
  cipher(key, nonce, ad).encrypt(plaintext, out.subarray(0, n));
  return n;
}

function open(cipher: Cipher, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array, out: Uint8Array): number {
  const n = sealed.length - TAG_LENGTH;
  if (n < 0 || out.length < n) return -1;
  try {
    cipher(key, nonce, ad).decrypt(sealed, out.subarray(0, n));
    return n;
  } catch {
    // noble signals a tag mismatch by throwing; the seam turns it into a value.
    return -1;
  }
}

export const nobleAead: Aead = {
  name: "noble",
  seal: (k, n, p, a, o) => seal(chacha20poly1305, k, n, p, a, o),
  open: (k, n, s, a, o) => open(chacha20poly1305, k, n, s, a, o),
  xseal: (k, n, p, a, o) => seal(xchacha20poly1305, k, n, p, a, o),
  xopen: (k, n, s, a, o) => open(xchacha20poly1305, k, n, s, a, o),
  // The reference backend makes views here; noble allocates per call internally anyway.
  sealInPlace(k, n, buf, offset, length) {
    const plain = buf.slice(offset, offset + length);
    return seal(chacha20poly1305, k, n, plain, EMPTY, buf.subarray(offset));
  },
  openFrom: (k, n, src, off, len, dst, dstOff = 0) => open(chacha20poly1305, k, n, src.subarray(off, off + len), EMPTY, dstOff === 0 ? dst : dst.subarray(dstOff)),
};
