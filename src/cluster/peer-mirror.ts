// The local SQLite copy of the shared peers (cluster mode). PostgreSQL is the source of truth; each
// gateway keeps its peers table in --data as a mirror, because the data plane, peer sync and the
// admin read peers synchronously from SQLite. Rows arrive as PostgreSQL has them and are written as
// they are — no validation (PostgreSQL's writer validated them) and no audit (the change was audited
// once, where it was made). Each call is one SQLite transaction and says whether anything changed,
// so the caller re-applies peers only when there is something to apply.
import { eq, inArray } from "drizzle-orm";
import type { PeerRow, Store } from "../store/index.ts";
import { rememberIdentities } from "../store/identity.ts";
import { peers } from "../store/schema.ts";

const COLUMNS = ["name", "publicKey", "presharedKey", "clientPrivateKey", "allowedIps", "endpoint", "persistentKeepalive", "enabled", "expiresAt", "createdAt", "updatedAt", "servedBy"] as const;

/** Whether two rows differ in any column. */
function differs(a: PeerRow, b: PeerRow): boolean {
  return COLUMNS.some((c) => a[c] !== b[c]);
}

/** Only the table's columns (a row from PostgreSQL might carry more one day). */
function values(r: PeerRow): PeerRow {
  return {
    id: r.id, name: r.name, publicKey: r.publicKey, presharedKey: r.presharedKey, clientPrivateKey: r.clientPrivateKey, allowedIps: r.allowedIps,
    endpoint: r.endpoint, persistentKeepalive: r.persistentKeepalive, enabled: r.enabled, expiresAt: r.expiresAt, createdAt: r.createdAt, updatedAt: r.updatedAt, servedBy: r.servedBy,
  };
}

export class PeerMirror {
  constructor(private readonly local: Store) {}

  /** Makes the local table exactly `rows` (a full load or a reconcile); true when anything changed. */
  replaceAll(rows: readonly PeerRow[]): boolean {
    return this.local.db.transaction((tx) => {
      const have = new Map(tx.select().from(peers).all().map((r) => [r.id, r]));
      const want = new Map(rows.map((r) => [r.id, r]));
      const gone = [...have.keys()].filter((id) => !want.has(id));
      const changed = rows.filter((r) => !have.has(r.id) || differs(have.get(r.id)!, r));
      if (gone.length === 0 && changed.length === 0) return false;
      // Changed rows are deleted and inserted again rather than updated in place: two rows that
      // swapped public keys (unique) could not be updated one after the other.
      const out = [...gone, ...changed.filter((r) => have.has(r.id)).map((r) => r.id)];
      for (let i = 0; i < out.length; i += 500) tx.delete(peers).where(inArray(peers.id, out.slice(i, i + 500))).run();
      for (let i = 0; i < changed.length; i += 100) tx.insert(peers).values(changed.slice(i, i + 100).map(values)).run();
      rememberIdentities(tx as unknown as typeof this.local.db, changed.map((r) => ({ publicKey: r.publicKey, peerId: r.id, name: r.name, source: "store" as const })), Date.now());
      return true;
    });
  }

  /** Writes one row as PostgreSQL has it; true when it was new or different. */
  upsert(row: PeerRow): boolean {
    return this.local.db.transaction((tx) => {
      const before = tx.select().from(peers).where(eq(peers.id, row.id)).get();
      if (before && !differs(before, row)) return false;
      tx.delete(peers).where(eq(peers.id, row.id)).run();
      // A key now held by this row was another id's here (deleted, then re-added elsewhere, and the
      // delete's notice not applied yet): PostgreSQL says the key is this row's, so the old row goes.
      tx.delete(peers).where(eq(peers.publicKey, row.publicKey)).run();
      tx.insert(peers).values(values(row)).run();
      rememberIdentities(tx as unknown as typeof this.local.db, [{ publicKey: row.publicKey, peerId: row.id, name: row.name, source: "store" }], Date.now());
      return true;
    });
  }

  /** Removes a row; true when it was there. */
  remove(id: string): boolean {
    return this.local.db.delete(peers).where(eq(peers.id, id)).returning({ id: peers.id }).all().length > 0;
  }
}
