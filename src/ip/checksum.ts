// Internet checksums (RFC 1071) and their incremental update (RFC 1624), which is how NAT keeps
// IPv4 header, TCP, UDP and ICMPv6 checksums valid without re-summing the payload.
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type PacketView } from "./packet.ts";

/** Ones-complement sum of buf[start, end) added to `acc`, folded to 16 bits (not inverted). */
export function sum16(buf: Uint8Array, start: number, end: number, acc = 0): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) s += buf[i]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Where the L4 checksum lives, or -1 when the protocol has none we maintain. */
export function l4ChecksumOffset(protocol: number): number {
  return protocol === PROTO_TCP ? 16 : protocol === PROTO_UDP ? 6 : protocol === PROTO_ICMP || protocol === PROTO_ICMPV6 ? 2 : -1;
}

function pseudoHeaderSum(p: PacketView): number {
  const b = p.buf;
  const alen = p.addressLength;
  let s = sum16(b, p.srcAt, p.srcAt + alen);
  s = sum16(b, p.dstAt, p.dstAt + alen, s);
  s += p.protocol + (p.l4Length & 0xffff) + (p.l4Length >>> 16);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The correct L4 checksum of a parsed packet (for builders and checks). */
export function computeL4Checksum(p: PacketView): number {
  const at = p.l4At + l4ChecksumOffset(p.protocol);
  const b = p.buf;
  const saved = (b[at]! << 8) | b[at + 1]!;
  b[at] = b[at + 1] = 0;
  const withPseudo = p.protocol !== PROTO_ICMP; // ICMPv4 alone has no pseudo header
  let s = sum16(b, p.l4At, p.l4At + p.l4Length, withPseudo ? pseudoHeaderSum(p) : 0);
  b[at] = saved >> 8;
  b[at + 1] = saved & 0xff;
  s = ~s & 0xffff;
  // UDP transmits an all-zero result as 0xffff (0 means "no checksum").
  return p.protocol === PROTO_UDP && s === 0 ? 0xffff : s;
}

export function writeL4Checksum(p: PacketView): void {
  const at = p.l4At + l4ChecksumOffset(p.protocol);
  const c = computeL4Checksum(p);
  p.buf[at] = c >> 8;
  p.buf[at + 1] = c & 0xff;
}

export function ipv4HeaderChecksum(b: Uint8Array, at = 0): number {
  const ihl = (b[at]! & 0x0f) * 4;
  const saved = (b[at + 10]! << 8) | b[at + 11]!;
  b[at + 10] = b[at + 11] = 0;
  const s = ~sum16(b, at, at + ihl) & 0xffff;
  b[at + 10] = saved >> 8;
  b[at + 11] = saved & 0xff;
  return s;
}

export function writeIpv4HeaderChecksum(b: Uint8Array, at = 0): void {
  const c = ipv4HeaderChecksum(b, at);
  b[at + 10] = c >> 8;
  b[at + 11] = c & 0xff;
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a checksum at `ckAt` when 16-bit words of the
 * covered data change from `old` to `now` (words given as sums, so several can be folded in).
 */
export function adjustChecksum(b: Uint8Array, ckAt: number, oldSum: number, newSum: number): void {
  let s = (~((b[ckAt]! << 8) | b[ckAt + 1]!) & 0xffff) + (~oldSum & 0xffff) + newSum;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  b[ckAt] = c >> 8;
  b[ckAt + 1] = c & 0xff;
}

/** Pseudo-header sum (RFC 793/8200) from raw fields: addresses at srcAt/dstAt of `alen` bytes. */
export function pseudoHeaderSumAt(b: Uint8Array, srcAt: number, dstAt: number, alen: number, protocol: number, l4Length: number): number {
  let s = sum16(b, srcAt, srcAt + alen);
  s = sum16(b, dstAt, dstAt + alen, s);
  s += protocol + (l4Length & 0xffff) + (l4Length >>> 16);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

