// A data dir that ran standalone holds peers and resources of its own. Joining a cluster makes its
// SQLite tables a mirror of PostgreSQL (peer-mirror.ts, resource-mirror.ts), which would silently
// drop every row PostgreSQL does not have — clients cut off with nothing said. So the first start
// with DATABASE_URL refuses when such rows exist, naming them; once a data dir has been a mirror
// (the "mirror" mark in shipping_marks), its rows are PostgreSQL's copies and PostgreSQL wins.
import { eq } from "drizzle-orm";
import type { Store } from "../store/index.ts";
import type { PgStore } from "../store/pg-store.ts";
import { shippingMarks } from "../store/schema.ts";

/** The shipping_marks stream recording that this data dir's peers and resources mirror PostgreSQL. */
export const MIRROR_STREAM = "mirror";

export class StandaloneRowsError extends Error {}

/** True once this data dir has started as a mirror of PostgreSQL. */
export function isMirror(local: Store): boolean {
  return local.db.select().from(shippingMarks).where(eq(shippingMarks.stream, MIRROR_STREAM)).get() !== undefined;
}

/** Records that this data dir's peers and resources now mirror PostgreSQL. */
export function markMirror(local: Store): void {
  local.db.insert(shippingMarks).values({ stream: MIRROR_STREAM, lastId: 1 }).onConflictDoNothing().run();
}

/**
 * Throws StandaloneRowsError naming the peers and resources only this (never mirrored) data dir
 * has; nothing is written either way.
 */
export async function refuseStandaloneRows(local: Store, pg: PgStore, dataDir: string): Promise<void> {
  if (isMirror(local)) return;
  const [shared, sharedResources] = await Promise.all([pg.peers.list(), pg.resources.records()]);
  const peerIds = new Set(shared.map((p) => p.id));
  const resourceIds = new Set(sharedResources.map((r) => r.id));
  const peers = local.peers.list().filter((p) => !peerIds.has(p.id)).map((p) => `peer "${p.name}"`);
  const resources = local.resources.records().filter((r) => !resourceIds.has(r.id)).map((r) => `resource "${r.name}"`);
  const own = [...peers, ...resources];
  if (own.length === 0) return;
  const named = own.slice(0, 5).join(", ") + (own.length > 5 ? ` and ${own.length - 5} more` : "");
  throw new StandaloneRowsError(
    `DATABASE_URL: ${dataDir} ran standalone and holds ${peers.length} peer(s) and ${resources.length} resource(s) that PostgreSQL does not have (${named}); ` +
      "as a cluster member its peers and resources mirror PostgreSQL, so starting would drop them. Add them through a clustered gateway's admin or API first, or start with a fresh --data",
  );
}
