// POST /api/takeover: what keepalived's notify_master runs on the gateway that just got the
// floating address (README, "High availability"). This gateway — and only it: nothing is stored or
// shared — starts a handshake with each client the other gateways last saw and it has no live
// session with, at the endpoint they saw it at (cluster/takeover.ts plans, the data plane's
// reachOut initiates). The clients of a crashed master then pause for a round trip instead of
// their own 15 s re-handshake timer. Cluster mode only: standalone there is nobody's publish to read.
import { Hono } from "hono";
import type { AdminEnv } from "../middleware/auth.ts";
import type { AdminOptions } from "../types.ts";
import { planTakeover, type TakeoverSkip } from "../../src/cluster/takeover.ts";
import { formatEndpoint } from "../../src/wire/index.ts";
import { peerStore, principal } from "./common.ts";

export interface TakeoverResult {
  reached: { peer: string; endpoint: string; seen_by: string }[];
  skipped: TakeoverSkip[];
}

export function takeoverRoutes(opts: AdminOptions) {
  return new Hono<AdminEnv>().post("/api/takeover", async (c) => {
    const cluster = opts.cluster;
    if (!cluster) {
      return c.json({ error: "not_clustered", message: "takeover reads the connections other gateways publish in the shared database; this gateway runs standalone (set DATABASE_URL)" }, 409);
    }
    const reachOut = opts.gateway.reachOut;
    if (!reachOut) return c.json({ error: "not_supported", message: "this gateway cannot start handshakes from the admin API" }, 501);
    const names = new Map((await peerStore(opts).list()).map((p) => [p.name, p.publicKey]));
    const plan = planTakeover(await cluster.gateways(), cluster.gid, (n) => names.get(n));
    const result: TakeoverResult = { reached: [], skipped: plan.skipped };
    for (const t of plan.targets) {
      const r = reachOut(t.publicKey, t.endpoint);
      if (r === "initiated") result.reached.push({ peer: t.publicKey, endpoint: formatEndpoint(t.endpoint), seen_by: t.seenBy });
      else result.skipped.push({ peer: t.publicKey, reason: r === "unknown_peer" ? "not_served" : r });
    }
    const byReason: Record<string, number> = {};
    for (const s of result.skipped) byReason[s.reason] = (byReason[s.reason] ?? 0) + 1;
    await opts.store?.audit.record({ actor: principal(c).actor, action: "gateway.takeover", subject: cluster.gid, after: { reached: result.reached.length, skipped: result.skipped.length, skipped_by_reason: byReason } });
    opts.log?.info("takeover", { reached: result.reached.length, skipped: result.skipped.length, ...Object.fromEntries(Object.entries(byReason).map(([k, v]) => [`skipped_${k}`, v])) });
    return c.json(result);
  });
}
