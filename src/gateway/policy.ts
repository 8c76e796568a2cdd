// Who may reach what: resources, and authorizations (connection × resource, with an expiry) that
// are swept every tick. `decide` runs for every packet a client sends through the gateway and
// returns nothing (allow) or a counted reason; it allocates nothing.
import type { Cidr } from "../ip/address.ts";
import { isIcmpError, type PacketView } from "../ip/packet.ts";
import { isPublicAddress } from "../ip/address.ts";
import { AllowedIps } from "../tunnel/allowed-ips.ts";
import { filtersAllow, type Resource } from "./resources.ts";

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
    for (const [cid, g] of this.#grants) {
      for (const [rid, exp] of g) {
        if (exp !== null && exp <= now) {
          g.delete(rid);
          out.push({ cid, rid });
        }
      }
      if (g.size === 0) this.#grants.delete(cid);
    }
    return out;
  }

  /** The earliest expiry, so the shell knows when to sweep next. */
  nextExpiry(): number | undefined {
    let t: number | undefined;
    for (const g of this.#grants.values()) for (const e of g.values()) if (e !== null && (t === undefined || e < t)) t = e;
    return t;
  }

  /** May `cid` send this (parsed, valid) packet? undefined = yes. */
  decide(cid: number, p: PacketView, now: number): DenyReason | undefined {
    const r = this.#routes.lookup(p.buf, p.dstAt, p.version);
    this.lastResource = r;
    if (!r) return "no_resource";
    const exp = this.#grants.get(cid)?.get(r.id);
    if (exp === undefined) return "not_authorized";
    if (exp !== null && exp <= now) return "authorization_expired";
    // As Firezone: ICMP errors from clients are not forwarded (and never answered).
    if (p.icmpType >= 0 && isIcmpError(p.version, p.icmpType)) return "outbound_icmp_error";
    // The internet resource is the public internet: private, loopback, link-local, CGNAT,
    // multicast and reserved destinations are not part of it.
    if (r.type === "internet" && !isPublicAddress(p.buf, p.dstAt, p.version)) return "not_public";
    if (!filtersAllow(r.filters, p.protocol, p.dstPort)) return "filtered";
    return undefined;
  }
}
