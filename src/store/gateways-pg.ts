// The gateways registry on PostgreSQL (see gateways.ts): the same rows, as promises.
import { asc, eq } from "drizzle-orm";
import { gatewayUpsert, type GatewayRow, type GatewayStart, type GatewayStore } from "./gateways.ts";
import type { PgDb } from "./postgres.ts";
import { gateways } from "./schema-pg.ts";

export class PgGatewayRegistry implements GatewayStore {
  constructor(private readonly db: PgDb) {}

  async register(g: GatewayStart, now: number): Promise<void> {
    const { row, set } = gatewayUpsert(g, now);
    await this.db.insert(gateways).values(row).onConflictDoUpdate({ target: gateways.gid, set });
  }

  async heartbeat(gid: string, now: number): Promise<boolean> {
    return (await this.db.update(gateways).set({ lastSeen: now }).where(eq(gateways.gid, gid)).returning({ gid: gateways.gid })).length > 0;
  }

  async publish(gid: string, now: number, connectedPeers: number, live: string): Promise<boolean> {
    return (await this.db.update(gateways).set({ lastSeen: now, connectedPeers, live }).where(eq(gateways.gid, gid)).returning({ gid: gateways.gid })).length > 0;
  }

  list(): Promise<GatewayRow[]> {
    return this.db.select().from(gateways).orderBy(asc(gateways.name), asc(gateways.gid));
  }
}
