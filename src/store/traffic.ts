// Per-peer traffic history: the gateway samples its counters periodically and stores deltas, so
// charts survive restarts (counters in memory start from zero at every start).
import { and, asc, eq, gte, lt } from "drizzle-orm";
import type { Db } from "./database.ts";
import { trafficSamples } from "./schema.ts";

export interface TrafficPoint {
  ts: number;
  rxBytes: number;
  txBytes: number;
}

export class TrafficHistory {
  readonly #last = new Map<string, { rx: number; tx: number }>();
  constructor(private readonly db: Db) {}

  /**
   * Records the change since the previous call for each peer's cumulative counters. A counter
   * that went down (a reconnect reset it) counts from zero.
   */
  sample(ts: number, counters: { publicKey: string; rxBytes: number; txBytes: number }[]): number {
    const rows = [];
    for (const c of counters) {
      const prev = this.#last.get(c.publicKey) ?? { rx: 0, tx: 0 };
      const rx = c.rxBytes >= prev.rx ? c.rxBytes - prev.rx : c.rxBytes;
      const tx = c.txBytes >= prev.tx ? c.txBytes - prev.tx : c.txBytes;
      this.#last.set(c.publicKey, { rx: c.rxBytes, tx: c.txBytes });
      if (rx > 0 || tx > 0) rows.push({ ts, publicKey: c.publicKey, rxBytes: rx, txBytes: tx });
    }
    if (rows.length) this.db.insert(trafficSamples).values(rows).run();
    return rows.length;
  }

  series(publicKey: string, since: number): TrafficPoint[] {
    return this.db.select({ ts: trafficSamples.ts, rxBytes: trafficSamples.rxBytes, txBytes: trafficSamples.txBytes })
      .from(trafficSamples).where(and(eq(trafficSamples.publicKey, publicKey), gte(trafficSamples.ts, since)))
      .orderBy(asc(trafficSamples.ts)).all();
  }

  prune(before: number): void {
    this.db.delete(trafficSamples).where(lt(trafficSamples.ts, before)).run();
  }
}
