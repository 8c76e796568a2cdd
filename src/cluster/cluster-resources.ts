// Resources and their authorizations when several gateways share one PostgreSQL database, as
// cluster-peers.ts does for peers (the same listen / drain / reconcile / backoff: notified-mirror.ts).
// PostgreSQL holds them; this gateway's SQLite resources and authorizations tables are a mirror
// (resource-mirror.ts), because resource sync and the admin read them synchronously. Reads answer
// from the mirror; writes go to PostgreSQL (validated and audited there, once, in the write's
// transaction), then into the mirror, then onChange re-applies the policy here.
//
// A notice on glassgate_resources names a resource; the resource and all its authorizations are read
// back by id and written to the mirror together (an authorization change is announced as a change
// of its resource). Notices heard in a burst are read in one pair of queries, with one onChange.
import { inArray } from "drizzle-orm";
import type { Resource } from "../gateway/resources.ts";
import type { Store } from "../store/index.ts";
import type { PgStore } from "../store/pg-store.ts";
import { RESOURCES_CHANNEL } from "../store/resources-pg.ts";
import type { AuthorizationRow, ResourceRecord, ResourceStore } from "../store/resources.ts";
import { authorizations as pgAuthorizations, resources as pgResources } from "../store/schema-pg.ts";
import { NotifiedMirror, type ClusterMirrorOptions, type NotifiedMirrorStats } from "./notified-mirror.ts";
import { ResourceMirror, type AuthorizationRecord } from "./resource-mirror.ts";

export { RESOURCES_CHANNEL };

export type ClusterResourcesOptions = ClusterMirrorOptions;

/** appliedByNotice counts resources changed in the mirror by notices (the row or its authorizations). */
export interface ClusterResourceStats extends NotifiedMirrorStats {
  /** Resources and authorizations in the mirror. */
  resources: number;
  authorizations: number;
  listening: boolean;
}

export class ClusterResources implements ResourceStore {
  readonly #mirror: ResourceMirror;
  readonly #pg: PgStore;
  readonly #local: Store;
  readonly #notified: NotifiedMirror<[ResourceRecord[], AuthorizationRecord[]]>;

  private constructor(o: ClusterResourcesOptions) {
    this.#pg = o.pg;
    this.#local = o.local;
    this.#mirror = new ResourceMirror(o.local);
    this.#notified = new NotifiedMirror(o, {
      channel: RESOURCES_CHANNEL, one: "resource", many: "resources",
      readAll: () => Promise.all([this.#pg.resources.records(), this.#pg.resources.authorizationRecords()]),
      replaceAll: ([rows, grants]) => (this.#mirror.replaceAll(rows, grants) ? { resources: rows.length, authorizations: grants.length } : null),
      applyIds: (ids) => this.#applyIds(ids),
    });
  }

  /**
   * Loads every resource and authorization into the mirror, then listens, then reconciles
   * periodically. The reconcile the first LISTEN triggers covers a change committed in between.
   */
  static async start(o: ClusterResourcesOptions): Promise<ClusterResources> {
    const c = new ClusterResources(o);
    await c.#notified.start();
    return c;
  }

  // Reads: the local mirror (synchronous, like the standalone store).
  list(): Resource[] {
    return this.#local.resources.list();
  }

  records(): ResourceRecord[] {
    return this.#local.resources.records();
  }

  authorizations(): AuthorizationRow[] {
    return this.#local.resources.authorizations();
  }

  // Writes: PostgreSQL (validated, audited, announced), then the mirror, then the policy.
  async create(raw: Record<string, unknown>, actor: string, reserved?: ReadonlySet<string>): Promise<Resource> {
    const r = await this.#pg.resources.create(raw, actor, reserved);
    await this.#refresh(r.id);
    return r;
  }

  async update(id: string, raw: Record<string, unknown>, actor: string): Promise<Resource> {
    const r = await this.#pg.resources.update(id, raw, actor);
    await this.#refresh(id);
    return r;
  }

  async delete(id: string, actor: string): Promise<boolean> {
    const deleted = await this.#pg.resources.delete(id, actor);
    if (this.#mirror.remove(id)) this.#notified.changed();
    return deleted;
  }

  async authorize(a: AuthorizationRow, actor: string, otherPeers?: ReadonlySet<string>): Promise<void> {
    await this.#pg.resources.authorize(a, actor, otherPeers);
    await this.#refresh(a.resourceId);
  }

  async revoke(publicKey: string, resourceId: string, actor: string): Promise<boolean> {
    const gone = await this.#pg.resources.revoke(publicKey, resourceId, actor);
    await this.#refresh(resourceId);
    return gone;
  }

  /** Asks for a full compare (the timer and every re-LISTEN do); resolves when it and everything queued before it ran. */
  reconcile(): Promise<void> {
    return this.#notified.reconcile();
  }

  /** Resolves when every notice heard so far has been applied (tests, shutdown). */
  settled(): Promise<void> {
    return this.#notified.settled();
  }

  stats(): ClusterResourceStats {
    return {
      ...this.#notified.stats(),
      resources: this.#local.resources.records().length,
      authorizations: this.#local.resources.authorizations().length,
      listening: this.#notified.listening,
    };
  }

  /** Stops listening (notices are lost until resumeListening, which reconciles); for tests of that path. */
  suspendListening(): Promise<void> {
    return this.#notified.suspendListening();
  }

  resumeListening(): Promise<void> {
    return this.#notified.resumeListening();
  }

  close(): Promise<void> {
    return this.#notified.close();
  }

  /** This gateway's own write: the resource and its authorizations read back (the write returned only the parsed resource). */
  async #refresh(id: string): Promise<void> {
    if (await this.#applyIds([id]) > 0) this.#notified.changed();
  }

  /** Reads the resources `ids` and their authorizations and writes them to the mirror; how many changed. */
  async #applyIds(ids: string[]): Promise<number> {
    const [rows, grants] = await Promise.all([
      this.#pg.db.select().from(pgResources).where(inArray(pgResources.id, ids)),
      this.#pg.db.select().from(pgAuthorizations).where(inArray(pgAuthorizations.resourceId, ids)),
    ]);
    const found = new Map(rows.map((r) => [r.id, r]));
    const byResource = new Map<string, AuthorizationRecord[]>();
    for (const g of grants) byResource.set(g.resourceId, [...(byResource.get(g.resourceId) ?? []), g]);
    let changed = 0;
    for (const id of ids) {
      const row = found.get(id);
      if (row ? this.#mirror.upsert(row, byResource.get(id) ?? []) : this.#mirror.remove(id)) changed++;
    }
    return changed;
  }
}
