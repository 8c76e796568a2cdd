// TAI64N timestamps for handshake initiations (whitepaper §5.4.2): 8 bytes of seconds since
// 1970 offset by 2^62 + 10 (TAI − UTC at the epoch), then 4 bytes of nanoseconds, big-endian.
// Responders accept an initiation only if its timestamp is greater than the last one accepted
// from that peer, which defeats replayed initiations.
import { TIMESTAMP_WHITENING_NS } from "./constants.ts";

export const TAI64N_LENGTH = 12;
const TAI64_BASE = 2n ** 62n + 10n;

/** `unixMillis` is the caller's wall clock (sans-IO: time is always an argument). */
export function tai64n(unixMillis: number): Uint8Array {
  const out = new Uint8Array(TAI64N_LENGTH);
  const view = new DataView(out.buffer);
  const seconds = Math.floor(unixMillis / 1000);
  let nanos = Math.round((unixMillis - seconds * 1000) * 1e6);
  // Whitening: drop the low bits so the timestamp does not reveal the sender's exact clock.
  nanos -= nanos % TIMESTAMP_WHITENING_NS;
  view.setBigUint64(0, TAI64_BASE + BigInt(seconds));
  view.setUint32(8, nanos);
  return out;
}

/** Big-endian comparison: is `a` strictly after `b`? */
export function isAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_LENGTH; i++) {
    if (a[i] !== b[i]) return a[i]! > b[i]!;
  }
  return false;
}
