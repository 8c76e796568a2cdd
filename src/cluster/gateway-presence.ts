// What a gateway publishes about itself on each heartbeat when several share a PostgreSQL
// database (gateways.live, a JSON text): its connections and its problems, bounded, so any
// gateway's admin can show every gateway's. Writing is `gatewayLive` + JSON.stringify; reading
// goes through `readGatewayLive`, because the text comes from another process (perhaps another
// version): it is checked field by field, and a row that does not fit shows as "unreadable"
// instead of throwing inside a page.
import { z } from "zod";
import type { ConnectionView } from "../telemetry/view.ts";
import type { ProblemView } from "../telemetry/problems.ts";

/** Newest connections kept in one publish: beyond this a row would make every heartbeat heavy. */
export const MAX_LIVE_CONNECTIONS = 500;
export const MAX_LIVE_PROBLEMS = 50;
/** A published text longer than this is not parsed at all (500 rows fit in well under it). */
export const MAX_LIVE_TEXT = 1024 * 1024;

export interface LiveConnection {
  cid: number;
  /** The peer's name when the store has one, else its public key (base64). */
  peer: string;
  /**
   * The peer's public key (base64): how another gateway's takeover finds the peer (a name is not
   * unique). Optional: a gateway of an older version publishes `peer` only.
   */
  public_key?: string;
  endpoint: string | null;
  /** ICE clients only: the data path (direct host, srflx, relay via …). */
  path?: string;
  rx_bytes: number;
  tx_bytes: number;
  /** ISO 8601, or null before the first. */
  last_handshake: string | null;
  /** connection-state.ts's state when published. */
  state?: string;
}

export interface LiveProblem {
  kind: string;
  title: string;
  /** ISO 8601. */
  since: string;
  count?: number;
  cid?: number;
}

export interface GatewayLive {
  connections: LiveConnection[];
  problems: LiveProblem[];
}

/** A row of another gateway's publish that did not pass the check, with why (for the page). */
export interface Unreadable {
  unreadable: string;
}

export interface ReadLive {
  connections: (LiveConnection | Unreadable)[];
  problems: (LiveProblem | Unreadable)[];
  /** Why the whole text could not be read; null when it could (rows may still be unreadable). */
  unreadable: string | null;
}

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const iso = z.string().max(40);

const liveConnection = z.object({
  cid: count,
  peer: z.string().min(1).max(256),
  public_key: z.string().max(64).optional(),
  endpoint: z.string().max(128).nullable(),
  path: z.string().max(256).optional(),
  rx_bytes: count,
  tx_bytes: count,
  last_handshake: iso.nullable(),
  state: z.string().max(32).optional(),
});

const liveProblem = z.object({
  kind: z.string().min(1).max(64),
  title: z.string().max(512),
  since: iso,
  count: count.optional(),
  cid: count.optional(),
});

const liveDoc = z.object({ connections: z.array(z.unknown()), problems: z.array(z.unknown()) });

/** The publish: newest handshakes first (never-connected last), at most MAX_LIVE_* of each. */
export function gatewayLive(connections: (ConnectionView & { peer_name?: string | null })[], problems: ProblemView[]): GatewayLive {
  const sorted = [...connections].sort((a, b) => (b.last_handshake ?? "").localeCompare(a.last_handshake ?? "") || b.cid - a.cid);
  return {
    connections: sorted.slice(0, MAX_LIVE_CONNECTIONS).map((c) => {
      const row: LiveConnection = { cid: c.cid, peer: c.peer_name || c.public_key, public_key: c.public_key, endpoint: c.endpoint, rx_bytes: c.rx_bytes, tx_bytes: c.tx_bytes, last_handshake: c.last_handshake, state: c.state };
      if (c.path !== undefined) row.path = c.path;
      return row;
    }),
    problems: [...problems]
      .sort((a, b) => b.since.localeCompare(a.since))
      .slice(0, MAX_LIVE_PROBLEMS)
      .map((p) => {
        const row: LiveProblem = { kind: p.kind, title: p.title, since: p.since, count: p.count };
        if (p.cid !== null) row.cid = p.cid;
        return row;
      }),
  };
}

/** Another gateway's `live` as rows to show; never throws. null (nothing published yet) reads as empty. */
export function readGatewayLive(text: string | null): ReadLive {
  const none = (unreadable: string | null): ReadLive => ({ connections: [], problems: [], unreadable });
  if (text === null) return none(null);
  if (text.length > MAX_LIVE_TEXT) return none(`unreadable: ${text.length} characters (at most ${MAX_LIVE_TEXT})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return none("unreadable: not JSON");
  }
  const doc = liveDoc.safeParse(json);
  if (!doc.success) return none("unreadable: not {connections, problems}");
  const rows = <T>(items: unknown[], max: number, schema: z.ZodType<T>): (T | Unreadable)[] =>
    items.slice(0, max).map((item) => {
      const r = schema.safeParse(item);
      return r.success ? r.data : { unreadable: `unreadable: ${r.error.issues.map((i) => i.path.join(".") || "row").slice(0, 3).join(", ")}` };
    });
  return {
    connections: rows(doc.data.connections, MAX_LIVE_CONNECTIONS, liveConnection as z.ZodType<LiveConnection>),
    problems: rows(doc.data.problems, MAX_LIVE_PROBLEMS, liveProblem as z.ZodType<LiveProblem>),
    unreadable: null,
  };
}

export function isUnreadable(row: object): row is Unreadable {
  return "unreadable" in row;
}

/** How often a gateway publishes when clustered (the standalone gateway's SQLite heartbeat stays 10 s). */
export const CLUSTER_HEARTBEAT_MS = 5000;
/** The standalone gateway's heartbeat (standalone/run.ts). */
export const STANDALONE_HEARTBEAT_MS = 10_000;
/** A gateway is "up" while its last_seen is at most this many heartbeats old. */
export const HEALTHY_BEATS = 3;

export type GatewayHealth = { health: "up"; stale_since: null } | { health: "stale"; stale_since: string };

/**
 * Health from the row alone: up while `last_seen` is within HEALTHY_BEATS heartbeats of `now`,
 * else stale since its last_seen (the last moment it was known to run) — nothing guessed beyond it.
 */
export function gatewayHealth(lastSeen: number, now: number, heartbeatMs: number): GatewayHealth {
  return now - lastSeen <= HEALTHY_BEATS * heartbeatMs ? { health: "up", stale_since: null } : { health: "stale", stale_since: new Date(lastSeen).toISOString() };
}
