// Rate limits for repeated reports (log lines, Sentry events) of the same thing: an error that
// repeats per packet or per turn must not flood the log ring (evicting every other line) or
// Sentry. Per key, at most `burst` pass in each window of `windowMs`; the rest are counted, and
// the first one let through in the next window carries that count, so nothing vanishes unsaid.
// Time is passed in (any monotonic milliseconds), so tests drive it without a clock.

export interface ThrottleOptions {
  windowMs: number;
  burst: number;
  /** Distinct keys remembered; the oldest is forgotten beyond this (keys may come from input). */
  maxKeys?: number;
}

interface Window {
  start: number;
  passed: number;
  suppressed: number;
}

export class Throttle {
  readonly #windows = new Map<string, Window>();
  readonly #maxKeys: number;
  /** Reports held back since start, over all keys. */
  suppressedTotal = 0;

  constructor(readonly opts: ThrottleOptions) {
    this.#maxKeys = opts.maxKeys ?? 1000;
  }

  /**
   * Whether a report for `key` at `now` may go out: undefined when it is held back, else the
   * number of reports held back for this key since the last one that went out.
   */
  admit(key: string, now: number): number | undefined {
    let w = this.#windows.get(key);
    if (w && now - w.start >= this.opts.windowMs) {
      const suppressed = w.suppressed;
      w.start = now;
      w.passed = 1;
      w.suppressed = 0;
      return suppressed;
    }
    if (!w) {
      if (this.#windows.size >= this.#maxKeys) this.#windows.delete(this.#windows.keys().next().value!);
      w = { start: now, passed: 0, suppressed: 0 };
      this.#windows.set(key, w);
    }
    if (w.passed < this.opts.burst) {
      w.passed++;
      return 0;
    }
    w.suppressed++;
    this.suppressedTotal++;
    return undefined;
  }

  get keys(): number {
    return this.#windows.size;
  }
}
