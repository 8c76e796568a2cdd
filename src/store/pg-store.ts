// The PostgreSQL store as one object, like Store for SQLite: the repositories that exist for
// PostgreSQL so far (audit, peers, resources, gateways), sharing one connection pool and stamping `gid` (the
// gateway's id from its data dir) on audit rows. Not yet used by `glassgate up`: the rest of the
// gateway reads the synchronous SQLite Store (see the refusal in cli.ts).
import type { SQL } from "bun";
import { PgAuditLog } from "./audit-pg.ts";
import { databaseServer } from "./database-url.ts";
import { PgGatewayRegistry } from "./gateways-pg.ts";
import { PgPeerRepository } from "./peers-pg.ts";
import { PgResourceRepository } from "./resources-pg.ts";
import { openPostgres, type PgDb } from "./postgres.ts";

export class PgStore {
  readonly audit: PgAuditLog;
  readonly peers: PgPeerRepository;
  readonly gateways: PgGatewayRegistry;
  readonly resources: PgResourceRepository;

  /** `server`: where it is, for logs (user@host:port/database, never the password). */
  private constructor(readonly client: SQL, readonly db: PgDb, readonly gid: string, readonly server: string) {
    this.audit = new PgAuditLog(db, gid);
    this.peers = new PgPeerRepository(db, gid);
    this.gateways = new PgGatewayRegistry(db);
    this.resources = new PgResourceRepository(db, gid);
  }

  /** Connects, applies pending migrations under the migration lock, and returns the store. */
  static async open(url: string, gid: string): Promise<PgStore> {
    const { client, db } = await openPostgres(url);
    return new PgStore(client, db, gid, databaseServer(url));
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
