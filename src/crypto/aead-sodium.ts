// The fast AEAD backend: libsodium (Debian libsodium23) called through bun:ffi. Typed arrays are
// passed straight through as pointers, so a call allocates nothing on the JS side.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { TAG_LENGTH, type Aead } from "./aead.ts";

const LIBRARY_NAMES = ["libsodium.so.23", "libsodium.so", "libsodium.dylib"];

const aeadSymbols = {
  encrypt: {
    // (c, clen_p, m, mlen, ad, adlen, nsec, npub, k) -> int
    args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.ptr, FFIType.ptr],
    returns: FFIType.i32,
  },
  decrypt: {
    // (m, mlen_p, nsec, c, clen, ad, adlen, npub, k) -> int (-1 on forgery)
    args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.ptr],
    returns: FFIType.i32,
  },
} as const;

function openLibrary() {
  let lastError: unknown;
  for (const name of LIBRARY_NAMES) {
    try {
      return dlopen(name, {
        sodium_init: { args: [], returns: FFIType.i32 },
        crypto_aead_chacha20poly1305_ietf_encrypt: aeadSymbols.encrypt,
        crypto_aead_chacha20poly1305_ietf_decrypt: aeadSymbols.decrypt,
        crypto_aead_xchacha20poly1305_ietf_encrypt: aeadSymbols.encrypt,
        crypto_aead_xchacha20poly1305_ietf_decrypt: aeadSymbols.decrypt,
      });
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`libsodium not found (tried ${LIBRARY_NAMES.join(", ")})`, { cause: lastError });
}

/** Loads libsodium. Throws, with the cause, when the library is missing or fails to initialise. */
export function loadSodiumAead(): Aead {
  const lib = openLibrary();
  const s = lib.symbols;
  // 0 = initialised now, 1 = already initialised; -1 = failure.
  if (s.sodium_init() < 0) throw new Error("libsodium: sodium_init() failed");
  const encC = s.crypto_aead_chacha20poly1305_ietf_encrypt;
  const decC = s.crypto_aead_chacha20poly1305_ietf_decrypt;
  const encX = s.crypto_aead_xchacha20poly1305_ietf_encrypt;
  const decX = s.crypto_aead_xchacha20poly1305_ietf_decrypt;
  // bun:ffi cannot take a zero-length typed array as a pointer; libsodium accepts NULL with length 0.
  const adPtr = (ad: Uint8Array) => (ad.length === 0 ? null : ad);
  const pt = (m: Uint8Array) => (m.length === 0 ? null : m);
  return {
    name: "libsodium",
    seal(k, n, p, a, o) {
      if (o.length < p.length + TAG_LENGTH) throw new RangeError("seal: output buffer too small");
      encC(o, null, pt(p), p.length, adPtr(a), a.length, null, n, k);
      return p.length + TAG_LENGTH;
    },
    open(k, n, c, a, o) {
      const len = c.length - TAG_LENGTH;
      if (len < 0 || o.length < len) return -1;
      // libsodium needs a writable pointer even for an empty plaintext; `c` is never written then.
      return decC(len === 0 ? c : o, null, null, c, c.length, adPtr(a), a.length, n, k) === 0 ? len : -1;
    },
    xseal(k, n, p, a, o) {
      if (o.length < p.length + TAG_LENGTH) throw new RangeError("xseal: output buffer too small");
      encX(o, null, pt(p), p.length, adPtr(a), a.length, null, n, k);
      return p.length + TAG_LENGTH;
    },
    xopen(k, n, c, a, o) {
      const len = c.length - TAG_LENGTH;
      if (len < 0 || o.length < len) return -1;
      return decX(len === 0 ? c : o, null, null, c, c.length, adPtr(a), a.length, n, k) === 0 ? len : -1;
    },
    sealInPlace(k, n, buf, offset, length) {
      if (offset + length + TAG_LENGTH > buf.length) throw new RangeError("sealInPlace: no room for the tag");
      // libsodium allows c == m (in-place); ptr(arr, offset) is a plain number, nothing allocated.
      const at = ptr(buf, offset);
      encC(at, null, at, length, null, 0, null, n, k);
      return length + TAG_LENGTH;
    },
    openFrom(k, n, src, off, sealedLength, dst, dstOff = 0) {
      const len = sealedLength - TAG_LENGTH;
      if (len < 0 || dst.length - dstOff < len || off + sealedLength > src.length) return -1;
      return decC(len === 0 ? ptr(src, off) : ptr(dst, dstOff), null, null, ptr(src, off), sealedLength, null, 0, n, k) === 0 ? len : -1;
    },
  };
}
