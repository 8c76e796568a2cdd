// The SQLite schema (drizzle-orm). Migrations in migrations/ are generated from this file with
// `bunx drizzle-kit generate` and applied at start. Times are Unix milliseconds.
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

const now = sql`(unixepoch('subsec') * 1000)`;

/** Peers managed in the admin UI (config-file peers stay in the file and are not stored here). */
export const peers = sqliteTable("peers", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  publicKey: text("public_key").notNull().unique(),
  presharedKey: text("preshared_key"),
  /** Only for peers created here, so the UI can show their config and QR code again. */
  clientPrivateKey: text("client_private_key"),
  /** Comma-separated CIDRs, as in wg-quick. */
  allowedIps: text("allowed_ips").notNull(),
  endpoint: text("endpoint"),
  persistentKeepalive: integer("persistent_keepalive").notNull().default(0),
  enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
  expiresAt: integer("expires_at"),
  createdAt: integer("created_at").notNull().default(now),
  updatedAt: integer("updated_at").notNull().default(now),
  /**
   * Which gateways serve the peer when several share a PostgreSQL database: comma-separated gids,
   * null = every gateway. A standalone gateway serves every peer whatever this says.
   */
  servedBy: text("served_by"),
});

export const resources = sqliteTable("resources", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  type: text("type", { enum: ["cidr", "dns", "internet"] }).notNull(),
  address: text("address"),
  /** JSON: [{protocol, port_range_start, port_range_end}] as in Firezone. */
  filters: text("filters").notNull().default("[]"),
  createdAt: integer("created_at").notNull().default(now),
  updatedAt: integer("updated_at").notNull().default(now),
  /**
   * Which gateways serve the resource when several share a PostgreSQL database (as peers.served_by):
   * comma-separated gids, null = every gateway. A standalone gateway serves every resource.
   */
  servedBy: text("served_by"),
});

export const auditEvents = sqliteTable(
  "audit_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    ts: integer("ts").notNull().default(now),
    /** "admin:alice", "token:ci", "gateway" (data-plane events), "cli". */
    actor: text("actor").notNull(),
    /** peer.created | peer.updated | peer.deleted | resource.* | connection.established | connection.closed | admin.login | admin.login_failed */
    action: text("action").notNull(),
    subject: text("subject"),
    cid: integer("cid"),
    before: text("before"),
    after: text("after"),
    reason: text("reason"),
    /** The gateway that wrote the row (store/gateway-id.ts); null on rows older than the column. */
    gid: text("gid"),
  },
  (t) => [index("audit_ts").on(t.ts), index("audit_action").on(t.action)],
);

/** Per-peer traffic per sampling interval (deltas), so history survives restarts. */
export const trafficSamples = sqliteTable(
  "traffic_samples",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    ts: integer("ts").notNull(),
    publicKey: text("public_key").notNull(),
    rxBytes: integer("rx_bytes").notNull(),
    txBytes: integer("tx_bytes").notNull(),
  },
  (t) => [index("traffic_key_ts").on(t.publicKey, t.ts)],
);

export const adminUsers = sqliteTable("admin_users", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  username: text("username").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  createdAt: integer("created_at").notNull().default(now),
});

export const apiTokens = sqliteTable("api_tokens", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  name: text("name").notNull().unique(),
  /** SHA-256 of the token; the token itself is shown once. */
  tokenHash: text("token_hash").notNull().unique(),
  createdAt: integer("created_at").notNull().default(now),
  lastUsedAt: integer("last_used_at"),
});

/** Browser sessions: the cookie carries `id`; the CSRF token is bound to the session. */
export const adminSessions = sqliteTable("admin_sessions", {
  id: text("id").primaryKey(),
  userId: integer("user_id").notNull().references(() => adminUsers.id, { onDelete: "cascade" }),
  csrfToken: text("csrf_token").notNull(),
  expiresAt: integer("expires_at").notNull(),
});

/** Proxy addresses handed out for DNS-resource domains: kept across restarts (clients cache answers). */
export const dnsProxyAssignments = sqliteTable("dns_proxy_assignments", {
  domain: text("domain").primaryKey(),
  slot: integer("slot").notNull().unique(),
  /** JSON arrays of address strings. */
  v4: text("v4").notNull(),
  v6: text("v6").notNull(),
  createdAt: integer("created_at").notNull().default(now),
});

/** Access grants made through the admin API: a peer (by public key) × a resource, until expires_at. */
export const authorizations = sqliteTable(
  "authorizations",
  {
    publicKey: text("public_key").notNull(),
    resourceId: text("resource_id").notNull().references(() => resources.id, { onDelete: "cascade" }),
    expiresAt: integer("expires_at"),
    createdAt: integer("created_at").notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.publicKey, t.resourceId] })],
);

/**
 * Who each peer is, by public key (WireGuard's identity): its stable id (a store peer's row id, or
 * `file-…` derived from the key for a config-file peer: see store/identity.ts) and last known name.
 * Kept after a store peer is deleted, so its history still has a name.
 */
export const peerIdentities = sqliteTable(
  "peer_identities",
  {
    publicKey: text("public_key").primaryKey(),
    peerId: text("peer_id").notNull(),
    name: text("name"),
    source: text("source", { enum: ["file", "store"] }).notNull(),
    firstSeen: integer("first_seen").notNull(),
    lastSeen: integer("last_seen").notNull(),
  },
  (t) => [index("peer_identities_peer_id").on(t.peerId)],
);

/**
 * Every connection id a peer was given, per gateway run: cids are drawn anew at each start, so a
 * cid from yesterday (an audit row, a log line, a Sentry link) is resolved to its peer here.
 */
export const connectionIds = sqliteTable(
  "connection_ids",
  {
    gid: text("gid").notNull(),
    cid: integer("cid").notNull(),
    publicKey: text("public_key").notNull(),
    firstSeen: integer("first_seen").notNull(),
    lastSeen: integer("last_seen").notNull(),
  },
  (t) => [primaryKey({ columns: [t.gid, t.cid, t.publicKey] }), index("connection_ids_cid").on(t.cid), index("connection_ids_key").on(t.publicKey)],
);

/**
 * Warnings, errors and connection-scoped log lines, persisted in batches (telemetry/log-store.ts)
 * so timelines and the Errors page survive restarts. `run` + `seq` name a line within its process,
 * so a query can merge the in-memory ring with these rows without showing a line twice.
 */
export const logLines = sqliteTable(
  "log_lines",
  {
    id: integer("id").primaryKey(),
    ts: integer("ts").notNull(),
    /** Level rank: 0 trace … 4 error (telemetry/log.ts LEVELS). */
    level: integer("level").notNull(),
    target: text("target").notNull(),
    cid: integer("cid"),
    gid: text("gid"),
    rid: text("rid"),
    /** The connection's peer when the line has a cid: its history finds it even after the cid is gone. */
    publicKey: text("public_key"),
    run: text("run").notNull(),
    seq: integer("seq").notNull(),
    /** The whole line as JSON. */
    line: text("line").notNull(),
  },
  (t) => [index("log_lines_ts").on(t.ts), index("log_lines_cid").on(t.cid), index("log_lines_key").on(t.publicKey)],
);

/**
 * Every gateway that uses this database, one row each: registered (upserted) at start, `last_seen`
 * moved by a heartbeat, so an admin page can tell a live gateway from one that stopped. `gid` is
 * the gateway's own id from its data dir (store/gateway-id.ts).
 */
export const gateways = sqliteTable("gateways", {
  gid: text("gid").primaryKey(),
  name: text("name").notNull(),
  publicKey: text("public_key").notNull(),
  /** Where clients reach it (host:port) as the gateway knows it; null when it does not. */
  endpoint: text("endpoint"),
  version: text("version").notNull(),
  startedAt: integer("started_at").notNull(),
  lastSeen: integer("last_seen").notNull(),
  /** Live connections at the last heartbeat. */
  connectedPeers: integer("connected_peers").notNull().default(0),
  /** What the gateway published at its last heartbeat (JSON: connection summaries, problems); null before the first. */
  live: text("live"),
});

/**
 * How far each copy of local rows to PostgreSQL has got (`stream` = "audit"): the highest local id
 * known to be committed there. Rows are copied in id order and the copy is idempotent on
 * (gid, origin_id), so a crash between the copy and this mark only repeats work.
 */
export const shippingMarks = sqliteTable("shipping_marks", {
  stream: text("stream").primaryKey(),
  lastId: integer("last_id").notNull(),
});
