// Applies the resources and authorizations managed through the admin API to the gateway's
// policy, next to those from the config file (which the API cannot change).
import type { AccessPolicy } from "../gateway/index.ts";
import type { Store } from "../store/index.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Tunnel } from "../tunnel/index.ts";

export class ResourceSync {
  readonly #fileResources: Set<string>;
  #appliedResources = new Set<string>();
  #appliedGrants = new Set<string>();

  constructor(
    private readonly policy: AccessPolicy,
    private readonly tunnel: Tunnel,
    private readonly store: Store,
    fileResourceIds: string[],
    private readonly log: TargetLogger,
  ) {
    this.#fileResources = new Set(fileResourceIds);
  }

  apply(): void {
    const wanted = this.store.resources.list().filter((r) => !this.#fileResources.has(r.id));
    for (const r of wanted) this.policy.upsertResource(r);
    const ids = new Set(wanted.map((r) => r.id));
    for (const id of this.#appliedResources) if (!ids.has(id)) this.policy.removeResource(id);
    this.#appliedResources = ids;

    const grants = new Set<string>();
    for (const a of this.store.resources.authorizations()) {
      const conn = [...this.tunnel.connections()].find((c) => c.publicKey === a.publicKey);
      // Only this store's resources: a grant must never attach to a config-file resource that
      // happens to share its id (the store refuses such ids now; older rows may still have them).
      if (!conn || !ids.has(a.resourceId)) continue;
      this.policy.authorize(conn.cid, a.resourceId, a.expiresAt);
      grants.add(`${conn.cid}|${a.resourceId}`);
    }
    for (const g of this.#appliedGrants) {
      if (grants.has(g)) continue;
      const [cid, rid] = g.split("|") as [string, string];
      this.policy.revoke(Number(cid), rid);
      this.log.info("authorization revoked", { cid: Number(cid), rid });
    }
    this.#appliedGrants = grants;
  }
}
