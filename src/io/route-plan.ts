// Which peer prefixes the gateway routes into its TUN, decided without touching the system: the
// wanted prefixes (AllowedIPs of peers in the data plane) against the host's main routing table.
// Pure, so every rule is unit-tested; io/routes.ts reads the table and runs `ip`.
//
// A peer's AllowedIPs are what it may send *from*; routing them into the TUN is a convenience for
// the host, and must never take traffic the host already sends elsewhere. So a prefix is refused
// when it
//   - is already routed by the host through another device (same prefix: we would replace it),
//   - lies inside an on-link (connected) network of another device: a more specific route would
//     steal part of a LAN the host is on, e.g. 192.168.1.128/25 while eth0 has 192.168.1.0/24,
//   - contains such a network: the peer claims a range the host itself is attached to,
//   - is shorter than MIN_ROUTED_PREFIX: 0.0.0.0/0, and the 0.0.0.0/1 + 128.0.0.0/1 (or 2000::/3)
//     tricks full-tunnel clients use, would capture what the host's default route carries.
// A refused prefix stays in the peer's AllowedIPs (its packets are still accepted): only the
// host route is left out. Routes we added and no peer needs any more are removed.
import { formatCidr, parseCidr, type Cidr } from "../ip/address.ts";

/**
 * Shortest prefix routed into the TUN, per family. Anything shorter takes over a large share of
 * the default route (a /1 is half the Internet); giving a peer the Internet is the internet
 * resource's job, not a host route's. 10.0.0.0/8 and fd00::/8 are still routable.
 */
export const MIN_ROUTED_PREFIX = { 4: 8, 6: 8 } as const;

export interface PeerRef {
  cid: number;
  publicKey: string;
  /** The store's name for the peer, when it has one. */
  name?: string;
}

export interface WantedRoute {
  prefix: Cidr;
  peer: PeerRef;
}

/** One route of the host's main table (`ip -j route show table main`). */
export interface HostRoute {
  prefix: Cidr;
  /** Outgoing device; absent for unreachable/blackhole/prohibit routes. */
  dev?: string;
  /** Next hop; absent for on-link (connected) routes. */
  gateway?: string;
  /** "unicast" unless ip says otherwise (blackhole, unreachable, …). */
  type: string;
}

export interface Refusal {
  prefix: Cidr;
  peer: PeerRef;
  reason: string;
  /** The host route it would have taken over, as `ip route` prints it. */
  conflict?: string;
}

export interface RoutePlan {
  /** Prefixes to `ip route add … dev <tun>`, with the peer they are for. */
  add: WantedRoute[];
  /** Prefixes we added earlier that no peer in the data plane needs any more. */
  remove: Cidr[];
  refused: Refusal[];
  /** Every prefix that is (or will be) routed into the TUN by us, after the plan is applied. */
  installed: Set<string>;
}

/** Does `outer` contain `inner` (same family, outer's prefix no longer, same network bits)? */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  for (let bit = 0; bit < outer.prefix; bit += 8) {
    const bits = Math.min(8, outer.prefix - bit);
    const mask = (0xff << (8 - bits)) & 0xff;
    const i = bit / 8;
    if ((outer.bytes[i]! & mask) !== (inner.bytes[i]! & mask)) return false;
  }
  return true;
}

export function describeHostRoute(r: HostRoute): string {
  const dst = r.prefix.prefix === 0 ? "default" : formatCidr(r.prefix);
  return [r.type !== "unicast" ? r.type : "", dst, r.gateway ? `via ${r.gateway}` : "", r.dev ? `dev ${r.dev}` : ""].filter(Boolean).join(" ");
}

/**
 * Plans the TUN's routes: `wanted` are the AllowedIPs of every peer in the data plane (enabled
 * ones only), `host` the main table, `dev` our TUN, `installed` what we added before.
 */
export function planRoutes(wanted: WantedRoute[], host: HostRoute[], dev: string, installed: ReadonlySet<string>): RoutePlan {
  const plan: RoutePlan = { add: [], remove: [], refused: [], installed: new Set() };
  const others = host.filter((r) => r.dev !== dev);
  const ours = new Set(host.filter((r) => r.dev === dev).map((r) => formatCidr(r.prefix)));
  const seen = new Set<string>();
  for (const w of wanted) {
    const key = formatCidr(w.prefix);
    if (seen.has(key)) continue; // two peers with one prefix: one route serves both
    seen.add(key);
    const refusal = refuse(w, others);
    if (refusal) {
      plan.refused.push(refusal);
      continue;
    }
    if (installed.has(key)) plan.installed.add(key);
    else if (!ours.has(key)) {
      plan.add.push(w);
      plan.installed.add(key);
    }
    // Else the kernel already routes it into the TUN (the tunnel address's own subnet): not ours to own.
  }
  for (const key of installed) {
    if (!plan.installed.has(key)) plan.remove.push(parseCidr(key));
  }
  return plan;
}

function refuse(w: WantedRoute, others: HostRoute[]): Refusal | undefined {
  const c = hostConflict(w.prefix, others);
  return c && { prefix: w.prefix, peer: w.peer, ...c };
}

/**
 * Why routing `p` into our device would take traffic the host sends elsewhere, or undefined.
 * `others` are the host's routes through any device but ours.
 */
export function hostConflict(p: Cidr, others: HostRoute[]): { reason: string; conflict?: string } | undefined {
  const min = MIN_ROUTED_PREFIX[p.family];
  if (p.prefix < min) {
    const dflt = others.find((r) => r.prefix.family === p.family && r.prefix.prefix === 0);
    return {
      reason: p.prefix === 0
        ? "a default route through a peer would take over the host's own traffic"
        : `shorter than /${min}: it would capture most of what the host's default route carries`,
      conflict: dflt ? describeHostRoute(dflt) : undefined,
    };
  }
  for (const r of others) {
    if (r.prefix.family !== p.family) continue;
    if (r.prefix.prefix === p.prefix && cidrContains(r.prefix, p)) {
      return { reason: "the host already has a route for this prefix", conflict: describeHostRoute(r) };
    }
  }
  for (const r of others) {
    if (r.prefix.family !== p.family || r.prefix.prefix === 0 || !isOnLink(r)) continue;
    if (cidrContains(r.prefix, p)) {
      return { reason: `inside the network the host is attached to on ${r.dev}: routing it would cut those addresses off`, conflict: describeHostRoute(r) };
    }
    if (cidrContains(p, r.prefix)) {
      return { reason: `covers the network the host is attached to on ${r.dev}`, conflict: describeHostRoute(r) };
    }
  }
  return undefined;
}

/** A connected network: reached directly on a device, no next hop. */
function isOnLink(r: HostRoute): boolean {
  return r.type === "unicast" && r.dev !== undefined && r.gateway === undefined;
}
