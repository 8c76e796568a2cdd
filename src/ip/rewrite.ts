// In-place NAT rewrites on a parsed packet: addresses, ports (or ICMP echo identifiers), and the
// same inside the packet an ICMP error quotes. Every checksum that covers a changed word is
// adjusted incrementally (RFC 1624), so a rewrite costs a few additions, not a re-sum.
import { adjustChecksum, l4ChecksumOffset, sum16 } from "./checksum.ts";
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type EmbeddedView, type PacketView } from "./packet.ts";

export type Side = "src" | "dst";

function write16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}

/** Adjusts the L4 checksum at `l4At` of a packet with `protocol`, honouring UDP's "0 = none". */
function adjustL4(b: Uint8Array, protocol: number, l4At: number, version: 4 | 6, oldSum: number, newSum: number, coversAddresses: boolean): void {
  const off = l4ChecksumOffset(protocol);
  if (off < 0) return;
  if (protocol === PROTO_ICMP && coversAddresses) return; // ICMPv4 has no pseudo header
  const at = l4At + off;
  if (protocol === PROTO_UDP && version === 4 && b[at] === 0 && b[at + 1] === 0) return;
  adjustChecksum(b, at, oldSum, newSum);
  if (protocol === PROTO_UDP && b[at] === 0 && b[at + 1] === 0) b[at] = b[at + 1] = 0xff;
}

/** Replaces the source or destination address (same family). */
export function setAddress(p: PacketView, side: Side, addr: Uint8Array): void {
  const b = p.buf;
  const at = side === "src" ? p.srcAt : p.dstAt;
  const len = p.addressLength;
  if (addr.length !== len) throw new RangeError(`setAddress: ${addr.length}-byte address into an IPv${p.version} packet`);
  const oldSum = sum16(b, at, at + len);
  b.set(addr, at);
  const newSum = sum16(b, at, at + len);
  if (p.version === 4) adjustChecksum(b, 10, oldSum, newSum);
  adjustL4(b, p.protocol, p.l4At, p.version, oldSum, newSum, true);
}

/** Replaces a TCP/UDP port, or the identifier of an ICMP echo (both "ports" of an echo). */
export function setPort(p: PacketView, side: Side, port: number): void {
  const b = p.buf;
  let at: number;
  if (p.protocol === PROTO_TCP || p.protocol === PROTO_UDP) at = p.l4At + (side === "src" ? 0 : 2);
  else if ((p.protocol === PROTO_ICMP || p.protocol === PROTO_ICMPV6) && p.srcPort >= 0) at = p.l4At + 4;
  else throw new RangeError(`setPort: protocol ${p.protocol} has no port`);
  const oldSum = (b[at]! << 8) | b[at + 1]!;
  write16(b, at, port);
  adjustL4(b, p.protocol, p.l4At, p.version, oldSum, port, false);
  if (p.protocol === PROTO_TCP || p.protocol === PROTO_UDP) {
    if (side === "src") p.srcPort = port;
    else p.dstPort = port;
  } else {
    p.srcPort = p.dstPort = port;
  }
}

/**
 * Rewrites the packet quoted by an ICMP error: its address (and IPv4 header checksum), and the
 * outer ICMP checksum, which covers the quoted bytes. The quoted L4 checksum is left alone: the
 * quote is usually truncated, and hosts match errors by addresses and ports.
 */
export function setInnerAddress(p: PacketView, side: Side, addr: Uint8Array): void {
  const inner = p.inner as EmbeddedView;
  const b = p.buf;
  const at = side === "src" ? inner.srcAt : inner.dstAt;
  const len = inner.version === 4 ? 4 : 16;
  const oldSum = sum16(b, at, at + len);
  const oldIpCk = inner.version === 4 ? (b[inner.at + 10]! << 8) | b[inner.at + 11]! : 0;
  b.set(addr, at);
  const newSum = sum16(b, at, at + len);
  let oldCovered = oldSum;
  let newCovered = newSum;
  if (inner.version === 4) {
    adjustChecksum(b, inner.at + 10, oldSum, newSum);
    const newIpCk = (b[inner.at + 10]! << 8) | b[inner.at + 11]!;
    oldCovered = fold(oldCovered + oldIpCk);
    newCovered = fold(newCovered + newIpCk);
  }
  adjustChecksum(b, p.l4At + 2, oldCovered, newCovered);
}

export function setInnerPort(p: PacketView, side: Side, port: number): void {
  const inner = p.inner as EmbeddedView;
  const b = p.buf;
  let at: number;
  if (inner.protocol === PROTO_TCP || inner.protocol === PROTO_UDP) at = inner.l4At + (side === "src" ? 0 : 2);
  else if (inner.srcPort >= 0) at = inner.l4At + 4;
  else throw new RangeError(`setInnerPort: quoted protocol ${inner.protocol} has no port`);
  const oldSum = (b[at]! << 8) | b[at + 1]!;
  write16(b, at, port);
  adjustChecksum(b, p.l4At + 2, oldSum, port);
  if (inner.protocol === PROTO_TCP || inner.protocol === PROTO_UDP) {
    if (side === "src") inner.srcPort = port;
    else inner.dstPort = port;
  } else {
    inner.srcPort = inner.dstPort = port;
  }
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
