// The IO shell around the gateway's DNS: a UDP server on the gateway's tunnel address (port 53)
// that stock clients use as their `DNS =`, answering DNS-resource names with proxy addresses and
// forwarding everything else upstream; and the resolver that tells the NAT the real addresses.
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { formatIp, parseIp } from "../ip/address.ts";
import type { DnsNat, DnsResponder } from "../gateway/index.ts";
import { SpanStatusCode, type Tracer } from "@opentelemetry/api";
import type { TargetLogger } from "../telemetry/log.ts";
import type { DnsCounters } from "../telemetry/metrics.ts";
import { inSpan } from "../telemetry/tracing.ts";
import type { Tunnel } from "../tunnel/index.ts";
import { RCODE_SERVFAIL } from "../gateway/dns-message.ts";
import { DnsUpstream, UPSTREAM_DROP_REASONS, type QueryTimer } from "./dns-upstream.ts";

/** The first `nameserver` of /etc/resolv.conf: the host's own resolver. */
export function systemResolver(): string | undefined {
  try {
    return /^nameserver\s+(\S+)/m.exec(readFileSync("/etc/resolv.conf", "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

/** A failing lookup is retried every 5 s: warn at the 1st, 60th, 120th … failure (about every 5 min). */
export const LOOKUP_WARN_EVERY = 60;

export interface DnsServiceOptions {
  listen: string[];
  /** 53 unless set (tests). */
  listenPort?: number;
  upstream: string;
  /** 53 unless set (tests). */
  upstreamPort?: number;
  /** How long an upstream query may take (default UPSTREAM_TIMEOUT_MS). */
  upstreamTimeoutMs?: number;
  /** How an upstream query's timeout is armed (setTimeout unless set: tests). */
  upstreamTimer?: QueryTimer;
  responder: DnsResponder;
  nat: DnsNat;
  tunnel: Tunnel;
  clock: () => number;
  log: TargetLogger;
  /** Something changed the data plane's view (resolved addresses): run a loop turn. */
  wake: () => void;
  /** A span per DNS-resource lookup when the gateway exports traces. */
  tracer?: Tracer;
}

export class DnsService {
  #servers: dgram.Socket[] = [];
  #resolveTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  /** Every query the gateway sends upstream (relayed or its own lookups) goes through here. */
  readonly upstream: DnsUpstream;
  stats = { answered: 0, forwarded: 0, refused: 0, limited: 0, resolved: 0, noAddresses: 0, resolveErrors: 0, errors: 0 };

  private constructor(private readonly opts: DnsServiceOptions) {
    this.upstream = new DnsUpstream({ address: opts.upstream, port: opts.upstreamPort, timeoutMs: opts.upstreamTimeoutMs, timer: opts.upstreamTimer, log: opts.log });
  }

  static async start(opts: DnsServiceOptions): Promise<DnsService> {
    const s = new DnsService(opts);
    for (const addr of opts.listen) {
      const sock = dgram.createSocket(addr.includes(":") ? "udp6" : "udp4");
      sock.on("message", (msg, rinfo) => {
        // A throw here would escape into the event loop that also moves packets: contain it.
        try {
          s.#query(sock, new Uint8Array(msg), rinfo.address, rinfo.port);
        } catch (err) {
          s.stats.errors++;
          opts.log.error("DNS query failed", { err, from: `${rinfo.address}:${rinfo.port}` });
          if (msg.length >= 12 && !(msg[2]! & 0x80)) sock.send(servfail(new Uint8Array(msg)), rinfo.port, rinfo.address);
        }
      });
      sock.on("error", (err) => opts.log.warn("DNS socket error", { err, listen: addr }));
      await new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind(opts.listenPort ?? 53, addr, () => resolve());
      });
      s.#servers.push(sock);
    }
    s.#resolveTimer = setInterval(() => s.#resolvePending(), 50);
    opts.log.info("DNS service up", { listen: opts.listen.join(","), upstream: opts.upstream });
    return s;
  }

  /** Where the service listens (host, port): for tests that bind port 0. */
  listening(): { address: string; port: number }[] {
    return this.#servers.map((s) => s.address());
  }

  #query(sock: dgram.Socket, msg: Uint8Array, address: string, port: number): void {
    const { tunnel, responder, clock, log } = this.opts;
    const src = parseIp(address.replace(/^::ffff:/, ""));
    const cid = src ? tunnel.connectionFor(src)?.cid : undefined;
    const v = responder.answer(msg, cid, clock());
    if (v.kind === "answer") {
      this.stats.answered++;
      // One info line when a name gets its addresses; repeats (a client may ask many times a
      // second) only at debug, so queries cannot flush the log ring.
      if (v.fresh) log.info("resource name answered with proxy addresses", { cid, rid: v.rid, domain: v.domain });
      else if (log.enabled("debug")) log.debug("resource name answered with proxy addresses", { cid, rid: v.rid, domain: v.domain });
      this.opts.wake();
      sock.send(v.bytes, port, address);
    } else if (v.kind === "forward") {
      this.stats.forwarded++;
      void this.upstream.exchange(msg, v.question, cid).then((reply) => {
        if (reply) sock.send(reply, port, address);
      });
    } else if (v.kind === "limited") {
      // Over a proxy-name cap (counted by reason in the allocator): SERVFAIL, a warning now and then.
      this.stats.limited++;
      if (v.warn) log.warn("DNS resource name refused: proxy address limit reached", { cid, rid: v.rid, domain: v.domain.slice(0, 253), reason: v.reason, refusals: v.warn.refusals });
      sock.send(v.bytes, port, address);
    } else {
      this.stats.refused++;
      if (log.enabled("debug")) log.debug("DNS query refused", { cid, reason: v.reason, from: `${address}:${port}` });
      if (v.bytes) sock.send(v.bytes, port, address);
    }
  }

  #resolvePending(): void {
    for (let d = this.opts.nat.pollResolve(); d; d = this.opts.nat.pollResolve()) {
      const domain = d;
      // The span covers the lookup and what it changed; the lines logged here carry its trace_id.
      void inSpan(this.opts.tracer, "dns.resource.resolve", { domain }, (span) => this.upstream.lookup(domain).then((r) => {
        const { nat, clock, log } = this.opts;
        span?.setAttributes({ result: r.kind, addresses: r.kind === "addresses" ? r.addrs.length : 0 });
        if (r.kind === "failed") {
          span?.setStatus({ code: SpanStatusCode.ERROR, message: r.reason });
          // Says nothing about the name: new flows keep using the last good answer (Firezone #10285).
          this.stats.resolveErrors++;
          const kept = nat.resolveFailed(domain, clock());
          // Retried every 5 s while flows want it: warn at the first failure of a streak and then
          // every LOOKUP_WARN_EVERY-th, so a dead upstream or a client's traffic to many
          // unresolvable names cannot flood the log.
          const streak = nat.failureStreak(domain);
          if (streak === 1 || streak % LOOKUP_WARN_EVERY === 0) log.warn("DNS resource lookup failed", { domain, err: r.reason, kept_last_answer: kept, failures: streak });
          else if (log.enabled("debug")) log.debug("DNS resource lookup failed again", { domain, err: r.reason, failures: streak });
          this.opts.wake();
          return;
        }
        const addrs = r.kind === "addresses" ? r.addrs : [];
        if (r.kind === "addresses") this.stats.resolved++;
        else this.stats.noAddresses++;
        const changed = nat.setResolved(domain, addrs, clock());
        if (r.kind !== "addresses") {
          // Once when the name loses (or never had) addresses, not at every re-resolution.
          if (changed) log.warn("DNS resource has no addresses; live flows keep theirs", { domain, rcode: r.rcode });
          else if (log.enabled("debug")) log.debug("DNS resource still has no addresses", { domain, rcode: r.rcode });
        } else if (changed) {
          // Only new flows go to the new addresses: a NAT session keeps its server for life.
          log.info("DNS resource addresses changed", { domain, addresses: addrs.map(formatIp).join(",") });
        } else if (log.enabled("debug")) {
          log.debug("DNS resource re-resolved, unchanged", { domain });
        }
        this.opts.wake();
      }));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#resolveTimer);
    for (const s of this.#servers) s.close();
    this.upstream.close();
  }
}

/**
 * The DNS counters for /metrics. `svc` is undefined when no DNS resource is configured (the NAT
 * and the proxy names still exist, with zeros): the series are there either way, so dashboards
 * and alerts do not depend on configuration.
 */
export function dnsCounters(nat: DnsNat, svc: DnsService | undefined): DnsCounters {
  const st = svc?.stats;
  const up = svc?.upstream;
  const { evicted, refused } = nat.limits;
  return {
    queries: { answered: st?.answered ?? 0, forwarded: st?.forwarded ?? 0, refused: st?.refused ?? 0, limited: st?.limited ?? 0, error: st?.errors ?? 0 },
    upstream: { answered: up?.stats.answered ?? 0, timed_out: up?.stats.timedOut ?? 0, busy: up?.stats.busy ?? 0, client_busy: up?.stats.clientBusy ?? 0, send_error: up?.stats.sendErrors ?? 0 },
    upstreamDrops: Object.fromEntries(UPSTREAM_DROP_REASONS.map((r) => [r, up?.drops[r] ?? 0])),
    lookups: { resolved: st?.resolved ?? 0, no_addresses: st?.noAddresses ?? 0, failed: st?.resolveErrors ?? 0 },
    proxyNamesRefused: { ...nat.proxies.refused },
    natEvicted: { client_limit: evicted.client_limit, table_limit: evicted.table_limit, displaced: nat.displaced },
    natRefused: { ...refused },
    natPortsRemapped: nat.portsRemapped,
    proxyNames: nat.proxies.size,
    natSessions: nat.sessions,
  };
}

function servfail(query: Uint8Array): Uint8Array {
  const out = query.slice(0, 12);
  out[2] = 0x80 | (query[2]! & 0x01);
  out[3] = RCODE_SERVFAIL;
  out.fill(0, 4, 12);
  return out;
}
