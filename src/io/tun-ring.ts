// A single-producer/single-consumer ring of packets in a SharedArrayBuffer: the TUN reader worker
// writes, the event loop reads. Packets cross without postMessage per packet; a message is sent
// only to wake a consumer that said it was going to sleep (no lost wake-ups: see `sleep()`).

export const CTL_WRITE = 0;
export const CTL_READ = 1;
export const CTL_SLEEPING = 2;
export const CTL_STOP = 3;
/**
 * The producer set it before waiting on a full ring: only then does a drain pay for
 * Atomics.notify (a futex call per turn otherwise, measured ~4 % of the main thread under load).
 */
export const CTL_PRODUCER_WAITING = 4;
const CTL_WORDS = 8;

export interface RingLayout {
  slots: number;
  slotSize: number;
  /**
   * Bytes left free at the start of each slot before the read lands. An offload TUN read starts
   * with a 10-byte vnet header; a lead of 6 puts the packet behind it on a 4-byte boundary, so
   * segmentation copies it word by word (ip/copy.ts).
   */
  lead?: number;
}

export class PacketRing {
  readonly ctl: Int32Array;
  readonly lengths: Int32Array;
  readonly data: Uint8Array;

  constructor(readonly sab: SharedArrayBuffer, readonly layout: RingLayout) {
    this.ctl = new Int32Array(sab, 0, CTL_WORDS);
    this.lengths = new Int32Array(sab, CTL_WORDS * 4, layout.slots);
    this.data = new Uint8Array(sab, (CTL_WORDS + layout.slots) * 4, layout.slots * layout.slotSize);
  }

  static create(layout: RingLayout): PacketRing {
    return new PacketRing(new SharedArrayBuffer((CTL_WORDS + layout.slots) * 4 + layout.slots * layout.slotSize), layout);
  }

  /** Offset of slot `i` (a sequence number) in `data`. */
  slotOffset(seq: number): number {
    return (seq % this.layout.slots) * this.layout.slotSize;
  }

  get pending(): number {
    return (Atomics.load(this.ctl, CTL_WRITE) - Atomics.load(this.ctl, CTL_READ)) | 0;
  }

  /**
   * Consumer: calls `fn(data, offset, length)` for up to `budget` packets, in order. The view is
   * only valid during the call (the slot is reused afterwards). Returns how many were consumed.
   */
  drain(budget: number, fn: (data: Uint8Array, offset: number, length: number) => void): number {
    const w = Atomics.load(this.ctl, CTL_WRITE);
    let r = Atomics.load(this.ctl, CTL_READ);
    let n = 0;
    while (r !== w && n < budget) {
      try {
        fn(this.data, this.slotOffset(r) + (this.layout.lead ?? 0), this.lengths[r % this.layout.slots]!);
      } finally {
        r = (r + 1) | 0;
        n++;
        Atomics.store(this.ctl, CTL_READ, r);
      }
    }
    if (n > 0) wakeProducer(this.ctl, CTL_READ, CTL_PRODUCER_WAITING);
    return n;
  }

  /**
   * Consumer: announces it will wait for a wake-up message. Returns false (and stays awake) if
   * packets arrived meanwhile — the producer checks the flag after publishing, so one side always
   * sees the other.
   */
  sleep(): boolean {
    Atomics.store(this.ctl, CTL_SLEEPING, 1);
    if (this.pending !== 0) {
      Atomics.store(this.ctl, CTL_SLEEPING, 0);
      return false;
    }
    return true;
  }
}

/**
 * Consumer side of the full-ring wait, after publishing the read counter (`readWord`): notifies only
 * a producer that announced it waits (`waitingWord`). Both sides use sequentially consistent atomics
 * — the producer stores its flag and then re-reads the counter, the consumer stores the counter and
 * then reads the flag — so either the producer sees the freed slots or the consumer sees the flag.
 */
export function wakeProducer(ctl: Int32Array, readWord: number, waitingWord: number): void {
  if (Atomics.load(ctl, waitingWord) !== 0) Atomics.notify(ctl, readWord);
}

/**
 * Producer side: waits (up to `timeoutMs`) until the consumer frees a slot of a ring holding
 * `slots` entries from sequence `write` on. Returns at once when a slot is already free.
 */
export function waitForRoom(ctl: Int32Array, readWord: number, waitingWord: number, write: number, slots: number, timeoutMs: number): void {
  Atomics.store(ctl, waitingWord, 1);
  const r = Atomics.load(ctl, readWord);
  if (((write - r) | 0) >= slots) Atomics.wait(ctl, readWord, r, timeoutMs);
  Atomics.store(ctl, waitingWord, 0);
}
