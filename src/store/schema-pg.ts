// The PostgreSQL schema (drizzle-orm pg-core): the same tables, columns and row shapes as the SQLite
// schema in schema.ts, so repositories return the same rows whichever store is chosen. Times stay
// Unix milliseconds (bigint read as a JS number: ms fit in 2^53 for the next 285 000 years).
// Migrations in migrations/postgres/ are generated from this file with
// `bunx drizzle-kit generate --config drizzle.postgres.config.ts`, and applied at start.
import { sql } from "drizzle-orm";
import { bigint, boolean, index, integer, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";

const now = sql`((extract(epoch from clock_timestamp()) * 1000)::bigint)`;
const ms = (name: string) => bigint(name, { mode: "number" });

export const peers = pgTable("peers", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  publicKey: text("public_key").notNull().unique(),
  presharedKey: text("preshared_key"),
  clientPrivateKey: text("client_private_key"),
  allowedIps: text("allowed_ips").notNull(),
  endpoint: text("endpoint"),
  persistentKeepalive: integer("persistent_keepalive").notNull().default(0),
  enabled: boolean("enabled").notNull().default(true),
  expiresAt: ms("expires_at"),
  createdAt: ms("created_at").notNull().default(now),
  updatedAt: ms("updated_at").notNull().default(now),
  /** Which gateways serve the peer: comma-separated gids, null = every gateway (as in schema.ts). */
  servedBy: text("served_by"),
});

export const resources = pgTable("resources", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  type: text("type", { enum: ["cidr", "dns", "internet"] }).notNull(),
  address: text("address"),
  filters: text("filters").notNull().default("[]"),
  createdAt: ms("created_at").notNull().default(now),
  updatedAt: ms("updated_at").notNull().default(now),
  /** Which gateways serve the resource: comma-separated gids, null = every gateway (as in schema.ts). */
  servedBy: text("served_by"),
});

export const auditEvents = pgTable(
  "audit_events",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ts: ms("ts").notNull().default(now),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    subject: text("subject"),
    cid: bigint("cid", { mode: "number" }),
    before: text("before"),
    after: text("after"),
    reason: text("reason"),
    /** The gateway that wrote the row (store/gateway-id.ts); null on rows older than the column. */
    gid: text("gid"),
    /**
     * The row's id in the writing gateway's own SQLite audit log when it was copied from there
     * (cluster/audit-shipper.ts); null for rows written here directly (peer changes). Unique per
     * gid, so a copy repeated after a crash inserts nothing twice.
     */
    originId: bigint("origin_id", { mode: "number" }),
  },
  (t) => [index("audit_ts").on(t.ts), index("audit_action").on(t.action), uniqueIndex("audit_origin").on(t.gid, t.originId), index("audit_gid").on(t.gid)],
);

export const trafficSamples = pgTable(
  "traffic_samples",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ts: ms("ts").notNull(),
    publicKey: text("public_key").notNull(),
    rxBytes: bigint("rx_bytes", { mode: "number" }).notNull(),
    txBytes: bigint("tx_bytes", { mode: "number" }).notNull(),
  },
  (t) => [index("traffic_key_ts").on(t.publicKey, t.ts)],
);

export const adminUsers = pgTable("admin_users", {
  id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
  username: text("username").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  createdAt: ms("created_at").notNull().default(now),
});

export const apiTokens = pgTable("api_tokens", {
  id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
  name: text("name").notNull().unique(),
  tokenHash: text("token_hash").notNull().unique(),
  createdAt: ms("created_at").notNull().default(now),
  lastUsedAt: ms("last_used_at"),
});

export const adminSessions = pgTable("admin_sessions", {
  id: text("id").primaryKey(),
  userId: integer("user_id").notNull().references(() => adminUsers.id, { onDelete: "cascade" }),
  csrfToken: text("csrf_token").notNull(),
  expiresAt: ms("expires_at").notNull(),
});

export const dnsProxyAssignments = pgTable("dns_proxy_assignments", {
  domain: text("domain").primaryKey(),
  slot: integer("slot").notNull().unique(),
  v4: text("v4").notNull(),
  v6: text("v6").notNull(),
  createdAt: ms("created_at").notNull().default(now),
});

export const authorizations = pgTable(
  "authorizations",
  {
    publicKey: text("public_key").notNull(),
    resourceId: text("resource_id").notNull().references(() => resources.id, { onDelete: "cascade" }),
    expiresAt: ms("expires_at"),
    createdAt: ms("created_at").notNull().default(now),
  },
  (t) => [primaryKey({ columns: [t.publicKey, t.resourceId] })],
);

export const peerIdentities = pgTable(
  "peer_identities",
  {
    publicKey: text("public_key").primaryKey(),
    peerId: text("peer_id").notNull(),
    name: text("name"),
    source: text("source", { enum: ["file", "store"] }).notNull(),
    firstSeen: ms("first_seen").notNull(),
    lastSeen: ms("last_seen").notNull(),
  },
  (t) => [index("peer_identities_peer_id").on(t.peerId)],
);

export const connectionIds = pgTable(
  "connection_ids",
  {
    gid: text("gid").notNull(),
    cid: bigint("cid", { mode: "number" }).notNull(),
    publicKey: text("public_key").notNull(),
    firstSeen: ms("first_seen").notNull(),
    lastSeen: ms("last_seen").notNull(),
  },
  (t) => [primaryKey({ columns: [t.gid, t.cid, t.publicKey] }), index("connection_ids_cid").on(t.cid), index("connection_ids_key").on(t.publicKey)],
);

export const logLines = pgTable(
  "log_lines",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    ts: ms("ts").notNull(),
    level: integer("level").notNull(),
    target: text("target").notNull(),
    cid: bigint("cid", { mode: "number" }),
    gid: text("gid"),
    rid: text("rid"),
    publicKey: text("public_key"),
    run: text("run").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    line: text("line").notNull(),
  },
  (t) => [index("log_lines_ts").on(t.ts), index("log_lines_cid").on(t.cid), index("log_lines_key").on(t.publicKey)],
);

/**
 * Every gateway that uses this database, one row each: registered (upserted) at start, `last_seen`
 * moved by a heartbeat, so an admin page can tell a live gateway from one that stopped. `gid` is
 * the gateway's own id from its data dir (store/gateway-id.ts).
 */
export const gateways = pgTable("gateways", {
  gid: text("gid").primaryKey(),
  name: text("name").notNull(),
  publicKey: text("public_key").notNull(),
  /** Where clients reach it (host:port) as the gateway knows it; null when it does not. */
  endpoint: text("endpoint"),
  version: text("version").notNull(),
  startedAt: ms("started_at").notNull(),
  lastSeen: ms("last_seen").notNull(),
  /** Live connections at the last heartbeat. */
  connectedPeers: integer("connected_peers").notNull().default(0),
  /** What the gateway published at its last heartbeat (JSON: connection summaries, problems); null before the first. */
  live: text("live"),
});
