// The read-only pages: overview, connections (list and page, each with an htmx-refreshed
// fragment), logs, errors, audit.
import { Hono, type Context } from "hono";
import { html } from "hono/html";
import { auditCsv, type PeerRow } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { intParam, listQuery } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as audit from "../views/audit.ts";
import * as conns from "../views/connections.ts";
import * as logv from "../views/logs.ts";
import * as ov from "../views/overview.ts";
import { problemBanners } from "../views/problems.ts";
import { auditFilter, auditRepository, CID, logQuery, page } from "./common.ts";
import { knownGateways, ownGid } from "./gateways.ts";
import { capturePanelFor } from "./tools.ts";
import { historyLink, oldConnectionPage, peerSubjects } from "./history.ts";

/** The store's sampling interval when the gateway does not say (GLASSGATE_TRAFFIC_SAMPLE_SECONDS default). */
const DEFAULT_SAMPLE_SECONDS = 60;
/** Reads ?q=&sort=&dir=; a value not understood falls back to the default and is said on the page. */
export function connectionListQuery(query: Record<string, string | undefined>): conns.ConnectionListQuery {
  return listQuery(query, conns.CONNECTION_SORTS, "cid", (sort) => (["cid", "name", "state"].includes(sort) ? "asc" : "desc"));
}

/** Filters (any field containing the search, case-insensitive) and sorts; cid breaks ties. */
export function listConnections(items: conns.ConnectionItem[], q: conns.ConnectionListQuery): conns.ConnectionItem[] {
  const needle = q.q.toLowerCase();
  const hit = (c: conns.ConnectionItem) =>
    !needle || [String(c.cid), c.name, c.public_key, c.endpoint, c.state, ...c.allowed_ips].some((f) => f?.toLowerCase().includes(needle));
  const time = (s: string | null) => (s ? Date.parse(s) : -Infinity);
  const key: Record<conns.ConnectionSort, (a: conns.ConnectionItem, b: conns.ConnectionItem) => number> = {
    cid: (a, b) => a.cid - b.cid,
    name: (a, b) => (a.name ?? "\uffff").localeCompare(b.name ?? "\uffff"),
    state: (a, b) => a.state.localeCompare(b.state),
    handshake: (a, b) => time(a.last_handshake) - time(b.last_handshake) || 0,
    rx: (a, b) => a.rx_bytes - b.rx_bytes,
    tx: (a, b) => a.tx_bytes - b.tx_bytes,
  };
  const sign = q.dir === "asc" ? 1 : -1;
  return items.filter(hit).sort((a, b) => sign * key[q.sort](a, b) || a.cid - b.cid);
}

/** Overview's warning count looks back this far: stored lines from earlier runs are not "recent". */
export const RECENT_WARNINGS_MS = 24 * 3600_000;

/** Warnings and errors logged in the last 24 h (this run's and stored ones), at most WARNINGS_CAP. */
export function recentWarnings(logs: AdminOptions["logs"], now: number): number {
  return logs?.query({ level: "warn", since: new Date(now - RECENT_WARNINGS_MS).toISOString(), limit: ov.WARNINGS_CAP }).length ?? 0;
}

/** What the Overview shows, read once (the page, its live fragment and GET /api/overview). */
export function overviewDataOf(opts: AdminOptions, now: number): ov.OverviewData {
  return {
    conns: opts.gateway.connections(),
    facts: opts.gateway.facts?.(),
    problems: opts.gateway.problems?.() ?? [],
    peers: opts.store?.peers.list() ?? [],
    errors: recentWarnings(opts.logs, now),
    now,
    portal: opts.gateway.portal?.(),
  };
}

export function pageRoutes(opts: AdminOptions) {
  const { gateway, store, logs } = opts;
  const now = () => Date.now();
  const storePeers = (): PeerRow[] => store?.peers.list() ?? [];
  const overviewData = (): ov.OverviewData => overviewDataOf(opts, now());
  const connectionItems = (): conns.ConnectionItem[] => {
    const names = new Map(storePeers().map((p) => [p.publicKey, p.name]));
    return gateway.connections().map((c) => ({ ...c, name: names.get(c.public_key) ?? null }));
  };
  const connectionList = (c: Context<AdminEnv>) => {
    const q = connectionListQuery(c.req.query());
    const all = connectionItems();
    return { q, all, shown: listConnections(all, q) };
  };
  const detail = (c: Context<AdminEnv>): conns.ConnectionDetail | undefined => {
    const cid = intParam(c.req.param(), "cid", CID)!;
    const conn = gateway.connections().find((x) => x.cid === cid);
    if (!conn) return undefined;
    const peer = storePeers().find((p) => p.publicKey === conn.public_key);
    const t = now();
    return {
      c: conn,
      name: peer?.name ?? null,
      peerHref: peer ? `/peers/${encodeURIComponent(peer.id)}` : null,
      logs: logs?.query({ cid, limit: 500 }) ?? [],
      traffic: store?.traffic.series(conn.public_key, t - 24 * 3600_000) ?? [],
      sampleSeconds: gateway.facts?.().traffic_sample_seconds ?? DEFAULT_SAMPLE_SECONDS,
      banners: problemBanners(gateway.problems?.() ?? [], cid),
      now: t,
      portal: gateway.connectionPortal?.(cid),
    };
  };
  const gone = (c: Context<AdminEnv>) => {
    const cid = intParam(c.req.param(), "cid", CID)!;
    return conns.connectionGone(cid, gateway.connectionState?.(cid));
  };
  return new Hono<AdminEnv>()
    .get("/", (c) => page(c, "Overview", ov.overview(overviewData())))
    .get("/overview/live", (c) => c.html(ov.overviewLive(overviewData())))
    .get("/connections", (c) => {
      const { q, all, shown } = connectionList(c);
      return page(c, "Connections", conns.connectionsPage(shown, all.length, q, now()));
    })
    .get("/connections/rows", (c) => {
      const { q, all, shown } = connectionList(c);
      return c.html(conns.connectionRows(shown, all.length, q, now()));
    })
    .get("/connections/:cid/live", (c) => {
      const d = detail(c);
      // htmx swaps only 2xx answers: a 404 would leave the page frozen on its last numbers.
      // Said in place instead, and the replacement does not poll again.
      return d ? c.html(conns.connectionLive(d)) : c.html(gone(c));
    })
    .get("/connections/:cid", (c) => {
      const d = detail(c);
      if (!d) return oldConnectionPage(opts, c, intParam(c.req.param(), "cid", CID)!); // an earlier run's cid: its peer's history
      return page(c, `Connection ${d.c.cid}`, html`${historyLink(opts, d.c.public_key)}${conns.connectionDetail(d)}${capturePanelFor(opts, c, d.c.cid)}`);
    })
    .get("/logs", (c) => {
      const q = c.req.query();
      return page(c, "Logs", logv.logsPage(q, logs?.query(logQuery(q)) ?? []));
    })
    .get("/logs/rows", (c) => {
      const q = c.req.query();
      return c.html(logv.logRows(logs?.query(logQuery(q)) ?? [], logv.logsEmpty(q)));
    })
    .get("/errors", (c) => page(c, "Errors", logv.errorsPage(logs?.query({ level: "warn", limit: 200 }) ?? [])))
    .get("/audit", async (c) => {
      const q = c.req.query();
      const size = 50;
      const filter = auditFilter(q, (p) => peerSubjects(opts, p));
      const pageNo = intParam(q, "page", { min: 1, max: 1_000_000 }) ?? 1;
      const r = (await auditRepository(opts)?.query(filter, { limit: size, offset: (pageNo - 1) * size })) ?? { rows: [], total: 0 };
      const keep = Object.fromEntries(Object.entries(filter).filter(([k]) => k !== "subjects").map(([k, val]) => [k, String(val)]));
      return page(c, "Audit", audit.auditPage(r.rows, r.total, pageNo, size, keep, await knownGateways(opts), ownGid(opts)));
    })
    .get("/audit.csv", async (c) => {
      const rows = (await auditRepository(opts)?.query(auditFilter(c.req.query(), (p) => peerSubjects(opts, p)), { limit: 100_000, offset: 0 }))?.rows ?? [];
      return c.body(auditCsv(rows), 200, { "content-type": "text/csv; charset=utf-8", "content-disposition": 'attachment; filename="glassgate-audit.csv"' });
    });
}
