// Named problems (src/telemetry/problems.ts) as JSON: what is wrong, its likely cause and the fix
// to try. `?cid=` narrows to one connection (its page shows the same list as banners).
import { Hono } from "hono";
import type { AdminEnv } from "../middleware/auth.ts";
import { intParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import { CID } from "./common.ts";

export function problemRoutes(opts: AdminOptions) {
  return new Hono<AdminEnv>().get("/api/problems", (c) => {
    const cid = intParam(c.req.query(), "cid", CID);
    const all = opts.gateway.problems?.() ?? [];
    return c.json({ problems: cid === undefined ? all : all.filter((p) => p.cid === cid) });
  });
}
