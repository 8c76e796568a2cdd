// The admin server (Hono): server-rendered pages with htmx for live parts, and a JSON API that
// mirrors them. It reads the gateway only through `AdminGateway` (snapshots, never protocol
// objects) and writes only through the store, then asks the gateway to apply changes.
// This file composes: middleware (middleware/), then one sub-app per page group (routes/).
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ResourceError } from "../src/store/index.ts";
import { requireAuth, wantsHtml, type AdminEnv } from "./middleware/auth.ts";
import { capQuoted, ECHO_MAX, InputError } from "./input.ts";
import { securityHeaders } from "./middleware/headers.ts";
import { bodyLimits } from "./middleware/limits.ts";
import { requestFacts, sameOriginGuard } from "./middleware/origin.ts";
import { requestSpans } from "./middleware/tracing.ts";
import { apiRoutes } from "./routes/api.ts";
import { loginRoutes, logoutRoutes } from "./routes/login.ts";
import { historyRoutes } from "./routes/history.ts";
import { gatewayRoutes } from "./routes/gateways.ts";
import { pageRoutes } from "./routes/pages.ts";
import { problemRoutes } from "./routes/problems.ts";
import { relayRoutes } from "./routes/relays.ts";
import { peerRoutes } from "./routes/peers.ts";
import { RESOURCE_STATUS, resourceRoutes } from "./routes/resources.ts";
import { settingsRoutes } from "./routes/settings.ts";
import { takeoverRoutes } from "./routes/takeover.ts";
import { toolRoutes } from "./routes/tools.ts";
import type { AdminOptions } from "./types.ts";

export type { AdminGateway, AdminOptions, ResourceView } from "./types.ts";

const HTMX = readFileSync(createRequire(import.meta.url).resolve("htmx.org/dist/htmx.min.js"), "utf8");
const CSS = readFileSync(new URL("./static/app.css", import.meta.url), "utf8");
const LOCAL_TIME_JS = readFileSync(new URL("./static/local-time.js", import.meta.url), "utf8");

export function createAdminApp(opts: AdminOptions): Hono<AdminEnv> {
  const app = new Hono<AdminEnv>();

  // Order matters: headers go on every answer; bodies are bounded and cross-site mutations refused
  // before anything parses a body or looks at credentials.
  app.use("*", requestSpans(opts.tracer));
  app.use("*", securityHeaders());
  app.use("*", bodyLimits());
  app.use("*", requestFacts(opts.trustedProxies ?? []));
  app.use("*", sameOriginGuard());

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/static/htmx.min.js", (c) => c.body(HTMX, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=86400" }));
  app.get("/static/local-time.js", (c) => c.body(LOCAL_TIME_JS, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "public, max-age=3600" }));
  app.get("/static/app.css", (c) => c.body(CSS, 200, { "content-type": "text/css; charset=utf-8", "cache-control": "public, max-age=3600" }));
  app.route("/", loginRoutes(opts));

  app.use("*", requireAuth({ auth: opts.store?.auth, envToken: opts.envToken }));
  app.route("/", logoutRoutes(opts));
  app.route("/", pageRoutes(opts));
  app.route("/", peerRoutes(opts));
  app.route("/", resourceRoutes(opts));
  app.route("/", apiRoutes(opts));
  app.route("/", problemRoutes(opts));
  app.route("/", relayRoutes(opts));
  app.route("/", settingsRoutes(opts));
  app.route("/", toolRoutes(opts));
  app.route("/", historyRoutes(opts));
  app.route("/", gatewayRoutes(opts));
  app.route("/", takeoverRoutes(opts));

  app.notFound((c) => c.json({ error: "not_found", path: c.req.path.slice(0, ECHO_MAX) }, 404));
  // Bad input is the caller's 4xx naming the field; anything else is our bug: logged in full,
  // answered with nothing a caller could learn the internals from.
  app.onError((err, c) => {
    if (err instanceof InputError) {
      const message = capQuoted(err.message);
      return wantsHtml(c) ? c.text(message, 400) : c.json({ error: "invalid", field: err.field, message }, 400);
    }
    if (err instanceof ResourceError) return c.json({ error: err.kind, field: err.field, message: capQuoted(err.message) }, RESOURCE_STATUS[err.kind]);
    if (err instanceof HTTPException) return err.getResponse();
    opts.log?.error("admin request failed", { method: c.req.method, path: c.req.path.slice(0, 200), err });
    return c.json({ error: "internal", message: "internal error (logged on the gateway)" }, 500);
  });
  return app;
}
