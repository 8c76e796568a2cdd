// DNS-resource NAT, sans-IO (Firezone's model): each domain of a DNS resource gets 4 IPv4 proxy
// addresses from 100.96.0.0/11 and 4 IPv6 from fd00:2021:1111:8000::/107. Clients talk to the
// proxy addresses; the gateway resolves the domain itself and translates: outbound, the proxy
// destination becomes a real address (proxy i → resolved[i mod n], same family, ports kept);
// inbound, replies (and ICMP errors about them) get the proxy address back. Sessions expire after
// 2 h (TCP, ended early by RST) or 2 min (UDP, ICMP) without traffic.
import { addressKey, parseCidr, type Cidr } from "../ip/address.ts";
import { PROTO_TCP, type PacketView } from "../ip/packet.ts";
import { setAddress, setInnerAddress } from "../ip/rewrite.ts";

export const PROXY_V4: Cidr = parseCidr("100.96.0.0/11");
export const PROXY_V6: Cidr = parseCidr("fd00:2021:1111:8000::/107");
export const PROXY_IPS_PER_FAMILY = 4;
/** Slots whose IPv4 addresses would fall into 100.100.111.0/24. */
const SENTINEL_SLOTS = new Set(Array.from({ length: 66 }, (_, i) => Math.floor((0x046f00 - 1) / PROXY_IPS_PER_FAMILY) + i));
/** RFC 5382's 2 h 4 min, as Firezone's NAT table. */
export const TCP_SESSION_TIMEOUT = (2 * 60 + 4) * 60_000;
export const UDP_SESSION_TIMEOUT = 120_000;
/** How long a resolution is trusted before the gateway asks again (Firezone: 30 s cache). */
export const RESOLVE_TTL = 30_000;
const TCP_RST = 0x04;

export interface ProxyAssignment {
  domain: string;
  v4: Uint8Array[];
  v6: Uint8Array[];
}

/**
 * Hands out proxy addresses: stable per domain for the life of the allocator, and restorable
 * from storage (`restore`) so they survive restarts — clients cache DNS answers.
 */
export class ProxyIpAllocator {
  readonly #byDomain = new Map<string, ProxyAssignment>();
  readonly #byIp = new Map<string, { domain: string; index: number }>();
  #next = 0;

  restore(saved: { domain: string; v4: string[]; v6: string[]; slot: number }[]): void {
    for (const s of saved) {
      const a = { domain: s.domain, v4: s.v4.map((x) => parseCidr(x).bytes), v6: s.v6.map((x) => parseCidr(x).bytes) };
      this.#index(a);
      this.#next = Math.max(this.#next, s.slot + 1);
    }
  }

  /** The proxy addresses of `domain`, assigning them on first use. `slot` is for persistence. */
  assign(domain: string): ProxyAssignment & { slot: number; fresh: boolean } {
    const d = domain.toLowerCase().replace(/\.$/, "");
    const have = this.#byDomain.get(d);
    if (have) return { ...have, slot: -1, fresh: false };
    let slot = this.#next++;
    // Firezone keeps 100.100.111.0/24 (and its IPv6 twin) for its DNS sentinels: never hand them out.
    while (SENTINEL_SLOTS.has(slot)) slot = this.#next++;
    if ((slot + 1) * PROXY_IPS_PER_FAMILY + 1 > 2 ** (32 - PROXY_V4.prefix)) throw new Error("DNS proxy address range exhausted");
    const a: ProxyAssignment = { domain: d, v4: [], v6: [] };
    for (let i = 0; i < PROXY_IPS_PER_FAMILY; i++) {
      // IPv4 skips the network address (Firezone starts at 100.96.0.1); IPv6 starts at ::0.
      a.v4.push(offsetAddress(PROXY_V4.bytes, slot * PROXY_IPS_PER_FAMILY + i + 1));
      a.v6.push(offsetAddress(PROXY_V6.bytes, slot * PROXY_IPS_PER_FAMILY + i));
    }
    this.#index(a);
    return { ...a, slot, fresh: true };
  }

  #index(a: ProxyAssignment): void {
    this.#byDomain.set(a.domain, a);
    a.v4.forEach((ip, index) => this.#byIp.set(key(ip), { domain: a.domain, index }));
    a.v6.forEach((ip, index) => this.#byIp.set(key(ip), { domain: a.domain, index }));
  }

  /** Which domain (and which of its 4 addresses) a proxy address stands for. */
  lookup(buf: Uint8Array, at: number, length: 4 | 16): { domain: string; index: number } | undefined {
    return this.#byIp.get(key(buf.subarray(at, at + length)));
  }

  assignments(): ProxyAssignment[] {
    return [...this.#byDomain.values()];
  }
}

function offsetAddress(base: Uint8Array, n: number): Uint8Array {
  const out = base.slice();
  let carry = n;
  for (let i = out.length - 1; i >= 0 && carry > 0; i--) {
    const v = out[i]! + (carry & 0xff);
    out[i] = v & 0xff;
    carry = (carry >>> 8) + (v >> 8);
  }
  return out;
}

const key = (ip: Uint8Array): string => addressKey(ip);

interface Session {
  proxy: Uint8Array;
  expiresAt: number;
}

export type NatOutcome = "not_proxied" | "translated" | "unresolved";

export class DnsNat {
  readonly #resolved = new Map<string, { addrs: Uint8Array[]; at: number }>();
  readonly #pending = new Set<string>();
  #requests: string[] = [];
  /** Reply direction: (proto, real, real port, client, client port) → the proxy address the client used. */
  readonly #sessions = new Map<string, Session>();
  /** Counted when a resolution changes an address a session was using (logged only then). */
  remapped = 0;

  constructor(readonly proxies: ProxyIpAllocator) {}

  /**
   * The shell's resolver answered for `domain`. Returns true when the addresses differ from
   * the previous answer — the only case worth a log line (Firezone logs a skipped NAT entry
   * only when the IP differs).
   */
  setResolved(domain: string, addrs: Uint8Array[], now: number): boolean {
    const d = domain.toLowerCase().replace(/\.$/, "");
    const old = this.#resolved.get(d);
    const changed = !old || old.addrs.map(key).join() !== addrs.map(key).join();
    if (old && changed) this.remapped++;
    this.#resolved.set(d, { addrs, at: now });
    this.#pending.delete(d);
    return changed;
  }

  /** Domains to resolve (the shell runs the lookups and calls setResolved). */
  pollResolve(): string | undefined {
    return this.#requests.shift();
  }

  #request(domain: string): void {
    if (this.#pending.has(domain)) return;
    this.#pending.add(domain);
    this.#requests.push(domain);
  }

  /**
   * Client → network. If the destination is a proxy address, rewrite it to the real address.
   * "unresolved" means: not yet known, resolution requested; the caller drops the packet (the
   * client's stack retries, by which time the answer is in).
   */
  outbound(p: PacketView, now: number): NatOutcome {
    const proxy = this.proxies.lookup(p.buf, p.dstAt, p.addressLength as 4 | 16);
    if (!proxy) return "not_proxied";
    const r = this.#resolved.get(proxy.domain);
    if (!r || now - r.at > RESOLVE_TTL) this.#request(proxy.domain);
    const family = r?.addrs.filter((a) => a.length === p.addressLength) ?? [];
    if (family.length === 0) return "unresolved";
    const real = family[proxy.index % family.length]!;
    const proxyIp = p.buf.slice(p.dstAt, p.dstAt + p.addressLength);
    const k = sessionKey(p.protocol, real, p.dstPort, p.buf.subarray(p.srcAt, p.srcAt + p.addressLength), p.srcPort);
    const timeout = p.protocol === PROTO_TCP ? TCP_SESSION_TIMEOUT : UDP_SESSION_TIMEOUT;
    if (p.protocol === PROTO_TCP && (p.tcpFlags & TCP_RST) !== 0) this.#sessions.delete(k);
    else this.#sessions.set(k, { proxy: proxyIp, expiresAt: now + timeout });
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
      const s = this.#live(k, now);
      if (!s) return false;
      const outerFromReal = key(p.buf.subarray(p.srcAt, p.srcAt + len)) === key(p.buf.subarray(q.dstAt, q.dstAt + len));
      setInnerAddress(p, "dst", s.proxy);
      if (outerFromReal) setAddress(p, "src", s.proxy);
      return true;
    }
    const k = sessionKey(p.protocol, p.buf.subarray(p.srcAt, p.srcAt + len), p.srcPort, dst, p.dstPort);
    const s = this.#live(k, now);
    if (!s) return false;
    if (p.protocol === PROTO_TCP && (p.tcpFlags & TCP_RST) !== 0) this.#sessions.delete(k);
    else s.expiresAt = now + (p.protocol === PROTO_TCP ? TCP_SESSION_TIMEOUT : UDP_SESSION_TIMEOUT);
    setAddress(p, "src", s.proxy);
    return true;
  }

  #live(k: string, now: number): Session | undefined {
    const s = this.#sessions.get(k);
    if (s && s.expiresAt <= now) {
      this.#sessions.delete(k);
      return undefined;
    }
    return s;
  }

  /** Drops expired sessions; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const [k, s] of this.#sessions) if (s.expiresAt <= now) (this.#sessions.delete(k), n++);
    return n;
  }

  /** Proxy addresses were re-assigned (portal): every translation based on the old ones goes. */
  reset(): void {
    this.#sessions.clear();
  }

  get sessions(): number {
    return this.#sessions.size;
  }
}

function sessionKey(proto: number, real: Uint8Array, realPort: number, client: Uint8Array, clientPort: number): string {
  return `${proto}|${key(real)}|${realPort}|${key(client)}|${clientPort}`;
}

