// The gateways that share a database: each one upserts its row at start (name, key, endpoint,
// version) and moves `last_seen` on a heartbeat. `gid` is the gateway's own id, kept in its data dir
// (gateway-id.ts), so a restart updates its row instead of adding one. With SQLite the table holds
// the one gateway; with PostgreSQL (gateways-pg.ts) every gateway of the deployment.
import { asc, eq } from "drizzle-orm";
import type { Db } from "./database.ts";
import { gateways } from "./schema.ts";

export type GatewayRow = typeof gateways.$inferSelect;
type Awaitable<T> = T | Promise<T>;

/** What a gateway says about itself when it starts. */
export interface GatewayStart {
  gid: string;
  name: string;
  publicKey: string;
  endpoint?: string;
  version: string;
}

export interface GatewayStore {
  /** Registers (or re-registers after a restart) a gateway: its row as now, started and seen at `now`. */
  register(g: GatewayStart, now: number): Awaitable<void>;
  /** Moves `last_seen`; false when the row is gone (deleted by an operator): register again. */
  heartbeat(gid: string, now: number): Awaitable<boolean>;
  /**
   * A heartbeat that also says what the gateway serves now: its connection count and `live`
   * (cluster/gateway-presence.ts's JSON). False when the row is gone: register again.
   */
  publish(gid: string, now: number, connectedPeers: number, live: string): Awaitable<boolean>;
  list(): Awaitable<GatewayRow[]>;
}

/** The row and its conflict update, shared by both dialects. */
export function gatewayUpsert(g: GatewayStart, now: number) {
  const row = { gid: g.gid, name: g.name, publicKey: g.publicKey, endpoint: g.endpoint ?? null, version: g.version, startedAt: now, lastSeen: now };
  const { gid: _gid, ...set } = row;
  return { row, set };
}

export class GatewayRegistry implements GatewayStore {
  constructor(private readonly db: Db) {}

  register(g: GatewayStart, now: number): void {
    const { row, set } = gatewayUpsert(g, now);
    this.db.insert(gateways).values(row).onConflictDoUpdate({ target: gateways.gid, set }).run();
  }

  heartbeat(gid: string, now: number): boolean {
    return this.db.update(gateways).set({ lastSeen: now }).where(eq(gateways.gid, gid)).returning({ gid: gateways.gid }).all().length > 0;
  }

  publish(gid: string, now: number, connectedPeers: number, live: string): boolean {
    return this.db.update(gateways).set({ lastSeen: now, connectedPeers, live }).where(eq(gateways.gid, gid)).returning({ gid: gateways.gid }).all().length > 0;
  }

  list(): GatewayRow[] {
    return this.db.select().from(gateways).orderBy(asc(gateways.name), asc(gateways.gid)).all();
  }
}
