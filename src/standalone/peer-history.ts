// Keeps the store's peer identities and cid history current for this gateway run (store/identity.ts):
// file peers' identities at start, every new (cid, key) as soon as a sync creates it, and the live
// ones' last_seen once a minute and at shutdown. Also names a cid's peer for persisted log lines.
import type { PeerConfig } from "../config/index.ts";
import { encodeKey } from "../crypto/x25519.ts";
import { filePeerId, type Store } from "../store/index.ts";
import type { TouchedSince } from "../telemetry/touched.ts";
import type { Tunnel } from "../tunnel/index.ts";

/** How often last_seen of the live connections moves (a restart loses at most this much of it). */
export const TOUCH_EVERY_MS = 60_000;

export class ConnectionHistory {
  #lastTouch = 0;
  /** cid → key of connections seen this run: a line about a connection just removed still finds its peer. */
  #cidKeys = new Map<number, string>();

  constructor(private readonly store: Store, private readonly tunnel: Tunnel, readonly gid: string) {}

  /** Identities of the config file's peers and of store peers made before identities were kept. */
  start(filePeers: readonly PeerConfig[], now: number): void {
    this.store.history.remember(filePeers.map((p) => {
      const key = encodeKey(p.publicKey);
      return { publicKey: key, peerId: filePeerId(key), name: null, source: "file" as const };
    }), now);
    // After the file's: a key in both is named as the store has it (as when both went in one list).
    this.store.history.rememberStorePeers(now);
    this.observe(now);
  }

  /** Records new cids at once; moves last_seen when TOUCH_EVERY_MS has passed (or `force`). */
  observe(now: number, force = false): void {
    const live = [...this.tunnel.connections()].map((c) => ({ cid: c.cid, publicKey: c.publicKey }));
    const touch = force || now - this.#lastTouch >= TOUCH_EVERY_MS;
    if (touch) {
      this.#lastTouch = now;
      // A set, not live.some() per entry: that was 10 000 × 10 000 comparisons each minute.
      const liveCids = new Set(live.map((c) => c.cid));
      this.#cidKeys = new Map([...this.#cidKeys].filter(([cid]) => liveCids.has(cid)));
    }
    for (const c of live) this.#cidKeys.set(c.cid, c.publicKey);
    this.store.history.observe(this.gid, live, now, touch);
  }

  /**
   * The periodic tick when no peer changed (no new cid to record): moves last_seen, every
   * TOUCH_EVERY_MS, of the connections with activity since the last move — an idle connection's
   * last_seen moves at shutdown (observe with `force`), not 10 000 rows a minute.
   */
  observeTouched(now: number, touched: TouchedSince): void {
    if (now - this.#lastTouch < TOUCH_EVERY_MS) return;
    this.#lastTouch = now;
    const live = touched.take().live.map((c) => ({ cid: c.cid, publicKey: c.publicKey }));
    for (const c of live) this.#cidKeys.set(c.cid, c.publicKey);
    this.store.history.observe(this.gid, live, now, true);
  }

  /**
   * Connection views with their peer's stable id and name beside the key (`peer_id`,
   * `peer_name`), so the API and pages name the peer the same way everywhere.
   */
  withPeers<T extends { public_key: string }>(views: T[]): (T & { peer_id: string; peer_name: string | null })[] {
    const stored = new Map(this.store.peers.list().map((p) => [p.publicKey, p]));
    return views.map((v) => {
      const p = stored.get(v.public_key);
      return { ...v, peer_id: p?.id ?? this.#fileId(v.public_key), peer_name: p?.name ?? null };
    });
  }

  readonly #fileIds = new Map<string, string>();
  #fileId(key: string): string {
    let id = this.#fileIds.get(key);
    if (id === undefined) {
      if (this.#fileIds.size > 100_000) this.#fileIds.clear(); // bounded: keys come from config and store only
      this.#fileIds.set(key, (id = filePeerId(key)));
    }
    return id;
  }

  keyOf(cid: number): string | undefined {
    try {
      return this.tunnel.connection(cid)?.publicKey ?? this.#cidKeys.get(cid);
    } catch {
      return this.#cidKeys.get(cid); // the tunnel torn down (a flush during shutdown)
    }
  }
}
