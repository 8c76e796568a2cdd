// The last N log lines in memory, for the admin UI's log viewer and a connection's timeline:
// bounded (old lines fall off), filterable by the harmonised ids, with subscribers for live tail.
import { LEVELS, type Level, type LogLine, type LogSink } from "./log.ts";

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
  #next = 0;
  #count = 0;
  readonly #subscribers = new Set<(line: LogLine) => void>();

  constructor(readonly capacity = 10_000) {
    this.#lines = new Array(capacity);
  }

  readonly sink: LogSink = (line) => {
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

  /** Matching lines, newest first, at most `limit` (default 200). */
  query(q: LogQuery = {}): LogLine[] {
    const out: LogLine[] = [];
    const limit = q.limit ?? 200;
    for (let i = 0; i < this.#count && out.length < limit; i++) {
      const line = this.#lines[(this.#next - 1 - i + this.capacity) % this.capacity]!;
      if (matches(line, q)) out.push(line);
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
