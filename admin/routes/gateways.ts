// Every gateway of the deployment (cluster mode: the shared gateways table; standalone: this data
// dir's one row): health from each row's last_seen, what it published at its last heartbeat
// (connections, problems). This gateway's own connections and problems are read live rather than
// from its last publish.
import { Hono } from "hono";
import type { AdminEnv } from "../middleware/auth.ts";
import type { AdminOptions } from "../types.ts";
import type { GatewayRow } from "../../src/store/index.ts";
import { CLUSTER_HEARTBEAT_MS, gatewayHealth, gatewayLive, readGatewayLive, STANDALONE_HEARTBEAT_MS, type GatewayHealth, type ReadLive } from "../../src/cluster/gateway-presence.ts";
import * as gv from "../views/gateways.ts";
import { page } from "./common.ts";

export type GatewayItem = {
  gid: string;
  name: string;
  public_key: string;
  endpoint: string | null;
  version: string;
  started_at: string;
  last_seen: string;
  connected_peers: number;
  /** This admin's own gateway. */
  self: boolean;
} & GatewayHealth & ReadLive;

/** The known gateways' rows: the shared table in cluster mode, else this data dir's. */
export async function knownGateways(opts: AdminOptions): Promise<GatewayRow[]> {
  if (opts.cluster) return opts.cluster.gateways();
  return opts.store?.gateways.list() ?? [];
}

export function ownGid(opts: AdminOptions): string | undefined {
  return opts.cluster?.gid ?? opts.gateway.gid ?? opts.store?.gid;
}

/** This gateway's connections and problems as it would publish them now. */
function ownLive(opts: AdminOptions): ReadLive {
  const names = new Map((opts.store?.peers.list() ?? []).map((p) => [p.publicKey, p.name]));
  const live = gatewayLive(opts.gateway.connections().map((c) => ({ ...c, peer_name: names.get(c.public_key) ?? null })), opts.gateway.problems?.() ?? []);
  return { ...live, unreadable: null };
}

export async function gatewayItems(opts: AdminOptions, now: number): Promise<GatewayItem[]> {
  const self = ownGid(opts);
  const beat = opts.cluster ? (opts.cluster.heartbeatMs ?? CLUSTER_HEARTBEAT_MS) : STANDALONE_HEARTBEAT_MS;
  return (await knownGateways(opts)).map((g) => ({
    gid: g.gid,
    name: g.name,
    public_key: g.publicKey,
    endpoint: g.endpoint,
    version: g.version,
    started_at: new Date(g.startedAt).toISOString(),
    last_seen: new Date(g.lastSeen).toISOString(),
    connected_peers: g.connectedPeers,
    self: g.gid === self,
    ...gatewayHealth(g.lastSeen, now, beat),
    ...(g.gid === self ? ownLive(opts) : readGatewayLive(g.live)),
  }));
}

export function gatewayRoutes(opts: AdminOptions) {
  const now = () => opts.clock?.() ?? Date.now();
  return new Hono<AdminEnv>()
    .get("/gateways", async (c) => page(c, "Gateways", gv.gatewaysPage(await gatewayItems(opts, now()), now(), !!opts.cluster)))
    .get("/api/gateways", async (c) => c.json({ gateways: await gatewayItems(opts, now()) }));
}
