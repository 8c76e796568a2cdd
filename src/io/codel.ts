// CoDel (RFC 8289), the queue discipline for the gateway's receive queue: the UDP socket's buffer
// plus the datagram ring. The socket buffer is 8 MB so bursts are not lost while the event loop is
// busy, but a buffer that size can also hold a *standing* queue: a TCP flow through the tunnel
// fills it until the kernel drops at the tail, and every packet of every flow (pings, DNS, the
// ACKs of other flows) then waits behind tens of milliseconds of bulk data ("bufferbloat").
// CoDel looks at how long each packet waited (its sojourn time) rather than at the queue's length.
// While the shortest wait stays above `target` for a whole `interval`, it drops one packet, then
// drops at a rate that grows with the square root of the drops so far, until waits fall back below
// target. TCP reads the drops as congestion and slows down; the queue drains to a few
// milliseconds; short bursts, which drain within an interval, lose nothing.
//
// Sans-IO: the caller measures the sojourn (kernel receive timestamp to dequeue) and passes the
// time in; nothing here reads a clock. Times are milliseconds.

/** RFC 8289 §4.2-4.3: 5 ms target and 100 ms interval, right for terrestrial paths. */
export const CODEL_TARGET_MS = 5;
export const CODEL_INTERVAL_MS = 100;

export interface CoDelOptions {
  targetMs?: number;
  intervalMs?: number;
}

export class CoDel {
  readonly targetMs: number;
  readonly intervalMs: number;
  /** Packets this discipline told the caller to drop. */
  dropped = 0;
  /** When the sojourn first went above target (plus one interval); 0 while below. */
  #firstAboveTime = 0;
  #dropping = false;
  #dropNext = 0;
  /** Drops in the current dropping state (sets the drop rate), and at the start of the last one. */
  #count = 0;
  #lastCount = 0;

  constructor(o: CoDelOptions = {}) {
    this.targetMs = o.targetMs ?? CODEL_TARGET_MS;
    this.intervalMs = o.intervalMs ?? CODEL_INTERVAL_MS;
  }

  /** In the dropping state (the queue has stood above target for an interval). */
  get dropping(): boolean {
    return this.#dropping;
  }

  /**
   * Called for each packet as it leaves the queue, after waiting `sojournMs`, at `nowMs`. True: drop
   * it. The RFC's dequeue loop drops several packets at one instant when the schedule says so; here
   * each following packet asks again with the same `nowMs`, which comes to the same thing.
   */
  shouldDrop(sojournMs: number, nowMs: number): boolean {
    const okToDrop = this.#okToDrop(sojournMs, nowMs);
    if (this.#dropping) {
      if (!okToDrop) {
        this.#dropping = false; // the wait fell below target: stop dropping
        return false;
      }
      if (nowMs < this.#dropNext) return false;
      this.#count++;
      this.#dropNext = this.#controlLaw(this.#dropNext);
      this.dropped++;
      return true;
    }
    if (!okToDrop) return false;
    // Entering the dropping state. If it was left only recently, resume near the rate that
    // worked then rather than from one drop per interval (RFC 8289 §5.5).
    this.#dropping = true;
    const delta = this.#count - this.#lastCount;
    this.#count = delta > 1 && nowMs - this.#dropNext < 16 * this.intervalMs ? delta : 1;
    this.#lastCount = this.#count;
    this.#dropNext = this.#controlLaw(nowMs);
    this.dropped++;
    return true;
  }

  #okToDrop(sojournMs: number, nowMs: number): boolean {
    if (sojournMs < this.targetMs) {
      this.#firstAboveTime = 0;
      return false;
    }
    if (this.#firstAboveTime === 0) {
      this.#firstAboveTime = nowMs + this.intervalMs;
      return false;
    }
    return nowMs >= this.#firstAboveTime;
  }

  /** The next drop comes interval/√count later: the rate rises until the queue gives way. */
  #controlLaw(t: number): number {
    return t + this.intervalMs / Math.sqrt(this.#count);
  }
}
