// The IO shell around the gateway's DNS: a UDP server on the gateway's tunnel address (port 53)
// that stock clients use as their `DNS =`, answering DNS-resource names with proxy addresses and
// forwarding everything else upstream; and the resolver that tells the NAT the real addresses.
import dgram from "node:dgram";
import { Resolver } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { formatIp, parseIp } from "../ip/address.ts";
import type { DnsNat, DnsResponder } from "../gateway/index.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Tunnel } from "../tunnel/index.ts";

/** Upstream forwarding gives up on a query after this long (the client retries). */
const FORWARD_TIMEOUT_MS = 5_000;

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
  upstream: string;
  responder: DnsResponder;
  nat: DnsNat;
  tunnel: Tunnel;
  clock: () => number;
  log: TargetLogger;
  /** Something changed the data plane's view (resolved addresses): run a loop turn. */
  wake: () => void;
}

export class DnsService {
  #servers: dgram.Socket[] = [];
  #upstreamSocket: dgram.Socket | undefined;
  readonly #pending = new Map<number, { reply: (b: Uint8Array) => void; at: number; originalId: number }>();
  #nextId = 1;
  #resolveTimer: ReturnType<typeof setInterval> | undefined;
  readonly #resolver: Resolver;
  stats = { answered: 0, forwarded: 0, refused: 0, resolved: 0, resolveErrors: 0 };

  private constructor(private readonly opts: DnsServiceOptions) {
    this.#resolver = new Resolver({ timeout: 2_000, tries: 2 });
    this.#resolver.setServers([opts.upstream]);
  }

  static async start(opts: DnsServiceOptions): Promise<DnsService> {
    const s = new DnsService(opts);
    s.#upstreamSocket = dgram.createSocket(opts.upstream.includes(":") ? "udp6" : "udp4");
    s.#upstreamSocket.on("message", (msg) => s.#fromUpstream(new Uint8Array(msg)));
    await new Promise<void>((r) => s.#upstreamSocket!.bind(0, r));
    for (const addr of opts.listen) {
      const sock = dgram.createSocket(addr.includes(":") ? "udp6" : "udp4");
      sock.on("message", (msg, rinfo) => s.#query(sock, new Uint8Array(msg), rinfo.address, rinfo.port));
      sock.on("error", (err) => opts.log.warn("DNS socket error", { err, listen: addr }));
      await new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind(53, addr, () => resolve());
      });
      s.#servers.push(sock);
    }
    s.#resolveTimer = setInterval(() => s.#resolvePending(), 50);
    opts.log.info("DNS service up", { listen: opts.listen.join(","), upstream: opts.upstream });
    return s;
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
      this.#forward(msg, (reply) => sock.send(reply, port, address));
    } else {
      this.stats.refused++;
      if (log.enabled("debug")) log.debug("DNS query refused", { cid, reason: v.reason });
      if (v.bytes) sock.send(v.bytes, port, address);
    }
  }

  /** Relays a query upstream under a fresh id (so concurrent clients cannot collide). */
  #forward(msg: Uint8Array, reply: (b: Uint8Array) => void): void {
    const now = Date.now();
    for (const [id, p] of this.#pending) if (now - p.at > FORWARD_TIMEOUT_MS) this.#pending.delete(id);
    const id = this.#nextId;
    this.#nextId = (this.#nextId % 0xffff) + 1;
    const originalId = (msg[0]! << 8) | msg[1]!;
    const out = msg.slice();
    out[0] = id >> 8;
    out[1] = id & 0xff;
    this.#pending.set(id, { reply, at: now, originalId });
    this.#upstreamSocket!.send(out, 53, this.opts.upstream);
  }

  #fromUpstream(msg: Uint8Array): void {
    if (msg.length < 12) return;
    const id = (msg[0]! << 8) | msg[1]!;
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    msg[0] = p.originalId >> 8;
    msg[1] = p.originalId & 0xff;
    p.reply(msg);
  }

  #resolvePending(): void {
    for (let d = this.opts.nat.pollResolve(); d; d = this.opts.nat.pollResolve()) {
      const domain = d;
      void Promise.allSettled([this.#resolver.resolve4(domain), this.#resolver.resolve6(domain)]).then(([a, aaaa]) => {
        const addrs = [...(a.status === "fulfilled" ? a.value : []), ...(aaaa.status === "fulfilled" ? aaaa.value : [])]
          .map((x) => parseIp(x))
          .filter((x): x is Uint8Array => x !== undefined);
        if (addrs.length === 0) {
          this.stats.resolveErrors++;
          this.opts.log.warn("DNS resource did not resolve", { domain, err: a.status === "rejected" ? a.reason : undefined });
        } else {
          this.stats.resolved++;
        }
        if (this.opts.nat.setResolved(domain, addrs, this.opts.clock())) {
          this.opts.log.info("DNS resource addresses changed", { domain, addresses: addrs.map(formatIp).join(",") });
        } else if (this.opts.log.enabled("debug")) {
          this.opts.log.debug("DNS resource re-resolved, unchanged", { domain });
        }
        this.opts.wake();
      });
    }
  }

  close(): void {
    clearInterval(this.#resolveTimer);
    for (const s of this.#servers) s.close();
    this.#upstreamSocket?.close();
  }
}
