// The last N log lines in memory, for the admin UI's log viewer and a connection's timeline:
// bounded (old lines fall off), filterable by the harmonised ids, with subscribers for live tail.
// With a PersistedLogs attached, kept lines also go to the store, and queries read past the ring
// into it: each line has a sequence number in this run, so a line still in the ring is never
// shown twice (the store's copy from this run at or after the ring's oldest seq is left out).
import { LEVELS, type Level, type LogLine, type LogSink } from "./log.ts";
import type { PersistedLogs } from "./persisted-logs.ts";

export interface LogQuery {
  cid?: number;
  gid?: string;
  rid?: string;
  /** Minimum level. */
  level?: Exclude<Level, "off">;
  /** A target or its prefix ("tunnel" matches "tunnel::nat"). */
  target?: string;
  /** ISO timestamps, inclusive. */
  since?: string;
  until?: string;
  limit?: number;
}

const RANK = Object.fromEntries(LEVELS.map((l, i) => [l, i])) as Record<Level, number>;

export function matches(line: LogLine, q: LogQuery): boolean {
  if (q.cid !== undefined && line.cid !== q.cid) return false;
  if (q.gid !== undefined && line.gid !== q.gid) return false;
  if (q.rid !== undefined && line.rid !== q.rid) return false;
  if (q.level !== undefined && RANK[line.level] < RANK[q.level]) return false;
  if (q.target !== undefined && line.target !== q.target && !line.target.startsWith(`${q.target}::`)) return false;
  if (q.since !== undefined && line.ts < q.since) return false;
  if (q.until !== undefined && line.ts > q.until) return false;
  return true;
}

export class LogRing {
  readonly #lines: (LogLine | undefined)[];
  /** Sequence number of each line in this run (parallel to #lines). */
  readonly #seqs: Float64Array;
  #seq = 0;
  #persisted: PersistedLogs | undefined;
  #next = 0;
  #count = 0;
  readonly #subscribers = new Set<(line: LogLine) => void>();

  constructor(readonly capacity = 10_000) {
    this.#lines = new Array(capacity);
    this.#seqs = new Float64Array(capacity);
  }

  /** Kept lines (warn+, or with a cid) are also persisted, and queries read past the ring into the store. */
  persistTo(p: PersistedLogs | undefined): void {
    this.#persisted = p;
  }

  get persisted(): PersistedLogs | undefined {
    return this.#persisted;
  }

  readonly sink: LogSink = (line) => {
    const seq = this.#seq++;
    this.#persisted?.push(line, seq);
    this.#seqs[this.#next] = seq;
    this.#lines[this.#next] = line;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#count < this.capacity) this.#count++;
    for (const s of this.#subscribers) {
      try {
        s(line);
      } catch {
        // One subscriber failing (a closed live-tail stream) must not stop the others or the logger.
      }
    }
  };

  get size(): number {
    return this.#count;
  }

  /** The oldest sequence number still in the ring (= the next one when empty). */
  get #oldestSeq(): number {
    return this.#count === 0 ? this.#seq : this.#seqs[(this.#next - this.#count + this.capacity) % this.capacity]!;
  }

  /** Matching lines, newest first, at most `limit` (default 200): the ring's, then the store's older ones. */
  query(q: LogQuery = {}): LogLine[] {
    const out = this.#ringQuery((line) => matches(line, q), q.limit ?? 200);
    const limit = q.limit ?? 200;
    if (this.#persisted && out.length < limit) out.push(...this.#persisted.query(q, limit - out.length, this.#oldestSeq));
    return out;
  }

  /**
   * One peer's lines across runs: the ring's with one of its live `cids`, then stored lines
   * written under any of its `keys`; newest first, at most `limit`.
   */
  peerLines(keys: readonly string[], cids: readonly number[], limit = 500): LogLine[] {
    const set = new Set(cids);
    const out = this.#ringQuery((line) => typeof line.cid === "number" && set.has(line.cid), limit);
    if (this.#persisted && out.length < limit) out.push(...this.#persisted.query({ publicKeys: [...keys] }, limit - out.length, this.#oldestSeq));
    return out;
  }

  #ringQuery(keep: (line: LogLine) => boolean, limit: number): LogLine[] {
    const out: LogLine[] = [];
    for (let i = 0; i < this.#count && out.length < limit; i++) {
      const line = this.#lines[(this.#next - 1 - i + this.capacity) % this.capacity]!;
      if (keep(line)) out.push(line);
    }
    return out;
  }

  /** Live tail: `fn` sees every new line until the returned function is called. */
  subscribe(fn: (line: LogLine) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }
}

/** Sends every line to each sink (stderr and the ring, typically). */
export function fanOut(...sinks: LogSink[]): LogSink {
  return (line) => {
    for (const s of sinks) s(line);
  };
}
