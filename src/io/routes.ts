// The TUN's host routes: reads the main table with `ip -j route`, asks route-plan.ts what to do,
// runs `ip route add/del`, and logs each refusal once (peer and prefix named) — a refused route
// never stops the gateway, the peer is served without it.
import { spawnSync } from "bun";
import { formatCidr, parseCidr, type Cidr, type IpFamily } from "../ip/address.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import { planRoutes, type HostRoute, type RoutePlan, type WantedRoute } from "./route-plan.ts";

export { hostConflict, MIN_ROUTED_PREFIX, planRoutes, type HostRoute, type PeerRef, type Refusal, type RoutePlan, type WantedRoute } from "./route-plan.ts";

/** Runs `ip ARGS`; returns stdout, throws with ip's stderr. */
export type IpCommand = (args: string[]) => string;

export const runIp: IpCommand = (args) => {
  const r = spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
};

interface IpJsonRoute {
  dst?: string;
  dev?: string;
  gateway?: string;
  type?: string;
}

/** Parses `ip -j [-6] route show table main`; entries it cannot read are skipped. */
export function parseIpRoutes(json: string, family: IpFamily): HostRoute[] {
  const out: HostRoute[] = [];
  const list = json.trim() ? (JSON.parse(json) as IpJsonRoute[]) : [];
  for (const r of list) {
    if (!r.dst) continue;
    let prefix: Cidr;
    try {
      prefix = r.dst === "default" ? parseCidr(family === 4 ? "0.0.0.0/0" : "::/0") : parseCidr(r.dst);
    } catch {
      continue;
    }
    if (prefix.family !== family) continue;
    out.push({ prefix, dev: r.dev, gateway: r.gateway, type: r.type ?? "unicast" });
  }
  return out;
}

export function readHostRoutes(ip: IpCommand = runIp): HostRoute[] {
  const routes = parseIpRoutes(ip(["-j", "route", "show", "table", "main"]), 4);
  try {
    routes.push(...parseIpRoutes(ip(["-j", "-6", "route", "show", "table", "main"]), 6));
  } catch {
    // IPv6 disabled on this host: no IPv6 routes to collide with.
  }
  return routes;
}

export class TunRoutes {
  /** Prefixes we added to the TUN (formatCidr): the only routes we ever remove. */
  #installed = new Set<string>();
  /** The last wanted set: the table is read again only when it changes (sync runs every 10 s). */
  #lastWanted: string | undefined;
  /** Refusals already logged ("key prefix"), so a 10 s sync does not repeat them. */
  #reported = new Set<string>();

  constructor(
    private readonly dev: string,
    private readonly log: TargetLogger,
    private readonly ip: IpCommand = runIp,
  ) {}

  /** Prefixes currently routed into the TUN by us. */
  get installed(): ReadonlySet<string> {
    return this.#installed;
  }

  /** Brings the TUN's routes in line with `wanted` (the AllowedIPs of peers in the data plane). */
  sync(wanted: WantedRoute[]): RoutePlan | undefined {
    const fingerprint = wanted.map((w) => `${formatCidr(w.prefix)} ${w.peer.publicKey}`).sort().join(",");
    if (fingerprint === this.#lastWanted) return undefined;
    let host: HostRoute[];
    try {
      host = readHostRoutes(this.ip);
    } catch (err) {
      // Nothing decided without the table; the next sync tries again.
      this.log.error("reading the host's routes failed: TUN routes left as they are", { interface: this.dev, err });
      return undefined;
    }
    const plan = planRoutes(wanted, host, this.dev, this.#installed);
    const stillRefused = new Set<string>();
    for (const r of plan.refused) {
      const key = `${r.peer.publicKey} ${formatCidr(r.prefix)}`;
      stillRefused.add(key);
      if (this.#reported.has(key)) continue;
      this.log.error("peer route refused: the peer is served, its prefix is not routed to the TUN", {
        cid: r.peer.cid, public_key: r.peer.publicKey, peer: r.peer.name, allowed_ips: formatCidr(r.prefix), reason: r.reason, conflict: r.conflict,
      });
    }
    this.#reported = stillRefused;
    for (const c of plan.remove) {
      const text = formatCidr(c);
      try {
        this.ip(["route", "del", text, "dev", this.dev]);
        this.log.info("route removed: no peer needs it", { allowed_ips: text, interface: this.dev });
      } catch (err) {
        // Already gone (someone removed it by hand): nothing left to undo.
        this.log.debug("route already gone", { allowed_ips: text, err });
      }
      this.#installed.delete(text);
    }
    for (const w of plan.add) {
      const text = formatCidr(w.prefix);
      try {
        // `add`, never `replace`: if a route appeared since we read the table, we fail rather than take it over.
        this.ip(["route", "add", text, "dev", this.dev]);
        this.#installed.add(text);
        this.log.info("route added", { cid: w.peer.cid, public_key: w.peer.publicKey, peer: w.peer.name, allowed_ips: text, interface: this.dev });
      } catch (err) {
        this.log.error("peer route could not be added: the peer is served without it", { cid: w.peer.cid, public_key: w.peer.publicKey, peer: w.peer.name, allowed_ips: text, err });
      }
    }
    this.#lastWanted = fingerprint;
    return plan;
  }
}
