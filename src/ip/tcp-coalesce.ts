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

  // The planned writes of the last `coalesce()`: buffer (batch data or the arena), offset, length.
  #writeInArena = new Uint8Array(0);
  #writeOffset = new Int32Array(0);
  #writeLength = new Int32Array(0);
  #writes = 0;
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
  /** Buffer of write i: the batch's data (lone packets) or the coalescer's own arena (merged ones). */
  writeBuffer(i: number): Uint8Array {
    return this.#writeInArena[i] ? this.#arena : this.#data;
  }
  writeOffset(i: number): number {
    return this.#writeOffset[i]!;
  }
  writeLength(i: number): number {
    return this.#writeLength[i]!;
  }

  #ensure(batch: PacketSlots): void {
    const cap = batch.capacity;
    if (this.#gHead.length < cap) {
      this.#writeInArena = new Uint8Array(cap);
      this.#writeOffset = new Int32Array(cap);
      this.#writeLength = new Int32Array(cap);
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
    // Merged output is never longer than its input plus one header per write.
    const arena = cap * batch.slotSize + cap * (VNET_HDR_LEN + 3);
    if (this.#arena.length < arena) this.#arena = new Uint8Array(arena);
  }

  /**
   * Plans the TUN writes for the packets of `batch` (read them with writeCount/writeBuffer/
   * writeOffset/writeLength until the next call). Writes into the batch's headroom; the batch
   * must not change until the writes are done. Returns the number of writes.
   */
  coalesce(batch: PacketSlots): number {
    this.#data = batch.data;
    this.#writes = 0;
    if (!this.vnetHeader) {
      this.#ensure(batch);
      for (let i = 0; i < batch.count; i++) this.#addWrite(0, batch.offset(i), batch.lengths[i]!);
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
    let arenaAt = 0;
    for (let g = 0; g < this.#groups; g++) {
      const head = this.#gHead[g]!;
      if (this.#gCount[g] === 1) {
        const at = batch.offset(head) - VNET_HDR_LEN;
        writeZeroVnetHeader(d, at);
        this.#addWrite(0, at, batch.lengths[head]! + VNET_HDR_LEN);
        this.loneWrites++;
      } else {
        // Start the packet (behind its 10-byte header) on a 4-byte boundary: payloads then copy word-wise.
        arenaAt += (2 - arenaAt) & 3;
        const len = this.#build(batch, g, arenaAt);
        this.#addWrite(1, arenaAt, len);
        arenaAt += len;
        this.mergedWrites++;
        this.mergedSegments += this.#gCount[g]!;
      }
    }
    return this.#writes;
  }

  #addWrite(inArena: number, at: number, len: number): void {
    const w = this.#writes++;
    this.#writeInArena[w] = inArena;
    this.#writeOffset[w] = at;
    this.#writeLength[w] = len;
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

  /** Writes group g as vnet header + super-packet at arena[w, …); returns its length. */
  #build(batch: PacketSlots, g: number, w: number): number {
    const d = batch.data;
    const a = this.#arena;
    const headSlot = this.#gHead[g]!;
    const head = batch.offset(headSlot);
    const v6 = d[head]! >> 4 === 6;
    const ipHl = v6 ? 40 : 20;
    const hdrLen = ipHl + (d[head + ipHl + 12]! >> 4) * 4;
    const p = w + VNET_HDR_LEN;
    copyBytes(d, head, a, p, hdrLen);
    let end = p + hdrLen;
    let lastFlags = 0;
    for (let s = headSlot; s >= 0; s = this.#slotNext[s]!) {
      const at = batch.offset(s);
      const n = batch.lengths[s]!;
      copyBytes(d, at + hdrLen, a, end, n - hdrLen);
      end += n - hdrLen;
      lastFlags = d[at + ipHl + 13]!;
    }
    const total = end - p;
    a[p + ipHl + 13] = a[p + ipHl + 13]! | (lastFlags & TCP_PSH);
    let pseudo: number;
    if (v6) {
      a[p + 4] = (total - 40) >> 8;
      a[p + 5] = (total - 40) & 0xff;
      pseudo = pseudoHeaderSumAt(a, p + 8, p + 24, 16, PROTO_TCP, total - 40);
    } else {
      a[p + 2] = total >> 8;
      a[p + 3] = total & 0xff;
      writeIpv4HeaderChecksum(a, p);
      pseudo = pseudoHeaderSumAt(a, p + 12, p + 16, 4, PROTO_TCP, total - 20);
    }
    a[p + ipHl + 16] = pseudo >> 8;
    a[p + ipHl + 17] = pseudo & 0xff;
    writeVnetHeader(a, w, VNET_F_NEEDS_CSUM, v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4, hdrLen, this.#gSegSize[g]!, ipHl, 16);
    return total + VNET_HDR_LEN;
  }
}

function readU16(d: Uint8Array, at: number): number {
  return (d[at]! << 8) | d[at + 1]!;
}

function readU32(d: Uint8Array, at: number): number {
  return ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
}
