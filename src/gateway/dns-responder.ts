// The gateway's answer to DNS queries that arrive on its tunnel address: names of DNS resources
// the asking client is authorized for get their proxy addresses (and the proxies start routing
// to that resource); everything else is forwarded to the upstream resolver by the IO shell.
import type { Cidr } from "../ip/address.ts";
import { buildAnswer, parseQuery, RCODE_FORMERR, RCODE_REFUSED, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA } from "./dns-message.ts";
import type { DnsNat, ProxyLimitReason } from "./dns-nat.ts";
import type { AccessPolicy } from "./policy.ts";
import { domainMatches } from "./resources.ts";

/** TTL of proxy answers: short, so clients notice quickly when a resource goes away. */
export const PROXY_ANSWER_TTL = 60;
/** A client over a proxy-name cap is named in a warning at most this often (the rest are counted). */
export const LIMIT_WARN_INTERVAL = 60_000;

export type DnsVerdict =
  /** `fresh`: the name got its proxy addresses with this query (worth a log line; repeats are not). */
  | { kind: "answer"; bytes: Uint8Array; rid: string; domain: string; fresh: boolean }
  /** Not ours to answer: relay upstream. `question` is what a reply must answer to be accepted. */
  | { kind: "forward"; domain: string; question: { name: string; qtype: number; qclass: number } }
  | { kind: "refused"; reason: string; bytes?: Uint8Array }
  /**
   * A resource name the client may use, but a proxy-name cap refuses a new assignment: SERVFAIL
   * (as Firezone answers when it cannot produce proxy addresses). `warn`, when set, says a warning
   * is due now and how many refusals of this client it covers since the last one.
   */
  | { kind: "limited"; reason: ProxyLimitReason; rid: string; domain: string; bytes: Uint8Array; warn?: { refusals: number } };

export class DnsResponder {
  /** Domains answered per resource, so the resource routes all their proxy addresses. */
  readonly #domains = new Map<string, Set<string>>();
  /** Per client over a cap: when it was last named in a warning, and refusals since. */
  readonly #limitWarn = new Map<number, { at: number; refusals: number }>();

  constructor(
    private readonly policy: AccessPolicy,
    private readonly nat: DnsNat,
    /** Called when a domain got proxy addresses for the first time (to persist them). */
    private readonly onAssigned: (domain: string, v4: Uint8Array[], v6: Uint8Array[], slot: number) => void = () => {},
  ) {}

  /**
   * `cid`: the tunnel connection the query came through, undefined when its source is not a
   * tunnel client — refused: the gateway is its clients' resolver, not an open one that anyone
   * who can route to its tunnel address may use (for amplification, or to make it query for them).
   */
  answer(query: Uint8Array, cid: number | undefined, now: number): DnsVerdict {
    if (cid === undefined) {
      return { kind: "refused", reason: "not_a_tunnel_client", bytes: query.length >= 12 && !(query[2]! & 0x80) ? errorReply(query, RCODE_REFUSED) : undefined };
    }
    const q = parseQuery(query);
    if (typeof q === "string") {
      // A readable header gets FORMERR back; garbage (and responses: no reply loops) gets nothing.
      return { kind: "refused", reason: q, bytes: query.length >= 12 && !(query[2]! & 0x80) ? errorReply(query, RCODE_FORMERR) : undefined };
    }
    const forward: DnsVerdict = { kind: "forward", domain: q.name, question: { name: q.name, qtype: q.qtype, qclass: q.qclass } };
    if (q.qtype !== TYPE_A && q.qtype !== TYPE_AAAA) return forward;
    const rid = this.#resourceFor(cid, q.name, now);
    if (!rid) return forward;
    const a = this.nat.proxies.request(q.name, cid, now);
    if ("refused" in a) return { kind: "limited", reason: a.refused, rid, domain: q.name, bytes: errorReply(query, RCODE_SERVFAIL), warn: this.#warnDue(cid, now) };
    if (a.fresh) this.onAssigned(a.domain, a.v4, a.v6, a.slot);
    const set = this.#domains.get(rid) ?? new Set<string>();
    if (!set.has(a.domain)) {
      set.add(a.domain);
      this.#domains.set(rid, set);
      this.policy.addProxyAddresses(rid, cidrsOf(a));
    }
    return { kind: "answer", bytes: buildAnswer(query, q, [...a.v4, ...a.v6], PROXY_ANSWER_TTL), rid, domain: a.domain, fresh: a.fresh };
  }

  #warnDue(cid: number, now: number): { refusals: number } | undefined {
    const w = this.#limitWarn.get(cid);
    if (w && now - w.at < LIMIT_WARN_INTERVAL) {
      w.refusals++;
      return undefined;
    }
    // One entry per client that hit a cap; entries are dropped once their interval is over.
    if (this.#limitWarn.size > 1024) for (const [c, x] of this.#limitWarn) if (now - x.at >= LIMIT_WARN_INTERVAL) this.#limitWarn.delete(c);
    this.#limitWarn.set(cid, { at: now, refusals: 0 });
    return { refusals: (w?.refusals ?? 0) + 1 };
  }

  /**
   * Reclaims proxy names unused for `after` (default RECLAIM_AFTER) with no live NAT session,
   * and stops routing their addresses. Returns them (the caller deletes their saved rows).
   */
  reclaimIdle(now: number, after?: number): string[] {
    const gone = this.nat.reclaimIdle(now, after);
    if (gone.length === 0) return gone;
    const set = new Set(gone);
    for (const [rid, domains] of this.#domains) {
      let changed = false;
      for (const d of domains) if (set.has(d)) (domains.delete(d), (changed = true));
      if (changed) this.#route(rid);
    }
    return gone;
  }

  /** After a restart: route restored proxy addresses to the DNS resources whose patterns they match. */
  restoreRoutes(): void {
    for (const r of this.policy.resources()) {
      if (r.type !== "dns") continue;
      const set = new Set(this.nat.proxies.assignments().map((a) => a.domain).filter((d) => domainMatches(r.pattern, d)));
      if (set.size === 0) continue;
      this.#domains.set(r.id, set);
      this.#route(r.id);
    }
  }

  #resourceFor(cid: number, name: string, now: number): string | undefined {
    for (const g of this.policy.authorizations(cid)) {
      if (g.expiresAt !== null && g.expiresAt <= now) continue;
      const r = this.policy.resource(g.rid);
      if (r?.type === "dns" && domainMatches(r.pattern, name)) return r.id;
    }
    return undefined;
  }

  #route(rid: string): void {
    const cidrs: Cidr[] = [];
    for (const d of this.#domains.get(rid) ?? []) cidrs.push(...cidrsOf(this.nat.proxies.assign(d)));
    this.policy.setProxyAddresses(rid, cidrs);
  }
}

function cidrsOf(a: { v4: Uint8Array[]; v6: Uint8Array[] }): Cidr[] {
  return [...a.v4.map((bytes): Cidr => ({ family: 4, bytes, prefix: 32 })), ...a.v6.map((bytes): Cidr => ({ family: 6, bytes, prefix: 128 }))];
}

function errorReply(query: Uint8Array, rcode: number): Uint8Array {
  const out = query.slice(0, 12);
  out[2] = 0x80 | (query[2]! & 0x01);
  out[3] = rcode;
  out.fill(0, 4, 12);
  return out;
}
