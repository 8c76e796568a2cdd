// The send path of a session (wireguard-go send.go): an inner packet becomes a transport
// message — header, counter-derived nonce, zero padding to 16 B (never past the MTU), sealed in
// place. Works on caller buffers at offsets and allocates nothing; the peer decides whether a
// session may send and does the bookkeeping around it (timers, stats, rekey).
import type { Aead } from "../crypto/aead.ts";
import { TAG_LENGTH } from "../crypto/aead.ts";
import { MESSAGE_TRANSPORT, PADDING_MULTIPLE, TRANSPORT_HEADER_SIZE } from "./constants.ts";
import type { Keypair } from "./keypair.ts";
import { Transport, writeCounter, writeU32 } from "./messages.ts";

/** The transport message's length for `len` plaintext bytes under `mtu`. */
export function sealedSize(len: number, mtu: number): number {
  return TRANSPORT_HEADER_SIZE + paddedLength(len, mtu) + TAG_LENGTH;
}

function paddedLength(len: number, mtu: number): number {
  const padded = len === 0 ? 0 : Math.ceil(len / PADDING_MULTIPLE) * PADDING_MULTIPLE;
  return padded > mtu ? Math.max(len, mtu) : padded;
}

/**
 * Seals src[srcOff, srcOff+len) on `kp` into out at outOff (src may be out: the copy is then an
 * overlap-safe move). Takes the next send counter. Returns the message length.
 */
export function sealTransport(aead: Aead, kp: Keypair, src: Uint8Array, srcOff: number, len: number, out: Uint8Array, outOff: number, mtu: number): number {
  const padded = paddedLength(len, mtu);
  const total = TRANSPORT_HEADER_SIZE + padded + TAG_LENGTH;
  if (out.length - outOff < total) throw new RangeError(`encapsulate: output buffer of ${out.length - outOff} B is smaller than ${total} B`);
  const counter = kp.sendCounter++;
  out[outOff] = MESSAGE_TRANSPORT;
  out[outOff + 1] = out[outOff + 2] = out[outOff + 3] = 0;
  writeU32(out, outOff + Transport.receiver, kp.remoteIndex);
  writeCounter(out, outOff + Transport.counter, counter);
  writeCounter(kp.sendNonce, 4, counter);
  const payload = outOff + Transport.payload;
  if (src === out) out.copyWithin(payload, srcOff, srcOff + len);
  else for (let i = 0; i < len; i++) out[payload + i] = src[srcOff + i]!;
  out.fill(0, payload + len, payload + padded);
  aead.sealInPlace(kp.sendKey, kp.sendNonce, out, payload, padded);
  return total;
}
