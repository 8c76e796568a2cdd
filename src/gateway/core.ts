// The gateway's per-packet work for traffic coming out of the tunnel: strict parsing, the access
// decision, and — for denied packets — an ICMP "administratively prohibited" back to the client,
// rate limited. Sans-IO: the event loop calls `fromClient` and polls replies and events.
import { addressKey } from "../ip/address.ts";
import { buildIcmpError, buildProhibited } from "../ip/build.ts";
import { isIcmpError, PacketView, protocolName, type IpParseErrorKind } from "../ip/packet.ts";
import { AccessPolicy, type DenyReason, type Explanation } from "./policy.ts";
import { DnsNat, ProxyIpAllocator } from "./dns-nat.ts";
import { DropCounters } from "../wire/drops.ts";

export type GatewayDropReason = DenyReason | `malformed_${IpParseErrorKind}` | "dns_unresolved" | "dns_nat_full";

export type GatewayEvent =
  | { type: "denied"; cid: number; reason: GatewayDropReason; rid?: string; src: string; dst: string; protocol: string; dstPort?: number; count: number }
  | { type: "authorization_expired"; cid: number; rid: string };

/** At most this many ICMP errors per second in total: a denied flood must not become a reflected one. */
export const ICMP_REPLIES_PER_SECOND = 100;
/** Idle DNS-NAT sessions are swept this often while there are any (was the shell's 10 s interval). */
export const NAT_SWEEP_INTERVAL = 10_000;

export class GatewayCore {
  readonly policy = new AccessPolicy();
  /** DNS-resource NAT; proxy destinations are translated after the access decision. */
  readonly nat = new DnsNat(new ProxyIpAllocator());
  /** The gateway's own DNS service (its tunnel addresses, port 53): always reachable. */
  readonly #localDns = new Set<string>();
  #dnsPort = 53;
  readonly #inView = new PacketView();
  readonly drops = new DropCounters<GatewayDropReason>();
  readonly #view = new PacketView();
  #replies: Uint8Array[] = [];
  #events: GatewayEvent[] = [];
  #icmpWindow = -Infinity;
  /** Next NAT sweep; armed when the first session appears (see pollTimeout). */
  #natSweepAt = Infinity;
  #icmpCount = 0;
  /** Denials per (cid, reason) since the last event about them: logs stay readable under floods. */
  readonly #denials = new Map<string, number>();

  /**
   * A decrypted packet from connection `cid`. Returns true to forward it to the network (TUN),
   * false when it was dropped (counted; maybe an ICMP reply queued for pollReply).
   */
  fromClient(cid: number, buf: Uint8Array, length: number, now: number): boolean {
    if (!this.policy.enforcing) return true;
    const v = this.#view;
    const err = v.parse(buf, length);
    if (err) {
      this.#deny(cid, `malformed_${err.kind}`, v, false, now);
      return false;
    }
    if (this.#isLocalDns(v)) return true;
    const reason = this.policy.decide(cid, v, now);
    if (reason !== undefined) {
      this.#deny(cid, reason, v, true, now);
      return false;
    }
    const nat = this.nat.outbound(v, now, cid);
    if (nat === "unresolved" || nat === "refused") {
      // Unresolved: the answer is on its way, the client's stack retransmits. Refused: the NAT's
      // session table is full (counted by cap in nat.limits). No ICMP: neither is a denial.
      const reason = nat === "unresolved" ? "dns_unresolved" : "dns_nat_full";
      this.drops.count(reason);
      return false;
    }
    // The NAT sweep runs only while there is something to sweep: an idle gateway sleeps.
    if (this.#natSweepAt === Infinity && this.nat.sessions > 0) this.#natSweepAt = now + NAT_SWEEP_INTERVAL;
    return true;
  }

  /**
   * The policy tester: what `fromClient` decides for this packet from `cid` now, and the path to
   * it — the same checks in the same order, the policy's part by its one walk (policy.ts). Reads
   * only: counters, NAT and rate limits are left alone.
   */
  explain(cid: number, packet: Uint8Array, now: number): Explanation {
    if (!this.policy.enforcing) {
      return { verdict: "allow", reason: undefined, resource: undefined, steps: [{ step: "mode", outcome: "pass", detail: "no resources are defined: the gateway forwards whatever the peer sends from its AllowedIPs (a plain WireGuard server)" }] };
    }
    const v = new PacketView();
    const err = v.parse(packet, packet.length);
    if (err) throw err;
    if (this.#isLocalDns(v)) {
      return { verdict: "allow", reason: undefined, resource: undefined, steps: [{ step: "local_dns", outcome: "pass", detail: "the gateway's own DNS service (its tunnel address, port 53) is always reachable" }] };
    }
    const e = this.policy.explain(cid, v, now);
    const proxy = this.nat.proxies.lookup(v.buf, v.dstAt, v.version === 4 ? 4 : 16);
    if (proxy) e.steps.unshift({ step: "dns_proxy", outcome: "pass", detail: `${v.dst()} is proxy address ${proxy.index + 1} of ${proxy.domain} (DNS-resource NAT translates it to the name's real address)` });
    return e;
  }

  #isLocalDns(v: PacketView): boolean {
    return v.dstPort === this.#dnsPort && this.#localDns.has(addressKey(v.buf, v.dstAt, v.addressLength));
  }

  /** A packet from the network (TUN) to a client: reverse DNS-resource NAT where it applies. */
  toClient(buf: Uint8Array, length: number, now: number): void {
    if (this.nat.sessions === 0) return;
    const v = this.#inView;
    if (v.parse(buf, length)) return;
    this.nat.inbound(v, now);
  }

  /**
   * Marks `addr` (the gateway's tunnel address) as serving DNS on `port`: 53 standalone, 53535 in
   * portal mode (Firezone clients ask the gateway there). One port for every address.
   */
  serveDnsOn(addr: Uint8Array, port = 53): void {
    this.#dnsPort = port;
    this.#localDns.add(addressKey(addr));
  }

  #deny(cid: number, reason: GatewayDropReason, v: PacketView, parsed: boolean, now: number): void {
    this.drops.count(reason);
    const key = `${cid}|${reason}`;
    const n = (this.#denials.get(key) ?? 0) + 1;
    this.#denials.set(key, n);
    // First of a kind, then every 100th: the timeline shows it without one line per packet.
    if (n === 1 || n % 100 === 0) {
      this.#events.push({
        type: "denied", cid, reason, rid: this.policy.lastResource?.id, count: n,
        src: parsed || v.length >= 20 ? safe(() => v.src()) : "?", dst: parsed || v.length >= 20 ? safe(() => v.dst()) : "?",
        protocol: protocolName(v.protocol), dstPort: v.dstPort >= 0 ? v.dstPort : undefined,
      });
    }
    // Tell the client's stack at once, unless the packet is itself an ICMP error (RFC 1122).
    if (parsed && !(v.icmpType >= 0 && isIcmpError(v.version, v.icmpType)) && this.#icmpBudget(now)) {
      // Outside the public internet the honest answer is "unreachable", not "prohibited" (as Firezone).
      this.#replies.push(reason === "not_public" ? buildIcmpError(v, v.dst(), v.version === 4 ? 3 : 1, v.version === 4 ? 0 : 3) : buildProhibited(v));
    }
  }

  #icmpBudget(now: number): boolean {
    if (now - this.#icmpWindow >= 1000) {
      this.#icmpWindow = now;
      this.#icmpCount = 0;
    }
    return ++this.#icmpCount <= ICMP_REPLIES_PER_SECOND;
  }

  /** An ICMP error to encrypt back to the client it concerns (its destination is the client). */
  pollReply(): Uint8Array | undefined {
    return this.#replies.shift();
  }

  pollEvent(): GatewayEvent | undefined {
    return this.#events.shift();
  }

  /** Authorization expiry (only what is due) and, every NAT_SWEEP_INTERVAL while it has sessions, the NAT sweep. */
  handleTimeout(now: number): void {
    if (now >= this.#natSweepAt) {
      this.nat.sweep(now);
      this.#natSweepAt = this.nat.sessions > 0 ? now + NAT_SWEEP_INTERVAL : Infinity;
    }
    for (const e of this.policy.sweep(now)) this.#events.push({ type: "authorization_expired", cid: e.cid, rid: e.rid });
  }

  pollTimeout(): number | undefined {
    const at = Math.min(this.#natSweepAt, this.policy.nextExpiry() ?? Infinity);
    return at === Infinity ? undefined : at;
  }
}

function safe(f: () => string): string {
  try {
    return f();
  } catch {
    return "?";
  }
}
