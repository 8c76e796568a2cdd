// The reconnect delays Firezone's gateway uses: the `backoff` crate's ExponentialBackoff (500 ms,
// ×1.5, ±50 % jitter, interval capped at 60 s) with a 15-minute budget counted from the first
// failure. Randomness comes in (`random()` in [0, 1)) so tests replay exact schedules.
import {
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_ELAPSED_MS,
  BACKOFF_MAX_INTERVAL_MS,
  BACKOFF_MULTIPLIER,
  BACKOFF_RANDOMIZATION,
} from "./constants.ts";

export class ReconnectBackoff {
  private interval = BACKOFF_INITIAL_MS;

  constructor(
    private readonly startedAt: number,
    private readonly random: () => number,
    private readonly maxElapsedMs = BACKOFF_MAX_ELAPSED_MS,
  ) {}

  /** The next delay, or undefined once the budget is spent: a retry is never scheduled past it. */
  next(now: number): number | undefined {
    const elapsed = now - this.startedAt;
    if (elapsed > this.maxElapsedMs) return undefined;
    const spread = this.interval * BACKOFF_RANDOMIZATION;
    const delay = Math.round(this.interval - spread + this.random() * 2 * spread);
    this.interval = Math.min(this.interval * BACKOFF_MULTIPLIER, BACKOFF_MAX_INTERVAL_MS);
    return elapsed + delay > this.maxElapsedMs ? undefined : delay;
  }
}
