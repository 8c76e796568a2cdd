// Stable peer identity and connection-id history.
//
// A peer's stable id: a store peer's row id, or for a config-file peer `file-` + the first 12 hex
// digits of SHA-256 over its public key. Derived rather than kept in a table: the key *is* the
// peer's WireGuard identity, so the id survives restarts, reordering or editing any other line of
// the file, a lost data dir, and is the same on every gateway sharing the config; a new key is a
// new peer, in WireGuard as here. (peer_identities still records it, for names and history.)
//
// cids are drawn anew at each start (wire/session-index.ts), so every (gid, cid, key) the gateway
// handed out is kept with when it was first and last seen: an old cid resolves to its peer.
import { createHash } from "node:crypto";
import { desc, eq, inArray, lt, or, sql } from "drizzle-orm";
import type { Database, Statement } from "bun:sqlite";
import type { Db } from "./database.ts";
import { connectionIds, peerIdentities } from "./schema.ts";

export type PeerSource = "file" | "store";

export interface PeerIdentity {
  publicKey: string;
  peerId: string;
  name: string | null;
  source: PeerSource;
  firstSeen: number;
  lastSeen: number;
}

export interface CidRow {
  gid: string;
  cid: number;
  publicKey: string;
  firstSeen: number;
  lastSeen: number;
}

const FILE_ID = /^file-[0-9a-f]{12}$/;

/** The stable id of a config-file peer: `file-` + 12 hex digits of SHA-256(public key bytes). */
export function filePeerId(publicKey: string): string {
  return `file-${createHash("sha256").update(Buffer.from(publicKey, "base64")).digest("hex").slice(0, 12)}`;
}

export function isFilePeerId(id: string): boolean {
  return FILE_ID.test(id);
}

/**
 * Rows per multi-row INSERT: building one drizzle query per row cost ~0.5 ms (10 000 peers: 5 s at
 * start, again every minute for last_seen); a few hundred rows per statement stay far below
 * SQLite's bound-parameter limit (32 766 since 3.32; 6 columns here).
 */
const ROWS_PER_INSERT = 500;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += ROWS_PER_INSERT) out.push(items.slice(i, i + ROWS_PER_INSERT));
  return out;
}

/** Upserts identities (inside a caller's transaction too): the newest id and name win, first_seen stays. */
export function rememberIdentities(db: Db, ids: readonly Omit<PeerIdentity, "firstSeen" | "lastSeen">[], now: number): void {
  // One row per key per statement: SQLite refuses an upsert that hits the same row twice.
  const latest = new Map<string, Omit<PeerIdentity, "firstSeen" | "lastSeen">>();
  for (const p of ids) latest.set(p.publicKey, p);
  for (const part of chunks([...latest.values()])) {
    db.insert(peerIdentities)
      .values(part.map((p) => ({ publicKey: p.publicKey, peerId: p.peerId, name: p.name, source: p.source, firstSeen: now, lastSeen: now })))
      .onConflictDoUpdate({ target: peerIdentities.publicKey, set: { peerId: sql`excluded.peer_id`, name: sql`excluded.name`, source: sql`excluded.source`, lastSeen: now } })
      .run();
  }
}

/** From this many rows on, observe() and remember() write them in one statement (see there). */
const MANY_CIDS = 64;

export class PeerHistory {
  /** (gid|cid|key) already written this run: only new ones are inserted on each observation. */
  readonly #known = new Map<string, Map<number, string>>();

  constructor(private readonly db: Db, private readonly sqlite: Database) {}

  /**
   * Statements prepared once, run per row on bun:sqlite directly: drizzle builds each query anew
   * (~0.1–0.5 ms per row), which at 10 000 peers was seconds at every start and every minute.
   */
  #statements: { identity: Statement; cid: Statement } | undefined;

  #prepared(): { identity: Statement; cid: Statement } {
    return (this.#statements ??= {
      identity: this.sqlite.prepare(
        "INSERT INTO peer_identities (public_key, peer_id, name, source, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) " +
        "ON CONFLICT (public_key) DO UPDATE SET peer_id = excluded.peer_id, name = excluded.name, source = excluded.source, last_seen = excluded.last_seen"),
      cid: this.sqlite.prepare(
        "INSERT INTO connection_ids (gid, cid, public_key, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT (gid, cid, public_key) DO UPDATE SET last_seen = excluded.last_seen"),
    });
  }

  remember(ids: readonly Omit<PeerIdentity, "firstSeen" | "lastSeen">[], now: number): void {
    if (ids.length === 0) return;
    if (ids.length >= MANY_CIDS) {
      // Thousands (a start with a big config file): one statement over JSON, as observe() does;
      // one row per key, the last one given winning as it would row by row.
      const latest = new Map<string, Omit<PeerIdentity, "firstSeen" | "lastSeen">>();
      for (const p of ids) latest.set(p.publicKey, p);
      (this.#identitiesFromJson ??= this.sqlite.prepare(
        "INSERT INTO peer_identities (public_key, peer_id, name, source, first_seen, last_seen) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ?1, ?1 FROM json_each(?2) WHERE true " +
        "ON CONFLICT (public_key) DO UPDATE SET peer_id = excluded.peer_id, name = excluded.name, source = excluded.source, last_seen = excluded.last_seen"))
        .run(now, JSON.stringify([...latest.values()].map((p) => [p.publicKey, p.peerId, p.name, p.source])));
      return;
    }
    const { identity } = this.#prepared();
    this.sqlite.transaction(() => {
      for (const p of ids) identity.run(p.publicKey, p.peerId, p.name, p.source, now, now);
    })();
  }

  /**
   * `remember` for every row of the peers table (source "store"), done inside SQLite in one
   * statement: 10 000 rows handed over one by one cost ~0.13 s of every start.
   */
  rememberStorePeers(now: number): void {
    (this.#storePeersStatement ??= this.sqlite.prepare(
      "INSERT INTO peer_identities (public_key, peer_id, name, source, first_seen, last_seen) SELECT public_key, id, name, 'store', ?1, ?1 FROM peers WHERE true " +
      "ON CONFLICT (public_key) DO UPDATE SET peer_id = excluded.peer_id, name = excluded.name, source = excluded.source, last_seen = excluded.last_seen")).run(now);
  }

  #storePeersStatement: Statement | undefined;
  #identitiesFromJson: Statement | undefined;

  /**
   * Records the live connections of gateway `gid`. New (cid, key) pairs are inserted at once (an
   * old cid must resolve from its first log line on); `touch` also moves last_seen of the ones
   * already known (done periodically and at shutdown, not on every call). One transaction.
   */
  observe(gid: string, live: readonly { cid: number; publicKey: string }[], now: number, touch = false): number {
    let known = this.#known.get(gid);
    if (!known) this.#known.set(gid, (known = new Map()));
    const fresh = live.filter((c) => known.get(c.cid) !== c.publicKey);
    if (fresh.length === 0 && !touch) return 0;
    const rows = touch ? live : fresh;
    if (rows.length >= MANY_CIDS) {
      // Thousands at once (a start, the minute's touch): handed over as one JSON text and
      // inserted inside SQLite, ~4× cheaper than a statement run per row.
      (this.#cidsFromJson ??= this.sqlite.prepare(
        "INSERT INTO connection_ids (gid, cid, public_key, first_seen, last_seen) SELECT ?1, value ->> 0, value ->> 1, ?2, ?2 FROM json_each(?3) WHERE true " +
        "ON CONFLICT (gid, cid, public_key) DO UPDATE SET last_seen = excluded.last_seen")).run(gid, now, JSON.stringify(rows.map((c) => [c.cid, c.publicKey])));
    } else {
      const { cid } = this.#prepared();
      this.sqlite.transaction(() => {
        for (const c of rows) cid.run(gid, c.cid, c.publicKey, now, now);
      })();
    }
    for (const c of fresh) known.set(c.cid, c.publicKey);
    return fresh.length;
  }

  #cidsFromJson: Statement | undefined;

  /** Whom `cid` named, newest first (a cid can recur across runs, rarely: 24 random bits). */
  byCid(cid: number): CidRow[] {
    return this.db.select().from(connectionIds).where(eq(connectionIds.cid, cid)).orderBy(desc(connectionIds.lastSeen)).limit(20).all();
  }

  /** The cids a peer (any of its keys) had, newest first. */
  cidsOf(keys: readonly string[], limit = 100): CidRow[] {
    if (keys.length === 0) return [];
    return this.db.select().from(connectionIds).where(inArray(connectionIds.publicKey, [...keys])).orderBy(desc(connectionIds.lastSeen)).limit(limit).all();
  }

  byKey(publicKey: string): PeerIdentity | undefined {
    return this.db.select().from(peerIdentities).where(eq(peerIdentities.publicKey, publicKey)).get() as PeerIdentity | undefined;
  }

  /**
   * A peer by its stable id or a public key: every key it has had (a store peer's key can be
   * edited; its id stays), newest first. Undefined when neither was ever seen.
   */
  resolve(idOrKey: string): { peerId: string; name: string | null; source: PeerSource; keys: string[] } | undefined {
    const hit = this.db.select().from(peerIdentities)
      .where(or(eq(peerIdentities.peerId, idOrKey), eq(peerIdentities.publicKey, idOrKey)))
      .orderBy(desc(peerIdentities.lastSeen)).get();
    if (!hit) return undefined;
    const all = this.db.select().from(peerIdentities).where(eq(peerIdentities.peerId, hit.peerId)).orderBy(desc(peerIdentities.lastSeen)).all();
    return { peerId: hit.peerId, name: all[0]!.name, source: all[0]!.source, keys: all.map((r) => r.publicKey) };
  }

  /** Retention: cid rows unseen since `before` go (identities stay: they are one row per peer). */
  prune(before: number): number {
    return this.db.delete(connectionIds).where(lt(connectionIds.lastSeen, before)).returning({ cid: connectionIds.cid }).all().length;
  }

  /** For tests and the API: how many cid rows gateway `gid` has. */
  count(gid: string): number {
    return this.db.select({ n: sql<number>`count(*)` }).from(connectionIds).where(eq(connectionIds.gid, gid)).get()?.n ?? 0;
  }
}
