// The audit trail: who changed what (with before/after), connections established and closed,
// admin logins and failures. Append-only but for retention pruning.
import { and, count, desc, eq, gte, inArray, lt, lte, type SQL } from "drizzle-orm";
import type { Db } from "./database.ts";
import { auditEvents } from "./schema.ts";
import type { auditEvents as pgAuditEvents } from "./schema-pg.ts";

export type AuditAction =
  | "peer.created" | "peer.updated" | "peer.deleted"
  | "resource.created" | "resource.updated" | "resource.deleted"
  | "connection.established" | "connection.closed"
  | "admin.login" | "admin.login_failed" | "admin.login_throttled" | "admin.created" | "admin.password_changed" | "token.created"
  | "settings.updated"
  | "capture.started" | "capture.stopped"
  | "gateway.takeover";

export interface AuditInput {
  actor: string;
  action: AuditAction;
  subject?: string;
  cid?: number;
  before?: unknown;
  after?: unknown;
  reason?: string;
  /** The gateway that writes the row; AuditLog fills in its own when left out. */
  gid?: string;
}

export interface AuditRow {
  id: number;
  ts: number;
  actor: string;
  action: string;
  subject: string | null;
  cid: number | null;
  before: string | null;
  after: string | null;
  reason: string | null;
  gid: string | null;
}

export interface AuditFilter {
  action?: string;
  actor?: string;
  subject?: string;
  /** Any of these subjects: a peer's whole trail is its keys (peer.*, connection.*, capture.* rows). */
  subjects?: string[];
  /** The `?peer=` that gave `subjects` (kept for the page's links; the query uses `subjects`). */
  peer?: string;
  cid?: number;
  gid?: string;
  since?: number;
  until?: number;
}

type Awaitable<T> = T | Promise<T>;

/**
 * The audit trail as both stores offer it: SQLite's answers at once (bun:sqlite is synchronous),
 * PostgreSQL's as promises (audit-pg.ts); code written against this interface awaits and works
 * with either.
 */
export interface AuditRepository {
  record(e: AuditInput, ts?: number): Awaitable<void>;
  query(f: AuditFilter, page?: { limit: number; offset: number }): Awaitable<{ rows: AuditRow[]; total: number }>;
  prune(before: number): Awaitable<number>;
}

/** The row an event is stored as, in either dialect. */
export function auditValues(e: AuditInput, ts: number) {
  return {
    ts,
    actor: e.actor,
    action: e.action,
    subject: e.subject ?? null,
    cid: e.cid ?? null,
    before: e.before === undefined ? null : JSON.stringify(e.before),
    after: e.after === undefined ? null : JSON.stringify(e.after),
    reason: e.reason ?? null,
    gid: e.gid ?? null,
  };
}

/** A filter as a WHERE clause over either dialect's audit table (same column names and meaning). */
export function auditWhere(t: typeof auditEvents | typeof pgAuditEvents, f: AuditFilter): SQL | undefined {
  const c: SQL[] = [];
  if (f.action) c.push(eq(t.action, f.action));
  if (f.actor) c.push(eq(t.actor, f.actor));
  if (f.subject) c.push(eq(t.subject, f.subject));
  if (f.subjects) c.push(f.subjects.length ? inArray(t.subject, f.subjects) : eq(t.id, -1));
  if (f.cid !== undefined) c.push(eq(t.cid, f.cid));
  if (f.gid !== undefined) c.push(eq(t.gid, f.gid));
  if (f.since !== undefined) c.push(gte(t.ts, f.since));
  if (f.until !== undefined) c.push(lte(t.ts, f.until));
  return c.length ? and(...c) : undefined;
}

export class AuditLog implements AuditRepository {
  /** `gid`: this gateway's id, stamped on every row it records (a shared database tells gateways apart). */
  constructor(private readonly db: Db, private readonly gid?: string) {}

  record(e: AuditInput, ts = Date.now()): void {
    this.db.insert(auditEvents).values(auditValues({ gid: this.gid, ...e }, ts)).run();
  }

  /** Newest first, paginated. */
  query(f: AuditFilter, page: { limit: number; offset: number } = { limit: 50, offset: 0 }): { rows: AuditRow[]; total: number } {
    const where = auditWhere(auditEvents, f);
    const rows = this.db.select().from(auditEvents).where(where).orderBy(desc(auditEvents.id)).limit(page.limit).offset(page.offset).all();
    const total = this.db.select({ n: count() }).from(auditEvents).where(where).get()?.n ?? 0;
    return { rows, total };
  }

  /** Retention: deletes events older than `before` (Unix ms). Returns how many went. */
  prune(before: number): number {
    return this.db.delete(auditEvents).where(lt(auditEvents.ts, before)).returning({ id: auditEvents.id }).all().length;
  }
}

/**
 * One CSV cell. Quoted as RFC 4180 wants; and since spreadsheets run a cell that starts with
 * `=`, `+`, `-`, `@`, tab or CR as a formula (an unauthenticated failed-login username reaches the
 * audit trail), such a cell gets a leading `'` and quotes — OWASP's rule for CSV injection.
 */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return "";
  let s = String(v);
  const formula = /^[=+\-@\t\r]/.test(s);
  if (formula) s = `'${s}`;
  return formula || /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV with a header row; every cell through `csvCell`. */
export function auditCsv(rows: AuditRow[]): string {
  const cols = ["id", "ts", "actor", "action", "subject", "cid", "before", "after", "reason"] as const;
  const q = csvCell;
  const lines = [cols.join(",")];
  for (const r of rows) lines.push(cols.map((c) => (c === "ts" ? new Date(r.ts).toISOString() : q(r[c]))).join(","));
  return lines.join("\r\n") + "\r\n";
}
