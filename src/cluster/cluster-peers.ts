// Peers when several gateways share one PostgreSQL database. PostgreSQL holds the peers; this
// gateway's SQLite peers table is a mirror of them (peer-mirror.ts), because the data plane, peer
// sync and the admin read peers synchronously. Reads answer from the mirror; writes go to
// PostgreSQL (validated and audited there, once, in the write's transaction), then into the mirror,
// then onChange re-applies peers here.
//
// Other gateways' writes arrive through LISTEN glassgate_peers: a notice names the row, which is read
// back by id and upserted or removed. Notices heard in a burst are read in one query and applied
// together, with one onChange. The listening, the reconcile that is its safety net, and the backoff
// after a failed read are notified-mirror.ts's, shared with cluster-resources.ts.
import { inArray } from "drizzle-orm";
import type { AddressOwner } from "../config/overlap.ts";
import type { PeerInput, PeerRow, Store } from "../store/index.ts";
import { PEERS_CHANNEL } from "../store/peers-pg.ts";
import type { PeerStore } from "../store/peers.ts";
import type { PgStore } from "../store/pg-store.ts";
import { peers as pgPeers } from "../store/schema-pg.ts";
import { DEFAULT_RECONCILE_MS, NotifiedMirror, type ClusterMirrorOptions, type NotifiedMirrorStats } from "./notified-mirror.ts";
import { PeerMirror } from "./peer-mirror.ts";

export { DEFAULT_RECONCILE_MS, PEERS_CHANNEL };

export type ClusterPeersOptions = ClusterMirrorOptions;

export interface ClusterPeerStats extends NotifiedMirrorStats {
  /** Rows in the mirror. */
  peers: number;
  listening: boolean;
}

export class ClusterPeers implements PeerStore {
  readonly #mirror: PeerMirror;
  readonly #pg: PgStore;
  readonly #local: Store;
  readonly #notified: NotifiedMirror<PeerRow[]>;

  private constructor(o: ClusterPeersOptions) {
    this.#pg = o.pg;
    this.#local = o.local;
    this.#mirror = new PeerMirror(o.local);
    this.#notified = new NotifiedMirror(o, {
      channel: PEERS_CHANNEL, one: "peer", many: "peers",
      readAll: () => this.#pg.peers.list(),
      replaceAll: (rows) => (this.#mirror.replaceAll(rows) ? { peers: rows.length } : null),
      applyIds: (ids) => this.#applyIds(ids),
    });
  }

  /**
   * Loads every peer into the mirror, then listens, then reconciles periodically. The reconcile the
   * first LISTEN triggers covers a change committed between the load and the LISTEN.
   */
  static async start(o: ClusterPeersOptions): Promise<ClusterPeers> {
    const c = new ClusterPeers(o);
    await c.#notified.start();
    return c;
  }

  // Reads: the local mirror (synchronous, like the standalone store).
  list(): PeerRow[] {
    return this.#local.peers.list();
  }

  get(id: string): PeerRow | undefined {
    return this.#local.peers.get(id);
  }

  byPublicKey(key: string): PeerRow | undefined {
    return this.#local.peers.byPublicKey(key);
  }

  // Writes: PostgreSQL (validated, audited, announced), then the mirror, then the data plane.
  async create(input: PeerInput & { clientPrivateKey?: string }, actor: string, others?: readonly AddressOwner[]): Promise<PeerRow> {
    const row = await this.#pg.peers.create(input, actor, others);
    if (this.#mirror.upsert(row)) this.#notified.changed();
    return row;
  }

  async update(id: string, patch: Partial<PeerInput>, actor: string, others?: readonly AddressOwner[]): Promise<PeerRow> {
    const row = await this.#pg.peers.update(id, patch, actor, others);
    if (this.#mirror.upsert(row)) this.#notified.changed();
    return row;
  }

  async delete(id: string, actor: string): Promise<boolean> {
    const deleted = await this.#pg.peers.delete(id, actor);
    if (this.#mirror.remove(id)) this.#notified.changed();
    return deleted;
  }

  /** Asks for a full compare (the timer and every re-LISTEN do); resolves when it and everything queued before it ran. */
  reconcile(): Promise<void> {
    return this.#notified.reconcile();
  }

  /** Resolves when every notice heard so far has been applied (tests, shutdown). */
  settled(): Promise<void> {
    return this.#notified.settled();
  }

  stats(): ClusterPeerStats {
    return { ...this.#notified.stats(), peers: this.#local.peers.list().length, listening: this.#notified.listening };
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

  /** Reads the peers `ids` back (one query for a burst) and writes them to the mirror; how many changed. */
  async #applyIds(ids: string[]): Promise<number> {
    const rows = await this.#pg.db.select().from(pgPeers).where(inArray(pgPeers.id, ids));
    const found = new Map(rows.map((r) => [r.id, r]));
    let changed = 0;
    for (const id of ids) {
      const row = found.get(id);
      if (row ? this.#mirror.upsert(row) : this.#mirror.remove(id)) changed++;
    }
    return changed;
  }
}
