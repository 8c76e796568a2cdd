// The connections a periodic sampler has to look at: those the tunnel touched (traffic, timers,
// events, removal) since that sampler last ran. The tunnel lists them once per round
// (Tunnel.takeTouched); samplers with different periods (problems every second, rates every few
// seconds, traffic history every minute) each keep what arrived since their own last run. A map
// entry per active connection and period: the cost follows the active connections, never the
// configured ones.
import type { Connection } from "../tunnel/index.ts";

export class TouchedSince {
  readonly #live = new Map<number, Connection>();
  readonly #removed = new Map<number, Connection>();

  /** Adds one round of the tunnel's list. */
  add(round: readonly Connection[]): void {
    for (const c of round) {
      if (c.removed) {
        this.#live.delete(c.cid);
        this.#removed.set(c.cid, c);
      } else this.#live.set(c.cid, c);
    }
  }

  /** What arrived since the last take: connections still in the tunnel, and removed ones. */
  take(): { live: Connection[]; removed: Connection[] } {
    const out = { live: [...this.#live.values()], removed: [...this.#removed.values()] };
    this.#live.clear();
    this.#removed.clear();
    return out;
  }
}

/** Feeds every sampler's TouchedSince from the tunnel: call it at the start of each sampler's run. */
export function touchedFeed(takeTouched: () => readonly Connection[], samplers: readonly TouchedSince[]): () => void {
  return () => {
    const round = takeTouched();
    for (const s of samplers) s.add(round);
  };
}
