// Persistent state: SQLite (WAL) under the data dir, schema and migrations from drizzle.
import type { Database } from "bun:sqlite";
import { AuditLog } from "./audit.ts";
import { AdminAuth } from "./auth.ts";
import { openDatabase, type Db, type OpenOptions } from "./database.ts";
import { GatewayRegistry } from "./gateways.ts";
import { gatewayId } from "./gateway-id.ts";
import { PeerRepository } from "./peers.ts";
import { TrafficHistory } from "./traffic.ts";
import { PeerHistory } from "./identity.ts";
import { LogArchive } from "./logs.ts";
import { ProxyAssignments } from "./proxy-assignments.ts";
import { ResourceRepository } from "./resources.ts";

export { auditCsv, AuditLog, type AuditAction, type AuditFilter, type AuditRepository, type AuditRow } from "./audit.ts";
export { AdminAuth, SESSION_TTL, UserExistsError, type Session } from "./auth.ts";
export { DB_FILE, type Db, type OpenOptions } from "./database.ts";
export { GATEWAY_ID_FILE, gatewayId } from "./gateway-id.ts";
export { GatewayRegistry, type GatewayRow, type GatewayStart, type GatewayStore } from "./gateways.ts";
export { PeerInput, PeerRepository, PeerValidationError, parsePeerInput, rowAllowedIps, storePeerOwner, type PeerRow } from "./peers.ts";
export { TrafficHistory, type TrafficPoint } from "./traffic.ts";
export { filePeerId, isFilePeerId, PeerHistory, type CidRow, type PeerIdentity, type PeerSource } from "./identity.ts";
export { DEFAULT_LOG_ROW_CAP, LogArchive, type ArchivedLine, type ArchiveQuery } from "./logs.ts";
export { ProxyAssignments, type SavedAssignment } from "./proxy-assignments.ts";
export { MAX_EXPIRES_AT, parseExpiresAt, ResourceError, ResourceRepository, type AuthorizationRow, type ResourceRecord, type ResourceStore } from "./resources.ts";

export class Store {
  readonly audit: AuditLog;
  readonly peers: PeerRepository;
  readonly auth: AdminAuth;
  readonly traffic: TrafficHistory;
  readonly proxyAssignments: ProxyAssignments;
  readonly resources: ResourceRepository;
  readonly history: PeerHistory;
  readonly logs: LogArchive;
  readonly gateways: GatewayRegistry;

  /** `gid`: the data dir's gateway id, stamped on every audit row this store writes. */
  private constructor(readonly sqlite: Database, readonly db: Db, readonly gid: string) {
    this.audit = new AuditLog(db, gid);
    this.peers = new PeerRepository(db, gid, sqlite);
    this.auth = new AdminAuth(db, gid);
    this.traffic = new TrafficHistory(db);
    this.proxyAssignments = new ProxyAssignments(db);
    this.resources = new ResourceRepository(db, gid);
    this.gateways = new GatewayRegistry(db);
    this.history = new PeerHistory(db, sqlite);
    this.logs = new LogArchive(db);
  }

  static open(dataDir: string, opts: OpenOptions = {}): Store {
    const { sqlite, db } = openDatabase(dataDir, opts);
    let gid: string;
    try {
      gid = gatewayId(dataDir, opts.onLoosePermissions);
    } catch (err) {
      sqlite.close();
      throw err;
    }
    return new Store(sqlite, db, gid);
  }

  /**
   * A fingerprint of what the data plane takes from the store (peers, resources, grants): equal
   * marks mean nothing a sync applies has changed, so the 10 s sync can skip its full pass.
   * PRAGMA data_version moves whenever another connection (the CLI, a hand edit, a restore)
   * commits; this connection's own writes (the admin) move the counts or updated_at columns, and
   * the admin applies them at once anyway. Costs a few index lookups, not a row per peer.
   */
  dataPlaneMark(): string {
    const st = (this.#markStatement ??= this.sqlite.prepare(
      "SELECT (SELECT count(*) FROM peers) || '|' || (SELECT ifnull(max(updated_at), 0) FROM peers) || '|' || (SELECT total(enabled) FROM peers) || '|' || " +
      "(SELECT count(*) FROM resources) || '|' || (SELECT ifnull(max(updated_at), 0) FROM resources) || '|' || " +
      "(SELECT count(*) FROM authorizations) || '|' || (SELECT ifnull(max(created_at), 0) FROM authorizations) || '|' || (SELECT total(ifnull(expires_at, 0)) FROM authorizations) AS mark"));
    const version = (this.#versionStatement ??= this.sqlite.prepare("PRAGMA data_version"));
    const v = version.values()[0]?.[0];
    return `${String(v)}|${(st.get() as { mark: string }).mark}`;
  }

  #markStatement: ReturnType<Database["prepare"]> | undefined;
  #versionStatement: ReturnType<Database["prepare"]> | undefined;

  close(): void {
    this.sqlite.close();
  }
}
