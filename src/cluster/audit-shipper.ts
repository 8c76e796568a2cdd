// Copies this gateway's audit rows from its SQLite log (written first, synchronous=FULL, so a
// kill -9 loses no committed row) to the shared PostgreSQL audit, where every admin reads them.
// Rows go in local id order, in batches; each carries its local id as `origin_id` and the copy is
// `on conflict (gid, origin_id) do nothing`, so the high-water mark (SQLite `shipping_marks`,
// stream "audit") can move after the copy: a crash between the two only repeats the copy.
// SQLite serialises writers and hands out ids in commit order, so "id > mark" never skips a row
// committed late under a lower id. PostgreSQL down: rows stay local and the next tick retries;
// the outage is logged once when it starts and once when it ends.
import { asc, count, eq, gt } from "drizzle-orm";
import type { PgStore } from "../store/pg-store.ts";
import type { Store } from "../store/index.ts";
import { auditEvents, shippingMarks } from "../store/schema.ts";
import { auditEvents as pgAuditEvents } from "../store/schema-pg.ts";
import type { TargetLogger } from "../telemetry/log.ts";

export const AUDIT_STREAM = "audit";
/** Rows per INSERT: bounded so one statement stays small after a long outage. */
export const SHIP_BATCH = 500;

export interface ShipperStats {
  /** Local rows copied (or found already there) since this shipper was made. */
  shipped: number;
  /** Local rows not yet known to be in PostgreSQL. */
  pending: number;
  /** The last copy's failure while it lasts; null once a copy succeeds. */
  lastError: string | null;
}

export class AuditShipper {
  readonly #local: Store;
  readonly #pg: PgStore;
  readonly #gid: string;
  readonly #batch: number;
  readonly #log: TargetLogger | undefined;
  #shipped = 0;
  #lastError: string | null = null;
  #outageSince: number | null = null;
  /** The copy in progress: copies never overlap (two would race on the mark). */
  #running: Promise<number> = Promise.resolve(0);
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(o: { local: Store; pg: PgStore; gid: string; batch?: number; log?: TargetLogger }) {
    this.#local = o.local;
    this.#pg = o.pg;
    this.#gid = o.gid;
    this.#batch = Math.max(1, Math.min(o.batch ?? SHIP_BATCH, SHIP_BATCH));
    this.#log = o.log;
  }

  /** The highest local id known to be in PostgreSQL (0 before the first copy). */
  mark(): number {
    return this.#local.db.select().from(shippingMarks).where(eq(shippingMarks.stream, AUDIT_STREAM)).get()?.lastId ?? 0;
  }

  /**
   * Copies every row above the mark, batch by batch; resolves with how many local rows it moved
   * the mark past. Rejects when PostgreSQL fails (the rows stay; call again). Calls queue up.
   */
  shipOnce(): Promise<number> {
    const next = this.#running.catch(() => 0).then(() => this.#shipAll());
    this.#running = next;
    return next;
  }

  /** Copies every `intervalMs` until stop(); failures are logged once per outage, not thrown. */
  start(intervalMs = 1000): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.shipOnce().catch(() => undefined), intervalMs);
  }

  /** Stops the timer and makes one last copy (what the gateway wrote while stopping); never throws. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.shipOnce().catch(() => undefined);
  }

  stats(): ShipperStats {
    const pending = this.#local.db.select({ n: count() }).from(auditEvents).where(gt(auditEvents.id, this.mark())).get()?.n ?? 0;
    return { shipped: this.#shipped, pending, lastError: this.#lastError };
  }

  async #shipAll(): Promise<number> {
    let moved = 0;
    try {
      for (;;) {
        const n = await this.#shipBatch();
        moved += n;
        if (n < this.#batch) break;
      }
    } catch (err) {
      this.#failed(err);
      throw err;
    }
    this.#recovered();
    return moved;
  }

  async #shipBatch(): Promise<number> {
    const rows = this.#local.db.select().from(auditEvents).where(gt(auditEvents.id, this.mark())).orderBy(asc(auditEvents.id)).limit(this.#batch).all();
    if (rows.length === 0) return 0;
    const values = rows.map(({ id, gid, ...r }) => ({ ...r, gid: gid ?? this.#gid, originId: id }));
    await this.#pg.db.insert(pgAuditEvents).values(values).onConflictDoNothing({ target: [pgAuditEvents.gid, pgAuditEvents.originId] });
    const last = rows[rows.length - 1]!.id;
    this.#local.db.insert(shippingMarks).values({ stream: AUDIT_STREAM, lastId: last }).onConflictDoUpdate({ target: shippingMarks.stream, set: { lastId: last } }).run();
    this.#shipped += rows.length;
    return rows.length;
  }

  #failed(err: unknown): void {
    this.#lastError = err instanceof Error ? err.message : String(err);
    if (this.#outageSince !== null) return;
    this.#outageSince = Date.now();
    this.#log?.warn("audit copy to PostgreSQL failed: rows stay in SQLite and are retried", { err, pending: this.#pendingOrUndefined() });
  }

  #recovered(): void {
    this.#lastError = null;
    if (this.#outageSince === null) return;
    this.#log?.info("audit copy to PostgreSQL resumed", { outage_ms: Date.now() - this.#outageSince, pending: this.#pendingOrUndefined() });
    this.#outageSince = null;
  }

  #pendingOrUndefined(): number | undefined {
    try {
      return this.stats().pending;
    } catch {
      return undefined;
    }
  }
}
