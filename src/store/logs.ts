// Persisted log lines: warnings, errors and connection-scoped lines (telemetry/persisted-logs.ts
// decides which and batches them). Bounded twice: a row cap (the oldest go first) and retention
// by age, like the audit trail.
import { and, desc, eq, gte, inArray, like, lt, lte, not, or, sql, type SQL } from "drizzle-orm";
import type { Db } from "./database.ts";
import { logLines } from "./schema.ts";

export interface ArchivedLine {
  ts: number;
  level: number;
  target: string;
  cid: number | null;
  gid: string | null;
  rid: string | null;
  publicKey: string | null;
  run: string;
  seq: number;
  line: string;
}

export interface ArchiveQuery {
  cid?: number;
  gid?: string;
  rid?: string;
  /** Minimum level rank. */
  minLevel?: number;
  target?: string;
  since?: number;
  until?: number;
  /** Lines of these peers (by the key their cid had when written). */
  publicKeys?: string[];
  /** Leave out this run's lines from `seq` on: the in-memory ring still has them. */
  exclude?: { run: string; fromSeq: number };
}

/** Rows per INSERT: 10 bound values each, far below SQLite's variable limit. */
const INSERT_CHUNK = 500;
export const DEFAULT_LOG_ROW_CAP = 200_000;

export class LogArchive {
  constructor(private readonly db: Db, readonly rowCap = DEFAULT_LOG_ROW_CAP) {}

  /** One transaction; then the oldest rows past the cap are deleted. Returns how many went. */
  insert(rows: readonly ArchivedLine[]): number {
    if (rows.length === 0) return 0;
    return this.db.transaction((tx) => {
      for (let i = 0; i < rows.length; i += INSERT_CHUNK) tx.insert(logLines).values(rows.slice(i, i + INSERT_CHUNK) as ArchivedLine[]).run();
      // Rows are only appended (a rowid one past the largest) and only the oldest deleted, so the
      // ids are dense: keeping ids above max − cap keeps the newest `rowCap` rows, found through
      // the primary key alone (an OFFSET would walk the whole cap on every flush).
      const max = tx.select({ id: sql<number | null>`max(${logLines.id})` }).from(logLines).get()?.id ?? 0;
      if (max <= this.rowCap) return 0;
      return tx.delete(logLines).where(lte(logLines.id, max - this.rowCap)).returning({ id: logLines.id }).all().length;
    });
  }

  #where(q: ArchiveQuery): SQL | undefined {
    const c: (SQL | undefined)[] = [];
    if (q.cid !== undefined) c.push(eq(logLines.cid, q.cid));
    if (q.gid !== undefined) c.push(eq(logLines.gid, q.gid));
    if (q.rid !== undefined) c.push(eq(logLines.rid, q.rid));
    if (q.minLevel !== undefined) c.push(gte(logLines.level, q.minLevel));
    if (q.target !== undefined) c.push(or(eq(logLines.target, q.target), like(logLines.target, `${q.target.replace(/[%_\\]/g, "\\$&")}::%`)));
    if (q.since !== undefined) c.push(gte(logLines.ts, q.since));
    if (q.until !== undefined) c.push(lte(logLines.ts, q.until));
    if (q.publicKeys) c.push(q.publicKeys.length ? inArray(logLines.publicKey, q.publicKeys) : sql`0`);
    if (q.exclude) c.push(not(and(eq(logLines.run, q.exclude.run), gte(logLines.seq, q.exclude.fromSeq))!));
    return c.length ? and(...c) : undefined;
  }

  /** Matching lines (their JSON), newest first. */
  query(q: ArchiveQuery, limit: number): string[] {
    if (limit <= 0) return [];
    return this.db.select({ line: logLines.line }).from(logLines).where(this.#where(q)).orderBy(desc(logLines.ts), desc(logLines.id)).limit(limit).all().map((r) => r.line);
  }

  count(): number {
    return this.db.select({ n: sql<number>`count(*)` }).from(logLines).get()?.n ?? 0;
  }

  /** Retention: deletes lines older than `before` (Unix ms). Returns how many went. */
  prune(before: number): number {
    return this.db.delete(logLines).where(lt(logLines.ts, before)).returning({ id: logLines.id }).all().length;
  }
}
