// The read-only pages: overview, connections (with htmx-refreshed rows), logs, errors, audit.
import { Hono } from "hono";
import { html } from "hono/html";
import { auditCsv } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { intParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as v from "../views.ts";
import { auditFilter, CID, logQuery, page } from "./common.ts";
import { capturePanelFor } from "./tools.ts";
import { historyLink, oldConnectionPage, peerSubjects } from "./history.ts";

export function pageRoutes(opts: AdminOptions) {
  const { gateway, store, logs } = opts;
  const now = () => Date.now();
  return new Hono<AdminEnv>()
    .get("/", (c) => page(c, "Overview", v.overview(gateway.connections(), store?.peers.list().length ?? 0, logs?.query({ level: "warn", limit: 1000 }).length ?? 0, now())))
    .get("/connections", (c) => page(c, "Connections", v.connectionsPage(gateway.connections(), now())))
    .get("/connections/rows", (c) => c.html(v.connectionRows(gateway.connections(), now())))
    .get("/connections/:cid", (c) => {
      const cid = intParam(c.req.param(), "cid", CID)!;
      const conn = gateway.connections().find((x) => x.cid === cid);
      if (!conn) return oldConnectionPage(opts, c, cid); // an earlier run's cid: its peer's history
      const traffic = store?.traffic.series(conn.public_key, now() - 24 * 3600_000) ?? [];
      return page(c, `Connection ${cid}`, html`${historyLink(opts, conn.public_key)}${v.connectionDetail(conn, logs?.query({ cid, limit: 500 }) ?? [], traffic, now())}${capturePanelFor(opts, c, cid)}`);
    })
    .get("/logs", (c) => {
      const q = c.req.query();
      return page(c, "Logs", v.logsPage(q, logs?.query(logQuery(q)) ?? []));
    })
    .get("/logs/rows", (c) => c.html(v.logRows(logs?.query(logQuery(c.req.query())) ?? [])))
    .get("/errors", (c) => page(c, "Errors", v.errorsPage(logs?.query({ level: "warn", limit: 200 }) ?? [])))
    .get("/audit", (c) => {
      const q = c.req.query();
      const size = 50;
      const filter = auditFilter(q, (p) => peerSubjects(opts, p));
      const pageNo = intParam(q, "page", { min: 1, max: 1_000_000 }) ?? 1;
      const r = store?.audit.query(filter, { limit: size, offset: (pageNo - 1) * size }) ?? { rows: [], total: 0 };
      const keep = Object.fromEntries(Object.entries(filter).filter(([k]) => k !== "subjects").map(([k, val]) => [k, String(val)]));
      return page(c, "Audit", v.auditPage(r.rows, r.total, pageNo, size, keep));
    })
    .get("/audit.csv", (c) => {
      const rows = store?.audit.query(auditFilter(c.req.query(), (p) => peerSubjects(opts, p)), { limit: 100_000, offset: 0 }).rows ?? [];
      return c.body(auditCsv(rows), 200, { "content-type": "text/csv; charset=utf-8", "content-disposition": 'attachment; filename="glassgate-audit.csv"' });
    });
}
