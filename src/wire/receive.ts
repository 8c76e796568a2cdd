// The receive path of a session (wireguard-go receive.go): a transport message is checked
// against the session (age, counter limit, replay window), opened into the caller's buffer at an
// offset, and only once authenticated allowed to move the replay window. The peer does the
// bookkeeping around it (key confirmation, roaming, timers, stats).
import type { Aead } from "../crypto/aead.ts";
import { TAG_LENGTH } from "../crypto/aead.ts";
import { REJECT_COUNTER, TRANSPORT_HEADER_SIZE } from "./constants.ts";
import type { DropReason } from "./drops.ts";
import type { Keypair } from "./keypair.ts";
import { Transport, readCounter, writeCounter } from "./messages.ts";

/**
 * Opens `datagram` (a transport message for `kp`) into out at outOff. Returns the padded
 * plaintext length, or the reason it was dropped.
 */
export function openTransport(aead: Aead, kp: Keypair, datagram: Uint8Array, out: Uint8Array, outOff: number, now: number): number | DropReason {
  if (!kp.canReceive(now)) return "expired_session";
  const counter = readCounter(datagram, Transport.counter);
  if (counter >= REJECT_COUNTER) return "counter_limit";
  if (!kp.replay.check(counter)) return "replay";
  const sealedLength = datagram.length - TRANSPORT_HEADER_SIZE;
  if (out.length - outOff < sealedLength - TAG_LENGTH) return "oversized";
  writeCounter(kp.recvNonce, 4, counter);
  const n = aead.openFrom(kp.recvKey, kp.recvNonce, datagram, Transport.payload, sealedLength, out, outOff);
  if (n < 0) return "decrypt";
  // Only now, authenticated, may the packet move the window.
  if (!kp.replay.accept(counter)) return "replay";
  return n;
}

/**
 * The real length of the IP packet at `at` in a decrypted, zero-padded payload of n bytes, from
 * its own header (IPv4 total length, IPv6 payload length + 40), or -1 when the header is not a
 * complete IP header or claims more than was received.
 */
export function innerPacketLength(buf: Uint8Array, at: number, n: number): number {
  const version = buf[at]! >> 4;
  let len: number;
  if (version === 4) {
    if (n < 20) return -1;
    len = (buf[at + 2]! << 8) | buf[at + 3]!;
    if (len < 20) return -1;
  } else if (version === 6) {
    if (n < 40) return -1;
    len = 40 + ((buf[at + 4]! << 8) | buf[at + 5]!);
  } else {
    return -1;
  }
  return len > n ? -1 : len;
}
