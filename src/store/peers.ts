// Peers managed from the admin UI and API: validated input (each error names its field), and
// every change written together with its audit event in one transaction.
import type { Database, Statement } from "bun:sqlite";
import { eq } from "drizzle-orm";
import { z } from "zod";
import { decodeKey, isUsablePublicKey, publicKeyProblem } from "../crypto/x25519.ts";
import { formatCidr, parseCidr, type Cidr } from "../ip/address.ts";
import { clashMessage, clashWith, type AddressOwner } from "../config/overlap.ts";
import { AuditLog } from "./audit.ts";
import { rememberIdentities } from "./identity.ts";
import { MAX_EXPIRES_AT } from "./resources.ts";
import { formatServedBy, isGid } from "../cluster/served-by.ts";
import type { Db } from "./database.ts";
import { peers } from "./schema.ts";

export type PeerRow = typeof peers.$inferSelect;

/** A row's AllowedIPs; an entry that is not a CIDR (a hand-edited row) is left out. */
export function rowAllowedIps(p: Pick<PeerRow, "allowedIps">): Cidr[] {
  const out: Cidr[] = [];
  for (const s of p.allowedIps.split(",").map((x) => x.trim()).filter(Boolean)) {
    try {
      out.push(parseCidr(s));
    } catch {
      // unusable row: peer sync reports it; the overlap check has nothing to compare
    }
  }
  return out;
}

/** A store peer as the address-overlap check (config/overlap.ts) names it. */
export function storePeerOwner<T extends PeerRow>(p: T): AddressOwner & { row: T } {
  return { label: `peer "${p.name}"`, allowedIPs: rowAllowedIps(p), row: p };
}

const keyText = z.string().trim().refine((v) => {
  try {
    decodeKey(v);
    return true;
  } catch {
    return false;
  }
}, { message: "is not a WireGuard key (44 base64 characters)" });

/** A peer's public key: well-formed and not a low-order point (no row with one is ever stored). */
const publicKeyText = z.string().trim().superRefine((v, ctx) => {
  let key: Uint8Array;
  try {
    key = decodeKey(v);
  } catch {
    return void ctx.addIssue({ code: "custom", message: "is not a WireGuard key (44 base64 characters)" });
  }
  if (!isUsablePublicKey(key)) ctx.addIssue({ code: "custom", message: publicKeyProblem(v)! });
});

/**
 * Characters a name must not carry: C0/C1 controls (a newline ends a line in the client config's
 * comment, an ESC drives the terminal that tails the logs) and the bidirectional overrides that
 * make a name display as something else ("Trojan Source", CVE-2021-42574).
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** What a form or JSON body may set. Strings in, normalised values out. */
export const PeerInput = z.object({
  name: z.string().trim().min(1, "is required").max(64, "is longer than 64 characters").superRefine((v, ctx) => {
    const m = UNPRINTABLE.exec(v);
    if (m) ctx.addIssue({ code: "custom", message: `has a control or bidirectional-override character (U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}) at position ${m.index + 1}` });
  }),
  publicKey: publicKeyText,
  presharedKey: z.string().trim().transform((v, ctx) => {
    if (v === "") return undefined;
    if (!keyText.safeParse(v).success) {
      ctx.addIssue({ code: "custom", message: `"${v}" is not a WireGuard key (44 base64 characters)` });
      return z.NEVER;
    }
    return v;
  }).optional(),
  allowedIps: z.string().trim().min(1, "needs at least one CIDR").transform((v, ctx) => {
    const out: string[] = [];
    for (const item of v.split(",").map((s) => s.trim()).filter(Boolean)) {
      try {
        out.push(formatCidr(parseCidr(item)));
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    }
    return out.join(", ");
  }),
  endpoint: z.string().trim().transform((v, ctx) => {
    if (v === "") return undefined;
    const port = Number(/:([0-9]{1,5})$/.exec(v)?.[1]);
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/.test(v) || port < 1 || port > 65535) {
      ctx.addIssue({ code: "custom", message: `"${v}" is not host:port (port 1–65535)` });
      return z.NEVER;
    }
    return v;
  }).optional(),
  persistentKeepalive: z.coerce.number().int("is not a whole number").min(0, "is negative").max(65535, "is above 65535").default(0),
  enabled: z.union([z.boolean(), z.enum(["on", "true", "1"]).transform(() => true), z.enum(["off", "false", "0", ""]).transform(() => false)]).default(true),
  /** ISO date or date-time (or Unix ms); empty = never. */
  expiresAt: z.union([z.number(), z.string()]).transform((v, ctx) => {
    if (typeof v === "string" && v.trim() === "") return undefined;
    const t = typeof v === "number" ? v : Date.parse(v.trim());
    if (Number.isNaN(t)) {
      ctx.addIssue({ code: "custom", message: `"${v}" is not a date` });
      return z.NEVER;
    }
    // A time the pages can print: 1e300 or year 275760 stored once would break every later render.
    if (!Number.isInteger(t) || t < 0 || t > MAX_EXPIRES_AT) {
      ctx.addIssue({ code: "custom", message: `"${v}" is not a time between 1970 and 9999` });
      return z.NEVER;
    }
    return t;
  }).optional(),
  /**
   * The gateways that serve the peer (several gateways on one database): gids, comma-separated
   * text or a list (a form's checkboxes); empty = every gateway (stored as null).
   */
  servedBy: z.union([z.string(), z.array(z.string())]).nullable().transform((v, ctx) => {
    const items = (v === null ? [] : typeof v === "string" ? v.split(",") : v).map((s) => s.trim().toLowerCase()).filter(Boolean);
    const bad = items.find((g) => !isGid(g));
    if (bad !== undefined) {
      ctx.addIssue({ code: "custom", message: `"${bad.slice(0, 64)}" is not a gateway id (a UUID)` });
      return z.NEVER;
    }
    return formatServedBy(items);
  }).optional(),
});
export type PeerInput = z.output<typeof PeerInput>;

export class PeerValidationError extends Error {
  constructor(readonly fields: Record<string, string>) {
    super(Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join("; "));
    this.name = "PeerValidationError";
  }
}

/** Parses raw input; throws PeerValidationError naming every bad field (and its value). */
export function parsePeerInput(raw: Record<string, unknown>, partial = false): Partial<PeerInput> {
  const schema = partial ? PeerInput.partial() : PeerInput;
  const r = schema.safeParse(raw);
  // A partial update changes only what was sent: zod would fill in defaults (enabled, keepalive).
  if (r.success) return partial ? Object.fromEntries(Object.entries(r.data).filter(([k]) => k in raw)) : r.data;
  const fields: Record<string, string> = {};
  for (const issue of r.error.issues) {
    const field = String(issue.path[0] ?? "form");
    const value = raw[field];
    // Echoed values are capped and escaped: a 1 MB field must not come back as a 1 MB message.
    const msg = capEcho(issue.message.startsWith('"') || value === undefined || value === "" ? issue.message : `${JSON.stringify(String(value).slice(0, 65))} ${issue.message}`);
    fields[field] ??= value === undefined && issue.code === "invalid_type" ? "is required" : msg;
  }
  throw new PeerValidationError(fields);
}

function capEcho(message: string): string {
  const capped = message.length > 300 ? `${message.slice(0, 300)}…` : message;
  return capped.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * The repository's own guard, for callers that skipped parsePeerInput: a row the data plane
 * cannot use must never be written (peer sync would have to skip it on every load).
 */
export function assertUsableKey(publicKey: string): void {
  const problem = publicKeyProblem(publicKey);
  if (problem) throw new PeerValidationError({ publicKey: problem });
}

/** A peer as the audit trail shows it (either dialect). */
export function peerSnapshot(p: PeerRow | undefined) {
  if (!p) return undefined;
  // Never put secrets into the audit trail.
  const { clientPrivateKey: _c, presharedKey, ...rest } = p;
  return { ...rest, presharedKey: presharedKey ? "(set)" : null };
}

type Awaitable<T> = T | Promise<T>;

/** The peers table as PeerRow (drizzle's names for its columns), ordered as list() promises. */
const LIST_SQL =
  "SELECT id, name, public_key AS publicKey, preshared_key AS presharedKey, client_private_key AS clientPrivateKey, allowed_ips AS allowedIps, " +
  "endpoint, persistent_keepalive AS persistentKeepalive, enabled, expires_at AS expiresAt, created_at AS createdAt, updated_at AS updatedAt, " +
  "served_by AS servedBy FROM peers ORDER BY name";

/**
 * Peers as both stores offer them: SQLite answers at once, PostgreSQL (peers-pg.ts) with promises;
 * validation, the address-overlap rule, row values and audit snapshots are shared (below).
 */
export interface PeerStore {
  list(): Awaitable<PeerRow[]>;
  get(id: string): Awaitable<PeerRow | undefined>;
  byPublicKey(key: string): Awaitable<PeerRow | undefined>;
  create(input: PeerInput & { clientPrivateKey?: string }, actor: string, others?: readonly AddressOwner[]): Awaitable<PeerRow>;
  update(id: string, patch: Partial<PeerInput>, actor: string, others?: readonly AddressOwner[]): Awaitable<PeerRow>;
  delete(id: string, actor: string): Awaitable<boolean>;
}

/**
 * Refuses AllowedIPs another peer already has: every other stored peer (enabled or not — it
 * could be enabled later) and `others` (the config file's peers, which the store cannot see).
 */
export function assertFreeAddresses(name: string, allowedIps: string, stored: readonly PeerRow[], exceptId: string | undefined, others: readonly AddressOwner[]): void {
  const owners = [...others, ...stored.filter((p) => p.id !== exceptId).map(storePeerOwner)];
  const clash = clashWith({ label: `"${name}"`, allowedIPs: rowAllowedIps({ allowedIps }) }, owners);
  if (clash) throw new PeerValidationError({ allowedIps: clashMessage(clash) });
}

/** The new row for validated input. */
export function newPeerValues(input: PeerInput & { clientPrivateKey?: string }) {
  return {
    id: crypto.randomUUID(),
    name: input.name,
    publicKey: input.publicKey,
    presharedKey: input.presharedKey ?? null,
    clientPrivateKey: input.clientPrivateKey ?? null,
    allowedIps: input.allowedIps,
    endpoint: input.endpoint ?? null,
    persistentKeepalive: input.persistentKeepalive,
    enabled: input.enabled,
    expiresAt: input.expiresAt ?? null,
    servedBy: input.servedBy ?? null,
  };
}

/** The columns a partial update sets: only what the patch carries, and the update time. */
export function peerPatchSet(patch: Partial<PeerInput>, now: number) {
  return {
    ...(patch.name !== undefined && { name: patch.name }),
    ...(patch.publicKey !== undefined && { publicKey: patch.publicKey }),
    ...("presharedKey" in patch && { presharedKey: patch.presharedKey ?? null }),
    ...(patch.allowedIps !== undefined && { allowedIps: patch.allowedIps }),
    ...("endpoint" in patch && { endpoint: patch.endpoint ?? null }),
    ...(patch.persistentKeepalive !== undefined && { persistentKeepalive: patch.persistentKeepalive }),
    ...(patch.enabled !== undefined && { enabled: patch.enabled }),
    ...("expiresAt" in patch && { expiresAt: patch.expiresAt ?? null }),
    ...("servedBy" in patch && { servedBy: patch.servedBy ?? null }),
    updatedAt: now,
  };
}

export class PeerRepository implements PeerStore {
  /** `gid`: this gateway's id, stamped on the audit rows its changes write. */
  constructor(private readonly db: Db, private readonly gid?: string, private readonly sqlite?: Database) {}

  /**
   * Every row, by name. Read on bun:sqlite directly when it is at hand: drizzle maps each row
   * column by column (~40 µs a row), which made every full peer sync of 10 000 rows cost ~0.4 s.
   */
  list(): PeerRow[] {
    if (!this.sqlite) return this.db.select().from(peers).orderBy(peers.name).all();
    const rows = (this.#listStatement ??= this.sqlite.prepare(LIST_SQL)).all() as (Omit<PeerRow, "enabled"> & { enabled: number | boolean })[];
    for (const r of rows) r.enabled = r.enabled !== 0 && r.enabled !== false;
    return rows as PeerRow[];
  }

  #listStatement: Statement | undefined;

  get(id: string): PeerRow | undefined {
    return this.db.select().from(peers).where(eq(peers.id, id)).get();
  }

  byPublicKey(key: string): PeerRow | undefined {
    return this.db.select().from(peers).where(eq(peers.publicKey, key)).get();
  }

  create(input: PeerInput & { clientPrivateKey?: string }, actor: string, others: readonly AddressOwner[] = []): PeerRow {
    assertUsableKey(input.publicKey);
    if (this.byPublicKey(input.publicKey)) throw new PeerValidationError({ publicKey: `"${input.publicKey}" is already a peer` });
    assertFreeAddresses(input.name, input.allowedIps, this.list(), undefined, others);
    return this.db.transaction((tx) => {
      const row = tx.insert(peers).values(newPeerValues(input)).returning().get();
      new AuditLog(tx as unknown as Db, this.gid).record({ actor, action: "peer.created", subject: row.publicKey, after: peerSnapshot(row) });
      rememberIdentities(tx as unknown as Db, [{ publicKey: row.publicKey, peerId: row.id, name: row.name, source: "store" }], Date.now());
      return row;
    });
  }

  update(id: string, patch: Partial<PeerInput>, actor: string, others: readonly AddressOwner[] = []): PeerRow {
    const before = this.get(id);
    if (!before) throw new PeerValidationError({ id: `"${id}" is not a peer` });
    if (patch.allowedIps !== undefined) assertFreeAddresses(patch.name ?? before.name, patch.allowedIps, this.list(), id, others);
    if (patch.publicKey !== undefined) assertUsableKey(patch.publicKey);
    if (patch.publicKey && patch.publicKey !== before.publicKey && this.byPublicKey(patch.publicKey)) {
      throw new PeerValidationError({ publicKey: `"${patch.publicKey}" is already a peer` });
    }
    return this.db.transaction((tx) => {
      const row = tx.update(peers).set(peerPatchSet(patch, Date.now())).where(eq(peers.id, id)).returning().get();
      new AuditLog(tx as unknown as Db, this.gid).record({ actor, action: "peer.updated", subject: row.publicKey, before: peerSnapshot(before), after: peerSnapshot(row) });
      rememberIdentities(tx as unknown as Db, [{ publicKey: row.publicKey, peerId: row.id, name: row.name, source: "store" }], Date.now());
      return row;
    });
  }

  delete(id: string, actor: string): boolean {
    const before = this.get(id);
    if (!before) return false;
    this.db.transaction((tx) => {
      tx.delete(peers).where(eq(peers.id, id)).run();
      new AuditLog(tx as unknown as Db, this.gid).record({ actor, action: "peer.deleted", subject: before.publicKey, before: peerSnapshot(before) });
    });
    return true;
  }
}
