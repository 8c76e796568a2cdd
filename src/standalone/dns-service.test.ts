// The DNS service's upstream side against a fake resolver on 127.0.0.1 that can forge replies the
// way an off-path attacker would: from another port, with another id, for another question.
import { afterEach, describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import { formatIp, parseIp } from "../ip/address.ts";
import { answerAddresses, buildAnswer, buildQuery, parseQuery, RCODE_NXDOMAIN, TYPE_A, type DnsQuestion } from "../gateway/dns-message.ts";
import { DnsNat, DnsResponder, ProxyIpAllocator } from "../gateway/index.ts";
import { AccessPolicy } from "../gateway/policy.ts";
import { Logger, memorySink, parseLogFilter, type LogLine } from "../telemetry/log.ts";
import type { Tunnel } from "../tunnel/index.ts";
import { dnsCounters, DnsService } from "./dns-service.ts";
import { parseResource } from "../gateway/resources.ts";
import { GatewayMetrics } from "../telemetry/metrics.ts";
import { DnsUpstream, type QueryTimer } from "./dns-upstream.ts";
import type { Tracer } from "@opentelemetry/api";
import { buildTcp, TCP_SYN } from "../ip/build.ts";
import { PacketView } from "../ip/packet.ts";
import { RESOLVE_TTL } from "../gateway/dns-nat.ts";
import { Telemetry } from "../telemetry/otel.ts";

type Seen = { id: number; port: number; q: DnsQuestion; msg: Uint8Array };
type Behaviour = (seen: Seen, reply: (bytes: Uint8Array) => Promise<void>, spoof: (bytes: Uint8Array) => Promise<void>) => Promise<void>;

const open: { close(): void }[] = [];
/** Resolved when the service wakes the loop (a lookup finished). */
const woke: (() => void)[] = [];
const nextWake = () => new Promise<void>((r) => woke.push(r));
afterEach(() => {
  for (const x of open.splice(0)) x.close();
});

async function udp(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  open.push(s);
  return s;
}

/**
 * A resolver on 127.0.0.1 that hands each query to `behaviour`; `seen` records what arrived and
 * `saw(n)` resolves once n queries have.
 */
async function fakeUpstream(behaviour: Behaviour) {
  const sock = await udp();
  const other = await udp(); // a second socket: the same host, another port
  const seen: Seen[] = [];
  const waiting = new Map<number, () => void>();
  sock.on("message", (msg, rinfo) => {
    const bytes = new Uint8Array(msg);
    const q = parseQuery(bytes);
    if (typeof q === "string") return;
    const s = { id: q.id, port: rinfo.port, q, msg: bytes };
    seen.push(s);
    waiting.get(seen.length)?.();
    const to = (via: dgram.Socket) => (b: Uint8Array) => new Promise<void>((r) => via.send(b, rinfo.port, rinfo.address, () => r()));
    void behaviour(s, to(sock), to(other));
  });
  const saw = (n: number) => (seen.length >= n ? Promise.resolve() : new Promise<void>((r) => waiting.set(n, r)));
  return { port: sock.address().port, seen, saw };
}

/**
 * Upstream query timeouts that run out only when the test says so. With setTimeout, a test process
 * paused past the timeout (a loaded CI host) finds the upstream's reply and the expired timer ready
 * together, and timers run first: the answer was lost and the test failed now and then.
 */
function heldTimeouts() {
  const armed = new Set<() => void>();
  const waiting: { n: number; resolve: () => void }[] = [];
  const timer: QueryTimer = (onTimeout) => {
    armed.add(onTimeout);
    for (const w of waiting.filter((w) => armed.size >= w.n)) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve();
    }
    return () => void armed.delete(onTimeout);
  };
  return {
    timer,
    /** Resolves once `n` upstream queries are waiting for an answer. */
    armed: (n: number) => (armed.size >= n ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ n, resolve }))),
    /** Every query still waiting times out now. */
    runOut: () => [...armed].forEach((onTimeout) => onTimeout()),
  };
}

const answer = (s: Seen, ip: string, patch?: (q: DnsQuestion) => DnsQuestion) => buildAnswer(s.msg, patch ? patch(s.q) : s.q, [parseIp(ip)!], 60);

interface ServiceSetup {
  lines?: LogLine[];
  /** The log filter ("debug" unless set). */
  level?: string;
  clock?: () => number;
  nat?: DnsNat;
  responder?: DnsResponder;
  tunnel?: Tunnel;
  /** Held (they never run out unless the test says so) unless set; "wall clock": setTimeout after `timeoutMs`. */
  timeouts?: ReturnType<typeof heldTimeouts> | { wallClockMs: number };
  tracer?: Tracer;
}

/** The DNS service on 127.0.0.1 forwarding to the fake upstream at `upstreamPort`. */
async function service(upstreamPort: number, o: ServiceSetup = {}) {
  const nat = o.nat ?? new DnsNat(new ProxyIpAllocator());
  const timeouts = o.timeouts ?? heldTimeouts();
  const svc = await DnsService.start({
    listen: ["127.0.0.1"], listenPort: 0, upstream: "127.0.0.1", upstreamPort,
    ...("wallClockMs" in timeouts ? { upstreamTimeoutMs: timeouts.wallClockMs } : { upstreamTimer: timeouts.timer }),
    responder: o.responder ?? new DnsResponder(new AccessPolicy(), nat), nat,
    // Every query here comes from "a tunnel client" (cid 1) unless the test says otherwise.
    tunnel: o.tunnel ?? ({ connectionFor: (ip: Uint8Array) => (formatIp(ip) === "127.0.0.1" ? { cid: 1 } : undefined) } as unknown as Tunnel),
    clock: o.clock ?? (() => 0), log: new Logger(parseLogFilter(o.level ?? "debug"), memorySink(o.lines ?? [])).target("dns"),
    wake: () => woke.shift()?.(), tracer: o.tracer,
  });
  open.push(svc);
  return svc;
}

/** Sends one query to the service and resolves with the first reply. */
async function ask(svc: DnsService, id: number, name: string): Promise<Uint8Array> {
  const client = await udp();
  const got = new Promise<Uint8Array>((r) => client.once("message", (m) => r(new Uint8Array(m))));
  client.send(buildQuery(id, name, TYPE_A), svc.listening()[0]!.port, "127.0.0.1");
  return got;
}

describe("DNS forwarding to the upstream resolver", () => {
  test("forged replies (other port, other id, other question, garbage) are dropped; the client gets only the real answer", async () => {
    const up = await fakeUpstream(async (s, reply, spoof) => {
      await spoof(answer(s, "6.6.6.1")); // right id and question, but not from the upstream's port
      const wrongId = answer(s, "6.6.6.2");
      wrongId[0] = wrongId[0]! ^ 0x5a;
      await reply(wrongId);
      const q2 = buildQuery(s.id, "evil.example", TYPE_A);
      await reply(answer({ ...s, msg: q2 }, "6.6.6.3", () => parseQuery(q2) as DnsQuestion)); // another name
      await reply(answer(s, "6.6.6.4").subarray(0, 16)); // cut inside the question
      await reply(answer(s, "192.0.2.53"));
    });
    const lines: LogLine[] = [];
    const svc = await service(up.port, { lines });
    const r = await ask(svc, 0x1234, "Plain.Example.org");
    expect(answerAddresses(r).addresses.map(formatIp)).toEqual(["192.0.2.53"]);
    expect((r[0]! << 8) | r[1]!).toBe(0x1234); // the client's own id comes back
    expect(svc.upstream.drops).toEqual({ wrong_source: 1, wrong_id: 1, wrong_question: 1, malformed: 1 });
    expect(lines.filter((l) => l.msg === "DNS reply dropped").map((l) => l.reason)).toEqual(["wrong_source", "wrong_id", "wrong_question", "malformed"]);
    expect(svc.upstream.inFlight).toBe(0); // the query's socket is closed once answered
  });

  test("upstream query ids are unpredictable and each query leaves from its own source port", async () => {
    const up = await fakeUpstream(async (s, reply) => reply(answer(s, "192.0.2.1")));
    const svc = await service(up.port);
    for (let i = 1; i <= 8; i++) await ask(svc, i, `n${i}.example.org`);
    const ids = up.seen.map((s) => s.id);
    const ports = up.seen.map((s) => s.port);
    expect(ids.length).toBe(8);
    // A counter (the old behaviour) steps by one; random ids almost never do.
    const steps = ids.slice(1).filter((id, i) => id === ((ids[i]! + 1) & 0xffff)).length;
    expect(steps).toBeLessThan(3);
    expect(ids).not.toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // Random ephemeral ports: a collision among 8 draws from ~28k is ~0.1 %, two are ~1e-6.
    expect(new Set(ports).size).toBeGreaterThanOrEqual(7);
  });

  test("the gateway's own lookups take only the real answer too (a forged one must not steer the NAT)", async () => {
    const up = await fakeUpstream(async (s, reply, spoof) => {
      await spoof(answer(s, s.q.qtype === TYPE_A ? "6.6.6.6" : "2001:db8::666"));
      await reply(s.q.qtype === TYPE_A ? answer(s, "192.0.2.10") : buildAnswer(s.msg, s.q, [], 60));
    });
    const svc = await service(up.port);
    const r = await svc.upstream.lookup("app.example.org");
    expect(r.kind === "addresses" ? r.addrs.map(formatIp) : r).toEqual(["192.0.2.10"]);
    expect(svc.upstream.drops.wrong_source).toBe(2);
  });

  test("a DNS resource keeps its last good addresses when a later lookup times out", async () => {
    let answered = 0;
    const up = await fakeUpstream(async (s, reply) => {
      if (answered++ < 2) await reply(s.q.qtype === TYPE_A ? answer(s, "192.0.2.10") : buildAnswer(s.msg, s.q, [], 60));
    });
    let now = 0;
    const nat = new DnsNat(new ProxyIpAllocator());
    const lines: LogLine[] = [];
    const timeouts = heldTimeouts();
    await service(up.port, { lines, clock: () => now, nat, timeouts });
    const proxy = formatIp(nat.proxies.assign("app.example.org").v4[0]!);
    const send = (port: number) => {
      const v = new PacketView();
      v.parse(buildTcp({ src: "10.99.0.2", dst: proxy, srcPort: port, dstPort: 443, flags: TCP_SYN }));
      return nat.outbound(v, now) === "translated" ? v.dst() : "unresolved";
    };
    let woken = nextWake();
    expect(send(1)).toBe("unresolved");
    await woken;
    expect(send(2)).toBe("192.0.2.10");
    now += RESOLVE_TTL + 1; // the answer ages out; the next lookup meets a silent upstream
    woken = nextWake();
    expect(send(3)).toBe("192.0.2.10");
    await timeouts.armed(2); // the new lookup's A and AAAA wait at the now silent upstream
    timeouts.runOut();
    await woken;
    expect(lines.find((l) => l.msg === "DNS resource lookup failed")).toMatchObject({ domain: "app.example.org", kept_last_answer: true });
    expect(send(4)).toBe("192.0.2.10");
  });

  test("a query from outside the tunnel is refused and nothing is sent upstream (not an open resolver)", async () => {
    const up = await fakeUpstream(async (s, reply) => reply(answer(s, "192.0.2.1")));
    const svc = await service(up.port, { tunnel: { connectionFor: () => undefined } as unknown as Tunnel });
    const r = await ask(svc, 99, "open.example.org");
    expect(r[3]! & 0xf).toBe(5); // REFUSED
    expect(up.seen).toEqual([]);
    expect(svc.stats.refused).toBe(1);
  });

  test("a query that makes the responder throw gets SERVFAIL and the service keeps answering", async () => {
    const up = await fakeUpstream(async (s, reply) => reply(answer(s, "192.0.2.1")));
    const nat = new DnsNat(new ProxyIpAllocator());
    const responder = new DnsResponder(new AccessPolicy(), nat);
    let calls = 0;
    const real = responder.answer.bind(responder);
    responder.answer = (...args) => {
      if (calls++ === 0) throw new Error("DNS proxy address range exhausted");
      return real(...args);
    };
    const lines: LogLine[] = [];
    const svc = await service(up.port, { lines, nat, responder });
    expect((await ask(svc, 1, "a.example.org"))[3]! & 0xf).toBe(2); // SERVFAIL
    expect(lines.find((l) => l.msg === "DNS query failed")?.err).toContain("range exhausted");
    expect(answerAddresses(await ask(svc, 2, "b.example.org")).addresses.map(formatIp)).toEqual(["192.0.2.1"]);
  });

  test("an upstream written in a non-canonical IPv6 form still has its replies accepted", async () => {
    const sock = dgram.createSocket("udp6");
    await new Promise<void>((r) => sock.bind(0, "::1", r));
    open.push(sock);
    sock.on("message", (msg, rinfo) => {
      const q = parseQuery(new Uint8Array(msg)) as DnsQuestion;
      sock.send(buildAnswer(new Uint8Array(msg), q, [parseIp("192.0.2.66")!], 60), rinfo.port, rinfo.address);
    });
    const upstream = new DnsUpstream({ address: "0:0:0:0:0:0:0:1", port: sock.address().port, log: new Logger(parseLogFilter("off"), () => {}).target("dns") });
    open.push(upstream);
    const r = await upstream.lookup("v6.example.org");
    expect(r.kind === "addresses" ? r.addrs.map(formatIp) : r).toEqual(["192.0.2.66"]);
  });

  test("a silent upstream times out: nothing is answered and the query's socket is closed", async () => {
    const up = await fakeUpstream(async () => {});
    const svc = await service(up.port, { timeouts: { wallClockMs: 100 } }); // the real timer, once
    const q = buildQuery(7, "slow.example.org", TYPE_A);
    expect(await svc.upstream.exchange(q, parseQuery(q) as DnsQuestion)).toBeUndefined();
    expect(svc.upstream.stats.timedOut).toBe(1);
    expect(svc.upstream.inFlight).toBe(0);
  });

  test("queries in flight end at shutdown and their sockets close", async () => {
    const up = await fakeUpstream(async () => {});
    const svc = await service(up.port);
    const q = buildQuery(7, "slow.example.org", TYPE_A);
    const pending = svc.upstream.exchange(q, parseQuery(q) as DnsQuestion);
    expect(svc.upstream.inFlight).toBe(1);
    svc.close(); // ends what is in flight, as at shutdown
    expect(await pending).toBeUndefined();
    expect(svc.upstream.inFlight).toBe(0);
  });
});

describe("DNS limits and counters", () => {
  test("past its proxy-name cap a client gets SERVFAIL over the wire, one warning names it and the resource, and /metrics counts it with the upstream's dropped replies", async () => {
    const up = await fakeUpstream(async (s, reply, spoof) => {
      await spoof(answer(s, "6.6.6.1"));
      await reply(answer(s, "192.0.2.1"));
    });
    const policy = new AccessPolicy();
    policy.upsertResource(parseResource({ type: "dns", id: "corp", address: "**.corp.example.com" }));
    policy.authorize(1, "corp", null);
    const nat = new DnsNat(new ProxyIpAllocator({ total: 100, perClient: 2 }));
    const lines: LogLine[] = [];
    // At info: the repeats this test asks for are logged at debug, with the same message.
    const svc = await service(up.port, { lines, level: "info", nat, responder: new DnsResponder(policy, nat) });
    for (const n of ["a", "b"]) expect(answerAddresses(await ask(svc, 1, `${n}.corp.example.com`)).addresses.length).toBe(4); // the 4 IPv4 proxies
    for (const n of ["c", "d", "e"]) expect((await ask(svc, 2, `${n}.corp.example.com`))[3]! & 0xf).toBe(2); // SERVFAIL
    // Asking again and again for a name it has is answered, and logged at info only the first time.
    for (let i = 0; i < 20; i++) expect(answerAddresses(await ask(svc, 10 + i, "a.corp.example.com")).addresses.length).toBe(4);
    expect(lines.filter((l) => l.msg === "resource name answered with proxy addresses").map((l) => l.domain)).toEqual(["a.corp.example.com", "b.corp.example.com"]);
    const warns = lines.filter((l) => l.msg === "DNS resource name refused: proxy address limit reached");
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: "warn", cid: 1, rid: "corp", domain: "c.corp.example.com", reason: "client_limit" });
    expect(answerAddresses(await ask(svc, 3, "plain.example.org")).addresses.map(formatIp)).toEqual(["192.0.2.1"]);
    const m = new GatewayMetrics({ tunnel: { tunnelDrops: () => ({}), connections: () => [] } as unknown as Tunnel, clock: () => 0, dns: () => dnsCounters(nat, svc) });
    const text = await m.prometheusText();
    await m.shutdown();
    for (const line of [
      'glassgate_dns_queries_total{outcome="answered"} 22',
      'glassgate_dns_queries_total{outcome="limited"} 3',
      'glassgate_dns_queries_total{outcome="forwarded"} 1',
      'glassgate_dns_proxy_names_refused_total{reason="client_limit"} 3',
      'glassgate_dns_upstream_queries_total{outcome="answered"} 1',
      'glassgate_dns_upstream_replies_dropped_total{reason="wrong_source"} 1',
      'glassgate_dns_upstream_replies_dropped_total{reason="malformed"} 0',
      "glassgate_dns_proxy_names 2",
    ]) expect(text).toContain(line);
  });
});

describe("DNS resource lookups", () => {
  test("a name that keeps failing or has no addresses is warned about once, not at every retry", async () => {
    const up = await fakeUpstream(async (s, reply) => {
      if (s.q.name.startsWith("gone")) await reply(buildAnswer(s.msg, s.q, [], 60, RCODE_NXDOMAIN));
      // "dead…" gets no answer at all: the lookup times out.
    });
    let now = 0;
    const nat = new DnsNat(new ProxyIpAllocator());
    const lines: LogLine[] = [];
    const timeouts = heldTimeouts();
    await service(up.port, { lines, clock: () => now, nat, timeouts });
    const send = (name: string) => {
      const v = new PacketView();
      v.parse(buildTcp({ src: "10.99.0.2", dst: formatIp(nat.proxies.assign(name).v4[0]!), srcPort: 1, dstPort: 443, flags: TCP_SYN }));
      return nat.outbound(v, now);
    };
    for (let round = 0; round < 4; round++) {
      const goneDone = nextWake();
      const deadDone = nextWake();
      expect(send("gone.example.org")).toBe("unresolved");
      expect(send("dead.example.org")).toBe("unresolved");
      await goneDone; // the first wake is "gone"'s: "dead" waits on timeouts only the test runs out
      await timeouts.armed(2);
      timeouts.runOut();
      await deadDone;
      now += RESOLVE_TTL + 1; // both due again (failures retry sooner, answers after the TTL)
    }
    expect(nat.failureStreak("dead.example.org")).toBe(4);
    expect(lines.filter((l) => l.msg === "DNS resource has no addresses; live flows keep theirs").map((l) => l.domain)).toEqual(["gone.example.org"]);
    expect(lines.filter((l) => l.msg === "DNS resource lookup failed").map((l) => [l.domain, l.failures])).toEqual([["dead.example.org", 1]]);
  });
});

describe("upstream fairness", () => {
  test("one client flooding a slow upstream takes only its share: other clients' queries and the gateway's own lookups still go out", async () => {
    const up = await fakeUpstream(async () => {}); // never answers: every query stays in flight
    const upstream = new DnsUpstream({ address: "127.0.0.1", port: up.port, timeoutMs: 10_000, maxInFlight: 8, maxInFlightPerClient: 3, reservedForLookups: 2,
      log: new Logger(parseLogFilter("off"), () => {}).target("dns") });
    open.push(upstream);
    const relay = (cid: number, i: number) => {
      const q = buildQuery(i, `c${cid}-${i}.example.org`, TYPE_A);
      return upstream.exchange(q, parseQuery(q) as DnsQuestion, cid);
    };
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) pending.push(relay(1, i));
    expect([upstream.inFlight, upstream.stats.clientBusy]).toEqual([3, 7]);
    for (let i = 0; i < 3; i++) pending.push(relay(2, i));
    expect(upstream.inFlight).toBe(6); // every slot but the lookups' own is taken
    pending.push(relay(3, 0));
    expect(upstream.stats.busy).toBe(1);
    pending.push(upstream.lookup("resource.example.org")); // A + AAAA: the two kept slots
    expect(upstream.inFlight).toBe(8);
    await up.saw(8);
    expect(up.seen.filter((s) => s.q.name.startsWith("c1-")).length).toBe(3);
    expect(up.seen.filter((s) => s.q.name === "resource.example.org").length).toBe(2);
    upstream.close();
    await Promise.all(pending);
    // Slots come back: client 1 may send again.
    pending.length = 0;
    pending.push(relay(1, 99));
    expect(upstream.inFlight).toBe(1);
    upstream.close();
  });
});

describe("DNS-resource lookups in traces", () => {
  test("a DNS resource's lookup is a span (domain, result, address count) and the line it logs carries its trace_id", async () => {
    type Traces = { resourceSpans: { scopeSpans: { spans: { name: string; traceId: string; spanId: string; attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[] }[] }[] }[] };
    const bodies: Traces[] = [];
    const rx = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req) => (bodies.push((await req.json()) as Traces), Response.json({})) });
    open.push({ close: () => void rx.stop(true) });
    const telemetry = new Telemetry({ tracesUrl: `http://127.0.0.1:${rx.port}/v1/traces` });
    const up = await fakeUpstream(async (s, reply) => reply(s.q.qtype === TYPE_A ? answer(s, "192.0.2.10") : buildAnswer(s.msg, s.q, [], 60)));
    const nat = new DnsNat(new ProxyIpAllocator());
    const lines: LogLine[] = [];
    await service(up.port, { lines, level: "info", nat, tracer: telemetry.tracer });
    const proxy = formatIp(nat.proxies.assign("app.example.org").v4[0]!);
    const v = new PacketView();
    v.parse(buildTcp({ src: "10.99.0.2", dst: proxy, srcPort: 1, dstPort: 443, flags: TCP_SYN }));
    const woken = nextWake();
    nat.outbound(v, 0); // the first flow to the name asks for a lookup
    await woken;
    await new Promise((r) => setImmediate(r)); // the span ends a few microtasks after the wake
    await telemetry.shutdown();
    const span = bodies.flatMap((b) => b.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans))).find((s) => s.name === "dns.resource.resolve")!;
    const attr = (k: string) => span.attributes.find((a) => a.key === k)?.value;
    expect(attr("domain")?.stringValue).toBe("app.example.org");
    expect(attr("result")?.stringValue).toBe("addresses");
    expect(Number(attr("addresses")?.intValue)).toBe(1);
    expect(lines.find((l) => l.msg === "DNS resource addresses changed")).toMatchObject({ domain: "app.example.org", trace_id: span.traceId, span_id: span.spanId });
  });
});
