// Strict, zero-copy parsing of the IP packets that cross the tunnel: IPv4/IPv6 with UDP, TCP,
// ICMPv4 or ICMPv6, including ICMP errors and the packet they embed. One reusable `PacketView`
// is filled per packet (no allocation on success); a failure returns a typed `IpParseError` that
// names source, destination, L4 protocol and ports when they were readable.
//
// Strict means (as Firezone's ip-packet crate): declared lengths must match the buffer exactly,
// L4 headers must be complete, ICMPv4 only in IPv4 and ICMPv6 only in IPv6, no fragments.
// Checksums are not verified (the receiving host does that); NAT keeps them consistent.

import { formatIp } from "./address.ts";

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
const IPV6_EXT_HOP_BY_HOP = 0;
const IPV6_EXT_ROUTING = 43;
const IPV6_EXT_FRAGMENT = 44;
const IPV6_EXT_DEST_OPTS = 60;

export type IpParseErrorKind =
  | "empty"
  | "bad_version"
  | "truncated_ip_header"
  | "bad_ihl"
  | "length_mismatch"
  | "fragment"
  | "unsupported_protocol"
  | "truncated_l4_header"
  | "bad_udp_length"
  | "bad_tcp_offset"
  | "icmp_wrong_family"
  | "bad_embedded_packet";

export class IpParseError extends Error {
  constructor(
    readonly kind: IpParseErrorKind,
    readonly detail: { src?: string; dst?: string; protocol?: number; srcPort?: number; dstPort?: number } = {},
  ) {
    const d = detail;
    const who = d.src ? ` (${d.src}${d.srcPort !== undefined ? `:${d.srcPort}` : ""} → ${d.dst}${d.dstPort !== undefined ? `:${d.dstPort}` : ""}${d.protocol !== undefined ? `, ${protocolName(d.protocol)}` : ""})` : "";
    super(`${kind.replace(/_/g, " ")}${who}`);
    this.name = "IpParseError";
  }
}

export function protocolName(p: number): string {
  return p === PROTO_TCP ? "tcp" : p === PROTO_UDP ? "udp" : p === PROTO_ICMP ? "icmp" : p === PROTO_ICMPV6 ? "icmpv6" : `proto ${p}`;
}

/** Text form of the address at `at` (for errors and logs, not the fast path). */
export function formatAddress(buf: Uint8Array, at: number, version: 4 | 6): string {
  return formatIp(buf.subarray(at, at + (version === 4 ? 4 : 16)));
}

/** Is this ICMP type an error that carries the offending packet? */
export function isIcmpError(version: 4 | 6, type: number): boolean {
  return version === 4 ? type === 3 || type === 4 || type === 5 || type === 11 || type === 12 : type >= 1 && type <= 4;
}

/** ICMP echo request/reply (the only ICMP messages with an id the NAT can use). */
export function isIcmpEcho(version: 4 | 6, type: number): boolean {
  return version === 4 ? type === 8 || type === 0 : type === 128 || type === 129;
}

/** The parsed shape of one packet: offsets into the caller's buffer, nothing copied. */
export class PacketView {
  buf: Uint8Array = new Uint8Array(0);
  length = 0;
  version: 4 | 6 = 4;
  /** Offset of the source and destination addresses (4 or 16 bytes). */
  srcAt = 0;
  dstAt = 0;
  protocol = 0;
  l4At = 0;
  l4Length = 0;
  /** TCP/UDP ports, or for ICMP echo the identifier in both; -1 when none. */
  srcPort = -1;
  dstPort = -1;
  icmpType = -1;
  icmpCode = -1;
  tcpFlags = 0;
  /** For ICMP errors: the embedded (offending) packet's header, parsed leniently (it is truncated). */
  inner: EmbeddedView | undefined;

  get addressLength(): number {
    return this.version === 4 ? 4 : 16;
  }

  src(): string {
    return formatAddress(this.buf, this.srcAt, this.version);
  }

  dst(): string {
    return formatAddress(this.buf, this.dstAt, this.version);
  }

  /** Parses `buf[0, length)`. Returns undefined on success, or why it is not a valid packet. */
  parse(buf: Uint8Array, length = buf.length): IpParseError | undefined {
    this.buf = buf;
    this.length = length;
    this.srcPort = this.dstPort = this.icmpType = this.icmpCode = -1;
    this.tcpFlags = 0;
    this.inner = undefined;
    if (length === 0) return new IpParseError("empty");
    const v = buf[0]! >> 4;
    let r: IpParseError | undefined;
    if (v === 4) r = this.#parseV4(buf, length);
    else if (v === 6) r = this.#parseV6(buf, length);
    else return new IpParseError("bad_version");
    return r ?? this.#parseL4();
  }

  #err(kind: IpParseErrorKind): IpParseError {
    const known = this.protocol !== 0;
    return new IpParseError(kind, {
      src: this.src(),
      dst: this.dst(),
      protocol: known ? this.protocol : undefined,
      srcPort: this.srcPort >= 0 ? this.srcPort : undefined,
      dstPort: this.dstPort >= 0 ? this.dstPort : undefined,
    });
  }

  #parseV4(buf: Uint8Array, length: number): IpParseError | undefined {
    this.version = 4;
    this.protocol = 0;
    if (length < 20) return new IpParseError("truncated_ip_header");
    this.srcAt = 12;
    this.dstAt = 16;
    const ihl = (buf[0]! & 0x0f) * 4;
    if (ihl < 20 || ihl > length) return this.#err("bad_ihl");
    const total = (buf[2]! << 8) | buf[3]!;
    this.protocol = buf[9]!;
    if (total !== length) return this.#err("length_mismatch");
    // More-fragments flag or a fragment offset: reassembly is not our job; refuse.
    if ((buf[6]! & 0x20) !== 0 || ((buf[6]! & 0x1f) | buf[7]!) !== 0) return this.#err("fragment");
    this.l4At = ihl;
    this.l4Length = length - ihl;
    return undefined;
  }

  #parseV6(buf: Uint8Array, length: number): IpParseError | undefined {
    this.version = 6;
    this.protocol = 0;
    if (length < 40) return new IpParseError("truncated_ip_header");
    this.srcAt = 8;
    this.dstAt = 24;
    const payload = (buf[4]! << 8) | buf[5]!;
    if (payload + 40 !== length) return this.#err("length_mismatch");
    let next = buf[6]!;
    let at = 40;
    // Skip the extension headers a host may legitimately send; refuse fragments.
    while (next === IPV6_EXT_HOP_BY_HOP || next === IPV6_EXT_ROUTING || next === IPV6_EXT_DEST_OPTS || next === IPV6_EXT_FRAGMENT) {
      if (next === IPV6_EXT_FRAGMENT) return this.#err("fragment");
      if (at + 8 > length) return this.#err("truncated_l4_header");
      const len = (buf[at + 1]! + 1) * 8;
      next = buf[at]!;
      at += len;
      if (at > length) return this.#err("truncated_l4_header");
    }
    this.protocol = next;
    this.l4At = at;
    this.l4Length = length - at;
    return undefined;
  }

  #parseL4(): IpParseError | undefined {
    const b = this.buf;
    const at = this.l4At;
    const n = this.l4Length;
    switch (this.protocol) {
      case PROTO_UDP: {
        if (n < 8) return this.#err("truncated_l4_header");
        this.srcPort = (b[at]! << 8) | b[at + 1]!;
        this.dstPort = (b[at + 2]! << 8) | b[at + 3]!;
        if (((b[at + 4]! << 8) | b[at + 5]!) !== n) return this.#err("bad_udp_length");
        return undefined;
      }
      case PROTO_TCP: {
        if (n < 20) return this.#err("truncated_l4_header");
        this.srcPort = (b[at]! << 8) | b[at + 1]!;
        this.dstPort = (b[at + 2]! << 8) | b[at + 3]!;
        const off = (b[at + 12]! >> 4) * 4;
        if (off < 20 || off > n) return this.#err("bad_tcp_offset");
        this.tcpFlags = b[at + 13]!;
        return undefined;
      }
      case PROTO_ICMP:
      case PROTO_ICMPV6: {
        if ((this.protocol === PROTO_ICMP) !== (this.version === 4)) return this.#err("icmp_wrong_family");
        if (n < 8) return this.#err("truncated_l4_header");
        this.icmpType = b[at]!;
        this.icmpCode = b[at + 1]!;
        if (isIcmpEcho(this.version, this.icmpType)) {
          this.srcPort = this.dstPort = (b[at + 4]! << 8) | b[at + 5]!;
        } else if (isIcmpError(this.version, this.icmpType)) {
          const inner = (this.inner ??= new EmbeddedView());
          if (!inner.parse(b, at + 8, this.length, this.version)) return this.#err("bad_embedded_packet");
        }
        return undefined;
      }
      default:
        return this.#err("unsupported_protocol");
    }
  }
}

/**
 * The packet inside an ICMP error: the offending packet's IP header and at least the first 8
 * bytes of its L4 header (RFC 792 / RFC 4443), which carry the ports. Its declared length may
 * exceed what was quoted, so that is not checked.
 */
export class EmbeddedView {
  at = 0;
  version: 4 | 6 = 4;
  srcAt = 0;
  dstAt = 0;
  protocol = 0;
  l4At = 0;
  srcPort = -1;
  dstPort = -1;
  icmpType = -1;

  parse(b: Uint8Array, at: number, end: number, outerVersion: 4 | 6): boolean {
    this.at = at;
    this.srcPort = this.dstPort = this.icmpType = -1;
    if (at >= end) return false;
    const v = b[at]! >> 4;
    if (v !== outerVersion) return false;
    this.version = v;
    let l4: number;
    if (v === 4) {
      const ihl = (b[at]! & 0x0f) * 4;
      if (ihl < 20) return false;
      l4 = at + ihl;
      this.srcAt = at + 12;
      this.dstAt = at + 16;
      this.protocol = b[at + 9]!;
    } else {
      l4 = at + 40;
      this.srcAt = at + 8;
      this.dstAt = at + 24;
      this.protocol = b[at + 6]!;
    }
    if (l4 + 8 > end) return false;
    this.l4At = l4;
    if (this.protocol === PROTO_TCP || this.protocol === PROTO_UDP) {
      this.srcPort = (b[l4]! << 8) | b[l4 + 1]!;
      this.dstPort = (b[l4 + 2]! << 8) | b[l4 + 3]!;
    } else if (this.protocol === PROTO_ICMP || this.protocol === PROTO_ICMPV6) {
      this.icmpType = b[l4]!;
      if (isIcmpEcho(v, this.icmpType)) this.srcPort = this.dstPort = (b[l4 + 4]! << 8) | b[l4 + 5]!;
    }
    return true;
  }
}
