// A takeover (POST /api/takeover, run by keepalived's notify_master on the gateway that just got
// the floating address): which clients to reach out to, and where. The other gateways publish
// their connections with the endpoint each was last seen at (gateway-presence.ts); for each peer,
// the newest of those (by last handshake) is where the client most likely still is. Nothing here
// is stored or shared: the plan is this gateway's alone, and the handshake it leads to
// (Tunnel.reachOut) leaves every peer's configuration as it was — a shared endpoint would make the
// standby initiate too, from its own address, and pull clients away from the master.
import { isIP } from "node:net";
import type { Endpoint } from "../wire/index.ts";
import { isUnreadable, readGatewayLive, type LiveConnection } from "./gateway-presence.ts";

/** What the plan reads of a gateway row (store GatewayRow). */
export interface TakeoverGateway {
  gid: string;
  lastSeen: number;
  live: string | null;
}

export interface TakeoverTarget {
  /** Base64, as `wg` prints it. */
  publicKey: string;
  endpoint: Endpoint;
  /** The gateway that published it. */
  seenBy: string;
}

/**
 * Why a peer was not reached out to. From the plan: `no_endpoint` (published without one),
 * `bad_endpoint` (not an IP address and port), `unknown_name` (published by name only, by an older
 * gateway, and no peer has that name). From the data plane (Tunnel.reachOut): `live_session`,
 * `rate_limited`, `not_served` (this gateway has no such peer in its data plane).
 */
export type TakeoverSkipReason = "no_endpoint" | "bad_endpoint" | "unknown_name" | "live_session" | "rate_limited" | "not_served";

export interface TakeoverSkip {
  peer: string;
  reason: TakeoverSkipReason;
}

export interface TakeoverPlan {
  targets: TakeoverTarget[];
  skipped: TakeoverSkip[];
}

/**
 * The newest published endpoint per peer among the gateways other than `self`. `keyOfName` maps a
 * peer name to its public key, for rows published by a gateway that names peers only.
 */
export function planTakeover(gateways: TakeoverGateway[], self: string, keyOfName: (name: string) => string | undefined): TakeoverPlan {
  type Seen = { row: LiveConnection; gw: TakeoverGateway };
  const newest = new Map<string, Seen>();
  const unknownNames = new Set<string>();
  for (const gw of gateways) {
    if (gw.gid === self) continue;
    for (const row of readGatewayLive(gw.live).connections) {
      if (isUnreadable(row)) continue;
      const key = row.public_key ?? keyOfName(row.peer) ?? (looksLikeKey(row.peer) ? row.peer : undefined);
      if (key === undefined) {
        unknownNames.add(row.peer);
        continue;
      }
      const was = newest.get(key);
      if (was === undefined || newer({ row, gw }, was)) newest.set(key, { row, gw });
    }
  }
  const plan: TakeoverPlan = { targets: [], skipped: [...unknownNames].map((peer) => ({ peer, reason: "unknown_name" as const })) };
  for (const [publicKey, { row, gw }] of newest) {
    if (row.endpoint === null) {
      plan.skipped.push({ peer: publicKey, reason: "no_endpoint" });
      continue;
    }
    const endpoint = parseIpEndpoint(row.endpoint);
    if (endpoint === undefined) plan.skipped.push({ peer: publicKey, reason: "bad_endpoint" });
    else plan.targets.push({ publicKey, endpoint, seenBy: gw.gid });
  }
  return plan;
}

/**
 * Newer: a later last handshake; a row with an endpoint over one without; then the gateway seen
 * last. ISO 8601 strings of one format compare as text.
 */
function newer(a: { row: LiveConnection; gw: TakeoverGateway }, b: { row: LiveConnection; gw: TakeoverGateway }): boolean {
  const ha = a.row.last_handshake ?? "";
  const hb = b.row.last_handshake ?? "";
  if (ha !== hb) return ha > hb;
  if ((a.row.endpoint === null) !== (b.row.endpoint === null)) return a.row.endpoint !== null;
  return a.gw.lastSeen > b.gw.lastSeen;
}

/** A WireGuard public key in base64: 32 bytes, 44 characters ending in "=". */
function looksLikeKey(s: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(s);
}

/** "192.0.2.1:51820" or "[2001:db8::1]:51820" as a gateway publishes endpoints; undefined otherwise. */
export function parseIpEndpoint(text: string): Endpoint | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535 || isIP(m[1]!) === 0) return undefined;
  return { address: m[1]!, port };
}
