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

/**
 * Runs many `ip` commands in one process (`ip -force -batch -`); returns the error of each command
 * that failed, by its index. One spawn for 10 000 peer routes instead of 10 000 spawns (~3 ms
 * each: half a minute at start).
 */
export type IpBatch = (commands: string[][]) => Map<number, string>;

export const runIpBatch: IpBatch = (commands) => {
  if (commands.length === 0) return new Map();
  const r = spawnSync(["ip", "-force", "-batch", "-"], { stdin: new TextEncoder().encode(commands.map((c) => c.join(" ")).join("\n") + "\n"), stdout: "pipe", stderr: "pipe" });
  return batchErrors(commands, r.stderr.toString(), r.exitCode);
};

/** `runIpBatch` without blocking: the start goes on while ip adds 10 000 routes. */
export type IpBatchAsync = (commands: string[][]) => Promise<Map<number, string>>;

export const runIpBatchAsync: IpBatchAsync = async (commands) => {
  if (commands.length === 0) return new Map();
  const p = Bun.spawn(["ip", "-force", "-batch", "-"], { stdin: new TextEncoder().encode(commands.map((c) => c.join(" ")).join("\n") + "\n"), stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return batchErrors(commands, stderr, code);
};

/** The failed commands of an `ip -force -batch` run, from its stderr: each error, by command index. */
export function batchErrors(commands: string[][], stderr: string, exitCode: number): Map<number, string> {
  const failed = new Map<number, string>();
  // ip prints a failed command's error lines, then "Command failed -:<line>" (1-based).
  let pending: string[] = [];
  for (const line of stderr.split("\n")) {
    const m = /^Command failed -:(\d+)$/.exec(line.trim());
    if (m) {
      const i = Number(m[1]) - 1;
      failed.set(i, `ip ${commands[i]?.join(" ") ?? "?"}: ${pending.join(" ")}`);
      pending = [];
    } else if (line.trim()) pending.push(line.trim());
  }
  // A failure ip did not attribute to a line (it could not start, say): every command counts as failed.
  if (exitCode !== 0 && failed.size === 0) {
    const why = stderr.trim() || `exit ${exitCode}`;
    for (let i = 0; i < commands.length; i++) failed.set(i, `ip ${commands[i]!.join(" ")}: ${why}`);
  }
  return failed;
}

/** A batch made of single `ip` calls (tests give TunRoutes a fake `ip`; the batch follows it). */
export function batchOf(ip: IpCommand): IpBatch {
  return (commands) => {
    const failed = new Map<number, string>();
    commands.forEach((c, i) => {
      try {
        ip(c);
      } catch (err) {
        failed.set(i, (err as Error).message);
      }
    });
    return failed;
  };
}

/** Above this many changes in one sync, one summary line instead of a line per route. */
const ROUTE_LINES = 32;

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
    private readonly batch: IpBatch = ip === runIp ? runIpBatch : batchOf(ip),
    private readonly batchAsync: IpBatchAsync = ip === runIp ? runIpBatchAsync : async (commands) => batchOf(ip)(commands),
  ) {}

  /** Prefixes currently routed into the TUN by us. */
  get installed(): ReadonlySet<string> {
    return this.#installed;
  }

  /** Brings the TUN's routes in line with `wanted` (the AllowedIPs of peers in the data plane). */
  sync(wanted: WantedRoute[]): RoutePlan | undefined {
    if (this.#inBackground) {
      // A change while the start's batch runs: applied right after it (the last one wins).
      this.#afterBackground = wanted;
      return undefined;
    }
    const planned = this.#plan(wanted);
    if (!planned) return undefined;
    const { plan, fingerprint } = planned;
    const removed = this.batch(plan.remove.map((c) => ["route", "del", formatCidr(c), "dev", this.dev]));
    // `add`, never `replace`: if a route appeared since we read the table, we fail rather than take it over.
    const failed = this.batch(plan.add.map((w) => ["route", "add", formatCidr(w.prefix), "dev", this.dev]));
    return this.#applied(plan, fingerprint, removed, failed);
  }

  /**
   * `sync` with `ip` running beside the caller: the start goes on (history, sockets, admin) while
   * the kernel takes thousands of routes, and awaits this before saying "gateway up". No other
   * sync may run until it settles.
   */
  async syncInBackground(wanted: WantedRoute[]): Promise<RoutePlan | undefined> {
    const planned = this.#plan(wanted);
    if (!planned) return undefined;
    const { plan, fingerprint } = planned;
    this.#inBackground = true;
    let done: RoutePlan;
    try {
      const removed = await this.batchAsync(plan.remove.map((c) => ["route", "del", formatCidr(c), "dev", this.dev]));
      const failed = await this.batchAsync(plan.add.map((w) => ["route", "add", formatCidr(w.prefix), "dev", this.dev]));
      done = this.#applied(plan, fingerprint, removed, failed);
    } finally {
      this.#inBackground = false;
    }
    const later = this.#afterBackground;
    this.#afterBackground = undefined;
    if (later) this.sync(later);
    return done;
  }

  #inBackground = false;
  #afterBackground: WantedRoute[] | undefined;

  /** The plan against the host's table now, its refusals logged; undefined when nothing changed or the table is unreadable. */
  #plan(wanted: WantedRoute[]): { plan: RoutePlan; fingerprint: string } | undefined {
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
    return { plan, fingerprint };
  }

  /** Records and logs what the batches did. */
  #applied(plan: RoutePlan, fingerprint: string, removed: Map<number, string>, failed: Map<number, string>): RoutePlan {
    plan.remove.forEach((c, i) => {
      const text = formatCidr(c);
      // Already gone (someone removed it by hand): nothing left to undo.
      if (removed.has(i)) this.log.debug("route already gone", { allowed_ips: text, err: removed.get(i) });
      else if (plan.remove.length <= ROUTE_LINES) this.log.info("route removed: no peer needs it", { allowed_ips: text, interface: this.dev });
      this.#installed.delete(text);
    });
    if (plan.remove.length > ROUTE_LINES) this.log.info("routes removed: no peer needs them", { count: plan.remove.length - removed.size, interface: this.dev });
    plan.add.forEach((w, i) => {
      const text = formatCidr(w.prefix);
      const err = failed.get(i);
      if (err !== undefined) {
        this.log.error("peer route could not be added: the peer is served without it", { cid: w.peer.cid, public_key: w.peer.publicKey, peer: w.peer.name, allowed_ips: text, err: new Error(err) });
        return;
      }
      this.#installed.add(text);
      if (plan.add.length <= ROUTE_LINES) this.log.info("route added", { cid: w.peer.cid, public_key: w.peer.publicKey, peer: w.peer.name, allowed_ips: text, interface: this.dev });
    });
    if (plan.add.length > ROUTE_LINES) this.log.info("routes added", { count: plan.add.length - failed.size, failed: failed.size || undefined, interface: this.dev });
    this.#lastWanted = fingerprint;
    return plan;
  }
}
