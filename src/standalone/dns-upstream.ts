// The gateway's client side of DNS: every query it sends upstream — relayed for a tunnel client,
// or its own lookup of a DNS resource — goes out here. An off-path attacker who gets a forged
// answer accepted poisons a client's cache or, worse, the NAT's idea of where a resource lives;
// so each query gets a crypto-random id AND its own socket on a kernel-chosen ephemeral port
// (RFC 5452 §9.2: ~16 + ~15 bits to guess instead of a counter), and a reply is taken only
// from the upstream's address and port, with our id, for the question we asked.
import dgram from "node:dgram";
import { formatIp, parseIp } from "../ip/address.ts";
import { buildQuery, CLASS_IN, parseResponse, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA } from "../gateway/dns-message.ts";
import type { TargetLogger } from "../telemetry/log.ts";

/** A query gives up after this long (the client retries; the NAT keeps its last good answer). */
export const UPSTREAM_TIMEOUT_MS = 5_000;
/** Each query in flight holds a socket: a flood of forwarded queries must not exhaust descriptors. */
export const MAX_QUERIES_IN_FLIGHT = 256;
/**
 * Relayed queries of one client in flight. A stub resolver has a handful outstanding; 32 is
 * generous, and without it one client's flood (at a slow upstream) would take every slot and
 * leave the other clients without DNS.
 */
export const MAX_QUERIES_IN_FLIGHT_PER_CLIENT = 32;
/** Slots only the gateway's own lookups may use: relayed floods must not stop the NAT resolving. */
export const RESERVED_FOR_LOOKUPS = 32;

export const UPSTREAM_DROP_REASONS = ["wrong_source", "wrong_id", "wrong_question", "malformed"] as const;
export type UpstreamDropReason = (typeof UPSTREAM_DROP_REASONS)[number];

export interface Question {
  /** Compared case-insensitively (lower-case, no trailing dot). */
  name: string;
  qtype: number;
  qclass: number;
}

export type LookupResult =
  | { kind: "addresses"; addrs: Uint8Array[] }
  /** The upstream answered: the name has no A/AAAA records (NXDOMAIN or empty). */
  | { kind: "none"; rcode: number }
  | { kind: "failed"; reason: string };

/** Arms a query's timeout and returns what disarms it. */
export type QueryTimer = (onTimeout: () => void, ms: number) => () => void;

const wallClockTimer: QueryTimer = (onTimeout, ms) => {
  const t = setTimeout(onTimeout, ms);
  return () => clearTimeout(t);
};

export interface DnsUpstreamOptions {
  address: string;
  port?: number;
  timeoutMs?: number;
  /**
   * setTimeout unless set. Tests that need an answer AND a timeout run the timeouts out themselves:
   * with a wall-clock timer a process paused longer than the timeout (a loaded CI host) finds the
   * reply and the expired timer ready together, and timers run first — the answer is lost.
   */
  timer?: QueryTimer;
  maxInFlight?: number;
  maxInFlightPerClient?: number;
  reservedForLookups?: number;
  log: TargetLogger;
}

export class DnsUpstream {
  readonly drops: Record<UpstreamDropReason, number> = { wrong_source: 0, wrong_id: 0, wrong_question: 0, malformed: 0 };
  /** `busy`: not sent, all slots taken; `clientBusy`: not sent, that client's share taken. */
  readonly stats = { sent: 0, answered: 0, timedOut: 0, busy: 0, clientBusy: 0, sendErrors: 0 };
  /** Relayed queries in flight, per client and in total. */
  readonly #perClient = new Map<number, number>();
  #relayed = 0;
  readonly #maxPerClient: number;
  readonly #reserved: number;
  /** Queries in flight: their socket and how to end them (close() ends them all). */
  readonly #sockets = new Map<dgram.Socket, (reply: Uint8Array | undefined) => void>();
  readonly #address: string;
  /** The upstream's address in canonical text, to compare replies' source with. */
  readonly #from: string;
  readonly #port: number;
  readonly #timeoutMs: number;
  readonly #timer: QueryTimer;
  readonly #maxInFlight: number;
  readonly #log: TargetLogger;

  constructor(opts: DnsUpstreamOptions) {
    const ip = parseIp(opts.address.replace(/%.*$/, "")); // a link-local upstream may carry its zone
    if (!ip) throw new Error(`DNS upstream: "${opts.address.slice(0, 64)}" is not an IP address`);
    this.#address = opts.address;
    this.#from = formatIp(ip);
    this.#port = opts.port ?? 53;
    this.#timeoutMs = opts.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
    this.#timer = opts.timer ?? wallClockTimer;
    this.#maxInFlight = opts.maxInFlight ?? MAX_QUERIES_IN_FLIGHT;
    this.#maxPerClient = opts.maxInFlightPerClient ?? MAX_QUERIES_IN_FLIGHT_PER_CLIENT;
    this.#reserved = opts.reservedForLookups ?? RESERVED_FOR_LOOKUPS;
    this.#log = opts.log;
  }

  get inFlight(): number {
    return this.#sockets.size;
  }

  /**
   * Sends `query` (a client's message asking `q`) upstream under a fresh random id from a fresh
   * socket. Resolves with the accepted reply, the client's own id put back, or undefined on
   * timeout / overload / send error (the client retries). `client`: the tunnel connection a
   * relayed query came from (its share is capped); undefined for the gateway's own lookups, which
   * may also use the slots kept for them.
   */
  exchange(query: Uint8Array, q: Question, client?: number): Promise<Uint8Array | undefined> {
    if (this.#sockets.size >= this.#maxInFlight || (client !== undefined && this.#relayed >= this.#maxInFlight - this.#reserved)) {
      this.stats.busy++;
      return Promise.resolve(undefined);
    }
    if (client !== undefined && (this.#perClient.get(client) ?? 0) >= this.#maxPerClient) {
      this.stats.clientBusy++;
      return Promise.resolve(undefined);
    }
    if (client !== undefined) {
      this.#relayed++;
      this.#perClient.set(client, (this.#perClient.get(client) ?? 0) + 1);
    }
    const clientId = (query[0]! << 8) | query[1]!;
    const id = randomId();
    const out = query.slice();
    out[0] = id >> 8;
    out[1] = id & 0xff;
    const want = { name: q.name.toLowerCase().replace(/\.$/, ""), qtype: q.qtype, qclass: q.qclass };
    return new Promise((resolve) => {
      const sock = dgram.createSocket(this.#address.includes(":") ? "udp6" : "udp4");
      let done = false;
      const finish = (reply: Uint8Array | undefined) => {
        if (done) return;
        done = true;
        disarm();
        this.#sockets.delete(sock);
        if (client !== undefined) {
          this.#relayed--;
          const n = (this.#perClient.get(client) ?? 1) - 1;
          if (n > 0) this.#perClient.set(client, n);
          else this.#perClient.delete(client);
        }
        try {
          sock.close();
        } catch {
          // already closed
        }
        resolve(reply);
      };
      this.#sockets.set(sock, finish);
      const disarm = this.#timer(() => {
        this.stats.timedOut++;
        finish(undefined);
      }, this.#timeoutMs);
      sock.on("error", (err) => {
        this.stats.sendErrors++;
        this.#log.warn("DNS upstream socket error", { err, upstream: `${this.#address}:${this.#port}` });
        finish(undefined);
      });
      sock.on("message", (msg, rinfo) => {
        const reason = this.#check(new Uint8Array(msg), rinfo, id, want);
        if (reason) {
          this.drops[reason]++;
          if (this.#log.enabled("debug")) {
            this.#log.debug("DNS reply dropped", { reason, from: `${rinfo.address}:${rinfo.port}`, domain: want.name });
          }
          return;
        }
        this.stats.answered++;
        const reply = new Uint8Array(msg);
        reply[0] = clientId >> 8;
        reply[1] = clientId & 0xff;
        finish(reply);
      });
      // Port 0: the kernel picks a random ephemeral port, a new one per query.
      sock.bind(0, () => {
        if (done) return;
        this.stats.sent++;
        sock.send(out, this.#port, this.#address, (err) => {
          if (err) {
            this.stats.sendErrors++;
            this.#log.warn("DNS query not sent upstream", { err, upstream: `${this.#address}:${this.#port}` });
            finish(undefined);
          }
        });
      });
    });
  }

  #check(msg: Uint8Array, rinfo: dgram.RemoteInfo, id: number, want: Question): UpstreamDropReason | undefined {
    if (rinfo.port !== this.#port || canonical(rinfo.address) !== this.#from) return "wrong_source";
    const r = parseResponse(msg);
    if (typeof r === "string") return "malformed";
    if (r.id !== id) return "wrong_id";
    const got = r.question;
    if (!got || got.name !== want.name || got.qtype !== want.qtype || got.qclass !== want.qclass) return "wrong_question";
    return undefined;
  }

  /** The gateway's own lookup of a DNS resource: A and AAAA, through the same checks. */
  async lookup(domain: string): Promise<LookupResult> {
    const name = domain.toLowerCase().replace(/\.$/, "");
    const ask = async (qtype: number) => {
      const reply = await this.exchange(buildQuery(0, name, qtype), { name, qtype, qclass: CLASS_IN });
      return reply ? parseResponse(reply) : undefined;
    };
    const [a, aaaa] = await Promise.all([ask(TYPE_A), ask(TYPE_AAAA)]);
    const answers = [a, aaaa].filter((r) => r !== undefined && typeof r !== "string");
    const addrs = answers.flatMap((r) => r.addresses);
    if (addrs.length > 0) return { kind: "addresses", addrs };
    // Only an answer that says so (NXDOMAIN, or NOERROR with no records) means "no addresses";
    // a timeout or SERVFAIL says nothing about the name.
    if (answers.length === 2 && answers.every((r) => r.rcode === 0 || r.rcode === RCODE_NXDOMAIN)) {
      return { kind: "none", rcode: Math.max(...answers.map((r) => r.rcode)) };
    }
    if (answers.length < 2) return { kind: "failed", reason: [a, aaaa].some((r) => typeof r === "string") ? "malformed answer" : "no answer (timeout or unreachable)" };
    return { kind: "failed", reason: `rcode ${answers.map((r) => r.rcode).join(",")}` };
  }

  close(): void {
    for (const finish of [...this.#sockets.values()]) finish(undefined);
  }
}

/** "2001:DB8:0::1%eth0", "::ffff:10.0.0.1" → the form formatIp prints, so one address compares equal to itself. */
function canonical(address: string): string {
  const ip = parseIp(address.replace(/%.*$/, "").replace(/^::ffff:(?=\d+\.)/i, ""));
  return ip ? formatIp(ip) : address;
}

/** 16 random bits from the CSPRNG: a counter (or Math.random) lets an attacker predict the next id. */
function randomId(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0]!;
}
