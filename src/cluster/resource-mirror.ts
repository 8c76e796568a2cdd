// The local SQLite copy of the shared resources and their authorizations (cluster mode), as
// peer-mirror.ts is for peers: PostgreSQL is the source of truth, rows are written as it has them —
// no validation (its writer validated them) and no audit (audited once, where the change was made).
// Each call is one SQLite transaction and says whether anything changed. Resources are updated in
// place, never deleted and re-inserted: the authorizations' foreign key cascades on delete.
import { and, eq, inArray } from "drizzle-orm";
import type { Store } from "../store/index.ts";
import type { ResourceRecord } from "../store/resources.ts";
import { authorizations, resources } from "../store/schema.ts";

/** An authorization row as both dialects store it. */
export interface AuthorizationRecord {
  publicKey: string;
  resourceId: string;
  expiresAt: number | null;
  createdAt: number;
}

const COLUMNS = ["name", "type", "address", "filters", "createdAt", "updatedAt", "servedBy"] as const;

function differs(a: ResourceRecord, b: ResourceRecord): boolean {
  return COLUMNS.some((c) => a[c] !== b[c]);
}

/** Only the table's columns (a row from PostgreSQL might carry more one day). */
function values(r: ResourceRecord): ResourceRecord {
  return { id: r.id, name: r.name, type: r.type, address: r.address, filters: r.filters, createdAt: r.createdAt, updatedAt: r.updatedAt, servedBy: r.servedBy };
}

const grantKey = (a: AuthorizationRecord) => `${a.publicKey}|${a.resourceId}`;
const grantValue = (a: AuthorizationRecord) => `${a.expiresAt}|${a.createdAt}`;

type Tx = Parameters<Parameters<Store["db"]["transaction"]>[0]>[0];

/** Makes `have` into `want` (authorizations of the same scope); true when anything changed. */
function syncGrants(tx: Tx, have: readonly AuthorizationRecord[], want: readonly AuthorizationRecord[]): boolean {
  const wanted = new Map(want.map((a) => [grantKey(a), a]));
  const had = new Map(have.map((a) => [grantKey(a), a]));
  let changed = false;
  for (const [k, a] of had) {
    if (wanted.has(k)) continue;
    tx.delete(authorizations).where(and(eq(authorizations.publicKey, a.publicKey), eq(authorizations.resourceId, a.resourceId))).run();
    changed = true;
  }
  for (const [k, w] of wanted) {
    const a = had.get(k);
    if (a && grantValue(a) === grantValue(w)) continue;
    tx.insert(authorizations).values({ publicKey: w.publicKey, resourceId: w.resourceId, expiresAt: w.expiresAt, createdAt: w.createdAt })
      .onConflictDoUpdate({ target: [authorizations.publicKey, authorizations.resourceId], set: { expiresAt: w.expiresAt, createdAt: w.createdAt } }).run();
    changed = true;
  }
  return changed;
}

export class ResourceMirror {
  constructor(private readonly local: Store) {}

  /** Makes the local tables exactly `rows` and `grants` (a full load or a reconcile); true when anything changed. */
  replaceAll(rows: readonly ResourceRecord[], grants: readonly AuthorizationRecord[]): boolean {
    return this.local.db.transaction((tx) => {
      const have = new Map(tx.select().from(resources).all().map((r) => [r.id, r]));
      const want = new Map(rows.map((r) => [r.id, r]));
      const gone = [...have.keys()].filter((id) => !want.has(id));
      const changed = rows.filter((r) => !have.has(r.id) || differs(have.get(r.id)!, r));
      for (let i = 0; i < gone.length; i += 500) tx.delete(resources).where(inArray(resources.id, gone.slice(i, i + 500))).run();
      for (const r of changed) this.#write(tx, r);
      const grantsChanged = syncGrants(tx, tx.select().from(authorizations).all(), grants);
      return gone.length > 0 || changed.length > 0 || grantsChanged;
    });
  }

  /** Writes one resource and exactly its authorizations as PostgreSQL has them; true when anything changed. */
  upsert(row: ResourceRecord, grants: readonly AuthorizationRecord[]): boolean {
    return this.local.db.transaction((tx) => {
      const before = tx.select().from(resources).where(eq(resources.id, row.id)).get();
      const changed = !before || differs(before, row);
      if (changed) this.#write(tx, row);
      const have = tx.select().from(authorizations).where(eq(authorizations.resourceId, row.id)).all();
      return syncGrants(tx, have, grants) || changed;
    });
  }

  /** Removes a resource (its authorizations go with it); true when it was there. */
  remove(id: string): boolean {
    return this.local.db.transaction((tx) => {
      const grants = tx.delete(authorizations).where(eq(authorizations.resourceId, id)).returning().all().length;
      return tx.delete(resources).where(eq(resources.id, id)).returning({ id: resources.id }).all().length > 0 || grants > 0;
    });
  }

  #write(tx: Tx, r: ResourceRecord): void {
    const v = values(r);
    tx.insert(resources).values(v).onConflictDoUpdate({ target: resources.id, set: v }).run();
  }
}
