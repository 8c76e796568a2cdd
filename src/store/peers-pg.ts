// Peers on PostgreSQL: the same validation, overlap rule, rows and audit events as peers.ts (whose
// helpers it uses), as promises. Several gateways write here at once, so each change runs in one
// transaction that first takes a transaction-scoped advisory lock: the "key already a peer" and
// "AllowedIPs already taken" checks then see every committed peer and no one else's half-done
// insert — without it, two admins adding overlapping peers on two gateways could both succeed.
import { eq, sql } from "drizzle-orm";
import type { AddressOwner } from "../config/overlap.ts";
import { auditValues } from "./audit.ts";
import { assertFreeAddresses, assertUsableKey, newPeerValues, peerPatchSet, peerSnapshot, PeerValidationError, type PeerInput, type PeerRow, type PeerStore } from "./peers.ts";
import type { PgDb } from "./postgres.ts";
import { auditEvents, peerIdentities, peers } from "./schema-pg.ts";

/**
 * The NOTIFY channel announcing peer changes to every gateway on the database (cluster/cluster-peers.ts
 * listens). Sent with pg_notify inside the write's transaction, so PostgreSQL delivers it only if the
 * transaction commits: a rolled-back write announces nothing.
 */
export const PEERS_CHANNEL = "glassgate_peers";

/** What a notification on PEERS_CHANNEL carries: which row changed and who changed it (not the row: listeners read it). */
export interface PeerNotice {
  op: "create" | "update" | "delete";
  id: string;
  /** The gateway that wrote it (null when the repository has no gid). */
  gid: string | null;
}

/** The advisory-lock key serialising peer writes; distinct from the migration lock. */
export const PEER_WRITE_LOCK_KEY = 0x676c61737370n;

type Tx = Parameters<Parameters<PgDb["transaction"]>[0]>[0];

async function announce(tx: Tx, notice: PeerNotice): Promise<void> {
  await tx.execute(sql`select pg_notify(${PEERS_CHANNEL}, ${JSON.stringify(notice)})`);
}

async function lockPeers(tx: Tx): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${PEER_WRITE_LOCK_KEY.toString()}::bigint)`);
}

/** The peer's identity row (store/identity.ts keeps the same for SQLite): newest id and name win. */
async function rememberIdentity(tx: Tx, row: PeerRow, now: number): Promise<void> {
  await tx.insert(peerIdentities)
    .values({ publicKey: row.publicKey, peerId: row.id, name: row.name, source: "store", firstSeen: now, lastSeen: now })
    .onConflictDoUpdate({ target: peerIdentities.publicKey, set: { peerId: sql`excluded.peer_id`, name: sql`excluded.name`, source: sql`excluded.source`, lastSeen: now } });
}

export class PgPeerRepository implements PeerStore {
  /** `gid`: this gateway's id, stamped on the audit rows its changes write. */
  constructor(private readonly db: PgDb, private readonly gid?: string) {}

  list(): Promise<PeerRow[]> {
    return this.db.select().from(peers).orderBy(peers.name);
  }

  async get(id: string): Promise<PeerRow | undefined> {
    return (await this.db.select().from(peers).where(eq(peers.id, id)))[0];
  }

  async byPublicKey(key: string): Promise<PeerRow | undefined> {
    return (await this.db.select().from(peers).where(eq(peers.publicKey, key)))[0];
  }

  create(input: PeerInput & { clientPrivateKey?: string }, actor: string, others: readonly AddressOwner[] = []): Promise<PeerRow> {
    assertUsableKey(input.publicKey);
    return this.db.transaction(async (tx) => {
      await lockPeers(tx);
      const stored = await tx.select().from(peers);
      if (stored.some((p) => p.publicKey === input.publicKey)) throw new PeerValidationError({ publicKey: `"${input.publicKey}" is already a peer` });
      assertFreeAddresses(input.name, input.allowedIps, stored, undefined, others);
      const [row] = await tx.insert(peers).values(newPeerValues(input)).returning();
      const now = Date.now();
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "peer.created", subject: row!.publicKey, after: peerSnapshot(row) }, now));
      await rememberIdentity(tx, row!, now);
      await announce(tx, { op: "create", id: row!.id, gid: this.gid ?? null });
      return row!;
    });
  }

  update(id: string, patch: Partial<PeerInput>, actor: string, others: readonly AddressOwner[] = []): Promise<PeerRow> {
    if (patch.publicKey !== undefined) assertUsableKey(patch.publicKey);
    return this.db.transaction(async (tx) => {
      await lockPeers(tx);
      const stored = await tx.select().from(peers);
      const before = stored.find((p) => p.id === id);
      if (!before) throw new PeerValidationError({ id: `"${id}" is not a peer` });
      if (patch.allowedIps !== undefined) assertFreeAddresses(patch.name ?? before.name, patch.allowedIps, stored, id, others);
      if (patch.publicKey && patch.publicKey !== before.publicKey && stored.some((p) => p.publicKey === patch.publicKey)) {
        throw new PeerValidationError({ publicKey: `"${patch.publicKey}" is already a peer` });
      }
      const now = Date.now();
      const [row] = await tx.update(peers).set(peerPatchSet(patch, now)).where(eq(peers.id, id)).returning();
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "peer.updated", subject: row!.publicKey, before: peerSnapshot(before), after: peerSnapshot(row) }, now));
      await rememberIdentity(tx, row!, now);
      await announce(tx, { op: "update", id: row!.id, gid: this.gid ?? null });
      return row!;
    });
  }

  delete(id: string, actor: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await lockPeers(tx);
      // The row as deleted, not as read earlier: another gateway may have changed it meanwhile.
      const [before] = await tx.delete(peers).where(eq(peers.id, id)).returning();
      if (!before) return false;
      await tx.insert(auditEvents).values(auditValues({ gid: this.gid, actor, action: "peer.deleted", subject: before.publicKey, before: peerSnapshot(before) }, Date.now()));
      await announce(tx, { op: "delete", id: before.id, gid: this.gid ?? null });
      return true;
    });
  }
}
