// Applies the resources and authorizations managed through the admin API to the gateway's
// policy, next to those from the config file (which the API cannot change).
//
// Expiry is evaluated here, at every sync: a stored authorization that has expired is not
// applied, so the policy's sweep (which removes an expired grant the moment it ends) is never
// fed the same grant again. Each authorization's end — expired, revoked, its resource deleted —
// is logged once, and a client whose last resource went away gets exactly one goodbye.
//
// A stored resource row that does not parse (older version, hand-edited, restored backup) is
// skipped with one error line per version of the row (Errors page, Sentry), as peer-sync.ts does
// for peers; one that was applied before stays as it was rather than being taken away half-way.
//
// Several gateways on one database (`gid` given): only the resources this gateway serves
// (served_by, as peers); one it stops serving is removed like a deleted one, with its grants.
import type { AccessPolicy } from "../gateway/index.ts";
import type { Store } from "../store/index.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Tunnel } from "../tunnel/index.ts";

export class ResourceSync {
  readonly #fileResources: Set<string>;
  #appliedResources = new Set<string>();
  #appliedGrants = new Set<string>();
  /** Rows reported as unusable: id → the row version reported, so each version logs once. */
  readonly #reported = new Map<string, string>();

  constructor(
    private readonly policy: AccessPolicy,
    private readonly tunnel: Tunnel,
    private readonly store: Store,
    fileResourceIds: string[],
    private readonly log: TargetLogger,
    /** This gateway's id in cluster mode (serve only resources served by it); absent: every resource. */
    private readonly gid?: string,
  ) {
    this.#fileResources = new Set(fileResourceIds);
  }

  apply(now: number): void {
    // Who can reach something now: those left with nothing afterwards are told goodbye.
    const hadAccess = [...this.tunnel.connections()].filter((c) => this.policy.authorizations(c.cid).length > 0).map((c) => c.cid);

    const { resources, skipped } = this.store.resources.listChecked(this.gid);
    const wanted = resources.filter((r) => !this.#fileResources.has(r.id));
    for (const r of wanted) this.policy.upsertResource(r);
    const ids = new Set(wanted.map((r) => r.id));
    for (const row of skipped) {
      if (this.#fileResources.has(row.id)) continue;
      if (this.#appliedResources.has(row.id)) ids.add(row.id); // kept as last applied
      if (this.#reported.get(row.id) === row.version) continue;
      this.#reported.set(row.id, row.version);
      this.log.error("stored resource skipped: it cannot be applied", { rid: row.id.slice(0, 64), resource: row.name.slice(0, 64), field: row.field, err: row.err });
    }
    const skippedIds = new Set(skipped.map((r) => r.id));
    for (const id of this.#reported.keys()) if (!skippedIds.has(id)) this.#reported.delete(id);
    for (const id of this.#appliedResources) {
      if (!ids.has(id) && this.policy.removeResource(id)) this.log.info("resource removed", { rid: id });
    }
    this.#appliedResources = ids;

    const byKey = new Map([...this.tunnel.connections()].map((c) => [c.publicKey, c.cid]));
    const grants = new Set<string>();
    const expired = new Set<string>();
    for (const a of this.store.resources.authorizations()) {
      const cid = byKey.get(a.publicKey);
      // Only this store's resources: a grant must never attach to a config-file resource that
      // happens to share its id (the store refuses such ids now; older rows may still have them).
      if (cid === undefined || !ids.has(a.resourceId)) continue;
      if (a.expiresAt !== null && a.expiresAt <= now) {
        expired.add(`${cid}|${a.resourceId}`);
        continue;
      }
      this.policy.authorize(cid, a.resourceId, a.expiresAt);
      grants.add(`${cid}|${a.resourceId}`);
    }
    for (const g of this.#appliedGrants) {
      if (grants.has(g)) continue;
      const [cidText, rid] = g.split("|") as [string, string];
      const cid = Number(cidText);
      // False when the policy's sweep already ended it (and onExpired logged it) or its
      // resource went: nothing more to say about it.
      if (!this.policy.revoke(cid, rid)) continue;
      if (expired.has(g)) this.log.info("authorization expired", { cid, rid });
      else this.log.info("authorization revoked", { cid, rid });
    }
    this.#appliedGrants = grants;

    for (const cid of hadAccess) if (this.policy.authorizations(cid).length === 0) this.#farewell(cid, now);
  }

  /** The policy's sweep ended an authorization at its expiry (between syncs). */
  onExpired(cid: number, rid: string, now: number): void {
    this.log.info("authorization expired", { cid, rid });
    if (this.policy.authorizations(cid).length === 0) this.#farewell(cid, now);
  }

  /** As Firezone: a client whose last resource went away is told so, and fails over at once. */
  #farewell(cid: number, now: number): void {
    // With no resources left at all the gateway forwards everything: nothing was lost.
    if (!this.policy.enforcing) return;
    if (this.tunnel.goodbyeTo(cid, now)) this.log.info("goodbye sent: no resources left", { cid });
  }
}
