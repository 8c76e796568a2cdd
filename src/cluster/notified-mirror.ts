// Keeps one local SQLite mirror in step with PostgreSQL through LISTEN/NOTIFY, for ClusterPeers and
// ClusterResources (cluster-peers.ts, cluster-resources.ts), which hand it what is theirs: the
// channel, how to read and write their rows, and the words for their log lines.
//
// A notice names a row by id (PeerNotice, ResourceNotice: the notice carries no secrets and no state
// that could be stale); the owner reads it back by id and upserts or removes it. Notices heard in a
// burst are applied together, with one onChange. A periodic reconcile (full compare) is the safety
// net, and runs again after every re-LISTEN: notices sent while the listening connection was down
// are lost, the reconcile picks them up.
//
// Bun's SQL.listen keeps one dedicated connection for LISTEN, reconnects it with backoff and runs
// `onlisten` again after each reconnect; it does not say when the connection was lost, so the loss
// is logged when the listen comes back (and a database that stays down shows up as the reconcile's
// error, logged once per outage).
import type { SQL } from "bun";
import type { Store } from "../store/index.ts";
import type { PgStore } from "../store/pg-store.ts";
import type { TargetLogger } from "../telemetry/log.ts";

/** How often the full compare runs when nothing asks for one (ms). */
export const DEFAULT_RECONCILE_MS = 30_000;

/** Backoff for a failed read: first retry after 500 ms, doubling up to 30 s. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

/** The counters both owners report (their stats add how many rows the mirror holds). */
export interface NotifiedMirrorStats {
  /** Notices heard on the channel. */
  notices: number;
  /** Rows changed in the mirror by notices (upserted or removed). */
  appliedByNotice: number;
  /** Full compares run, and how many of them found the mirror behind. */
  reconciles: number;
  reconcileRepairs: number;
  /** Times the LISTEN came back after its connection was lost. */
  relistens: number;
  /** The last failed read from PostgreSQL (cleared by the next success). */
  lastError: string | null;
}

/** What ClusterPeers and ClusterResources are started with. */
export interface ClusterMirrorOptions {
  pg: PgStore;
  local: Store;
  gid: string;
  /** Called once per applied batch of changes (a burst of notices is one call): re-apply them. */
  onChange: () => void;
  reconcileMs?: number;
  log?: TargetLogger;
}

/** What is the owner's own: its channel, its words, its rows. */
export interface NotifiedMirrorRows<All> {
  channel: string;
  /** What the log lines call a row and the rows ("peer", "peers"). */
  one: string;
  many: string;
  /** Reads every row from PostgreSQL (the start's load and each reconcile). */
  readAll: () => Promise<All>;
  /** Writes what readAll read over the mirror; the reconcile's log fields when the mirror changed, else null. */
  replaceAll: (all: All) => Record<string, number> | null;
  /** Reads the rows `ids` back and writes them to the mirror (a row gone is removed); how many changed. */
  applyIds: (ids: string[]) => Promise<number>;
}

export class NotifiedMirror<All> {
  readonly #o: ClusterMirrorOptions;
  readonly #rows: NotifiedMirrorRows<All>;
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
  #stats: NotifiedMirrorStats = { notices: 0, appliedByNotice: 0, reconciles: 0, reconcileRepairs: 0, relistens: 0, lastError: null };

  constructor(o: ClusterMirrorOptions, rows: NotifiedMirrorRows<All>) {
    this.#o = o;
    this.#rows = rows;
  }

  /**
   * Loads every row into the mirror, then listens, then reconciles periodically. The reconcile the
   * first LISTEN triggers covers a change committed between the load and the LISTEN.
   */
  async start(): Promise<void> {
    this.#rows.replaceAll(await this.#rows.readAll());
    await this.#listen();
    this.#timer = setInterval(() => this.reconcile(), this.#o.reconcileMs ?? DEFAULT_RECONCILE_MS);
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

  stats(): NotifiedMirrorStats {
    return { ...this.#stats };
  }

  get listening(): boolean {
    return this.#subscription !== null;
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

  /** The mirror changed: re-apply. The caller's failure is its own (logged), not a failed read to retry. */
  changed(): void {
    try {
      this.#o.onChange();
    } catch (err) {
      this.#o.log?.error(`applying changed ${this.#rows.many} failed`, { err: err as Error });
    }
  }

  async #listen(): Promise<void> {
    const { channel } = this.#rows;
    this.#subscription = await this.#o.pg.client.listen(channel, (payload) => this.#heard(payload), () => {
      // Every (re-)LISTEN but the very first follows a time without one: notices may have been missed.
      if (++this.#listens > 1) {
        this.#stats.relistens++;
        this.#o.log?.warn(`${this.#rows.one} notifications listening again after a lost connection; reconciling`, { channel, relistens: this.#stats.relistens });
      }
      void this.reconcile();
    });
  }

  #heard(payload: string): void {
    if (this.#closed) return;
    this.#stats.notices++;
    let notice: { id?: unknown };
    try {
      notice = JSON.parse(payload) as { id?: unknown };
    } catch {
      notice = {};
    }
    if (typeof notice.id !== "string") {
      // Not ours to understand (a newer version, a hand-sent NOTIFY): compare everything instead.
      this.#o.log?.warn(`${this.#rows.one} notification not understood; reconciling`, { channel: this.#rows.channel, payload: payload.slice(0, 200) });
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
            const changed = await this.#rows.applyIds(ids);
            this.#stats.appliedByNotice += changed;
            if (changed > 0) {
              this.#o.log?.info(`${this.#rows.many} changed on another gateway applied`, { changed });
              this.changed();
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
    const all = await this.#rows.readAll();
    this.#stats.reconciles++;
    const repaired = this.#rows.replaceAll(all);
    if (repaired) {
      this.#stats.reconcileRepairs++;
      this.#o.log?.info(`${this.#rows.many} reconciled: the mirror was behind PostgreSQL`, repaired);
      this.changed();
    }
  }

  /**
   * A read from PostgreSQL failed: logged once per outage (not once per notice), queued ids dropped
   * (a reconcile reads everything anyway), and a reconcile retried with backoff until one succeeds.
   */
  #failed(err: unknown): void {
    this.#stats.lastError = (err as Error).message;
    if (this.#retryMs === 0) this.#o.log?.error(`reading ${this.#rows.many} from PostgreSQL failed; retrying with backoff`, { err: err as Error });
    this.#pending.clear();
    this.#reconcileWanted = false;
    this.#retryMs = Math.min(this.#retryMs === 0 ? RETRY_FIRST_MS : this.#retryMs * 2, RETRY_MAX_MS);
    if (this.#closed) return;
    clearTimeout(this.#retry ?? undefined);
    this.#retry = setTimeout(() => void this.reconcile(), this.#retryMs);
  }

  #recovered(): void {
    if (this.#retryMs === 0) return;
    this.#o.log?.info(`PostgreSQL reachable again for ${this.#rows.many}`, {});
    this.#retryMs = 0;
    this.#stats.lastError = null;
  }
}
