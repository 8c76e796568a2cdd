// One span per admin request (when the gateway exports traces): method, the route pattern that
// answered (`/api/peers/:id`, never the raw path with its ids), status. First in the chain, so
// every log line a handler writes carries the request's trace_id, and refusals by later
// middleware (401, 403, 413) are spans too.
import type { Tracer } from "@opentelemetry/api";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { inSpan } from "../../src/telemetry/tracing.ts";

export function requestSpans(tracer: Tracer | undefined): MiddlewareHandler {
  if (!tracer) return (_c, next) => next();
  return (c, next) =>
    inSpan(tracer, `${c.req.method}`, { "http.request.method": c.req.method }, async (span) => {
      await next();
      // After next(): the index of the handler that answered. A wildcard is middleware that
      // answered (auth, limits) or no route at all: no pattern to name.
      const route = routePath(c);
      if (route && !route.includes("*")) {
        span!.updateName(`${c.req.method} ${route}`);
        span!.setAttribute("http.route", route);
      }
      const status = c.res.status;
      span!.setAttribute("http.response.status_code", status);
      if (status >= 500) span!.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
    }, SpanKind.SERVER);
}
