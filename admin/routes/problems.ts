// Named problems (src/telemetry/problems.ts): what is wrong, its likely cause and the fix to try.
// This gateway's come live from its detector; another gateway's from what it published at its
// last heartbeat (title, since, count: the rest stays on its own admin). `?gid=` picks one gateway.
import { Hono } from "hono";
import type { AdminEnv } from "../middleware/auth.ts";
import { intParam, textParam } from "../input.ts";
import type { AdminOptions } from "../types.ts";
import type { ProblemView } from "../../src/telemetry/problems.ts";
import * as gv from "../views/gateways.ts";
import { CID, page } from "./common.ts";
import { gatewayItems, knownGateways, ownGid } from "./gateways.ts";

/** One problem with the gateway it is on; this gateway's carry their likely cause and fix too. */
export type GatewayProblem = { gid: string; gateway: string; self: boolean } & (
  | { kind: string; title: string; since: string; count?: number; cid?: number | null; likely_cause?: string; fix?: string }
  | { unreadable: string }
);

export async function problemsAcross(opts: AdminOptions, now: number, gid: string | undefined): Promise<GatewayProblem[]> {
  const items = await gatewayItems(opts, now);
  const own = ownGid(opts);
  const local: ProblemView[] = opts.gateway.problems?.() ?? [];
  const out: GatewayProblem[] = [];
  // Standalone without a row (an admin over a bare store): this gateway's problems still show.
  if (!items.some((g) => g.self) && (gid === undefined || gid === own)) {
    for (const p of local) out.push({ gid: own ?? "", gateway: "this gateway", self: true, ...p });
  }
  for (const g of items) {
    if (gid !== undefined && g.gid !== gid) continue;
    if (g.self) for (const p of local) out.push({ gid: g.gid, gateway: g.name, self: true, ...p });
    else for (const p of g.problems) out.push({ gid: g.gid, gateway: g.name, self: false, ...p });
  }
  return out;
}

export function problemRoutes(opts: AdminOptions) {
  const now = () => opts.clock?.() ?? Date.now();
  return new Hono<AdminEnv>()
    .get("/problems", async (c) => {
      // "*" is every gateway, as in the API; the page's own select sends "" for it.
      const asked = textParam(c.req.query(), "gid");
      const gid = asked === "*" ? undefined : asked;
      return page(c, "Problems", gv.problemsPage(await problemsAcross(opts, now(), gid), await knownGateways(opts), gid));
    })
    // This gateway's problems (`?cid=` narrows to one of its connections), or with `?gid=` one
    // gateway's (its last publish when it is another), or `?gid=*` every gateway's.
    .get("/api/problems", async (c) => {
      const q = c.req.query();
      const cid = intParam(q, "cid", CID);
      const gid = textParam(q, "gid");
      if (gid === undefined) {
        const all = opts.gateway.problems?.() ?? [];
        return c.json({ problems: cid === undefined ? all : all.filter((p) => p.cid === cid) });
      }
      const across = await problemsAcross(opts, now(), gid === "*" ? undefined : gid);
      return c.json({ problems: cid === undefined ? across : across.filter((p) => "cid" in p && p.cid === cid) });
    });
}
