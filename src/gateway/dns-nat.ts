// DNS-resource NAT, sans-IO (Firezone's model): each domain of a DNS resource gets 4 IPv4 proxy
// addresses from 100.96.0.0/11 and 4 IPv6 from fd00:2021:1111:8000::/107. Clients talk to the
// proxy addresses; the gateway resolves the domain itself and translates: outbound, the proxy
// destination becomes a real address (proxy i → resolved[i mod n], same family, ports kept unless
// two of a client's flows would then share one tuple towards the server: the newer gets another
// source port, as Firezone's NAT does);
// inbound, replies (and ICMP errors about them) get the proxy address back. Sessions expire after
// 2 h (TCP; 2 min once both sides sent a FIN, ended at once by RST) or 2 min (UDP, ICMP) without traffic, and the
// table is bounded in total and per client (dns-nat-sessions.ts).
//
// A session keeps the real address it started with for its whole life (Firezone's NAT table maps
// an inside tuple to one outside address until it expires): re-resolution only steers new flows,
// so a resolver that rotates its answers (round-robin DNS, a load balancer's pool) never moves an
// established TCP connection to a server that has never heard of it. A failed lookup keeps the
// last good answer (Firezone #10285); re-assigned proxy addresses end the domain's sessions (#10310).
import { PROTO_TCP, PROTO_UDP, type PacketView } from "../ip/packet.ts";
import { setAddress, setInnerAddress, setInnerPort, setPort } from "../ip/rewrite.ts";
import { key, ProxyIpAllocator } from "./dns-proxy-ips.ts";
import { CLOSING, DATAGRAM, ESTABLISHED, OPENING, SessionTable, TCP_SESSION_TIMEOUT, UDP_SESSION_TIMEOUT, type NatLimitReason, type Session, type SessionClass } from "./dns-nat-sessions.ts";

export { MAX_NAT_SESSIONS, MAX_NAT_SESSIONS_PER_CLIENT, NAT_LIMIT_REASONS, TCP_CLOSING_TIMEOUT, type NatLimitReason } from "./dns-nat-sessions.ts";
export { TCP_SESSION_TIMEOUT, UDP_SESSION_TIMEOUT };
export {
  MAX_PROXY_NAMES, MAX_PROXY_NAMES_PER_CLIENT, PROXY_IPS_PER_FAMILY, PROXY_LIMIT_REASONS, PROXY_V4, PROXY_V6, ProxyIpAllocator, RECLAIM_AFTER,
  type ProxyAssignment, type ProxyLimitReason,
} from "./dns-proxy-ips.ts";

/** How long a resolution is trusted before the gateway asks again (Firezone: 30 s cache). */
export const RESOLVE_TTL = 30_000;
/** After a failed lookup, ask again this soon (meanwhile the last good answer stays in use). */
export const RESOLVE_RETRY = 5_000;
/** Remapped source ports come from the dynamic range 49152–65535 (RFC 6335). */
const DYNAMIC_PORTS_FIRST = 49152;
const PORT_PROBES = 8;
const TCP_FIN = 0x01;
const TCP_RST = 0x04;

interface Resolution {
  /** The last good answer (kept when a later lookup fails). */
  addrs: Uint8Array[];
  /** When to ask again. */
  refreshAt: number;
  /** Lookups failed in a row since the last answer (the shell logs the first of a streak). */
  failures: number;
}

/** `refused`: a new flow for which the session table had no room (counted in `limits.refused`). */
export type NatOutcome = "not_proxied" | "translated" | "unresolved" | "refused";

export class DnsNat {
  readonly #resolved = new Map<string, Resolution>();
  readonly #pending = new Set<string>();
  #requests: string[] = [];
  readonly #table: SessionTable;
  /** Resolutions that changed a domain's addresses (new flows go to the new ones; live flows stay). */
  remapped = 0;
  /** Failed lookups that kept serving the last good answer. */
  keptOnFailure = 0;
  /** Sessions ended because another flow took their reply tuple (same real address, port and client port). */
  displaced = 0;
  /** New flows given another source port because their own would have collided (see outbound). */
  portsRemapped = 0;
  #portState = 0x9e3779b9;

  constructor(
    readonly proxies: ProxyIpAllocator,
    limits?: { total: number; perClient: number },
  ) {
    this.#table = new SessionTable(limits);
  }

  /** Sessions evicted and new flows refused because a cap was reached, by cap. */
  get limits(): { evicted: Readonly<Record<NatLimitReason, number>>; refused: Readonly<Record<NatLimitReason, number>> } {
    return { evicted: this.#table.evicted, refused: this.#table.refused };
  }

  /**
   * The shell's resolver answered for `domain` (an empty list: the name has no addresses now;
   * new flows wait, live ones keep their address). Returns true when the addresses differ from
   * the previous answer — the only case worth a log line (Firezone logs a skipped NAT entry only
   * when the IP differs).
   */
  setResolved(domain: string, addrs: Uint8Array[], now: number): boolean {
    const d = domain.toLowerCase().replace(/\.$/, "");
    const old = this.#resolved.get(d);
    const changed = !old || old.addrs.map(key).join() !== addrs.map(key).join();
    if (old && changed) this.remapped++;
    this.#resolved.set(d, { addrs, refreshAt: now + RESOLVE_TTL, failures: 0 });
    this.#pending.delete(d);
    return changed;
  }

  /**
   * The lookup of `domain` failed (timeout, SERVFAIL, unreachable): that says nothing about the
   * name, so the last good answer stays in use and the lookup is retried after RESOLVE_RETRY.
   * Returns true when a last good answer exists (and is kept).
   */
  resolveFailed(domain: string, now: number): boolean {
    const d = domain.toLowerCase().replace(/\.$/, "");
    this.#pending.delete(d);
    const old = this.#resolved.get(d);
    if (old) {
      old.refreshAt = now + RESOLVE_RETRY;
      old.failures++;
      if (old.addrs.length > 0) this.keptOnFailure++;
      return old.addrs.length > 0;
    }
    this.#resolved.set(d, { addrs: [], refreshAt: now + RESOLVE_RETRY, failures: 1 });
    return false;
  }

  /** Lookups of `domain` failed in a row since its last answer. */
  failureStreak(domain: string): number {
    return this.#resolved.get(domain.toLowerCase().replace(/\.$/, ""))?.failures ?? 0;
  }

  /** Domains to resolve (the shell runs the lookups and calls setResolved or resolveFailed). */
  pollResolve(): string | undefined {
    return this.#requests.shift();
  }

  #request(domain: string): void {
    if (this.#pending.has(domain)) return;
    this.#pending.add(domain);
    this.#requests.push(domain);
  }

  /**
   * A portal re-assigned the proxy addresses of `domain`: translations made through the old
   * ones are void, so the sessions of every affected domain end (Firezone #10310). Returns how
   * many sessions ended.
   */
  reassignProxies(domain: string, v4: Uint8Array[], v6: Uint8Array[]): number {
    const affected = new Set(this.proxies.reassign(domain, v4, v6));
    let n = 0;
    for (const s of [...this.#table.byOut.values()]) if (affected.has(s.domain)) (this.#table.end(s), n++);
    return n;
  }

  /**
   * Client → network. If the destination is a proxy address, rewrite it to the real address:
   * the flow's own if it has a session, else the newest answer's. "unresolved" means: not yet
   * known, resolution requested; the caller drops the packet (the client's stack retries, by
   * which time the answer is in). `cid`: the tunnel connection the packet came from (the
   * per-client cap counts its sessions).
   */
  outbound(p: PacketView, now: number, cid = 0): NatOutcome {
    const proxy = this.proxies.lookup(p.buf, p.dstAt, p.addressLength as 4 | 16);
    if (!proxy) return "not_proxied";
    const r = this.#resolved.get(proxy.domain);
    if (!r || now >= r.refreshAt) this.#request(proxy.domain);
    const len = p.addressLength;
    const client = p.buf.subarray(p.srcAt, p.srcAt + len);
    const outKey = sessionKey(p.protocol, client, p.srcPort, p.buf.subarray(p.dstAt, p.dstAt + len), p.dstPort);
    const tcp = p.protocol === PROTO_TCP;
    const rst = tcp && (p.tcpFlags & TCP_RST) !== 0;
    const table = this.#table;
    const live = table.live(table.byOut, outKey, now);
    if (live) {
      if (rst) table.end(live);
      else table.touch(live, now, tcp && (p.tcpFlags & TCP_FIN) !== 0 ? finSeen(live, FIN_FROM_CLIENT) : live.cls);
      setAddress(p, "dst", live.real);
      if (live.natPort !== live.clientPort) setPort(p, "src", live.natPort);
      return "translated";
    }
    const family = r?.addrs.filter((a) => a.length === len) ?? [];
    if (family.length === 0) return "unresolved";
    const real = family[proxy.index % family.length]!;
    let natPort = p.srcPort;
    if (!rst) {
      let inKey = sessionKey(p.protocol, real, p.dstPort, client, natPort);
      const taken = table.live(table.byIn, inKey, now);
      if (taken) {
        // Another flow of this client (to another proxy address) reaches the same real address
        // and port from the same port: replies could not tell them apart. Give this one another
        // source port, as Firezone's NAT does; only if none is found does the newer flow win.
        const alt = tcp || p.protocol === PROTO_UDP ? this.#freePort(p.protocol, real, p.dstPort, client, now) : -1;
        if (alt >= 0) {
          natPort = alt;
          inKey = sessionKey(p.protocol, real, p.dstPort, client, natPort);
          this.portsRemapped++;
        } else {
          this.displaced++;
          table.end(taken);
        }
      }
      if (!table.admit(cid, now)) return "refused";
      this.proxies.touch(proxy.domain, now);
      table.add(cid, { domain: proxy.domain, proxy: p.buf.slice(p.dstAt, p.dstAt + len), real, outKey, inKey, clientPort: p.srcPort, natPort, fins: 0, cls: tcp ? OPENING : DATAGRAM }, now);
    }
    if (natPort !== p.srcPort) setPort(p, "src", natPort);
    setAddress(p, "dst", real);
    return "translated";
  }

  /** Network → client. Restores the proxy address on replies and on ICMP errors about our flows. */
  inbound(p: PacketView, now: number): boolean {
    const len = p.addressLength;
    const dst = p.buf.subarray(p.dstAt, p.dstAt + len);
    if (p.inner) {
      // An error about a packet we translated: the quoted packet went client → real.
      const q = p.inner;
      const k = sessionKey(q.protocol, p.buf.subarray(q.dstAt, q.dstAt + len), q.dstPort, p.buf.subarray(q.srcAt, q.srcAt + len), q.srcPort);
      const s = this.#table.live(this.#table.byIn, k, now);
      if (!s) return false;
      const outerFromReal = key(p.buf.subarray(p.srcAt, p.srcAt + len)) === key(p.buf.subarray(q.dstAt, q.dstAt + len));
      setInnerAddress(p, "dst", s.proxy);
      if (s.natPort !== s.clientPort) setInnerPort(p, "src", s.clientPort);
      if (outerFromReal) setAddress(p, "src", s.proxy);
      return true;
    }
    const k = sessionKey(p.protocol, p.buf.subarray(p.srcAt, p.srcAt + len), p.srcPort, dst, p.dstPort);
    const s = this.#table.live(this.#table.byIn, k, now);
    if (!s) return false;
    if (p.protocol !== PROTO_TCP) this.#table.touch(s, now, s.cls);
    else if ((p.tcpFlags & TCP_RST) !== 0) this.#table.end(s);
    // The server answered: the flow is established (and no longer the first to go when full).
    else this.#table.touch(s, now, (p.tcpFlags & TCP_FIN) !== 0 ? finSeen(s, FIN_FROM_SERVER) : s.cls === OPENING ? ESTABLISHED : s.cls);
    setAddress(p, "src", s.proxy);
    if (s.natPort !== s.clientPort) setPort(p, "dst", s.clientPort);
    return true;
  }

  /**
   * A source port for a flow of `client` to `real`:`realPort` that no live session uses, or -1.
   * Tries PORT_PROBES pseudo-random ports of the dynamic range (RFC 6335): with at most
   * MAX_NAT_SESSIONS_PER_CLIENT (a quarter of the range) taken, all of them are taken with odds
   * below 1 in 65,000 — and the work per new flow stays bounded, unlike a scan of the range.
   */
  #freePort(proto: number, real: Uint8Array, realPort: number, client: Uint8Array, now: number): number {
    for (let i = 0; i < PORT_PROBES; i++) {
      // xorshift32: cheap, deterministic per gateway (tests replay it); not a secret.
      let x = this.#portState;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.#portState = x >>> 0;
      const port = DYNAMIC_PORTS_FIRST + (this.#portState % (65536 - DYNAMIC_PORTS_FIRST));
      if (!this.#table.live(this.#table.byIn, sessionKey(proto, real, realPort, client, port), now)) return port;
    }
    return -1;
  }

  /** Drops expired sessions; returns how many. */
  sweep(now: number): number {
    return this.#table.sweep(now);
  }

  /**
   * Reclaims proxy assignments of names unused for RECLAIM_AFTER with no live session (expired
   * sessions are swept first), and forgets their resolutions. Returns the reclaimed names.
   */
  reclaimIdle(now: number, after?: number): string[] {
    this.#table.sweep(now);
    const gone = this.proxies.reclaimIdle(now, (d) => this.#table.inUse(d), after);
    for (const d of gone) {
      this.#resolved.delete(d);
      this.#pending.delete(d);
    }
    return gone;
  }

  /** Every translation goes (all proxy addresses re-assigned at once). */
  reset(): void {
    this.#table.clear();
  }

  get sessions(): number {
    return this.#table.size;
  }

  /** Live sessions of tunnel connection `cid`. */
  sessionsOfClient(cid: number): number {
    return this.#table.countOf(cid);
  }

  /** The real address a live flow of `domain` is pinned to (tests, admin views). */
  sessionsOf(domain: string): { proxy: Uint8Array; real: Uint8Array }[] {
    const d = domain.toLowerCase().replace(/\.$/, "");
    return [...this.#table.byOut.values()].filter((s) => s.domain === d).map((s) => ({ proxy: s.proxy, real: s.real }));
  }
}

const FIN_FROM_CLIENT = 1;
const FIN_FROM_SERVER = 2;

/**
 * A FIN of a TCP flow: closing once both sides have sent one. Half-closed (one FIN) is not
 * closing yet: a client that shuts down its side may still be receiving a long download.
 */
function finSeen(s: Session, from: number): SessionClass {
  s.fins |= from;
  return s.fins === (FIN_FROM_CLIENT | FIN_FROM_SERVER) ? CLOSING : s.cls === OPENING && from === FIN_FROM_SERVER ? ESTABLISHED : s.cls;
}

function sessionKey(proto: number, real: Uint8Array, realPort: number, client: Uint8Array, clientPort: number): string {
  return `${proto}|${key(real)}|${realPort}|${key(client)}|${clientPort}`;
}

