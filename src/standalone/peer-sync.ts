// Standalone mode has two sources of peers: the wg-quick file (read at start, never written by
// the UI) and the store (managed in the admin UI/API). This applies the store's peers to the
// tunnel — enabled and unexpired ones in, the rest out — without touching file peers, and keeps
// sessions of peers whose keys did not change.
//
// The store validates what it writes, but a row can still be unusable (written by an older
// version, edited by hand, restored from a backup). One such row must never stop the gateway or
// block changes to the others: it is skipped with one error line (Errors page, Sentry) per
// version of the row, and every other peer — additions, removals, revocations — still applies.
//
// Two more reasons a row stays out: its tunnel address is already another peer's (a file peer, or
// an older store peer) — one owner per prefix, or one of them silently loses its packets
// (config/overlap.ts) — and an Endpoint hostname is resolved here in the shell, asynchronously:
// the peer is applied at once, and gets its endpoint (and, with a keepalive, its first
// handshake) when the name resolves.
import { AddressIndex, clashMessage, type AddressClash, type AddressOwner } from "../config/overlap.ts";
import { decodeKey, encodeKey } from "../crypto/x25519.ts";
import { formatIp, parseCidr, parseIp, type Cidr } from "../ip/address.ts";
import { servesPeer } from "../cluster/served-by.ts";
import type { PeerRow, Store } from "../store/index.ts";
import type { RemovalReason } from "../telemetry/connection-state.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import { PeerSpecError, type PeerSpec, type Tunnel } from "../tunnel/index.ts";
import type { Endpoint } from "../wire/index.ts";

/** A stored row the data plane cannot use, naming the column at fault. */
export class StoredPeerError extends Error {
  constructor(readonly field: string, options: { cause: unknown }) {
    super(`stored peer: ${field}`, options);
    this.name = "StoredPeerError";
  }
}

/** A row whose tunnel address another peer already has. */
export class AddressClashError extends Error {
  constructor(readonly clash: AddressClash) {
    super(clashMessage(clash));
    this.name = "AddressClashError";
  }
}

/** A row whose public key is a config file peer's: the file's [Peer] is what applies. */
class FileKeyError extends Error {}

export interface PeerSyncOptions {
  /** The config file's peers (their addresses are taken first; the file owns them). */
  fileOwners?: readonly AddressOwner[];
  /** Resolves an Endpoint hostname to one address (the shell's DNS); without it, hostnames wait. */
  resolveHost?: (host: string) => Promise<string>;
  /** Called when a hostname resolved: apply again to hand the endpoint to the tunnel. */
  onResolved?: () => void;
  /** A peer left the data plane, and why (connection states and problems follow it). */
  onRemoved?: (cid: number, publicKey: string, reason: RemovalReason, now: number) => void;
  /**
   * Cluster mode (several gateways on one database): this gateway's id; rows whose `served_by`
   * names other gateways only stay out of its data plane. Absent (standalone): every row is served.
   */
  gid?: string;
}

/** "host:port" or "[v6]:port" as the store keeps it. */
export function parseEndpointText(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(text) ?? /^([^:\[\]]+):([0-9]{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) throw new Error(`${JSON.stringify(text.slice(0, 64))} is not host:port (port 1–65535)`);
  return { host: m[1]!, port };
}

/** Peers newly applied in one sync that get a line each; the rest are counted in one line. */
const PEER_LINES = 32;

export class PeerSync {
  /** Public keys the store put into the tunnel, with the AllowedIPs applied for each. */
  readonly #applied = new Map<string, Cidr[]>();
  /** Per applied key: the row version it was applied from, and its connection (see rowVersion). */
  readonly #appliedVersions = new Map<string, { version: string; cid: number }>();
  /** Rows reported as unusable: id → the row version reported, so each version logs once. */
  readonly #reported = new Map<string, string>();
  /** The endpoint last handed to the tunnel per key: passed again only when the row changes it, so a roaming client is not pulled back every sync. */
  readonly #endpoints = new Map<string, string>();
  /** Hostnames resolved (kept for the process's life, as wg-quick resolves once). */
  readonly #resolved = new Map<string, string>();
  readonly #resolving = new Set<string>();
  /** Hostnames whose failure was logged (once until they resolve). */
  readonly #unresolved = new Set<string>();
  readonly #opts: PeerSyncOptions;
  /** Store.dataPlaneMark() at the last full apply. */
  #mark: string | undefined;
  /** The earliest expiry of an applied row after the last full apply: it must be taken out then. */
  #nextExpiry = -Infinity;
  #rows: PeerRow[] = [];
  /** The rows the last full apply read (oldest first): callers that need them right after apply need not read them again. */
  get rows(): readonly PeerRow[] {
    return this.#rows;
  }
  /** Rows kept out at the last apply because their tunnel address is taken (a named problem). */
  clashes: { peer: string; publicKey: string; address: string; other: string }[] = [];

  constructor(
    private readonly tunnel: Tunnel,
    private readonly store: Store,
    private readonly filePeers: Set<string>,
    private readonly log: TargetLogger,
    opts: PeerSyncOptions = {},
  ) {
    this.#opts = opts;
  }

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
  apply(now: number, opts: { unlessUnchanged?: boolean } = {}): { upserted: number; removed: number; skipped: number; unchanged?: true } {
    // The periodic sync with nothing new (no row changed, no expiry due, no hostname pending):
    // nothing to do, and nothing read row by row — the cost of an idle 10 s tick at 10 000 peers.
    const mark = this.store.dataPlaneMark();
    if (opts.unlessUnchanged && mark === this.#mark && now < this.#nextExpiry && this.#resolving.size === 0 && this.#unresolved.size === 0) {
      return { upserted: this.#applied.size, removed: 0, skipped: 0, unchanged: true };
    }
    this.#mark = mark;
    const wanted = new Map<string, PeerRow>();
    /** Applied keys whose row is now unusable: left as they were rather than half-changed. */
    const kept = new Set<string>();
    let upserted = 0;
    let removed = 0;
    let skipped = 0;
    let newlyApplied = 0;
    const seen = new Set<string>();
    const clashes: typeof this.clashes = [];
    // Addresses go to whoever had them first: file peers, then store peers oldest first.
    const owners = new AddressIndex<AddressOwner>(this.#opts.fileOwners ?? []);
    const rows = this.store.peers.list().sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
    this.#rows = rows;
    let nextExpiry = Infinity;
    for (const p of rows) {
      if (p.enabled && p.expiresAt !== null && p.expiresAt > now && p.expiresAt < nextExpiry) nextExpiry = p.expiresAt;
      seen.add(p.id);
      if (this.filePeers.has(p.publicKey)) {
        // The config file owns this key (the admin refuses such rows; an older database may hold one).
        skipped++;
        this.#report(p, new FileKeyError());
        continue;
      }
      if (!p.enabled || (p.expiresAt !== null && p.expiresAt <= now)) continue;
      if (this.#opts.gid !== undefined && !servesPeer(p, this.#opts.gid)) continue;
      // Unchanged since the last apply and still in the tunnel: nothing to decode, upsert or
      // re-route. The sync runs every 10 s; with 10 000 rows the full path cost ~1 CPU-s each time.
      const version = rowVersion(p);
      const prev = this.#appliedVersions.get(p.publicKey);
      if (prev && prev.version === version && !p.endpoint && this.#applied.has(p.publicKey) && this.tunnel.connection(prev.cid)?.publicKey === p.publicKey) {
        const me: AddressOwner = { label: `peer "${p.name}"`, allowedIPs: this.#applied.get(p.publicKey)! };
        const clash = owners.clashOf(me);
        if (!clash) {
          owners.add(me);
          wanted.set(p.publicKey, p);
          upserted++;
          continue;
        }
        // A file peer or an older row took its address since: the full path below reports it.
      }
      try {
        const spec = PeerSync.specOf(p);
        const key = encodeKey(spec.publicKey);
        const me: AddressOwner = { label: `peer "${p.name}"`, allowedIPs: spec.allowedIPs };
        const clash = owners.clashOf(me);
        if (clash) throw new AddressClashError(clash);
        const endpoint = this.#endpointOf(p);
        const changed = endpoint && this.#endpoints.get(key) !== endpointKey(endpoint);
        let conn = this.tunnel.upsertPeer({ ...spec, endpoint: changed ? endpoint : undefined });
        // A replaced connection (new preshared key) starts without one: give it the row's again.
        if (endpoint && !conn.peer.endpoint) conn = this.tunnel.upsertPeer({ ...spec, endpoint });
        if (endpoint) this.#endpoints.set(key, endpointKey(endpoint));
        else this.#endpoints.delete(key);
        owners.add(me);
        if (!this.#applied.has(key)) {
          newlyApplied++;
          if (newlyApplied <= PEER_LINES) this.log.info("peer applied", { cid: conn.cid, public_key: key, peer: p.name, remote: endpoint ? `${endpoint.address}:${endpoint.port}` : undefined });
        }
        this.#applied.set(key, spec.allowedIPs);
        this.#appliedVersions.set(key, { version, cid: conn.cid });
        wanted.set(key, p);
        this.#reported.delete(p.id);
        upserted++;
      } catch (err) {
        skipped++;
        // Unusable rows leave an applied peer as it was; a clash takes the later claimant out.
        if (this.#applied.has(p.publicKey) && !(err instanceof AddressClashError)) {
          kept.add(p.publicKey);
          // Still routed as it was: its addresses stay taken.
          owners.add({ label: `peer "${p.name}"`, allowedIPs: this.#applied.get(p.publicKey)! });
        }
        if (err instanceof AddressClashError) clashes.push({ peer: p.name.slice(0, 64), publicKey: p.publicKey, address: err.clash.address, other: err.clash.owner.label.slice(0, 200) });
        this.#report(p, err);
      }
    }
    // A first sync of thousands of rows: the first lines, then how many more (not 10 000 lines).
    if (newlyApplied > PEER_LINES) this.log.info("peers applied", { count: newlyApplied, not_logged_one_by_one: newlyApplied - PEER_LINES });
    this.clashes = clashes;
    this.#nextExpiry = nextExpiry;
    for (const id of this.#reported.keys()) if (!seen.has(id)) this.#reported.delete(id);

    for (const key of [...this.#applied.keys()]) {
      if (wanted.has(key) || kept.has(key)) continue;
      const row = this.store.peers.byPublicKey(key);
      const why: RemovalReason = !row ? "deleted" : !row.enabled ? "disabled" : row.expiresAt !== null && row.expiresAt <= now ? "expired"
        : this.#opts.gid !== undefined && !servesPeer(row, this.#opts.gid) ? "not_served" : "address_clash";
      const conn = [...this.tunnel.connections()].find((c) => c.publicKey === key);
      // Tell a connected client first (Firezone's goodbye) so it fails over now, not at a timeout.
      const told = conn ? this.tunnel.goodbyeTo(conn.cid, now) : false;
      this.tunnel.removePeer(decodeKey(key));
      this.#applied.delete(key);
      this.#appliedVersions.delete(key);
      this.#endpoints.delete(key);
      this.log.info("peer removed from the data plane", { cid: conn?.cid, public_key: key, reason: why, goodbye_sent: told });
      if (conn) this.#opts.onRemoved?.(conn.cid, key, why, now);
      removed++;
    }
    return { upserted, removed, skipped };
  }

  /**
   * The row's endpoint as the tunnel takes it: an IP literal directly; a hostname once resolved
   * (resolution is started here and never awaited — the data plane does not wait for DNS).
   */
  #endpointOf(p: PeerRow): Endpoint | undefined {
    if (!p.endpoint) return undefined;
    let parsed: { host: string; port: number };
    try {
      parsed = parseEndpointText(p.endpoint);
    } catch (cause) {
      throw new StoredPeerError("endpoint", { cause });
    }
    const literal = parseIp(parsed.host);
    if (literal) return { address: formatIp(literal), port: parsed.port };
    const address = this.#resolved.get(parsed.host);
    if (address) return { address, port: parsed.port };
    this.#resolve(parsed.host, p);
    return undefined;
  }

  #resolve(host: string, p: PeerRow): void {
    const resolveHost = this.#opts.resolveHost;
    if (!resolveHost || this.#resolving.has(host)) return;
    this.#resolving.add(host);
    const who = { peer: p.name.slice(0, 64), peer_id: p.id, endpoint: p.endpoint?.slice(0, 300) };
    resolveHost(host).then(
      (address) => {
        this.#resolving.delete(host);
        this.#unresolved.delete(host);
        this.#resolved.set(host, address);
        this.log.info("peer endpoint resolved", { ...who, address });
        this.#opts.onResolved?.();
      },
      (err: unknown) => {
        this.#resolving.delete(host);
        // Tried again at the next sync (every 10 s); said once until it works.
        if (!this.#unresolved.has(host)) this.log.warn("peer endpoint not resolved: the gateway cannot reach out to this peer until it does", { ...who, err });
        this.#unresolved.add(host);
      },
    );
  }

  #report(p: PeerRow, err: unknown): void {
    const version = `${p.updatedAt}|${p.publicKey}|${p.presharedKey ?? ""}|${p.allowedIps}|${p.endpoint ?? ""}`;
    if (this.#reported.get(p.id) === version) return;
    this.#reported.set(p.id, version);
    if (err instanceof FileKeyError) {
      this.log.error("stored peer skipped: the config file has a peer with this key", { peer: p.name.slice(0, 64), peer_id: p.id, field: "public_key", public_key: p.publicKey.slice(0, 64) });
      return;
    }
    if (err instanceof AddressClashError) {
      this.log.error("stored peer skipped: its tunnel address is another peer's", {
        peer: p.name.slice(0, 64),
        peer_id: p.id,
        field: "allowed_ips",
        address: err.clash.address,
        other_peer: err.clash.owner.label.slice(0, 200),
        public_key: p.publicKey.slice(0, 64),
        err: err.message,
      });
      return;
    }
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

/** Every column the data plane takes from a row: equal versions apply identically. */
function rowVersion(p: PeerRow): string {
  return `${p.updatedAt}|${p.publicKey}|${p.presharedKey ?? ""}|${p.allowedIps}|${p.endpoint ?? ""}|${p.persistentKeepalive}`;
}

/** PeerSpec fields as the store's columns (what an operator would look for). */
const endpointKey = (e: Endpoint): string => `${e.address}|${e.port}`;

const SPEC_COLUMN: Record<keyof PeerSpec, string> = {
  publicKey: "public_key",
  presharedKey: "preshared_key",
  allowedIPs: "allowed_ips",
  endpoint: "endpoint",
  persistentKeepalive: "persistent_keepalive",
};
