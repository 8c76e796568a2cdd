// The admin HTTP server (Hono). This first cut serves the JSON API and Prometheus metrics with a
// bearer token; the browser UI (login, htmx pages) comes with the observability work.
import { Hono } from "hono";
import { timingSafeEqual } from "node:crypto";
import type { ConnectionView } from "../src/telemetry/view.ts";

/** Everything the admin may ask of the gateway: snapshots only, never protocol objects. */
export interface AdminQuery {
  connections(): ConnectionView[];
  metrics(): string;
}

export interface AdminOptions {
  query: AdminQuery;
  /** GLASSGATE_ADMIN_TOKEN. Without it every authenticated route refuses. */
  token: string | undefined;
}

function tokenMatches(given: string | undefined, expected: string | undefined): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function createAdminApp(opts: AdminOptions): Hono {
  const app = new Hono();

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  // Every route below requires the bearer token.
  app.use("*", async (c, next) => {
    if (c.req.path === "/healthz") return next();
    const header = c.req.header("authorization") ?? "";
    const given = header.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
    if (!tokenMatches(given, opts.token)) {
      const why = opts.token ? "missing or wrong bearer token" : "set GLASSGATE_ADMIN_TOKEN to use the admin API";
      return c.json({ error: "unauthorized", message: why }, 401, { "www-authenticate": 'Bearer realm="glassgate"' });
    }
    return next();
  });

  app.get("/api/connections", (c) => c.json({ connections: opts.query.connections() }));
  app.get("/metrics", (c) => c.text(opts.query.metrics(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));
  app.notFound((c) => c.json({ error: "not_found", path: c.req.path }, 404));
  return app;
}
