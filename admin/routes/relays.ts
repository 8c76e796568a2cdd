// The Relays page and its JSON: TURN allocations, channels and lifetimes (admin/views/relays.ts).
import { Hono } from "hono";
import type { AdminEnv } from "../middleware/auth.ts";
import type { AdminOptions } from "../types.ts";
import { relaysLive, relaysPage } from "../views/relays.ts";
import { page } from "./common.ts";

export function relayRoutes(opts: AdminOptions) {
  return new Hono<AdminEnv>()
    .get("/relays", (c) => page(c, "Relays", relaysPage(opts.gateway.relays?.())))
    .get("/relays/live", (c) => c.html(relaysLive(opts.gateway.relays?.())))
    .get("/api/relays", (c) => c.json({ relays: opts.gateway.relays?.() ?? [] }));
}
