// Standalone mode has two sources of peers: the wg-quick file (read at start, never written by
// the UI) and the store (managed in the admin UI/API). This applies the store's peers to the
// tunnel — enabled and unexpired ones in, the rest out — without touching file peers, and keeps
// sessions of peers whose keys did not change.
import { decodeKey } from "../crypto/x25519.ts";
import { parseCidr, type Cidr } from "../ip/address.ts";
import type { PeerRow, Store } from "../store/index.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Tunnel } from "../tunnel/index.ts";

export class PeerSync {
  /** Public keys the store put into the tunnel. */
  readonly #applied = new Set<string>();

  constructor(
    private readonly tunnel: Tunnel,
    private readonly store: Store,
    private readonly filePeers: Set<string>,
    private readonly log: TargetLogger,
  ) {}

  static allowedIps(p: PeerRow): Cidr[] {
    return p.allowedIps.split(",").map((s) => s.trim()).filter(Boolean).map((s) => parseCidr(s));
  }

  /** Returns how many peers were added or updated, and how many removed. */
  apply(now: number): { upserted: number; removed: number } {
    const wanted = new Map<string, PeerRow>();
    for (const p of this.store.peers.list()) {
      if (this.filePeers.has(p.publicKey)) continue; // the config file owns this key
      if (p.enabled && (p.expiresAt === null || p.expiresAt > now)) wanted.set(p.publicKey, p);
    }
    let upserted = 0;
    let removed = 0;
    for (const [key, p] of wanted) {
      const conn = this.tunnel.upsertPeer({
        publicKey: decodeKey(key),
        presharedKey: p.presharedKey ? decodeKey(p.presharedKey) : undefined,
        allowedIPs: PeerSync.allowedIps(p),
        persistentKeepalive: p.persistentKeepalive,
      });
      if (!this.#applied.has(key)) this.log.info("peer applied", { cid: conn.cid, public_key: key, peer: p.name });
      this.#applied.add(key);
      upserted++;
    }
    for (const key of [...this.#applied]) {
      if (wanted.has(key)) continue;
      const row = this.store.peers.byPublicKey(key);
      const why = !row ? "deleted" : !row.enabled ? "disabled" : "expired";
      this.tunnel.removePeer(decodeKey(key));
      this.#applied.delete(key);
      this.log.info("peer removed from the data plane", { public_key: key, reason: why });
      removed++;
    }
    return { upserted, removed };
  }
}
