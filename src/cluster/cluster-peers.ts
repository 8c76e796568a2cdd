// Peers when several gateways share one PostgreSQL database. PostgreSQL holds the peers; this
// gateway's SQLite peers table is a mirror of them (peer-mirror.ts), because the data plane, peer
// sync and the admin read peers synchronously. Reads answer from the mirror; writes go to
// PostgreSQL (validated and audited there, once, in the write's transaction), then into the mirror,
// then onChange re-applies peers here.
//
// Other gateways' writes arrive through LISTEN glassgate_peers: a notice names the row, which is read
// back by id (the notice carries no secrets and no state that could be stale) and upserted or
// removed. Notices heard in a burst are read in one query and applied together, with one onChange.
// A periodic reconcile (full compare) is the safety net, and runs again after every re-LISTEN:
// notices sent while the listening connection was down are lost, the reconcile picks them up.
//
// Bun's SQL.listen keeps one dedicated connection for LISTEN, reconnects it with backoff and runs
// `onlisten` again after each reconnect; it does not say when the connection was lost, so the loss
// is logged when the listen comes back (and a database that stays down shows up as the reconcile's
// error, logged once per outage).
import { inArray } from "drizzle-orm";
import type { SQL } from "bun";
import type { AddressOwner } from "../config/overlap.ts";
import type { PeerInput, PeerRow, Store } from "../store/index.ts";
import { PEERS_CHANNEL, type PeerNotice } from "../store/peers-pg.ts";
import type { PeerStore } from "../store/peers.ts";
import type { PgStore } from "../store/pg-store.ts";
import { peers as pgPeers } from "../store/schema-pg.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import { PeerMirror } from "./peer-mirror.ts";

export { PEERS_CHANNEL };

/** How often the full compare runs when nothing asks for one (ms). */
export const DEFAULT_RECONCILE_MS = 30_000;

export interface ClusterPeersOptions {
  pg: PgStore;
  local: Store;
  gid: string;
  /** Called once per applied batch of changes (a burst of notices is one call): re-apply peers. */
  onChange: () => void;
  reconcileMs?: number;
  log?: TargetLogger;
}

export interface ClusterPeerStats {
  /** Rows in the mirror. */
  peers: number;
  /** Notices heard on the channel. */
  notices: number;
  /** Rows changed in the mirror by notices (upserted or removed). */
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

export class ClusterPeers implements PeerStore {
  readonly #mirror: PeerMirror;
  readonly #pg: PgStore;
  readonly #local: Store;
  readonly #onChange: () => void;
  readonly #log?: TargetLogger;
  /** Ids named by notices and not yet read back. */
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
  #stats: Omit<ClusterPeerStats, "peers" | "listening"> = { notices: 0, appliedByNotice: 0, reconciles: 0, reconcileRepairs: 0, relistens: 0, lastError: null };

  private constructor(o: ClusterPeersOptions) {
    this.#pg = o.pg;
    this.#local = o.local;
    this.#onChange = o.onChange;
    this.#log = o.log;
    this.#mirror = new PeerMirror(o.local);
  }

  /**
   * Loads every peer into the mirror, then listens, then reconciles periodically. The reconcile the
   * first LISTEN triggers covers a change committed between the load and the LISTEN.
   */
  static async start(o: ClusterPeersOptions): Promise<ClusterPeers> {
    const c = new ClusterPeers(o);
    const rows = await o.pg.peers.list();
    c.#mirror.replaceAll(rows);
    await c.#listen();
    c.#timer = setInterval(() => c.reconcile(), o.reconcileMs ?? DEFAULT_RECONCILE_MS);
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
    if (this.#mirror.upsert(row)) this.#changed();
    return row;
  }

  async update(id: string, patch: Partial<PeerInput>, actor: string, others?: readonly AddressOwner[]): Promise<PeerRow> {
    const row = await this.#pg.peers.update(id, patch, actor, others);
    if (this.#mirror.upsert(row)) this.#changed();
    return row;
  }

  async delete(id: string, actor: string): Promise<boolean> {
    const deleted = await this.#pg.peers.delete(id, actor);
    if (this.#mirror.remove(id)) this.#changed();
    return deleted;
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

  stats(): ClusterPeerStats {
    return { ...this.#stats, peers: this.#local.peers.list().length, listening: this.#subscription !== null };
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

  async #listen(): Promise<void> {
    this.#subscription = await this.#pg.client.listen(PEERS_CHANNEL, (payload) => this.#heard(payload), () => {
      // Every (re-)LISTEN but the very first follows a time without one: notices may have been missed.
      if (++this.#listens > 1) {
        this.#stats.relistens++;
        this.#log?.warn("peer notifications listening again after a lost connection; reconciling", { channel: PEERS_CHANNEL, relistens: this.#stats.relistens });
      }
      void this.reconcile();
    });
  }

  #heard(payload: string): void {
    if (this.#closed) return;
    this.#stats.notices++;
    let notice: Partial<PeerNotice>;
    try {
      notice = JSON.parse(payload) as Partial<PeerNotice>;
    } catch {
      notice = {};
    }
    if (typeof notice.id !== "string") {
      // Not ours to understand (a newer version, a hand-sent NOTIFY): compare everything instead.
      this.#log?.warn("peer notification not understood; reconciling", { channel: PEERS_CHANNEL, payload: payload.slice(0, 200) });
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
            await this.#applyIds(ids);
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
    const rows = await this.#pg.peers.list();
    this.#stats.reconciles++;
    if (this.#mirror.replaceAll(rows)) {
      this.#stats.reconcileRepairs++;
      this.#log?.info("peers reconciled: the mirror was behind PostgreSQL", { peers: rows.length });
      this.#changed();
    }
  }

  async #applyIds(ids: string[]): Promise<void> {
    const rows = await this.#pg.db.select().from(pgPeers).where(inArray(pgPeers.id, ids));
    const found = new Map(rows.map((r) => [r.id, r]));
    let changed = 0;
    for (const id of ids) {
      const row = found.get(id);
      if (row ? this.#mirror.upsert(row) : this.#mirror.remove(id)) changed++;
    }
    this.#stats.appliedByNotice += changed;
    if (changed > 0) {
      this.#log?.info("peers changed on another gateway applied", { changed });
      this.#changed();
    }
  }

  /** The mirror changed: re-apply. The caller's failure is its own (logged), not a failed read to retry. */
  #changed(): void {
    try {
      this.#onChange();
    } catch (err) {
      this.#log?.error("applying changed peers failed", { err: err as Error });
    }
  }

  /**
   * A read from PostgreSQL failed: logged once per outage (not once per notice), queued ids dropped
   * (a reconcile reads everything anyway), and a reconcile retried with backoff until one succeeds.
   */
  #failed(err: unknown): void {
    this.#stats.lastError = (err as Error).message;
    if (this.#retryMs === 0) this.#log?.error("reading peers from PostgreSQL failed; retrying with backoff", { err: err as Error });
    this.#pending.clear();
    this.#reconcileWanted = false;
    this.#retryMs = Math.min(this.#retryMs === 0 ? RETRY_FIRST_MS : this.#retryMs * 2, RETRY_MAX_MS);
    if (this.#closed) return;
    clearTimeout(this.#retry ?? undefined);
    this.#retry = setTimeout(() => void this.reconcile(), this.#retryMs);
  }

  #recovered(): void {
    if (this.#retryMs === 0) return;
    this.#log?.info("PostgreSQL reachable again for peers", {});
    this.#retryMs = 0;
    this.#stats.lastError = null;
  }
}

/** Backoff for a failed read: first retry after 500 ms, doubling up to 30 s. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
