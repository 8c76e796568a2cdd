// The audit trail on PostgreSQL: the same rows, filters and order as audit.ts (whose value mapping
// and WHERE builder it shares), as promises. Each insert is its own committed statement, so a
// gateway killed mid-write loses no row it reported as written.
import { count, desc, lt } from "drizzle-orm";
import { auditValues, auditWhere, type AuditFilter, type AuditInput, type AuditRepository, type AuditRow } from "./audit.ts";
import type { PgDb } from "./postgres.ts";
import { auditEvents } from "./schema-pg.ts";

export class PgAuditLog implements AuditRepository {
  /** `gid`: this gateway's id, stamped on every row it records. */
  constructor(private readonly db: PgDb, private readonly gid?: string) {}

  async record(e: AuditInput, ts = Date.now()): Promise<void> {
    await this.db.insert(auditEvents).values(auditValues({ gid: this.gid, ...e }, ts));
  }

  /** Newest first, paginated. */
  async query(f: AuditFilter, page: { limit: number; offset: number } = { limit: 50, offset: 0 }): Promise<{ rows: AuditRow[]; total: number }> {
    const where = auditWhere(auditEvents, f);
    const rows = await this.db.select().from(auditEvents).where(where).orderBy(desc(auditEvents.id)).limit(page.limit).offset(page.offset);
    const [n] = await this.db.select({ n: count() }).from(auditEvents).where(where);
    return { rows, total: n?.n ?? 0 };
  }

  /** Retention: deletes events older than `before` (Unix ms). Returns how many went. */
  async prune(before: number): Promise<number> {
    return (await this.db.delete(auditEvents).where(lt(auditEvents.ts, before)).returning({ id: auditEvents.id })).length;
  }
}
