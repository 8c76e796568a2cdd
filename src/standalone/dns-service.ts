// The IO shell around the gateway's DNS: a UDP server on the gateway's tunnel address (port 53)
// that stock clients use as their `DNS =`, answering DNS-resource names with proxy addresses and
// forwarding everything else upstream; and the resolver that tells the NAT the real addresses.
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { formatIp, parseIp } from "../ip/address.ts";
import type { DnsNat, DnsResponder } from "../gateway/index.ts";
import { SpanStatusCode, type Tracer } from "@opentelemetry/api";
import type { TargetLogger } from "../telemetry/log.ts";
import { inSpan } from "../telemetry/tracing.ts";
import type { Tunnel } from "../tunnel/index.ts";
import { RCODE_SERVFAIL } from "../gateway/dns-message.ts";
import { DnsUpstream } from "./dns-upstream.ts";

/** The first `nameserver` of /etc/resolv.conf: the host's own resolver. */
export function systemResolver(): string | undefined {
  try {
    return /^nameserver\s+(\S+)/m.exec(readFileSync("/etc/resolv.conf", "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

export interface DnsServiceOptions {
  listen: string[];
  /** 53 unless set (tests). */
  listenPort?: number;
  upstream: string;
  /** 53 unless set (tests). */
  upstreamPort?: number;
  /** How long an upstream query may take (default UPSTREAM_TIMEOUT_MS). */
  upstreamTimeoutMs?: number;
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
  stats = { answered: 0, forwarded: 0, refused: 0, resolved: 0, resolveErrors: 0, errors: 0 };

  private constructor(private readonly opts: DnsServiceOptions) {
    this.upstream = new DnsUpstream({ address: opts.upstream, port: opts.upstreamPort, timeoutMs: opts.upstreamTimeoutMs, log: opts.log });
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
      log.info("resource name answered with proxy addresses", { cid, rid: v.rid, domain: v.domain });
      this.opts.wake();
      sock.send(v.bytes, port, address);
    } else if (v.kind === "forward") {
      this.stats.forwarded++;
      void this.upstream.exchange(msg, v.question).then((reply) => {
        if (reply) sock.send(reply, port, address);
      });
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
          log.warn("DNS resource lookup failed", { domain, err: r.reason, kept_last_answer: kept });
          this.opts.wake();
          return;
        }
        const addrs = r.kind === "addresses" ? r.addrs : [];
        if (r.kind === "addresses") this.stats.resolved++;
        else log.warn("DNS resource has no addresses; live flows keep theirs", { domain, rcode: r.rcode });
        if (nat.setResolved(domain, addrs, clock())) {
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

function servfail(query: Uint8Array): Uint8Array {
  const out = query.slice(0, 12);
  out[2] = 0x80 | (query[2]! & 0x01);
  out[3] = RCODE_SERVFAIL;
  out.fill(0, 4, 12);
  return out;
}
