// Standalone mode has two sources of peers: the wg-quick file (read at start, never written by
// the UI) and the store (managed in the admin UI/API). This applies the store's peers to the
// tunnel — enabled and unexpired ones in, the rest out — without touching file peers, and keeps
// sessions of peers whose keys did not change.
//
// The store validates what it writes, but a row can still be unusable (written by an older
// version, edited by hand, restored from a backup). One such row must never stop the gateway or
// block changes to the others: it is skipped with one error line (Errors page, Sentry) per
// version of the row, and every other peer — additions, removals, revocations — still applies.
import { decodeKey, encodeKey } from "../crypto/x25519.ts";
import { parseCidr, type Cidr } from "../ip/address.ts";
import type { PeerRow, Store } from "../store/index.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import { PeerSpecError, type PeerSpec, type Tunnel } from "../tunnel/index.ts";

/** A stored row the data plane cannot use, naming the column at fault. */
export class StoredPeerError extends Error {
  constructor(readonly field: string, options: { cause: unknown }) {
    super(`stored peer: ${field}`, options);
    this.name = "StoredPeerError";
  }
}

export class PeerSync {
  /** Public keys the store put into the tunnel, with the AllowedIPs applied for each. */
  readonly #applied = new Map<string, Cidr[]>();
  /** Rows reported as unusable: id → the row version reported, so each version logs once. */
  readonly #reported = new Map<string, string>();

  constructor(
    private readonly tunnel: Tunnel,
    private readonly store: Store,
    private readonly filePeers: Set<string>,
    private readonly log: TargetLogger,
  ) {}

  /** A row's AllowedIPs; throws on an entry that is not a CIDR. */
  static allowedIps(p: PeerRow): Cidr[] {
    return p.allowedIps.split(",").map((s) => s.trim()).filter(Boolean).map((s) => parseCidr(s));
  }

  /** A row's AllowedIPs, or none when the row is unusable (callers that only read, never apply). */
  static allowedIpsOrNone(p: PeerRow): Cidr[] {
    try {
      return PeerSync.allowedIps(p);
    } catch {
      return [];
    }
  }

  /** The tunnel spec for a row; throws StoredPeerError naming the column that is not usable. */
  static specOf(p: PeerRow): PeerSpec {
    const field = <T>(name: string, read: () => T): T => {
      try {
        return read();
      } catch (cause) {
        throw new StoredPeerError(name, { cause });
      }
    };
    return {
      publicKey: field("public_key", () => decodeKey(p.publicKey)),
      presharedKey: field("preshared_key", () => (p.presharedKey ? decodeKey(p.presharedKey) : undefined)),
      allowedIPs: field("allowed_ips", () => PeerSync.allowedIps(p)),
      persistentKeepalive: field("persistent_keepalive", () => {
        const n = p.persistentKeepalive;
        if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${String(n)} is not 0–65535 seconds`);
        return n;
      }),
    };
  }

  /** Store peers currently in the data plane: public key → AllowedIPs (what to route). */
  applied(): ReadonlyMap<string, Cidr[]> {
    return this.#applied;
  }

  /**
   * Returns how many peers were added or updated, removed, and skipped as unusable. `now` also
   * stamps the goodbye a removed peer gets when it has a live session.
   */
  apply(now: number): { upserted: number; removed: number; skipped: number } {
    const wanted = new Map<string, PeerRow>();
    /** Applied keys whose row is now unusable: left as they were rather than half-changed. */
    const kept = new Set<string>();
    let upserted = 0;
    let removed = 0;
    let skipped = 0;
    const seen = new Set<string>();
    for (const p of this.store.peers.list()) {
      seen.add(p.id);
      if (this.filePeers.has(p.publicKey)) continue; // the config file owns this key
      if (!p.enabled || (p.expiresAt !== null && p.expiresAt <= now)) continue;
      try {
        const spec = PeerSync.specOf(p);
        const key = encodeKey(spec.publicKey);
        const conn = this.tunnel.upsertPeer(spec);
        if (!this.#applied.has(key)) this.log.info("peer applied", { cid: conn.cid, public_key: key, peer: p.name });
        this.#applied.set(key, spec.allowedIPs);
        wanted.set(key, p);
        this.#reported.delete(p.id);
        upserted++;
      } catch (err) {
        skipped++;
        if (this.#applied.has(p.publicKey)) kept.add(p.publicKey);
        this.#report(p, err);
      }
    }
    for (const id of this.#reported.keys()) if (!seen.has(id)) this.#reported.delete(id);

    for (const key of [...this.#applied.keys()]) {
      if (wanted.has(key) || kept.has(key)) continue;
      const row = this.store.peers.byPublicKey(key);
      const why = !row ? "deleted" : !row.enabled ? "disabled" : "expired";
      const conn = [...this.tunnel.connections()].find((c) => c.publicKey === key);
      // Tell a connected client first (Firezone's goodbye) so it fails over now, not at a timeout.
      const told = conn ? this.tunnel.goodbyeTo(conn.cid, now) : false;
      this.tunnel.removePeer(decodeKey(key));
      this.#applied.delete(key);
      this.log.info("peer removed from the data plane", { cid: conn?.cid, public_key: key, reason: why, goodbye_sent: told });
      removed++;
    }
    return { upserted, removed, skipped };
  }

  #report(p: PeerRow, err: unknown): void {
    const version = `${p.updatedAt}|${p.publicKey}|${p.presharedKey ?? ""}|${p.allowedIps}`;
    if (this.#reported.get(p.id) === version) return;
    this.#reported.set(p.id, version);
    const field = err instanceof StoredPeerError ? err.field : err instanceof PeerSpecError ? SPEC_COLUMN[err.field] : undefined;
    this.log.error("stored peer skipped: it cannot be applied", {
      peer: p.name.slice(0, 64),
      peer_id: p.id,
      field,
      public_key: p.publicKey.slice(0, 64),
      err: err instanceof StoredPeerError ? err.cause : err,
    });
  }
}

/** PeerSpec fields as the store's columns (what an operator would look for). */
const SPEC_COLUMN: Record<keyof PeerSpec, string> = {
  publicKey: "public_key",
  presharedKey: "preshared_key",
  allowedIPs: "allowed_ips",
  endpoint: "endpoint",
  persistentKeepalive: "persistent_keepalive",
};
