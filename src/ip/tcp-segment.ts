// Splitting what a TUN with offloads hands us (a virtio_net_hdr + one packet of up to 64 KB) into
// the MSS-sized packets a WireGuard peer expects: the kernel leaves segmentation (TSO/USO) and the
// checksum (NEEDS_CSUM) to us, as it would to a NIC. Each segment comes out a complete, valid
// packet: IP lengths, IPv4 id incremented per segment and its header checksum, TCP sequence
// advanced, FIN/PSH kept on the last segment only and CWR on the first only (what the kernel's
// tcp_gso_segment does), and a full L4 checksum.
//
// Two steps so the caller decides where each segment goes (e.g. straight into a DatagramBatch slot
// behind the WireGuard header, to be encrypted in place): `begin()` checks the super-packet once and
// says how many segments it holds; `writeSegment(i, dst, at)` builds segment i there. Nothing is
// allocated per packet; a malformed super-packet is refused (−1) with its reason counted, never thrown.
import { pseudoHeaderSumAt, sum16, writeIpv4HeaderChecksum } from "./checksum.ts";
import { copyAndSum16, copyBytes } from "./copy.ts";
import { PROTO_TCP, PROTO_UDP } from "./packet.ts";
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4, VNET_HDR_LEN, VnetHeader } from "./vnet-header.ts";

/** Why a read from the TUN was refused. */
export type SegmentRefusal =
  | "short" // fewer bytes than a vnet header + an IP header
  | "gso_type" // a GSO type we did not ask for (UFO) or do not know
  | "ip_version" // IP version does not match the GSO type
  | "ip_header" // bad IHL, or the IP header does not fit
  | "length_mismatch" // IP total/payload length disagrees with what was read
  | "fragment" // an IPv4 fragment cannot be segmented
  | "protocol" // not TCP for TCP GSO, not UDP for UDP GSO
  | "ipv6_extension" // IPv6 extension headers before TCP/UDP (the kernel's TSO does not make these for us)
  | "l4_header" // TCP data offset or UDP header does not fit
  | "csum_offsets" // NEEDS_CSUM points outside the packet or not at the L4 checksum
  | "gso_size" // gso_size of 0
  | "no_payload"; // a GSO packet with nothing to segment

export const SEGMENT_REFUSALS: readonly SegmentRefusal[] = [
  "short", "gso_type", "ip_version", "ip_header", "length_mismatch", "fragment", "protocol",
  "ipv6_extension", "l4_header", "csum_offsets", "gso_size", "no_payload",
];

/** Where segments go: a TunBatch fits (slots of `room` bytes at `next()`). */
export interface SegmentSink {
  readonly data: Uint8Array;
  readonly room: number;
  next(): number;
  commit(length: number): void;
}

const KIND_SINGLE = 0;
const KIND_TCP = 1;
const KIND_UDP = 2;

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

export class TcpSegmenter {
  /** Refusals by reason since construction. */
  readonly refused: Record<SegmentRefusal, number> = Object.fromEntries(SEGMENT_REFUSALS.map((r) => [r, 0])) as Record<SegmentRefusal, number>;
  /** Super-packets (more than one segment) seen, and the segments they made. */
  superPackets = 0;
  segments = 0;

  readonly #h = new VnetHeader();
  #src: Uint8Array = new Uint8Array(0);
  #at = 0; // the IP packet in #src
  #len = 0;
  #kind = KIND_SINGLE;
  #v6 = false;
  #ipHl = 0;
  #hdrLen = 0; // IP + L4 header
  #payload = 0;
  #gso = 0;
  #count = 0;
  #seq0 = 0;
  #id0 = 0;

  /** Segments in the packet given to the last successful `begin()`. */
  get count(): number {
    return this.#count;
  }
  /** The IP packet itself (after the vnet header): for a single packet, use it in place, no copy. */
  get packetOffset(): number {
    return this.#at;
  }
  get packetLength(): number {
    return this.#len;
  }
  /** True when the packet needs no splitting (count 1, usable at packetOffset in place). */
  get single(): boolean {
    return this.#kind === KIND_SINGLE;
  }
  /** Longest segment `writeSegment` will write (what a destination slot must hold). */
  get maxSegmentLength(): number {
    return this.#kind === KIND_SINGLE ? this.#len : this.#hdrLen + Math.min(this.#gso, this.#payload);
  }

  #refuse(reason: SegmentRefusal): number {
    this.refused[reason]++;
    this.#count = 0;
    return -1;
  }

  /**
   * Checks buf[off, off+len) — a vnet header and one IP packet, as read from the TUN — and returns
   * how many segments it makes, or −1 (reason counted). A lone packet with NEEDS_CSUM gets its
   * checksum completed in place. The buffer must stay untouched until the segments are written.
   */
  begin(buf: Uint8Array, off: number, len: number): number {
    if (len < VNET_HDR_LEN + 20) return this.#refuse("short");
    const h = this.#h.read(buf, off);
    const p = off + VNET_HDR_LEN;
    const n = len - VNET_HDR_LEN;
    this.#src = buf;
    this.#at = p;
    this.#len = n;
    const gsoType = h.gsoType & ~VNET_GSO_ECN;
    if (gsoType === VNET_GSO_NONE) {
      if (h.flags & VNET_F_NEEDS_CSUM) {
        const ck = h.csumStart + h.csumOffset;
        if (h.csumStart >= n || ck + 2 > n) return this.#refuse("csum_offsets");
        // The field holds the pseudo-header sum; sum the rest over it (skb_checksum_help).
        const at = p + ck;
        const initial = (buf[at]! << 8) | buf[at + 1]!;
        buf[at] = buf[at + 1] = 0;
        const c = ~sum16(buf, p + h.csumStart, p + n, initial) & 0xffff || 0xffff;
        buf[at] = c >> 8;
        buf[at + 1] = c & 0xff;
      }
      this.#kind = KIND_SINGLE;
      this.#count = 1;
      return 1;
    }
    if (gsoType !== VNET_GSO_TCPV4 && gsoType !== VNET_GSO_TCPV6 && gsoType !== VNET_GSO_UDP_L4) return this.#refuse("gso_type");
    const version = buf[p]! >> 4;
    if ((gsoType === VNET_GSO_TCPV4 && version !== 4) || (gsoType === VNET_GSO_TCPV6 && version !== 6) || (version !== 4 && version !== 6)) return this.#refuse("ip_version");
    let proto: number;
    let ipHl: number;
    if (version === 4) {
      ipHl = (buf[p]! & 0x0f) * 4;
      if (ipHl < 20 || ipHl > n) return this.#refuse("ip_header");
      if (((buf[p + 2]! << 8) | buf[p + 3]!) !== n) return this.#refuse("length_mismatch");
      if ((buf[p + 6]! & 0x3f) !== 0 || buf[p + 7] !== 0) return this.#refuse("fragment"); // MF or an offset
      proto = buf[p + 9]!;
      this.#id0 = (buf[p + 4]! << 8) | buf[p + 5]!;
    } else {
      ipHl = 40;
      if (n < 40) return this.#refuse("ip_header");
      if (((buf[p + 4]! << 8) | buf[p + 5]!) !== n - 40) return this.#refuse("length_mismatch");
      proto = buf[p + 6]!;
      if (proto !== PROTO_TCP && proto !== PROTO_UDP) return this.#refuse(proto === 0 || proto === 43 || proto === 44 || proto === 60 ? "ipv6_extension" : "protocol");
    }
    const tcp = gsoType !== VNET_GSO_UDP_L4;
    if (proto !== (tcp ? PROTO_TCP : PROTO_UDP)) return this.#refuse("protocol");
    let l4Hl = 8;
    if (tcp) {
      if (ipHl + 20 > n) return this.#refuse("l4_header");
      l4Hl = (buf[p + ipHl + 12]! >> 4) * 4;
      if (l4Hl < 20 || ipHl + l4Hl > n) return this.#refuse("l4_header");
    } else if (ipHl + 8 > n) return this.#refuse("l4_header");
    if (h.flags & VNET_F_NEEDS_CSUM && (h.csumStart !== ipHl || h.csumOffset !== (tcp ? 16 : 6))) return this.#refuse("csum_offsets");
    if (h.gsoSize === 0) return this.#refuse("gso_size");
    const payload = n - ipHl - l4Hl;
    if (payload === 0) return this.#refuse("no_payload");
    this.#kind = tcp ? KIND_TCP : KIND_UDP;
    this.#v6 = version === 6;
    this.#ipHl = ipHl;
    this.#hdrLen = ipHl + l4Hl;
    this.#payload = payload;
    this.#gso = h.gsoSize;
    this.#count = Math.ceil(payload / h.gsoSize);
    const t = p + ipHl;
    this.#seq0 = ((buf[t + 4]! << 24) | (buf[t + 5]! << 16) | (buf[t + 6]! << 8) | buf[t + 7]!) >>> 0;
    if (this.#count > 1) this.superPackets++;
    this.segments += this.#count;
    return this.#count;
  }

  /** Builds segment `i` (0 ≤ i < count) at dst[at, …) and returns its length. `dst` must not be the source buffer. */
  writeSegment(i: number, dst: Uint8Array, at: number): number {
    const src = this.#src;
    if (this.#kind === KIND_SINGLE) {
      copyBytes(src, this.#at, dst, at, this.#len);
      return this.#len;
    }
    const ipHl = this.#ipHl;
    const hdrLen = this.#hdrLen;
    const start = i * this.#gso;
    const plen = Math.min(this.#gso, this.#payload - start);
    const segLen = hdrLen + plen;
    copyBytes(src, this.#at, dst, at, hdrLen);
    let pseudo: number;
    if (this.#v6) {
      dst[at + 4] = (segLen - 40) >> 8;
      dst[at + 5] = (segLen - 40) & 0xff;
      pseudo = pseudoHeaderSumAt(dst, at + 8, at + 24, 16, this.#kind === KIND_TCP ? PROTO_TCP : PROTO_UDP, segLen - 40);
    } else {
      const id = (this.#id0 + i) & 0xffff;
      dst[at + 2] = segLen >> 8;
      dst[at + 3] = segLen & 0xff;
      dst[at + 4] = id >> 8;
      dst[at + 5] = id & 0xff;
      writeIpv4HeaderChecksum(dst, at);
      pseudo = pseudoHeaderSumAt(dst, at + 12, at + 16, 4, this.#kind === KIND_TCP ? PROTO_TCP : PROTO_UDP, segLen - ipHl);
    }
    const l4 = at + ipHl;
    let ckAt: number;
    if (this.#kind === KIND_TCP) {
      const seq = (this.#seq0 + start) >>> 0;
      dst[l4 + 4] = seq >>> 24;
      dst[l4 + 5] = (seq >>> 16) & 0xff;
      dst[l4 + 6] = (seq >>> 8) & 0xff;
      dst[l4 + 7] = seq & 0xff;
      let flags = dst[l4 + 13]!;
      if (i !== this.#count - 1) flags &= ~(TCP_FIN | TCP_PSH);
      if (i !== 0) flags &= ~TCP_CWR;
      dst[l4 + 13] = flags;
      ckAt = l4 + 16;
    } else {
      const ulen = 8 + plen;
      dst[l4 + 4] = ulen >> 8;
      dst[l4 + 5] = ulen & 0xff;
      ckAt = l4 + 6;
    }
    dst[ckAt] = dst[ckAt + 1] = 0;
    let s = sum16(dst, l4, at + hdrLen, pseudo);
    s = copyAndSum16(src, this.#at + hdrLen + start, dst, at + hdrLen, plen, s);
    let c = ~s & 0xffff;
    if (c === 0 && this.#kind === KIND_UDP) c = 0xffff; // 0 means "no checksum" in UDP
    dst[ckAt] = c >> 8;
    dst[ckAt + 1] = c & 0xff;
    return segLen;
  }

  /**
   * Writes segments from index `from` into `out` until it is full or all are written; returns the
   * index to continue from (== count when done). A slot too small for a segment is a caller bug.
   */
  segmentInto(out: SegmentSink, from = 0): number {
    if (this.maxSegmentLength > out.room) throw new Error(`segment of ${this.maxSegmentLength} B does not fit a ${out.room} B slot`);
    let i = from;
    for (; i < this.#count; i++) {
      const at = out.next();
      if (at < 0) break;
      out.commit(this.writeSegment(i, out.data, at));
    }
    return i;
  }
}
