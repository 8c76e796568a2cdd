// Helpers every page group shares: who is asking, the page frame, the store, and the query
// shapes read by both pages and API (parsed with admin/input.ts, so bad values are a 400).
import type { Context } from "hono";
import type { AuditFilter, AuditRepository, ResourceStore, Store } from "../../src/store/index.ts";
import type { PeerStore } from "../../src/store/peers.ts";
import type { LogQuery } from "../../src/telemetry/log-ring.ts";
import { LEVELS } from "../../src/telemetry/log.ts";
import type { AdminEnv, Principal } from "../middleware/auth.ts";
import { enumParam, intParam, textParam, timeParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import { layout, type Html } from "../views/layout.ts";

export function principal(c: Context<AdminEnv>): Principal {
  return c.get("principal");
}

export function session(c: Context<AdminEnv>) {
  const p = principal(c);
  return p.kind === "session" ? p.session : undefined;
}

export function page(c: Context<AdminEnv>, title: string, body: Html, status: 200 | 400 | 404 | 409 = 200) {
  const s = session(c);
  return c.html(layout({ title, path: c.req.path, user: s?.username ?? principal(c).actor, csrf: s?.csrfToken }, body), status);
}

export function requireStore(opts: AdminOptions): Store {
  if (!opts.store) throw new Error("peers and resources need the data dir's database");
  return opts.store;
}

/** The peers pages and API manage: the cluster's shared peers when given, else the store's. */
export function peerStore(opts: AdminOptions): PeerStore {
  return opts.peers ?? requireStore(opts).peers;
}

/** The resources pages and API manage: the cluster's shared ones when given, else the store's. */
export function resourceStore(opts: AdminOptions): ResourceStore {
  return opts.resources ?? requireStore(opts).resources;
}

/** The audit trail the admin shows: the shared one in cluster mode (every gateway's), else the data dir's. */
export function auditRepository(opts: AdminOptions): AuditRepository | undefined {
  return opts.cluster?.audit ?? opts.store?.audit;
}

/** A connection id: 24 bits (see DESIGN.md, session index). */
export const CID = { min: 0, max: 0xffffff };
const LOG_LEVELS = LEVELS.filter((l) => l !== "off");

export function logQuery(q: Record<string, string | undefined>): LogQuery {
  const out: LogQuery = { limit: intParam(q, "limit", { min: 1, max: 2000 }) ?? 200 };
  const cid = intParam(q, "cid", CID);
  if (cid !== undefined) out.cid = cid;
  const gid = textParam(q, "gid");
  if (gid) out.gid = gid;
  const rid = textParam(q, "rid");
  if (rid) out.rid = rid;
  const level = enumParam(q, "level", LOG_LEVELS);
  if (level) out.level = level;
  const target = textParam(q, "target");
  if (target) out.target = target;
  const since = timeParam(q, "since");
  if (since) out.since = since;
  return out;
}

/** `peerKeys` resolves `?peer=` (a stable id or key) to the subjects of that peer's rows (routes/history.ts). */
export function auditFilter(q: Record<string, string | undefined>, peerKeys?: (peer: string) => string[]): AuditFilter {
  const f: AuditFilter = {};
  const peer = textParam(q, "peer");
  if (peer && peerKeys) {
    f.peer = peer;
    f.subjects = peerKeys(peer);
  }
  const action = textParam(q, "action");
  if (action) f.action = action;
  const actor = textParam(q, "actor");
  if (actor) f.actor = actor;
  const subject = textParam(q, "subject");
  if (subject) f.subject = subject;
  const cid = intParam(q, "cid", CID);
  if (cid !== undefined) f.cid = cid;
  const gid = textParam(q, "gid");
  if (gid) f.gid = gid;
  return f;
}

/** A form field as text ("" when absent or a file). */
export function formText(f: Record<string, unknown>, name: string): string {
  return typeof f[name] === "string" ? (f[name] as string) : "";
}
