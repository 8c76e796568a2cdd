// Resources and their authorizations when several gateways share one PostgreSQL database, as
// cluster-peers.ts does for peers (read it first: the same listen / drain / reconcile / backoff).
// PostgreSQL holds them; this gateway's SQLite resources and authorizations tables are a mirror
// (resource-mirror.ts), because resource sync and the admin read them synchronously. Reads answer
// from the mirror; writes go to PostgreSQL (validated and audited there, once, in the write's
// transaction), then into the mirror, then onChange re-applies the policy here.
//
// A notice on glassgate_resources names a resource; the resource and all its authorizations are read
// back by id and written to the mirror together (an authorization change is announced as a change
// of its resource). Notices heard in a burst are read in one pair of queries, with one onChange.
import { inArray } from "drizzle-orm";
import type { SQL } from "bun";
import type { Resource } from "../gateway/resources.ts";
import type { Store } from "../store/index.ts";
import type { PgStore } from "../store/pg-store.ts";
import { RESOURCES_CHANNEL, type ResourceNotice } from "../store/resources-pg.ts";
import type { AuthorizationRow, ResourceRecord, ResourceStore } from "../store/resources.ts";
import { authorizations as pgAuthorizations, resources as pgResources } from "../store/schema-pg.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import { DEFAULT_RECONCILE_MS } from "./cluster-peers.ts";
import { ResourceMirror, type AuthorizationRecord } from "./resource-mirror.ts";

export { RESOURCES_CHANNEL };

export interface ClusterResourcesOptions {
  pg: PgStore;
  local: Store;
  gid: string;
  /** Called once per applied batch of changes (a burst of notices is one call): re-apply resources. */
  onChange: () => void;
  reconcileMs?: number;
  log?: TargetLogger;
}

export interface ClusterResourceStats {
  /** Resources and authorizations in the mirror. */
  resources: number;
  authorizations: number;
  /** Notices heard on the channel. */
  notices: number;
  /** Resources changed in the mirror by notices (the row or its authorizations). */
  appliedByNotice: number;
  /** Full compares run, and how many of them found the mirror behind. */
  reconciles: number;
  reconcileRepairs: number;
  /** Times the LISTEN came back after its connection was lost. */
  relistens: number;
  listening: boolean;
  /** The last failed read from PostgreSQL (cleared by the next success). */
  lastError: string | null;
}

export class ClusterResources implements ResourceStore {
  readonly #mirror: ResourceMirror;
  readonly #pg: PgStore;
  readonly #local: Store;
  readonly #onChange: () => void;
  readonly #log?: TargetLogger;
  /** Resource ids named by notices and not yet read back. */
  #pending = new Set<string>();
  #reconcileWanted = false;
  /** The one drain running (notices and reconciles are applied one after the other, in order). */
  #draining: Promise<void> | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #subscription: SQL.ListenSubscription | null = null;
  #listens = 0;
  #closed = false;
  /** The current backoff after a failed read (0: the last read succeeded). */
  #retryMs = 0;
  #retry: ReturnType<typeof setTimeout> | null = null;
  #stats: Omit<ClusterResourceStats, "resources" | "authorizations" | "listening"> = { notices: 0, appliedByNotice: 0, reconciles: 0, reconcileRepairs: 0, relistens: 0, lastError: null };

  private constructor(o: ClusterResourcesOptions) {
    this.#pg = o.pg;
    this.#local = o.local;
    this.#onChange = o.onChange;
    this.#log = o.log;
    this.#mirror = new ResourceMirror(o.local);
  }

  /**
   * Loads every resource and authorization into the mirror, then listens, then reconciles
   * periodically. The reconcile the first LISTEN triggers covers a change committed in between.
   */
  static async start(o: ClusterResourcesOptions): Promise<ClusterResources> {
    const c = new ClusterResources(o);
    const [rows, grants] = await Promise.all([o.pg.resources.records(), o.pg.resources.authorizationRecords()]);
    c.#mirror.replaceAll(rows, grants);
    await c.#listen();
    c.#timer = setInterval(() => c.reconcile(), o.reconcileMs ?? DEFAULT_RECONCILE_MS);
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
    if (this.#mirror.remove(id)) this.#changed();
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
    this.#reconcileWanted = true;
    return this.#drain();
  }

  /** Resolves when every notice heard so far has been applied (tests, shutdown). */
  settled(): Promise<void> {
    return this.#draining ?? Promise.resolve();
  }

  stats(): ClusterResourceStats {
    return {
      ...this.#stats,
      resources: this.#local.resources.records().length,
      authorizations: this.#local.resources.authorizations().length,
      listening: this.#subscription !== null,
    };
  }

  /** Stops listening (notices are lost until resumeListening, which reconciles); for tests of that path. */
  async suspendListening(): Promise<void> {
    const s = this.#subscription;
    this.#subscription = null;
    await s?.unlisten();
  }

  resumeListening(): Promise<void> {
    return this.#listen();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#retry) clearTimeout(this.#retry);
    this.#timer = null;
    await this.suspendListening();
    await this.settled();
  }

  /** This gateway's own write: the resource and its authorizations read back (the write returned only the parsed resource). */
  async #refresh(id: string): Promise<void> {
    if (await this.#applyIds([id]) > 0) this.#changed();
  }

  async #listen(): Promise<void> {
    this.#subscription = await this.#pg.client.listen(RESOURCES_CHANNEL, (payload) => this.#heard(payload), () => {
      // Every (re-)LISTEN but the very first follows a time without one: notices may have been missed.
      if (++this.#listens > 1) {
        this.#stats.relistens++;
        this.#log?.warn("resource notifications listening again after a lost connection; reconciling", { channel: RESOURCES_CHANNEL, relistens: this.#stats.relistens });
      }
      void this.reconcile();
    });
  }

  #heard(payload: string): void {
    if (this.#closed) return;
    this.#stats.notices++;
    let notice: Partial<ResourceNotice>;
    try {
      notice = JSON.parse(payload) as Partial<ResourceNotice>;
    } catch {
      notice = {};
    }
    if (typeof notice.id !== "string") {
      // Not ours to understand (a newer version, a hand-sent NOTIFY): compare everything instead.
      this.#log?.warn("resource notification not understood; reconciling", { channel: RESOURCES_CHANNEL, payload: payload.slice(0, 200) });
      void this.reconcile();
      return;
    }
    this.#pending.add(notice.id);
    void this.#drain();
  }

  /** Runs queued work one batch after another; every caller gets the promise of the running drain. */
  #drain(): Promise<void> {
    this.#draining ??= (async () => {
      // Yield once so notices that arrived in the same read are taken together.
      await Promise.resolve();
      try {
        while (!this.#closed && (this.#pending.size > 0 || this.#reconcileWanted)) {
          if (this.#reconcileWanted) {
            this.#reconcileWanted = false;
            // A full read covers every pending id too.
            this.#pending.clear();
            await this.#reconcileOnce();
          } else {
            const ids = [...this.#pending];
            this.#pending.clear();
            const changed = await this.#applyIds(ids);
            this.#stats.appliedByNotice += changed;
            if (changed > 0) {
              this.#log?.info("resources changed on another gateway applied", { changed });
              this.#changed();
            }
          }
          this.#recovered();
        }
      } catch (err) {
        this.#failed(err);
      } finally {
        this.#draining = null;
      }
    })();
    return this.#draining;
  }

  async #reconcileOnce(): Promise<void> {
    const [rows, grants] = await Promise.all([this.#pg.resources.records(), this.#pg.resources.authorizationRecords()]);
    this.#stats.reconciles++;
    if (this.#mirror.replaceAll(rows, grants)) {
      this.#stats.reconcileRepairs++;
      this.#log?.info("resources reconciled: the mirror was behind PostgreSQL", { resources: rows.length, authorizations: grants.length });
      this.#changed();
    }
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

  /** The mirror changed: re-apply. The caller's failure is its own (logged), not a failed read to retry. */
  #changed(): void {
    try {
      this.#onChange();
    } catch (err) {
      this.#log?.error("applying changed resources failed", { err: err as Error });
    }
  }

  /**
   * A read from PostgreSQL failed: logged once per outage (not once per notice), queued ids dropped
   * (a reconcile reads everything anyway), and a reconcile retried with backoff until one succeeds.
   */
  #failed(err: unknown): void {
    this.#stats.lastError = (err as Error).message;
    if (this.#retryMs === 0) this.#log?.error("reading resources from PostgreSQL failed; retrying with backoff", { err: err as Error });
    this.#pending.clear();
    this.#reconcileWanted = false;
    this.#retryMs = Math.min(this.#retryMs === 0 ? RETRY_FIRST_MS : this.#retryMs * 2, RETRY_MAX_MS);
    if (this.#closed) return;
    clearTimeout(this.#retry ?? undefined);
    this.#retry = setTimeout(() => void this.reconcile(), this.#retryMs);
  }

  #recovered(): void {
    if (this.#retryMs === 0) return;
    this.#log?.info("PostgreSQL reachable again for resources", {});
    this.#retryMs = 0;
    this.#stats.lastError = null;
  }
}

/** Backoff for a failed read: first retry after 500 ms, doubling up to 30 s (as cluster-peers.ts). */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
