// The narrow window the admin server looks through: plain snapshots built from the tunnel and
// event loop on request. The admin never touches protocol objects, and building a snapshot costs
// the data plane nothing between requests. Field names match the log fields (cid, session, …).
import { formatCidr } from "../ip/address.ts";
import type { Tunnel } from "../tunnel/index.ts";
import { formatEndpoint, sessionField } from "../wire/index.ts";
import type { ConnectionState, ConnectionStates } from "./connection-state.ts";

export interface ConnectionView {
  cid: number;
  public_key: string;
  /** Portal mode: the client this connection is, as the portal names it. */
  portal?: { client_id: string; name: string | null };
  endpoint: string | null;
  /** Live sessions, newest first, as "connection|slot". */
  sessions: string[];
  last_handshake: string | null;
  rx_bytes: number;
  tx_bytes: number;
  rx_packets: number;
  tx_packets: number;
  /** `completed` counts responses sent too; `confirmed` only handshakes whose keys were proven in use. */
  handshakes: { initiated: number; completed: number; failed: number; confirmed?: number };
  allowed_ips: string[];
  drops: Record<string, number>;
  /** See connection-state.ts: what the gateway has proven about this connection. */
  state: ConnectionState;
  /** When it entered `state` (ISO 8601). */
  state_since: string;
  /** ICE clients (portal mode): the data path — `direct host`, `srflx`, `relay via …`. Absent for plain WireGuard peers. */
  path?: string;
}

/**
 * `states` is the one place states are computed (fed by tunnel events); building a view also
 * samples each connection's received packets into it, so "stale" is current when looked at.
 */
export function connectionViews(tunnel: Tunnel, now: number, states: ConnectionStates, pathOf?: (cid: number) => string | undefined): ConnectionView[] {
  const out: ConnectionView[] = [];
  for (const c of tunnel.connections()) {
    const p = c.peer;
    const s = p.stats;
    states.sample(c.cid, s.rxPackets, now);
    const st = states.get(c.cid)!;
    out.push({
      cid: c.cid,
      public_key: c.publicKey,
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
      sessions: p.keypairs.indices().map(sessionField),
      last_handshake: s.lastHandshakeAt ? new Date(s.lastHandshakeAt).toISOString() : null,
      rx_bytes: s.rxBytes,
      tx_bytes: s.txBytes,
      rx_packets: s.rxPackets,
      tx_packets: s.txPackets,
      handshakes: { initiated: s.handshakesInitiated, completed: s.handshakesCompleted, failed: s.handshakesFailed, confirmed: st.confirmed },
      allowed_ips: c.allowedIPs.map(formatCidr),
      drops: connectionDrops(p.drops.snapshot() as Record<string, number>, c.rejectedSources.count),
      state: st.state,
      state_since: new Date(st.since).toISOString(),
    });
    const path = pathOf?.(c.cid);
    if (path !== undefined) out[out.length - 1]!.path = path;
  }
  return out;
}


/**
 * A connection's drops by reason. Packets from outside its AllowedIPs are counted by the tunnel
 * (gateway-wide) and on the connection's rejectedSources, not in the peer's own counters: without
 * this its page said "no drops" and the Overview "no known connection" for a peer whose every
 * packet was dropped as allowed_ips.
 */
function connectionDrops(own: Record<string, number>, rejectedSources: number): Record<string, number> {
  return rejectedSources ? { ...own, allowed_ips: (own.allowed_ips ?? 0) + rejectedSources } : own;
}

/**
 * Drops no live connection accounts for: the tunnel's and the gateway core's gateway-wide counts,
 * less the allowed_ips drops already shown on their connections (a removed connection's stay here).
 */
export function unattributedDrops(tunnel: Tunnel, gatewayDrops: Iterable<[string, number]>): Record<string, number> {
  const d: Record<string, number> = { ...(tunnel.tunnelDrops() as Record<string, number>) };
  for (const [reason, n] of gatewayDrops) d[reason] = (d[reason] ?? 0) + n;
  if (d.allowed_ips) {
    for (const c of tunnel.connections()) d.allowed_ips -= c.rejectedSources.count;
    if (d.allowed_ips <= 0) delete d.allowed_ips;
  }
  return d;
}
