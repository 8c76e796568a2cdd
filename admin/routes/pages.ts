// The read-only pages: overview, connections (with htmx-refreshed rows), logs, errors, audit.
import { Hono } from "hono";
import { html } from "hono/html";
import { auditCsv } from "../../src/store/index.ts";
import type { AdminEnv } from "../middleware/auth.ts";
import { intParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import * as audit from "../views/audit.ts";
import * as conns from "../views/connections.ts";
import * as logv from "../views/logs.ts";
import * as ov from "../views/overview.ts";
import { auditFilter, CID, logQuery, page } from "./common.ts";
import { capturePanelFor } from "./tools.ts";

export function pageRoutes(opts: AdminOptions) {
  const { gateway, store, logs } = opts;
  const now = () => Date.now();
  return new Hono<AdminEnv>()
    .get("/", (c) => page(c, "Overview", ov.overview(gateway.connections(), store?.peers.list().length ?? 0, logs?.query({ level: "warn", limit: 1000 }).length ?? 0, now())))
    .get("/connections", (c) => page(c, "Connections", conns.connectionsPage(gateway.connections(), now())))
    .get("/connections/rows", (c) => c.html(conns.connectionRows(gateway.connections(), now())))
    .get("/connections/:cid", (c) => {
      const cid = intParam(c.req.param(), "cid", CID)!;
      const conn = gateway.connections().find((x) => x.cid === cid);
      if (!conn) return c.text(`no connection ${cid}`, 404);
      const traffic = store?.traffic.series(conn.public_key, now() - 24 * 3600_000) ?? [];
      return page(c, `Connection ${cid}`, html`${conns.connectionDetail(conn, logs?.query({ cid, limit: 500 }) ?? [], traffic, now())}${capturePanelFor(opts, c, cid)}`);
    })
    .get("/logs", (c) => {
      const q = c.req.query();
      return page(c, "Logs", logv.logsPage(q, logs?.query(logQuery(q)) ?? []));
    })
    .get("/logs/rows", (c) => c.html(logv.logRows(logs?.query(logQuery(c.req.query())) ?? [])))
    .get("/errors", (c) => page(c, "Errors", logv.errorsPage(logs?.query({ level: "warn", limit: 200 }) ?? [])))
    .get("/audit", (c) => {
      const q = c.req.query();
      const size = 50;
      const filter = auditFilter(q);
      const pageNo = intParam(q, "page", { min: 1, max: 1_000_000 }) ?? 1;
      const r = store?.audit.query(filter, { limit: size, offset: (pageNo - 1) * size }) ?? { rows: [], total: 0 };
      const keep = Object.fromEntries(Object.entries(filter).map(([k, val]) => [k, String(val)]));
      return page(c, "Audit", audit.auditPage(r.rows, r.total, pageNo, size, keep));
    })
    .get("/audit.csv", (c) => {
      const rows = store?.audit.query(auditFilter(c.req.query()), { limit: 100_000, offset: 0 }).rows ?? [];
      return c.body(auditCsv(rows), 200, { "content-type": "text/csv; charset=utf-8", "content-disposition": 'attachment; filename="glassgate-audit.csv"' });
    });
}
