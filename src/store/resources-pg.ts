// Resources and their authorizations on PostgreSQL: the same validation, rows and audit events as
// resources.ts (whose helpers it uses), as promises. Several gateways write here at once, so each
// change runs in one transaction that first takes a transaction-scoped advisory lock (as peers-pg.ts
// does), writes its audit row, and announces the change with pg_notify — delivered only on commit.
import { and, eq, sql } from "drizzle-orm";
import type { Resource } from "../gateway/resources.ts";
import { auditValues } from "./audit.ts";
import type { PgDb } from "./postgres.ts";
import {
  authorizationKey, checkExpiresAt, checkResourceRows, notAPeer, notAResource, otherResource, parseResourceInput, reservedResource, resourceExists, resourceValues,
  type AuthorizationRow, type ResourceRecord, type ResourceStore, type SkippedResourceRow,
} from "./resources.ts";
import { auditEvents, authorizations, peers, resources } from "./schema-pg.ts";

/**
 * The NOTIFY channel announcing resource and authorization changes (cluster/cluster-resources.ts
 * listens). An authorization change names its resource: listeners read the resource and all its
 * authorizations back, so one notice shape covers both.
 */
export const RESOURCES_CHANNEL = "glassgate_resources";

/** What a notification on RESOURCES_CHANNEL carries: which resource changed (not the row: listeners read it). */
export interface ResourceNotice {
  op: "create" | "update" | "delete" | "authorize" | "revoke";
  id: string;
  /** The gateway that wrote it (null when the repository has no gid). */
  gid: string | null;
}

/** The advisory-lock key serialising resource writes; distinct from the peer and migration locks. */
export const RESOURCE_WRITE_LOCK_KEY = 0x676c61737372n;

type Tx = Parameters<Parameters<PgDb["transaction"]>[0]>[0];

async function announce(tx: Tx, notice: ResourceNotice): Promise<void> {
  await tx.execute(sql`select pg_notify(${RESOURCES_CHANNEL}, ${JSON.stringify(notice)})`);
}

async function lockResources(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${RESOURCE_WRITE_LOCK_KEY.toString()}::bigint)`);
}

export class PgResourceRepository implements ResourceStore {
  /** `gid`: this gateway's id, stamped on the audit rows and notices its changes write. */
  constructor(private readonly db: PgDb, private readonly gid?: string) {}

  async list(): Promise<Resource[]> {
    return (await this.listChecked()).resources;
  }

  async listChecked(gid?: string): Promise<{ resources: Resource[]; skipped: SkippedResourceRow[] }> {
    return checkResourceRows(await this.records(), gid);
  }

  records(): Promise<ResourceRecord[]> {
    return this.db.select().from(resources).orderBy(resources.id);
  }

  /** Every authorization row with its creation time (the mirror copies it as stored). */
  authorizationRecords(): Promise<(AuthorizationRow & { createdAt: number })[]> {
    return this.db.select().from(authorizations);
  }

  create(raw: Record<string, unknown>, actor: string, reserved: ReadonlySet<string> = new Set()): Promise<Resource> {
    const r = parseResourceInput(raw);
    if (reserved.has(r.id)) throw reservedResource(r.id);
    const row = resourceValues(r, raw);
    return this.db.transaction(async (tx) => {
      await lockResources(tx);
      if ((await tx.select({ id: resources.id }).from(resources).where(eq(resources.id, r.id))).length > 0) throw resourceExists(r.id);
      await tx.insert(resources).values(row);
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "resource.created", subject: r.id, after: row }, Date.now()));
      await announce(tx, { op: "create", id: r.id, gid: this.gid ?? null });
      return r;
    });
  }

  update(id: string, raw: Record<string, unknown>, actor: string): Promise<Resource> {
    const r = parseResourceInput(raw);
    if (r.id !== id) throw otherResource(r.id, id);
    const row = resourceValues(r, raw);
    return this.db.transaction(async (tx) => {
      await lockResources(tx);
      const [before] = await tx.select().from(resources).where(eq(resources.id, id));
      if (!before) throw notAResource(id, "id", "not_found");
      await tx.update(resources).set({ ...row, updatedAt: Date.now() }).where(eq(resources.id, id));
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "resource.updated", subject: id, before, after: row }, Date.now()));
      await announce(tx, { op: "update", id, gid: this.gid ?? null });
      return r;
    });
  }

  delete(id: string, actor: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await lockResources(tx);
      const [before] = await tx.delete(resources).where(eq(resources.id, id)).returning();
      if (!before) return false;
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "resource.deleted", subject: id, before }, Date.now()));
      await announce(tx, { op: "delete", id, gid: this.gid ?? null });
      return true;
    });
  }

  authorizations(): Promise<AuthorizationRow[]> {
    return this.db.select({ publicKey: authorizations.publicKey, resourceId: authorizations.resourceId, expiresAt: authorizations.expiresAt }).from(authorizations);
  }

  /** As ResourceRepository.authorize: the key a shared peer or one of `otherPeers`, the resource a shared one. */
  authorize(a: AuthorizationRow, actor: string, otherPeers: ReadonlySet<string> = new Set()): Promise<void> {
    const key = authorizationKey(a.publicKey);
    checkExpiresAt(a.expiresAt, "expires_at");
    return this.db.transaction(async (tx) => {
      await lockResources(tx);
      if (!otherPeers.has(key) && (await tx.select({ id: peers.id }).from(peers).where(eq(peers.publicKey, key))).length === 0) throw notAPeer(key);
      if ((await tx.select({ id: resources.id }).from(resources).where(eq(resources.id, a.resourceId))).length === 0) throw notAResource(a.resourceId);
      await tx.insert(authorizations).values({ publicKey: key, resourceId: a.resourceId, expiresAt: a.expiresAt })
        .onConflictDoUpdate({ target: [authorizations.publicKey, authorizations.resourceId], set: { expiresAt: a.expiresAt } });
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "resource.updated", subject: a.resourceId, after: { authorized: key, expires_at: a.expiresAt }, reason: "authorization granted" }, Date.now()));
      await announce(tx, { op: "authorize", id: a.resourceId, gid: this.gid ?? null });
    });
  }

  revoke(publicKey: string, resourceId: string, actor: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await lockResources(tx);
      const gone = await tx.delete(authorizations).where(and(eq(authorizations.publicKey, publicKey), eq(authorizations.resourceId, resourceId))).returning();
      if (gone.length === 0) return false;
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "resource.updated", subject: resourceId, before: { authorized: publicKey }, reason: "authorization revoked" }, Date.now()));
      await announce(tx, { op: "revoke", id: resourceId, gid: this.gid ?? null });
      return true;
    });
  }
}
