// The persisted side of the log viewer: warnings, errors and connection-scoped lines (those with a
// cid) are queued and written to the store in batches, so timelines, the Errors page and Logs by
// cid survive a restart. Never a write per line: the logger's caller (often the packet path) only
// pushes onto a bounded queue; a flush runs every second, or soon after `batch` lines queued, from
// a timer of its own. Trace lines are not kept (see keeps()). Lines logged before the store opens wait in the queue.
import type { ArchivedLine, ArchiveQuery } from "../store/logs.ts";
import { LEVELS, type LogLine } from "./log.ts";
import type { LogQuery } from "./log-ring.ts";

/** What the sink needs of the store (store/logs.ts LogArchive). */
export interface LogArchiveLike {
  insert(rows: readonly ArchivedLine[]): number;
  query(q: ArchiveQuery, limit: number): string[];
}

export interface PersistedLogsOptions {
  /** Lines queued before a flush is due at once (default 1000: one transaction, one fsync, each). */
  batch?: number;
  /** Lines held while the store is slow or not open yet; past it new lines are counted, not kept. */
  queueCap?: number;
  /** How often queued lines are written (default 1000 ms). */
  flushMs?: number;
  /** Schedules an early flush (default: a 0 ms timer, i.e. after the current turn). */
  defer?: (f: () => void) => void;
  /** Names this process's lines (so a query can tell them from a past run's). */
  run?: string;
}

const RANK = Object.fromEntries(LEVELS.map((l, i) => [l, i])) as Record<string, number>;
const WARN = RANK.warn!;
const TRACE = RANK.trace!;

export class PersistedLogs {
  readonly run: string;
  readonly batch: number;
  readonly queueCap: number;
  readonly #flushMs: number;
  readonly #defer: (f: () => void) => void;
  #queue: { line: LogLine; seq: number }[] = [];
  #archive: LogArchiveLike | undefined;
  #keyOf: (cid: number) => string | undefined = () => undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #due = false;
  /** Lines not kept because the queue was full, and flushes that failed (their lines are lost). */
  dropped = 0;
  failedFlushes = 0;
  lastError: unknown;

  constructor(opts: PersistedLogsOptions = {}) {
    this.run = opts.run ?? crypto.randomUUID();
    this.batch = opts.batch ?? 1000;
    this.queueCap = opts.queueCap ?? 10_000;
    this.#flushMs = opts.flushMs ?? 1000;
    this.#defer = opts.defer ?? ((f) => void setTimeout(f, 0));
  }

  /**
   * Which lines are kept: warn and error, and any line about one connection (a cid) from debug up.
   * Trace lines stay in the ring only: they are per packet when on (a debugging session, minutes
   * long), and a database write per packet batch would cost the data path what gating saved it.
   */
  static keeps(line: LogLine): boolean {
    const rank = RANK[line.level]!;
    return rank >= WARN || (typeof line.cid === "number" && rank > TRACE);
  }

  /** Called by the ring for every line, with its sequence number in this run. Cheap: a push. */
  push(line: LogLine, seq: number): void {
    if (!PersistedLogs.keeps(line)) return;
    if (this.#queue.length >= this.queueCap) {
      this.dropped++;
      return;
    }
    // Only a push here: the row (JSON text, parsed time, the cid's peer) is made at flush time.
    this.#queue.push({ line, seq });
    if (this.#archive && this.#queue.length >= this.batch && !this.#due) {
      this.#due = true;
      this.#defer(() => this.flush());
    }
  }

  /**
   * Starts writing to `archive`; `keyOf` names a cid's peer (so a peer's history finds its lines
   * after its cid is gone). The periodic timer does not keep the process alive.
   */
  attach(archive: LogArchiveLike, keyOf: (cid: number) => string | undefined = () => undefined, timers = true): void {
    this.#archive = archive;
    this.#keyOf = keyOf;
    if (timers && !this.#timer) {
      this.#timer = setInterval(() => this.flush(), this.#flushMs);
      this.#timer.unref?.();
    }
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Writes what is queued in one transaction. A failure is counted and the batch dropped (never thrown). */
  flush(): number {
    this.#due = false;
    if (!this.#archive || this.#queue.length === 0) return 0;
    const queued = this.#queue;
    this.#queue = [];
    try {
      const rows = queued.map(({ line, seq }): ArchivedLine => {
        const cid = typeof line.cid === "number" ? line.cid : null;
        return {
          ts: Date.parse(line.ts),
          level: RANK[line.level]!,
          target: line.target,
          cid,
          gid: typeof line.gid === "string" ? line.gid : null,
          rid: typeof line.rid === "string" ? line.rid : null,
          publicKey: cid === null ? null : (this.#keyOf(cid) ?? null),
          run: this.run,
          seq,
          line: JSON.stringify(line),
        };
      });
      this.#archive.insert(rows);
      return rows.length;
    } catch (err) {
      // A full or locked disk must not take logging down; the ring still has the lines.
      this.failedFlushes++;
      this.lastError = err;
      return 0;
    }
  }

  /** Final flush and detach (shutdown, before the store closes). */
  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.#archive = undefined;
  }

  /** Stored lines matching `q`, newest first, minus this run's from `fromSeq` on (the ring has those). */
  query(q: LogQuery & { publicKeys?: string[] }, limit: number, fromSeq: number): LogLine[] {
    if (!this.#archive || limit <= 0) return [];
    const aq: ArchiveQuery = { exclude: { run: this.run, fromSeq } };
    if (q.cid !== undefined) aq.cid = q.cid;
    if (q.gid !== undefined) aq.gid = q.gid;
    if (q.rid !== undefined) aq.rid = q.rid;
    if (q.level !== undefined) aq.minLevel = RANK[q.level];
    if (q.target !== undefined) aq.target = q.target;
    if (q.since !== undefined) aq.since = Date.parse(q.since);
    if (q.until !== undefined) aq.until = Date.parse(q.until);
    if (q.publicKeys !== undefined) aq.publicKeys = q.publicKeys;
    const out: LogLine[] = [];
    for (const text of this.#archive.query(aq, limit)) {
      try {
        out.push(JSON.parse(text) as LogLine);
      } catch {
        // A row that is not JSON (hand-edited database): skipped, not fatal to the page.
      }
    }
    return out;
  }
}
