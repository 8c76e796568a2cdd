// The two output batches of one event-loop turn, in pooled memory: the sans-IO core writes packets
// straight into their slots (nothing allocated per packet) and the IO shells hand whole batches to
// the kernel — datagrams with sendmmsg / UDP GSO, inner packets to the TUN (coalesced into TCP
// super-packets when the device takes offloads). The core never sees a socket or an fd.
import type { Endpoint } from "../wire/index.ts";

/** Room left in front of every TUN slot: a virtio_net_hdr (10 B) fits without moving the packet. */
export const TUN_HEADROOM = 16;

/** Fixed-size slots in one buffer (sized from the MTU by whoever makes it). `count` slots are committed; slot i starts at `offset(i)`. */
class SlotBatch {
  readonly data: Uint8Array;
  readonly lengths: Int32Array;
  count = 0;

  constructor(readonly capacity: number, readonly slotSize: number, readonly headroom: number) {
    this.data = new Uint8Array(capacity * slotSize);
    this.lengths = new Int32Array(capacity);
  }

  /** Where slot i's payload starts in `data` (after its headroom). */
  offset(i: number): number {
    return i * this.slotSize + this.headroom;
  }

  /**
   * Slot i's payload area as its own view, starting at index 0 — for parsers that read from 0
   * (ip/packet.ts's PacketView). Made once per slot and kept, so the data path allocates none.
   */
  view(i: number): Uint8Array {
    const views = (this.#views ??= new Array<Uint8Array | undefined>(this.capacity).fill(undefined));
    return (views[i] ??= this.data.subarray(this.offset(i), this.offset(i) + this.room));
  }
  #views: (Uint8Array | undefined)[] | undefined;

  /** Bytes a payload may take in one slot. */
  get room(): number {
    return this.slotSize - this.headroom;
  }

  /** Offset of the next free slot's payload, or -1 when the batch is full (flush it first). */
  next(): number {
    return this.count < this.capacity ? this.count * this.slotSize + this.headroom : -1;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  clear(): void {
    this.count = 0;
  }
}

/**
 * Datagrams to send: slot payloads are complete WireGuard messages. Consecutive slots to the same
 * endpoint with equal lengths (the last may be shorter) are what a UDP GSO send carries in one call.
 */
export class DatagramBatch extends SlotBatch {
  readonly to: (Endpoint | undefined)[];

  constructor(capacity = 256, slotSize = 2048) {
    super(capacity, slotSize, 0);
    this.to = new Array<Endpoint | undefined>(capacity).fill(undefined);
  }

  /** Commits the payload written at `next()`: `length` bytes for `to`. */
  commit(length: number, to: Endpoint): void {
    this.lengths[this.count] = length;
    this.to[this.count] = to;
    this.count++;
  }

  override clear(): void {
    // Endpoints are kept referenced until overwritten; they are shared objects, not per packet.
    this.count = 0;
  }
}

/** Inner IP packets for the TUN, each slot with TUN_HEADROOM bytes in front for the shell's header. */
export class TunBatch extends SlotBatch {
  constructor(capacity = 256, slotSize = 2048) {
    super(capacity, slotSize, TUN_HEADROOM);
  }

  /** Commits the packet written at `next()`. */
  commit(length: number): void {
    this.lengths[this.count] = length;
    this.count++;
  }
}
