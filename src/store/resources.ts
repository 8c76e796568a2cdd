// Resources and authorizations managed through the admin API (the config file's stay in the
// file). Stored in Firezone's wire shape, validated by gateway/resources.ts, audited.
import { and, eq } from "drizzle-orm";
import { formatServedBy, isGid, servesPeer } from "../cluster/served-by.ts";
import { decodeKey, encodeKey } from "../crypto/x25519.ts";
import { parseResource, type Resource } from "../gateway/resources.ts";
import { AuditLog } from "./audit.ts";
import type { Db } from "./database.ts";
import { authorizations, peers, resources } from "./schema.ts";

export interface AuthorizationRow {
  publicKey: string;
  resourceId: string;
  expiresAt: number | null;
}

/** Why a resource change was refused: bad input, a clash with an existing id, or no such thing. */
export class ResourceError extends Error {
  constructor(readonly field: string, message: string, readonly kind: "invalid" | "conflict" | "not_found" = "invalid") {
    super(`${field}: ${message}`);
    this.name = "ResourceError";
  }
}

/** The last instant an expiry may name: 9999-12-31T23:59:59.999Z (later is a typo, not a plan). */
export const MAX_EXPIRES_AT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const quote = (v: unknown) => JSON.stringify(String(v).slice(0, 64));

/**
 * An authorization's expiry from the API (Unix seconds, as Firezone sends it, or an ISO date) or
 * the form (a date): Unix ms, or null for "never". NaN, Infinity, negative and past-9999 values
 * are refused naming `field`.
 */
export function parseExpiresAt(raw: unknown, field = "expires_at"): number | null {
  if (raw === null || raw === undefined || (typeof raw === "string" && raw.trim() === "")) return null;
  let ms: number;
  if (typeof raw === "number") ms = raw * 1000;
  else if (typeof raw === "string") {
    ms = Date.parse(raw.trim());
    if (Number.isNaN(ms)) throw new ResourceError(field, `${quote(raw)} is not a date`);
  } else throw new ResourceError(field, "must be Unix seconds, an ISO date or null");
  checkExpiresAt(ms, field, raw);
  return ms;
}

export function checkExpiresAt(ms: number | null, field: string, shown: unknown = ms): void {
  if (ms === null) return;
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_EXPIRES_AT) throw new ResourceError(field, `${quote(shown)} is not a time between 1970 and 9999`);
}

type Awaitable<T> = T | Promise<T>;

/** A resource row as both dialects store it (schema.ts / schema-pg.ts `resources`). */
export interface ResourceRecord {
  id: string;
  name: string;
  type: "cidr" | "dns" | "internet";
  address: string | null;
  filters: string;
  createdAt: number;
  updatedAt: number;
  servedBy: string | null;
}

/**
 * What the admin pages and the API use, in either dialect (ResourceRepository here, resources-pg.ts
 * on PostgreSQL, cluster/cluster-resources.ts for several gateways); callers await every method.
 */
export interface ResourceStore {
  list(): Awaitable<Resource[]>;
  /** The stored rows as they are (the admin shows "Served by" from them). */
  records(): Awaitable<ResourceRecord[]>;
  create(raw: Record<string, unknown>, actor: string, reserved?: ReadonlySet<string>): Awaitable<Resource>;
  update(id: string, raw: Record<string, unknown>, actor: string): Awaitable<Resource>;
  delete(id: string, actor: string): Awaitable<boolean>;
  authorizations(): Awaitable<AuthorizationRow[]>;
  authorize(a: AuthorizationRow, actor: string, otherPeers?: ReadonlySet<string>): Awaitable<void>;
  revoke(publicKey: string, resourceId: string, actor: string): Awaitable<boolean>;
}

/** `raw` in Firezone's shape, parsed; a refusal names the field at fault. */
export function parseResourceInput(raw: Record<string, unknown>): Resource {
  try {
    return parseResource(raw);
  } catch (err) {
    const m = /^resource ([^:]+): (.*)$/s.exec((err as Error).message);
    throw new ResourceError(m?.[1] ?? "resource", m?.[2] ?? (err as Error).message);
  }
}

/**
 * `served_by` from the API or the form (raw.served_by, or raw.servedBy): gids as comma-separated
 * text or a list; empty or absent = every gateway (null). Anything but gids is refused.
 */
export function parseResourceServedBy(raw: Record<string, unknown>): string | null {
  const v = raw.served_by ?? raw.servedBy ?? null;
  if (v !== null && typeof v !== "string" && !(Array.isArray(v) && v.every((x) => typeof x === "string"))) {
    throw new ResourceError("served_by", "must be gateway ids, comma-separated or a list");
  }
  const items = (v === null ? [] : typeof v === "string" ? v.split(",") : (v as string[])).map((s) => s.trim().toLowerCase()).filter(Boolean);
  const bad = items.find((g) => !isGid(g));
  if (bad !== undefined) throw new ResourceError("served_by", `${quote(bad)} is not a gateway id (a UUID)`);
  return formatServedBy(items);
}

/** The columns written for `raw` (already parsed as `r`). */
export function resourceValues(r: Resource, raw: Record<string, unknown>) {
  return { id: r.id, name: r.name, type: r.type, address: typeof raw.address === "string" ? raw.address : null, filters: JSON.stringify(raw.filters ?? []), servedBy: parseResourceServedBy(raw) };
}

/** A WireGuard key in its canonical text, or a refusal naming public_key. */
export function authorizationKey(publicKey: string): string {
  try {
    return encodeKey(decodeKey(publicKey));
  } catch {
    throw new ResourceError("public_key", `${quote(publicKey)} is not a WireGuard key (44 base64 characters)`);
  }
}

export function notAPeer(key: string): ResourceError {
  return new ResourceError("public_key", `${quote(key)} is not a peer of this gateway (add it on the Peers page or in the config file first)`);
}

export function notAResource(id: string, field = "resource_id", kind: ResourceError["kind"] = "invalid"): ResourceError {
  return new ResourceError(field, `${quote(id)} is not a resource managed here`, kind);
}

export function resourceExists(id: string): ResourceError {
  return new ResourceError("id", `${quote(id)} already exists`, "conflict");
}

export function reservedResource(id: string): ResourceError {
  return new ResourceError("id", `${quote(id)} is a resource of the config file`, "conflict");
}

export function otherResource(id: string, changed: string): ResourceError {
  return new ResourceError("id", `${quote(id)} differs from the resource being changed (${quote(changed)})`);
}

/**
 * Rows parsed for the policy, and the rows that do not parse (see ResourceRepository.listChecked).
 * With `gid`, only the rows that gateway serves (cluster mode): the others are as if absent.
 */
export function checkResourceRows(rows: readonly ResourceRecord[], gid?: string): { resources: Resource[]; skipped: SkippedResourceRow[] } {
  const out: Resource[] = [];
  const skipped: SkippedResourceRow[] = [];
  for (const r of rows) {
    if (gid !== undefined && !servesPeer(r, gid)) continue;
    const version = `${r.updatedAt}|${r.type}|${r.address}|${r.filters}`;
    let filters: unknown;
    try {
      filters = JSON.parse(r.filters);
    } catch (err) {
      skipped.push({ id: r.id, name: r.name, version, field: "filters", err: new Error("not JSON", { cause: err }) });
      continue;
    }
    try {
      out.push(parseResource({ type: r.type, id: r.id, name: r.name, address: r.address ?? undefined, filters }));
    } catch (err) {
      // parseResource names the field first ("resource filters.0.protocol: …"): report its column.
      const field = /^resource ([a-z_]+)/.exec((err as Error).message)?.[1];
      skipped.push({ id: r.id, name: r.name, version, field, err });
    }
  }
  return { resources: out, skipped };
}

/** A stored resource row the gateway cannot use, naming the column at fault when known. */
export interface SkippedResourceRow {
  id: string;
  name: string;
  /** Changes whenever the row does (also when edited by hand without touching updated_at). */
  version: string;
  field: string | undefined;
  err: unknown;
}

export class ResourceRepository implements ResourceStore {
  readonly #audit: AuditLog;
  constructor(private readonly db: Db, private readonly gid?: string) {
    this.#audit = new AuditLog(db, gid);
  }

  /** Parsed, ready for the policy. A stored row that no longer parses is skipped (see listChecked). */
  list(): Resource[] {
    return this.listChecked().resources;
  }

  /**
   * Every row, parsed, and the rows that do not parse — validated on the way in, so only a row
   * written by an older version (e.g. a DNS pattern over today's limits), edited by hand or
   * restored from a backup gets there. The caller reports those (resource-sync.ts); one bad row
   * never hides the others.
   */
  listChecked(gid?: string): { resources: Resource[]; skipped: SkippedResourceRow[] } {
    return checkResourceRows(this.records(), gid);
  }

  records(): ResourceRecord[] {
    return this.db.select().from(resources).all();
  }

  /**
   * A new resource; `raw` in Firezone's shape ({type, id, name, address, filters}). Its id may not
   * be one already stored nor one of `reserved` (the config file's): an authorization naming it
   * would attach to the other resource.
   */
  create(raw: Record<string, unknown>, actor: string, reserved: ReadonlySet<string> = new Set()): Resource {
    const r = this.#parse(raw);
    if (reserved.has(r.id)) throw reservedResource(r.id);
    if (this.#row(r.id)) throw resourceExists(r.id);
    return this.upsert(raw, actor);
  }

  /** Replaces a stored resource (same id); its authorizations stay. */
  update(id: string, raw: Record<string, unknown>, actor: string): Resource {
    const r = this.#parse(raw);
    if (r.id !== id) throw otherResource(r.id, id);
    if (!this.#row(id)) throw notAResource(id, "id", "not_found");
    return this.upsert(raw, actor);
  }

  /** Creates or replaces without the clash checks of `create`; throws naming the bad field. */
  upsert(raw: Record<string, unknown>, actor: string): Resource {
    const r = this.#parse(raw);
    const before = this.#row(r.id);
    const row = resourceValues(r, raw);
    this.db.transaction((tx) => {
      tx.insert(resources).values(row).onConflictDoUpdate({ target: resources.id, set: { ...row, updatedAt: Date.now() } }).run();
      new AuditLog(tx as unknown as Db, this.gid).record({ actor, action: before ? "resource.updated" : "resource.created", subject: r.id, before, after: row });
    });
    return r;
  }

  #parse(raw: Record<string, unknown>): Resource {
    return parseResourceInput(raw);
  }

  #row(id: string) {
    return this.db.select().from(resources).where(eq(resources.id, id)).get();
  }

  delete(id: string, actor: string): boolean {
    const before = this.#row(id);
    if (!before) return false;
    this.db.transaction((tx) => {
      tx.delete(resources).where(eq(resources.id, id)).run();
      new AuditLog(tx as unknown as Db, this.gid).record({ actor, action: "resource.deleted", subject: id, before });
    });
    return true;
  }

  authorizations(): AuthorizationRow[] {
    return this.db.select({ publicKey: authorizations.publicKey, resourceId: authorizations.resourceId, expiresAt: authorizations.expiresAt }).from(authorizations).all();
  }

  /**
   * Grants `a.publicKey` access to a resource stored here. The key must be a peer of this gateway:
   * one in the store or one of `otherPeers` (the config file's); the expiry a real time or null.
   */
  authorize(a: AuthorizationRow, actor: string, otherPeers: ReadonlySet<string> = new Set()): void {
    const key = authorizationKey(a.publicKey);
    if (!otherPeers.has(key) && !this.db.select({ id: peers.id }).from(peers).where(eq(peers.publicKey, key)).get()) throw notAPeer(key);
    if (!this.#row(a.resourceId)) throw notAResource(a.resourceId);
    checkExpiresAt(a.expiresAt, "expires_at");
    const row = { publicKey: key, resourceId: a.resourceId, expiresAt: a.expiresAt };
    this.db.insert(authorizations).values(row).onConflictDoUpdate({ target: [authorizations.publicKey, authorizations.resourceId], set: { expiresAt: a.expiresAt } }).run();
    this.#audit.record({ actor, action: "resource.updated", subject: a.resourceId, after: { authorized: key, expires_at: a.expiresAt }, reason: "authorization granted" });
  }

  revoke(publicKey: string, resourceId: string, actor: string): boolean {
    const gone = this.db.delete(authorizations).where(and(eq(authorizations.publicKey, publicKey), eq(authorizations.resourceId, resourceId))).returning().all().length > 0;
    if (gone) this.#audit.record({ actor, action: "resource.updated", subject: resourceId, before: { authorized: publicKey }, reason: "authorization revoked" });
    return gone;
  }
}
