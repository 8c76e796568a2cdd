// Merging the decrypted TCP segments of one turn into super-packets for a TUN with offloads: one
// write of up to 64 KB instead of ~45, and the receiving stack handles it as one GRO'd skb. Only
// segments that the kernel's GSO would split back into exactly themselves are merged (the rules
// of Linux tcp_gro_receive, which wireguard-go's tun offload also follows):
//   same addresses and ports, contiguous sequence numbers, equal ACK, window and TCP options,
//   same TTL/TOS/DF (IPv4, ids consecutive) or traffic class/flow label/hop limit (IPv6), no IPv4
//   options, flags ACK only (PSH allowed on the last), equal payload sizes except a shorter last.
// Everything else is written alone. Order within a flow is kept: a packet of a flow that cannot
// join its flow's open group closes it, so nothing later of that flow jumps ahead of it.
//
// A merged write carries a vnet header (GSO TCPV4/TCPV6, gso_size = the segment payload,
// NEEDS_CSUM at the TCP checksum) and, as the kernel expects for CHECKSUM_PARTIAL, only the
// pseudo-header sum in the TCP checksum field; the IPv4 header checksum is complete (ip_rcv checks
// it). A lone packet gets a zero header written into its slot's headroom: no copy.
//
// Nor is a merged write copied: its head packet's headers are rewritten in place (lengths, IPv4
// checksum, PSH, pseudo-header sum; the vnet header goes into the head slot's headroom), and the
// write is planned as parts — the head slot whole, then each further segment's payload where it
// lies — for one writev (the TUN shell). Copying every payload byte into a contiguous super-packet
// was 0.36–0.42 CPU-s/GB on its own; the kernel copies from the parts just the same.
// writeBuffer/writeOffset still give a contiguous write (assembled on demand) to callers without writev.
import { pseudoHeaderSumAt, writeIpv4HeaderChecksum } from "./checksum.ts";
import { copyBytes } from "./copy.ts";
import { PROTO_TCP } from "./packet.ts";
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_LEN, writeVnetHeader, writeZeroVnetHeader } from "./vnet-header.ts";

/** The input: committed packets in slots with headroom in front (a TunBatch). */
export interface PacketSlots {
  readonly data: Uint8Array;
  readonly lengths: Int32Array;
  readonly count: number;
  readonly capacity: number;
  readonly slotSize: number;
  readonly headroom: number;
  offset(i: number): number;
}

/** Largest IP packet a merged write may carry (IPv4 total length is 16 bits; IPv6 kept the same). */
export const MAX_SUPER_PACKET = 65535;

const TCP_ACK = 0x10;
const TCP_PSH = 0x08;

const NOT_TCP = 0; // written alone, no effect on any flow
const TCP_ALONE = 1; // TCP that cannot be merged: written alone, closes its flow's group
const TCP_MERGEABLE = 2;

export class TcpCoalescer {
  /** Merged writes made and the segments they carried; lone writes. */
  mergedWrites = 0;
  mergedSegments = 0;
  loneWrites = 0;

  // The planned writes of the last `coalesce()`: parts [first, first+count) of the part arrays
  // (offsets and lengths in the batch's data), total length.
  #writeFirstPart = new Int32Array(0);
  #writeParts = new Int32Array(0);
  #writeLength = new Int32Array(0);
  #writes = 0;
  /** Parts of all planned writes: each a range of the batch's data. */
  #partOffset = new Int32Array(0);
  #partLength = new Int32Array(0);
  #parts = 0;
  #data: Uint8Array = new Uint8Array(0);
  #arena = new Uint8Array(0);

  // Groups of slots, in order of their first packet.
  #gHead = new Int32Array(0);
  #gTail = new Int32Array(0);
  #gCount = new Int32Array(0);
  #gBytes = new Int32Array(0);
  #gSegSize = new Int32Array(0);
  #gOpen = new Uint8Array(0);
  #gNextSeq = new Uint32Array(0);
  #slotNext = new Int32Array(0);
  #groups = 0;

  // Flow → latest group, open addressing, cleared per turn by a generation stamp.
  #tGroup = new Int32Array(0);
  #tStamp = new Int32Array(0);
  #tHash = new Int32Array(0);
  #gen = 0;

  // The packet being classified.
  #kind = NOT_TCP;
  #ipHl = 0;
  #tcpHl = 0;
  #payload = 0;

  /** `vnetHeader`: the TUN takes a virtio_net_hdr in front of every write (offload mode). Without it nothing is merged. */
  constructor(readonly vnetHeader: boolean) {}

  get writeCount(): number {
    return this.#writes;
  }
  /** Total bytes of write i (vnet header included). */
  writeLength(i: number): number {
    return this.#writeLength[i]!;
  }
  /** Parts of write i (1: one contiguous range; more: a merged write to gather). */
  writeParts(i: number): number {
    return this.#writeParts[i]!;
  }
  /** Index of write i's first part in partOffsets/partLengths. */
  writeFirstPart(i: number): number {
    return this.#writeFirstPart[i]!;
  }
  /** Every part's offset and length in the batch's data (valid until the next coalesce()). */
  get partOffsets(): Int32Array {
    return this.#partOffset;
  }
  get partLengths(): Int32Array {
    return this.#partLength;
  }
  /** The data the parts point into: the batch last coalesced. */
  get data(): Uint8Array {
    return this.#data;
  }

  /**
   * Buffer of write i as one contiguous range: the batch's data for a one-part write; a merged one
   * is assembled into the coalescer's arena first (a copy: for callers that cannot gather).
   * Call writeOffset(i) after this.
   */
  writeBuffer(i: number): Uint8Array {
    if (this.#writeParts[i] === 1) return this.#data;
    this.#assemble(i);
    return this.#arena;
  }
  /** Offset of write i in writeBuffer(i). */
  writeOffset(i: number): number {
    if (this.#writeParts[i] === 1) return this.#partOffset[this.#writeFirstPart[i]!]!;
    this.#assemble(i);
    return 0;
  }

  #assembled = -1;
  #assemble(i: number): void {
    if (this.#assembled === i) return;
    let at = 0;
    const first = this.#writeFirstPart[i]!;
    for (let k = first; k < first + this.#writeParts[i]!; k++) {
      copyBytes(this.#data, this.#partOffset[k]!, this.#arena, at, this.#partLength[k]!);
      at += this.#partLength[k]!;
    }
    this.#assembled = i;
  }

  #ensure(batch: PacketSlots): void {
    const cap = batch.capacity;
    if (this.#gHead.length < cap) {
      this.#writeFirstPart = new Int32Array(cap);
      this.#writeParts = new Int32Array(cap);
      this.#writeLength = new Int32Array(cap);
      this.#partOffset = new Int32Array(cap);
      this.#partLength = new Int32Array(cap);
      this.#gHead = new Int32Array(cap);
      this.#gTail = new Int32Array(cap);
      this.#gCount = new Int32Array(cap);
      this.#gBytes = new Int32Array(cap);
      this.#gSegSize = new Int32Array(cap);
      this.#gOpen = new Uint8Array(cap);
      this.#gNextSeq = new Uint32Array(cap);
      this.#slotNext = new Int32Array(cap);
      let t = 16;
      while (t < cap * 2) t *= 2;
      this.#tGroup = new Int32Array(t);
      this.#tStamp = new Int32Array(t);
      this.#tHash = new Int32Array(t);
    }
    // Room for one assembled write (writeBuffer without writev): up to 64 KB plus its header.
    if (this.#arena.length < MAX_SUPER_PACKET + VNET_HDR_LEN) this.#arena = new Uint8Array(MAX_SUPER_PACKET + VNET_HDR_LEN);
  }

  /**
   * Plans the TUN writes for the packets of `batch` (read them with writeCount/writeBuffer/
   * writeOffset/writeLength until the next call). Writes into the batch's headroom; the batch
   * must not change until the writes are done. Returns the number of writes.
   */
  coalesce(batch: PacketSlots): number {
    this.#data = batch.data;
    this.#writes = 0;
    this.#parts = 0;
    this.#assembled = -1;
    if (!this.vnetHeader) {
      this.#ensure(batch);
      for (let i = 0; i < batch.count; i++) this.#addWrite(batch.offset(i), batch.lengths[i]!);
      this.loneWrites += batch.count;
      return this.#writes;
    }
    if (batch.headroom < VNET_HDR_LEN) throw new Error(`TUN slots need ${VNET_HDR_LEN} B of headroom for the vnet header, have ${batch.headroom}`);
    this.#ensure(batch);
    this.#groups = 0;
    this.#gen = (this.#gen + 1) | 0;
    if (this.#gen === 0) {
      this.#tStamp.fill(0);
      this.#gen = 1;
    }
    const d = batch.data;
    for (let i = 0; i < batch.count; i++) {
      const at = batch.offset(i);
      const n = batch.lengths[i]!;
      this.#classify(d, at, n);
      if (this.#kind === NOT_TCP) {
        this.#newGroup(i, 0, false);
        continue;
      }
      const h = this.#flowHash(d, at);
      const slot = this.#lookup(batch, d, at, h);
      const g = slot >= 0 ? this.#tGroup[slot]! : -1;
      if (this.#kind === TCP_MERGEABLE && g >= 0 && this.#gOpen[g] && this.#canAppend(batch, g, d, at)) {
        this.#append(g, i, d, at);
        continue;
      }
      if (g >= 0) this.#gOpen[g] = 0;
      const ng = this.#newGroup(i, this.#kind === TCP_MERGEABLE ? this.#payload : 0, this.#kind === TCP_MERGEABLE && (d[at + this.#ipHl + 13]! & TCP_PSH) === 0);
      if (this.#kind === TCP_MERGEABLE) this.#gNextSeq[ng] = (readU32(d, at + this.#ipHl + 4) + this.#payload) >>> 0;
      this.#remember(slot, h, ng);
    }
    for (let g = 0; g < this.#groups; g++) {
      const head = this.#gHead[g]!;
      if (this.#gCount[g] === 1) {
        const at = batch.offset(head) - VNET_HDR_LEN;
        writeZeroVnetHeader(d, at);
        this.#addWrite(at, batch.lengths[head]! + VNET_HDR_LEN);
        this.loneWrites++;
      } else {
        this.#build(batch, g);
        this.mergedWrites++;
        this.mergedSegments += this.#gCount[g]!;
      }
    }
    return this.#writes;
  }

  /** A write of one contiguous range of the batch's data. */
  #addWrite(at: number, len: number): void {
    const w = this.#writes++;
    this.#writeFirstPart[w] = this.#parts;
    this.#writeParts[w] = 1;
    this.#writeLength[w] = len;
    this.#addPart(at, len);
  }

  #addPart(at: number, len: number): void {
    const k = this.#parts++;
    this.#partOffset[k] = at;
    this.#partLength[k] = len;
  }

  #newGroup(slot: number, segSize: number, open: boolean): number {
    const g = this.#groups++;
    this.#gHead[g] = slot;
    this.#gTail[g] = slot;
    this.#gCount[g] = 1;
    this.#gBytes[g] = segSize;
    this.#gSegSize[g] = segSize;
    this.#gOpen[g] = open ? 1 : 0;
    this.#slotNext[slot] = -1;
    return g;
  }

  /** Sets #kind, #ipHl, #tcpHl, #payload for the packet at d[at, at+n). */
  #classify(d: Uint8Array, at: number, n: number): void {
    this.#kind = NOT_TCP;
    if (n < 20) return;
    const v = d[at]! >> 4;
    let ipHl: number;
    if (v === 4) {
      ipHl = (d[at]! & 0x0f) * 4;
      if (ipHl < 20 || d[at + 9] !== PROTO_TCP || readU16(d, at + 2) !== n) return;
      if ((d[at + 6]! & 0x3f) !== 0 || d[at + 7] !== 0) return; // a fragment: no ports to go by
    } else if (v === 6) {
      ipHl = 40;
      if (n < 40 || d[at + 6] !== PROTO_TCP || readU16(d, at + 4) !== n - 40) return;
    } else return;
    if (ipHl + 20 > n) return;
    const tcpHl = (d[at + ipHl + 12]! >> 4) * 4;
    if (tcpHl < 20 || ipHl + tcpHl > n) return;
    this.#ipHl = ipHl;
    this.#tcpHl = tcpHl;
    this.#payload = n - ipHl - tcpHl;
    const flags = d[at + ipHl + 13]!;
    const mergeable = this.#payload > 0 && (flags === TCP_ACK || flags === (TCP_ACK | TCP_PSH)) && ipHl === (v === 4 ? 20 : 40);
    this.#kind = mergeable ? TCP_MERGEABLE : TCP_ALONE;
  }

  #flowHash(d: Uint8Array, at: number): number {
    const v6 = d[at]! >> 4 === 6;
    const aAt = at + (v6 ? 8 : 12);
    const aEnd = aAt + (v6 ? 32 : 8);
    let h = 0x811c9dc5 | 0;
    for (let i = aAt; i < aEnd; i++) h = Math.imul(h ^ d[i]!, 0x01000193);
    const p = at + this.#ipHl;
    for (let i = p; i < p + 4; i++) h = Math.imul(h ^ d[i]!, 0x01000193);
    return h;
  }

  /** Table slot holding this packet's flow, or −(free slot + 1) when the flow has no group yet. */
  #lookup(batch: PacketSlots, d: Uint8Array, at: number, h: number): number {
    const mask = this.#tGroup.length - 1;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      if (this.#tStamp[s] !== this.#gen) return -(s + 1);
      if (this.#tHash[s] === h && this.#sameFlow(d, at, this.#ipHl, batch.offset(this.#gHead[this.#tGroup[s]!]!))) return s;
    }
  }

  #remember(slot: number, h: number, g: number): void {
    const s = slot >= 0 ? slot : -slot - 1;
    this.#tStamp[s] = this.#gen;
    this.#tHash[s] = h;
    this.#tGroup[s] = g;
  }

  #sameFlow(d: Uint8Array, a: number, aIpHl: number, b: number): boolean {
    if (d[a]! >> 4 !== d[b]! >> 4) return false;
    const v6 = d[a]! >> 4 === 6;
    const off = v6 ? 8 : 12;
    for (let i = off; i < off + (v6 ? 32 : 8); i++) if (d[a + i] !== d[b + i]) return false;
    const bIpHl = v6 ? 40 : (d[b]! & 0x0f) * 4;
    for (let i = 0; i < 4; i++) if (d[a + aIpHl + i] !== d[b + bIpHl + i]) return false;
    return true;
  }

  #canAppend(batch: PacketSlots, g: number, d: Uint8Array, at: number): boolean {
    const head = batch.offset(this.#gHead[g]!);
    const tail = batch.offset(this.#gTail[g]!);
    const ipHl = this.#ipHl;
    // Only packets the head's own classification made mergeable start open groups, so its ipHl equals ours.
    if (ipHl === 20) {
      if (d[at + 1] !== d[head + 1] || d[at + 6] !== d[head + 6] || d[at + 8] !== d[head + 8]) return false; // TOS, DF, TTL
      if (readU16(d, at + 4) !== ((readU16(d, tail + 4) + 1) & 0xffff)) return false; // ids consecutive
    } else {
      if (readU32(d, at) !== readU32(d, head) || d[at + 7] !== d[head + 7]) return false; // class, flow label, hop limit
    }
    const t = at + ipHl;
    const ht = head + ipHl;
    if (this.#tcpHl !== (d[ht + 12]! >> 4) * 4) return false;
    if (readU32(d, t + 4) !== this.#gNextSeq[g]) return false;
    if (readU32(d, t + 8) !== readU32(d, ht + 8) || readU16(d, t + 14) !== readU16(d, ht + 14)) return false; // ACK, window
    for (let i = 20; i < this.#tcpHl; i++) if (d[t + i] !== d[ht + i]) return false; // options
    if (this.#payload > this.#gSegSize[g]!) return false;
    return ipHl + this.#tcpHl + this.#gBytes[g]! + this.#payload <= MAX_SUPER_PACKET;
  }

  #append(g: number, slot: number, d: Uint8Array, at: number): void {
    this.#slotNext[this.#gTail[g]!] = slot;
    this.#slotNext[slot] = -1;
    this.#gTail[g] = slot;
    this.#gCount[g] = this.#gCount[g]! + 1;
    this.#gBytes[g] = this.#gBytes[g]! + this.#payload;
    this.#gNextSeq[g] = (this.#gNextSeq[g]! + this.#payload) >>> 0;
    // A shorter segment or PSH ends what GSO could rebuild from one gso_size.
    if (this.#payload < this.#gSegSize[g]! || d[at + this.#ipHl + 13]! & TCP_PSH) this.#gOpen[g] = 0;
  }

  /**
   * Plans group g as one gathered write: the head packet's headers are made the super-packet's
   * (in place, vnet header in its headroom), then each further segment contributes its payload.
   */
  #build(batch: PacketSlots, g: number): void {
    const d = batch.data;
    const headSlot = this.#gHead[g]!;
    const p = batch.offset(headSlot);
    const v6 = d[p]! >> 4 === 6;
    const ipHl = v6 ? 40 : 20;
    const hdrLen = ipHl + (d[p + ipHl + 12]! >> 4) * 4;
    const w = this.#writes++;
    this.#writeFirstPart[w] = this.#parts;
    this.#addPart(p - VNET_HDR_LEN, VNET_HDR_LEN + batch.lengths[headSlot]!);
    let total = batch.lengths[headSlot]!;
    let lastFlags = d[p + ipHl + 13]!;
    for (let s = this.#slotNext[headSlot]!; s >= 0; s = this.#slotNext[s]!) {
      const at = batch.offset(s);
      const n = batch.lengths[s]!;
      this.#addPart(at + hdrLen, n - hdrLen);
      total += n - hdrLen;
      lastFlags = d[at + ipHl + 13]!;
    }
    this.#writeParts[w] = this.#parts - this.#writeFirstPart[w]!;
    this.#writeLength[w] = total + VNET_HDR_LEN;
    d[p + ipHl + 13] = d[p + ipHl + 13]! | (lastFlags & TCP_PSH);
    let pseudo: number;
    if (v6) {
      d[p + 4] = (total - 40) >> 8;
      d[p + 5] = (total - 40) & 0xff;
      pseudo = pseudoHeaderSumAt(d, p + 8, p + 24, 16, PROTO_TCP, total - 40);
    } else {
      d[p + 2] = total >> 8;
      d[p + 3] = total & 0xff;
      writeIpv4HeaderChecksum(d, p);
      pseudo = pseudoHeaderSumAt(d, p + 12, p + 16, 4, PROTO_TCP, total - 20);
    }
    d[p + ipHl + 16] = pseudo >> 8;
    d[p + ipHl + 17] = pseudo & 0xff;
    writeVnetHeader(d, p - VNET_HDR_LEN, VNET_F_NEEDS_CSUM, v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4, hdrLen, this.#gSegSize[g]!, ipHl, 16);
  }
}

function readU16(d: Uint8Array, at: number): number {
  return (d[at]! << 8) | d[at + 1]!;
}

function readU32(d: Uint8Array, at: number): number {
  return ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
}
