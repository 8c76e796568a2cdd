// Who may reach what: resources, and authorizations (connection × resource, with an expiry) that
// are swept every tick. `decide` runs for every packet a client sends through the gateway and
// returns nothing (allow) or a counted reason; it allocates nothing. `explain` walks the same code
// with a trace sink and returns the decision path (the admin's policy tester).
import { formatCidr, isPublicAddress, type Cidr } from "../ip/address.ts";
import { isIcmpError, PROTO_TCP, PROTO_UDP, protocolName, type PacketView } from "../ip/packet.ts";
import { AllowedIps } from "../tunnel/allowed-ips.ts";
import { MinHeap } from "../tunnel/min-heap.ts";
import { filterText, matchingFilter, NO_FILTER_MATCHES, NO_FILTERS, type Resource } from "./resources.ts";

export type DenyReason = "no_resource" | "not_authorized" | "authorization_expired" | "filtered" | "outbound_icmp_error" | "not_public";

export const DENY_REASONS: readonly DenyReason[] = ["no_resource", "not_authorized", "authorization_expired", "filtered", "outbound_icmp_error", "not_public"];

/** `null` means the authorization does not expire. Times are Unix ms. */
export type ExpiresAt = number | null;

export interface Expired {
  cid: number;
  rid: string;
}

const ANY_V4: Cidr = { family: 4, bytes: new Uint8Array(4), prefix: 0 };
const ANY_V6: Cidr = { family: 6, bytes: new Uint8Array(16), prefix: 0 };

export class AccessPolicy {
  readonly #resources = new Map<string, Resource>();
  #routes = new AllowedIps<Resource>();
  /** Proxy addresses of DNS resources (DNS-resource NAT), per resource id. */
  readonly #proxyRoutes = new Map<string, Cidr[]>();
  readonly #grants = new Map<number, Map<string, ExpiresAt>>();
  /**
   * Every expiry ever granted, earliest first. An entry whose grant changed or went since is
   * stale and skipped when it surfaces, so the next expiry is O(1) and a sweep touches only
   * what is due — not every client's every authorization per turn.
   */
  readonly #expiries = new MinHeap<Expired>();
  /** Heap size at which stale entries are compacted away (re-authorizations push new ones). */
  #compactAt = 1024;
  /** The resource the last `decide` matched (for logs and the connection timeline). */
  lastResource: Resource | undefined;

  /** With no resources at all the gateway is a plain WireGuard server and forwards everything. */
  get enforcing(): boolean {
    return this.#resources.size > 0;
  }

  resources(): IterableIterator<Resource> {
    return this.#resources.values();
  }

  resource(id: string): Resource | undefined {
    return this.#resources.get(id);
  }

  upsertResource(r: Resource): void {
    this.#resources.set(r.id, r);
    this.#rebuildRoutes();
  }

  removeResource(id: string): boolean {
    if (!this.#resources.delete(id)) return false;
    this.#proxyRoutes.delete(id);
    for (const g of this.#grants.values()) g.delete(id);
    this.#rebuildRoutes();
    return true;
  }

  /** Routes a DNS resource's proxy addresses to it (the NAT then translates them). */
  setProxyAddresses(rid: string, cidrs: Cidr[]): void {
    this.#proxyRoutes.set(rid, cidrs);
    this.#rebuildRoutes();
  }

  /**
   * Adds proxy addresses to a DNS resource's routes in place. Each new name adds a few: a full
   * rebuild per name would make n names cost n² work on the packet thread.
   */
  addProxyAddresses(rid: string, cidrs: Cidr[]): void {
    const r = this.#resources.get(rid);
    if (!r) return;
    const list = this.#proxyRoutes.get(rid) ?? [];
    for (const c of cidrs) (list.push(c), this.#routes.insert(c, r));
    this.#proxyRoutes.set(rid, list);
  }

  #rebuildRoutes(): void {
    const routes = new AllowedIps<Resource>();
    for (const r of this.#resources.values()) {
      if (r.type === "cidr") routes.insert(r.address, r);
      else if (r.type === "internet") {
        routes.insert(ANY_V4, r);
        routes.insert(ANY_V6, r);
      } else for (const c of this.#proxyRoutes.get(r.id) ?? []) routes.insert(c, r);
    }
    this.#routes = routes;
  }

  authorize(cid: number, rid: string, expiresAt: ExpiresAt): void {
    if (!this.#resources.has(rid)) throw new Error(`authorization for unknown resource "${rid}"`);
    let g = this.#grants.get(cid);
    if (!g) this.#grants.set(cid, (g = new Map()));
    g.set(rid, expiresAt);
    if (expiresAt !== null) this.#expiries.push(expiresAt, { cid, rid });
    if (this.#expiries.size >= this.#compactAt) this.#compact();
  }

  /**
   * Rebuilds the heap from the live grants: a portal that extends authorizations again and again
   * must not grow it without bound. Runs when it doubled since the last time: amortised O(1).
   */
  #compact(): void {
    const heap = this.#expiries;
    heap.clear();
    for (const [cid, g] of this.#grants) for (const [rid, exp] of g) if (exp !== null) heap.push(exp, { cid, rid });
    this.#compactAt = Math.max(1024, 2 * heap.size);
  }

  /** Whether a heap entry still describes a grant. */
  #current(at: number, e: Expired): boolean {
    return this.#grants.get(e.cid)?.get(e.rid) === at;
  }

  /** Removes `cid`'s authorization for `rid` (or all of them); false when there was none. */
  revoke(cid: number, rid?: string): boolean {
    if (rid === undefined) return this.#grants.delete(cid);
    const g = this.#grants.get(cid);
    if (!g?.delete(rid)) return false;
    if (g.size === 0) this.#grants.delete(cid);
    return true;
  }

  /** The resources `cid` may reach now, with when that ends. */
  authorizations(cid: number): { rid: string; expiresAt: ExpiresAt }[] {
    return [...(this.#grants.get(cid) ?? [])].map(([rid, expiresAt]) => ({ rid, expiresAt }));
  }

  /** Removes every authorization that has expired; returns them (for logs, audit, goodbye). */
  sweep(now: number): Expired[] {
    const out: Expired[] = [];
    const heap = this.#expiries;
    while (heap.size > 0 && heap.peekAt() <= now) {
      const at = heap.peekAt();
      const e = heap.pop()!;
      if (!this.#current(at, e)) continue;
      const g = this.#grants.get(e.cid)!;
      g.delete(e.rid);
      if (g.size === 0) this.#grants.delete(e.cid);
      out.push(e);
    }
    return out;
  }

  /** The earliest expiry, so the shell knows when to sweep next. */
  nextExpiry(): number | undefined {
    const heap = this.#expiries;
    while (heap.size > 0) {
      if (this.#current(heap.peekAt(), heap.peek()!)) return heap.peekAt();
      heap.pop();
    }
    return undefined;
  }

  /** May `cid` send this (parsed, valid) packet? undefined = yes. The data path's call: no trace. */
  decide(cid: number, p: PacketView, now: number): DenyReason | undefined {
    return this.#walk(cid, p, now, undefined);
  }

  /**
   * The same decision as `decide`, with the path that led to it (for the policy tester). Both run
   * `#walk`, so an explanation can never disagree with what the data path does.
   */
  explain(cid: number, p: PacketView, now: number): Explanation {
    const steps: DecisionStep[] = [];
    const reason = this.#walk(cid, p, now, new StepRecorder(steps, now));
    return { verdict: reason === undefined ? "allow" : "deny", reason, resource: this.lastResource?.id, steps };
  }

  /**
   * The one decision walk. `trace` is undefined on the data path: every report below is a
   * `trace?.…` call, whose arguments are not even evaluated then — nothing is allocated per packet.
   */
  #walk(cid: number, p: PacketView, now: number, trace: DecisionTrace | undefined): DenyReason | undefined {
    const r = this.#routes.lookup(p.buf, p.dstAt, p.version);
    this.lastResource = r;
    trace?.resource(r);
    if (!r) return "no_resource";
    const exp = this.#grants.get(cid)?.get(r.id);
    trace?.authorization(r, exp);
    if (exp === undefined) return "not_authorized";
    if (exp !== null && exp <= now) return "authorization_expired";
    // As Firezone: ICMP errors from clients are not forwarded (and never answered).
    if (p.icmpType >= 0 && isIcmpError(p.version, p.icmpType)) {
      trace?.icmpError(p.icmpType);
      return "outbound_icmp_error";
    }
    // The internet resource is the public internet: private, loopback, link-local, CGNAT,
    // multicast and reserved destinations are not part of it.
    if (r.type === "internet") {
      const isPublic = isPublicAddress(p.buf, p.dstAt, p.version);
      trace?.publicAddress(isPublic);
      if (!isPublic) return "not_public";
    }
    const rule = matchingFilter(r.filters, p.protocol, p.dstPort);
    trace?.filter(r, rule, p.protocol, p.dstPort);
    if (rule === NO_FILTER_MATCHES) return "filtered";
    return undefined;
  }
}

/** One step of a decision, as the policy tester shows it. Times are Unix ms. */
export interface DecisionStep {
  step: "mode" | "local_dns" | "dns_proxy" | "resource" | "authorization" | "icmp_error" | "public_address" | "filter";
  outcome: "pass" | "fail";
  detail: string;
  /** The resource the step concerns. */
  rid?: string;
  /** authorization: when it ends (null: never). */
  expiresAt?: ExpiresAt;
  /** filter: index of the rule that matched (-1: the resource has no filters, so all traffic). */
  rule?: number;
}

export interface Explanation {
  verdict: "allow" | "deny";
  reason: DenyReason | undefined;
  /** The most specific resource the destination matched. */
  resource: string | undefined;
  steps: DecisionStep[];
}

/** What `#walk` reports when asked to (explain); never on the data path. */
interface DecisionTrace {
  resource(r: Resource | undefined): void;
  authorization(r: Resource, expiresAt: ExpiresAt | undefined): void;
  icmpError(type: number): void;
  publicAddress(isPublic: boolean): void;
  filter(r: Resource, rule: number, protocol: number, port: number): void;
}

class StepRecorder implements DecisionTrace {
  constructor(private readonly steps: DecisionStep[], private readonly now: number) {}

  resource(r: Resource | undefined): void {
    this.steps.push(r
      ? { step: "resource", outcome: "pass", rid: r.id, detail: `matches resource "${r.id}" (${describeResource(r)}), the most specific one containing the destination` }
      : { step: "resource", outcome: "fail", detail: "no resource contains the destination (while resources exist, only resources are reachable)" });
  }

  authorization(r: Resource, exp: ExpiresAt | undefined): void {
    if (exp === undefined) this.steps.push({ step: "authorization", outcome: "fail", rid: r.id, detail: `the peer has no authorization for "${r.id}"` });
    else if (exp === null) this.steps.push({ step: "authorization", outcome: "pass", rid: r.id, expiresAt: null, detail: `authorized for "${r.id}", no expiry` });
    else if (exp <= this.now) this.steps.push({ step: "authorization", outcome: "fail", rid: r.id, expiresAt: exp, detail: `the authorization for "${r.id}" expired at ${new Date(exp).toISOString()}` });
    else this.steps.push({ step: "authorization", outcome: "pass", rid: r.id, expiresAt: exp, detail: `authorized for "${r.id}" until ${new Date(exp).toISOString()} (in ${humanDuration(exp - this.now)})` });
  }

  icmpError(type: number): void {
    this.steps.push({ step: "icmp_error", outcome: "fail", detail: `ICMP errors (type ${type}) from clients are never forwarded` });
  }

  publicAddress(isPublic: boolean): void {
    this.steps.push(isPublic
      ? { step: "public_address", outcome: "pass", detail: "the destination is a public address (part of the internet resource)" }
      : { step: "public_address", outcome: "fail", detail: "the internet resource covers only public addresses; this one is private, loopback, link-local, CGNAT, multicast or reserved" });
  }

  filter(r: Resource, rule: number, protocol: number, port: number): void {
    // ICMP has no port (the view keeps its echo id there): filters match ICMP by protocol alone.
    const what = protocol === PROTO_TCP || protocol === PROTO_UDP ? `${protocolName(protocol)}/${port}` : protocolName(protocol);
    if (rule === NO_FILTERS) this.steps.push({ step: "filter", outcome: "pass", rid: r.id, rule, detail: `"${r.id}" has no filters: all protocols and ports` });
    else if (rule === NO_FILTER_MATCHES) this.steps.push({ step: "filter", outcome: "fail", rid: r.id, detail: `${what} matches none of "${r.id}"'s filters (${r.filters.map(filterText).join(", ")})` });
    else this.steps.push({ step: "filter", outcome: "pass", rid: r.id, rule, detail: `${what} matches filter ${rule + 1} of "${r.id}": ${filterText(r.filters[rule]!)}` });
  }
}

function describeResource(r: Resource): string {
  if (r.type === "cidr") return `cidr ${formatCidr(r.address)}`;
  if (r.type === "dns") return `dns ${r.pattern}`;
  return "internet";
}

function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} days`;
}
