// Gateway-wide rates for the Overview's live charts: a small ring of rx/tx bytes per second and
// handshakes per interval, fed every few seconds from the connections' cumulative counters.
// The store's traffic samples (store/traffic.ts) are per peer and minutes apart; this is the
// last few minutes at a glance, in memory only. Sans-IO: the caller passes the time.

export interface RatePoint {
  /** End of the interval (Unix ms). */
  ts: number;
  /** Length of the interval in seconds. */
  interval_s: number;
  rx_bytes_per_s: number;
  tx_bytes_per_s: number;
  /** Handshakes completed / given up in the interval. */
  handshakes: number;
  handshake_failures: number;
}

export interface ConnectionCounters {
  cid: number;
  rxBytes: number;
  txBytes: number;
  handshakesCompleted: number;
  handshakesFailed: number;
}

type Last = { rx: number; tx: number; hs: number; hf: number };

export class ThroughputRing {
  readonly #points: RatePoint[] = [];
  readonly #last = new Map<number, Last>();
  #at: number;

  /** `start`: when the counters started from zero (the gateway's start). */
  constructor(start: number, private readonly capacity = 120) {
    this.#at = start;
  }

  /**
   * Adds the interval since the previous call. Per connection, so a peer removed (its counters
   * gone from the sum) does not make the gateway's rate negative; a counter that went down (the
   * peer was re-added) counts from zero.
   */
  sample(now: number, counters: Iterable<ConnectionCounters>): void {
    this.#add(now, counters, undefined);
  }

  /**
   * The same from the connections whose counters can have moved since the last call (the tunnel's
   * touched ones, telemetry/touched.ts), and the cids removed meanwhile: every other connection
   * adds nothing, so it need not be listed. Equal to sample() over every connection.
   */
  sampleChanged(now: number, changed: Iterable<ConnectionCounters>, removed: Iterable<number>): void {
    for (const cid of removed) this.#last.delete(cid);
    this.#add(now, changed, "changed");
  }

  #add(now: number, counters: Iterable<ConnectionCounters>, only: "changed" | undefined): void {
    const seconds = (now - this.#at) / 1000;
    if (seconds <= 0) return;
    let rx = 0, tx = 0, hs = 0, hf = 0;
    const seen = new Set<number>();
    const delta = (cur: number, prev: number) => (cur >= prev ? cur - prev : cur);
    for (const c of counters) {
      seen.add(c.cid);
      const p = this.#last.get(c.cid) ?? { rx: 0, tx: 0, hs: 0, hf: 0 };
      rx += delta(c.rxBytes, p.rx);
      tx += delta(c.txBytes, p.tx);
      hs += delta(c.handshakesCompleted, p.hs);
      hf += delta(c.handshakesFailed, p.hf);
      this.#last.set(c.cid, { rx: c.rxBytes, tx: c.txBytes, hs: c.handshakesCompleted, hf: c.handshakesFailed });
    }
    if (only !== "changed") for (const cid of this.#last.keys()) if (!seen.has(cid)) this.#last.delete(cid);
    this.#points.push({ ts: now, interval_s: seconds, rx_bytes_per_s: rx / seconds, tx_bytes_per_s: tx / seconds, handshakes: hs, handshake_failures: hf });
    if (this.#points.length > this.capacity) this.#points.shift();
    this.#at = now;
  }

  /** Oldest first; a copy. */
  points(): RatePoint[] {
    return this.#points.slice();
  }
}
