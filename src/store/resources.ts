// Resources and authorizations managed through the admin API (the config file's stay in the
// file). Stored in Firezone's wire shape, validated by gateway/resources.ts, audited.
import { and, eq } from "drizzle-orm";
import { parseResource, type Resource } from "../gateway/resources.ts";
import { AuditLog } from "./audit.ts";
import type { Db } from "./database.ts";
import { authorizations, resources } from "./schema.ts";

export interface AuthorizationRow {
  publicKey: string;
  resourceId: string;
  expiresAt: number | null;
}

/** A stored resource row the gateway cannot use, naming the column at fault when known. */
export interface SkippedResourceRow {
  id: string;
  name: string;
  /** Changes whenever the row does (also when edited by hand without touching updated_at). */
  version: string;
  field: string | undefined;
  err: unknown;
}

export class ResourceRepository {
  readonly #audit: AuditLog;
  constructor(private readonly db: Db) {
    this.#audit = new AuditLog(db);
  }

  /** Parsed, ready for the policy. A stored row that no longer parses is skipped (see listChecked). */
  list(): Resource[] {
    return this.listChecked().resources;
  }

  /**
   * Every row, parsed, and the rows that do not parse — validated on the way in, so only a row
   * written by an older version (e.g. a DNS pattern over today's limits), edited by hand or
   * restored from a backup gets there. The caller reports those (resource-sync.ts); one bad row
   * never hides the others.
   */
  listChecked(): { resources: Resource[]; skipped: SkippedResourceRow[] } {
    const out: Resource[] = [];
    const skipped: SkippedResourceRow[] = [];
    for (const r of this.db.select().from(resources).all()) {
      const version = `${r.updatedAt}|${r.type}|${r.address}|${r.filters}`;
      let filters: unknown;
      try {
        filters = JSON.parse(r.filters);
      } catch (err) {
        skipped.push({ id: r.id, name: r.name, version, field: "filters", err: new Error("not JSON", { cause: err }) });
        continue;
      }
      try {
        out.push(parseResource({ type: r.type, id: r.id, name: r.name, address: r.address ?? undefined, filters }));
      } catch (err) {
        // parseResource names the field first ("resource filters.0.protocol: …"): report its column.
        const field = /^resource ([a-z_]+)/.exec((err as Error).message)?.[1];
        skipped.push({ id: r.id, name: r.name, version, field, err });
      }
    }
    return { resources: out, skipped };
  }

  /** `raw` in Firezone's shape ({type, id, name, address, filters}); throws naming the bad field. */
  upsert(raw: Record<string, unknown>, actor: string): Resource {
    const r = parseResource(raw);
    const before = this.db.select().from(resources).where(eq(resources.id, r.id)).get();
    const row = { id: r.id, name: r.name, type: r.type, address: typeof raw.address === "string" ? raw.address : null, filters: JSON.stringify(raw.filters ?? []) };
    this.db.transaction((tx) => {
      tx.insert(resources).values(row).onConflictDoUpdate({ target: resources.id, set: { ...row, updatedAt: Date.now() } }).run();
      new AuditLog(tx as unknown as Db).record({ actor, action: before ? "resource.updated" : "resource.created", subject: r.id, before, after: row });
    });
    return r;
  }

  delete(id: string, actor: string): boolean {
    const before = this.db.select().from(resources).where(eq(resources.id, id)).get();
    if (!before) return false;
    this.db.transaction((tx) => {
      tx.delete(resources).where(eq(resources.id, id)).run();
      new AuditLog(tx as unknown as Db).record({ actor, action: "resource.deleted", subject: id, before });
    });
    return true;
  }

  authorizations(): AuthorizationRow[] {
    return this.db.select({ publicKey: authorizations.publicKey, resourceId: authorizations.resourceId, expiresAt: authorizations.expiresAt }).from(authorizations).all();
  }

  authorize(a: AuthorizationRow, actor: string): void {
    if (!this.db.select().from(resources).where(eq(resources.id, a.resourceId)).get()) throw new Error(`resource_id: "${a.resourceId}" is not a resource managed here`);
    this.db.insert(authorizations).values(a).onConflictDoUpdate({ target: [authorizations.publicKey, authorizations.resourceId], set: { expiresAt: a.expiresAt } }).run();
    this.#audit.record({ actor, action: "resource.updated", subject: a.resourceId, after: { authorized: a.publicKey, expires_at: a.expiresAt }, reason: "authorization granted" });
  }

  revoke(publicKey: string, resourceId: string, actor: string): boolean {
    const gone = this.db.delete(authorizations).where(and(eq(authorizations.publicKey, publicKey), eq(authorizations.resourceId, resourceId))).returning().all().length > 0;
    if (gone) this.#audit.record({ actor, action: "resource.updated", subject: resourceId, before: { authorized: publicKey }, reason: "authorization revoked" });
    return gone;
  }
}
