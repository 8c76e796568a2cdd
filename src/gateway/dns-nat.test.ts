import { expect, test } from "bun:test";
import fc from "fast-check";
import { formatIp, parseIp } from "../ip/address.ts";
import { buildIcmpError, buildTcp, buildUdp, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "../ip/build.ts";
import { computeL4Checksum, ipv4HeaderChecksum, l4ChecksumOffset } from "../ip/checksum.ts";
import { PacketView } from "../ip/packet.ts";
import { DnsNat, MAX_NAT_SESSIONS_PER_CLIENT, ProxyIpAllocator, RESOLVE_RETRY, RESOLVE_TTL, TCP_SESSION_TIMEOUT, UDP_SESSION_TIMEOUT } from "./dns-nat.ts";

const CLIENT = "10.99.0.2";
const parsed = (p: Uint8Array) => {
  const v = new PacketView();
  const e = v.parse(p);
  if (e) throw e;
  return v;
};
const valid = (p: Uint8Array) => {
  const v = parsed(p);
  const at = v.l4At + l4ChecksumOffset(v.protocol);
  return (v.version === 6 || ipv4HeaderChecksum(p) === ((p[10]! << 8) | p[11]!)) && ((p[at]! << 8) | p[at + 1]!) === computeL4Checksum(v);
};

test("each domain gets 4 IPv4 and 4 IPv6 proxy addresses in Firezone's ranges, stable and restorable", () => {
  const a = new ProxyIpAllocator();
  const x = a.assign("App.Example.com.");
  expect(x.v4.map(formatIp)).toEqual(["100.96.0.1", "100.96.0.2", "100.96.0.3", "100.96.0.4"]);
  expect(x.v6.map(formatIp)).toEqual(["fd00:2021:1111:8000::", "fd00:2021:1111:8000::1", "fd00:2021:1111:8000::2", "fd00:2021:1111:8000::3"]);
  expect(a.assign("app.example.com").v4.map(formatIp)).toEqual(x.v4.map(formatIp));
  expect(a.assign("db.example.com").v4.map(formatIp)[0]).toBe("100.96.0.5");
  const b = new ProxyIpAllocator();
  b.restore([{ domain: "db.example.com", v4: ["100.96.0.5", "100.96.0.6", "100.96.0.7", "100.96.0.8"], v6: [], slot: 1 }]);
  expect(b.lookup(parseIp("100.96.0.7")!, 0, 4)).toEqual({ domain: "db.example.com", index: 2 });
  expect(b.assign("new.example.com").v4.map(formatIp)[0]).toBe("100.96.0.9");
});

test("outbound to a proxy address waits for resolution, then goes to the real address; replies come back translated", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const proxy = formatIp(nat.proxies.assign("app.example.com").v4[1]!);
  const out = buildTcp({ src: CLIENT, dst: proxy, srcPort: 40000, dstPort: 443, flags: TCP_SYN });
  expect(nat.outbound(parsed(out), 0)).toBe("unresolved");
  expect(nat.pollResolve()).toBe("app.example.com");
  expect(nat.pollResolve()).toBeUndefined(); // one request per domain while pending
  nat.setResolved("app.example.com", [parseIp("192.0.2.10")!, parseIp("192.0.2.11")!, parseIp("2001:db8::10")!], 0);
  const v = parsed(out);
  expect(nat.outbound(v, 1)).toBe("translated");
  expect([v.dst(), v.dstPort, v.srcPort]).toEqual(["192.0.2.11", 443, 40000]); // proxy #1 → resolved v4 #1
  expect(valid(out)).toBe(true);
  const reply = buildTcp({ src: "192.0.2.11", dst: CLIENT, srcPort: 443, dstPort: 40000, flags: 0x12 });
  const r = parsed(reply);
  expect(nat.inbound(r, 2)).toBe(true);
  expect(r.src()).toBe(proxy);
  expect(valid(reply)).toBe(true);
  // Unrelated traffic is not touched.
  expect(nat.inbound(parsed(buildTcp({ src: "192.0.2.99", dst: CLIENT, srcPort: 443, dstPort: 40000 })), 2)).toBe(false);
  expect(nat.outbound(parsed(buildTcp({ src: CLIENT, dst: "10.50.0.1", srcPort: 1, dstPort: 2 })), 2)).toBe("not_proxied");
});

test("translating there and back is the identity (addresses, ports, payload; checksums valid)", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ maxLength: 100 }), (i, sp, dp, payload) => {
    const nat = new DnsNat(new ProxyIpAllocator());
    const proxy = formatIp(nat.proxies.assign("x.example.com").v4[i]!);
    nat.setResolved("x.example.com", [parseIp("203.0.113.1")!, parseIp("203.0.113.2")!], 0);
    const out = buildUdp({ src: CLIENT, dst: proxy, srcPort: sp, dstPort: dp, payload });
    const o = parsed(out);
    expect(nat.outbound(o, 0)).toBe("translated");
    expect(valid(out)).toBe(true);
    // The reply is the translated packet mirrored; translating it must give the proxy back.
    const reply = buildUdp({ src: o.dst(), dst: CLIENT, srcPort: dp, dstPort: sp, payload });
    const r = parsed(reply);
    expect(nat.inbound(r, 1)).toBe(true);
    expect(Buffer.from(reply).equals(Buffer.from(buildUdp({ src: proxy, dst: CLIENT, srcPort: dp, dstPort: sp, payload })))).toBe(true);
  }), { numRuns: 300 });
});

test("an ICMP error about a translated flow is translated too (outer and quoted packet)", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const proxy = formatIp(nat.proxies.assign("svc.example.com").v4[0]!);
  nat.setResolved("svc.example.com", [parseIp("198.51.100.7")!], 0);
  const out = parsed(buildUdp({ src: CLIENT, dst: proxy, srcPort: 5000, dstPort: 53, payload: new Uint8Array(12) }));
  nat.outbound(out, 0);
  const err = buildIcmpError(out, "198.51.100.7", 3, 3); // port unreachable from the real host
  const e = parsed(err);
  expect(nat.inbound(e, 1)).toBe(true);
  const back = parsed(err);
  expect(back.src()).toBe(proxy);
  expect(formatIp(err.subarray(back.inner!.dstAt, back.inner!.dstAt + 4))).toBe(proxy);
  expect(valid(err)).toBe(true);
});

test("UDP sessions expire after 2 minutes idle; a TCP RST ends a TCP session at once; reset clears all", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const proxy = formatIp(nat.proxies.assign("a.example.com").v4[0]!);
  nat.setResolved("a.example.com", [parseIp("192.0.2.1")!], 0);
  nat.outbound(parsed(buildUdp({ src: CLIENT, dst: proxy, srcPort: 1, dstPort: 2 })), 0);
  nat.outbound(parsed(buildTcp({ src: CLIENT, dst: proxy, srcPort: 3, dstPort: 4 })), 0);
  expect(nat.sessions).toBe(2);
  expect(nat.inbound(parsed(buildUdp({ src: "192.0.2.1", dst: CLIENT, srcPort: 2, dstPort: 1 })), UDP_SESSION_TIMEOUT + 1)).toBe(false);
  nat.inbound(parsed(buildTcp({ src: "192.0.2.1", dst: CLIENT, srcPort: 4, dstPort: 3, flags: TCP_RST })), 10);
  expect(nat.sessions).toBe(0);
  nat.outbound(parsed(buildUdp({ src: CLIENT, dst: proxy, srcPort: 1, dstPort: 2 })), 0);
  nat.reset();
  expect(nat.sessions).toBe(0);
  nat.setResolved("a.example.com", [parseIp("192.0.2.9")!], 1);
  expect(nat.remapped).toBe(1);
});

test("the DNS sentinel range 100.100.111.0/24 is never handed out", () => {
  const a = new ProxyIpAllocator();
  // Start just below the sentinel range (as after a restart with ~72,600 domains assigned).
  a.restore([{ domain: "seed.example.com", v4: ["100.100.109.101"], v6: [], slot: 72_600 }]);
  const seen: string[] = [];
  for (let i = 0; i < 200; i++) seen.push(...a.assign(`d${i}.example.com`).v4.map(formatIp));
  expect(seen.some((ip) => ip.startsWith("100.100.111."))).toBe(false);
  expect(seen).toContain("100.100.110.250");
  expect(seen.some((ip) => ip.startsWith("100.100.112."))).toBe(true);
});

const A = "192.0.2.10";
const B = "192.0.2.20";
const tcp = (proxy: string, srcPort: number, flags = 0x10) => parsed(buildTcp({ src: CLIENT, dst: proxy, srcPort, dstPort: 443, flags }));
const replyFrom = (real: string, dstPort: number, flags = 0x10) => parsed(buildTcp({ src: real, dst: CLIENT, srcPort: 443, dstPort, flags }));
const sentTo = (nat: DnsNat, proxy: string, srcPort: number, now: number, flags = 0x10) => {
  const v = tcp(proxy, srcPort, flags);
  const r = nat.outbound(v, now);
  return r === "translated" ? v.dst() : r;
};

test("a live TCP connection stays on its server when the resolver rotates its answer; new connections use the newest answer", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const proxy = formatIp(nat.proxies.assign("app.example.com").v4[0]!);
  nat.setResolved("app.example.com", [parseIp(A)!], 0);
  expect(sentTo(nat, proxy, 40000, 0, TCP_SYN)).toBe(A);
  // The cached answer ages out; the next packet asks again and the resolver now says B.
  expect(sentTo(nat, proxy, 40000, RESOLVE_TTL + 1)).toBe(A);
  expect(nat.pollResolve()).toBe("app.example.com");
  expect(nat.setResolved("app.example.com", [parseIp(B)!], RESOLVE_TTL + 2)).toBe(true);
  for (let t = RESOLVE_TTL + 3; t < 10 * RESOLVE_TTL; t += 1000) expect(sentTo(nat, proxy, 40000, t)).toBe(A);
  const back = replyFrom(A, 40000);
  expect(nat.inbound(back, 10 * RESOLVE_TTL)).toBe(true);
  expect(back.src()).toBe(proxy);
  // A new connection goes to the newest answer, and its replies come back too.
  expect(sentTo(nat, proxy, 40001, 10 * RESOLVE_TTL, TCP_SYN)).toBe(B);
  expect(nat.inbound(replyFrom(B, 40001), 10 * RESOLVE_TTL)).toBe(true);
  // B never served the first connection: its packets for it are not translated.
  expect(nat.inbound(replyFrom(B, 40000), 10 * RESOLVE_TTL)).toBe(false);
  expect(nat.sessionsOf("app.example.com").map((s) => formatIp(s.real)).sort()).toEqual([A, B]);
  // The connection ends (RST): the packet still goes to its server, then the session is gone.
  expect(sentTo(nat, proxy, 40000, 10 * RESOLVE_TTL, TCP_RST)).toBe(A);
  expect(sentTo(nat, proxy, 40000, 10 * RESOLVE_TTL, TCP_SYN)).toBe(B);
});

test("each flow keeps one real address for its life, whatever the resolver answers meanwhile", () => {
  const servers = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1"];
  const step = fc.oneof(
    fc.record({ kind: fc.constant("resolve" as const), addrs: fc.subarray(servers), dt: fc.nat(RESOLVE_TTL * 2) }),
    fc.record({ kind: fc.constant("send" as const), flow: fc.nat(5), index: fc.nat(3), dt: fc.nat(RESOLVE_TTL) }),
  );
  fc.assert(fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
    const nat = new DnsNat(new ProxyIpAllocator());
    const proxies = nat.proxies.assign("lb.example.com").v4.map(formatIp);
    const pinned = new Map<string, string>();
    let now = 0;
    for (const s of steps) {
      now += s.dt;
      if (s.kind === "resolve") {
        nat.setResolved("lb.example.com", s.addrs.map((a) => parseIp(a)!), now);
        continue;
      }
      const flow = `${s.flow}|${s.index}`;
      const got = sentTo(nat, proxies[s.index]!, 30000 + s.flow * 4 + s.index, now); // one client port per flow
      if (got === "unresolved") expect(pinned.has(flow)).toBe(false);
      else if (pinned.has(flow)) expect(got).toBe(pinned.get(flow)!);
      else pinned.set(flow, got as string);
    }
  }), { numRuns: 500 });
});

test("a failed lookup keeps the last good answer and retries soon, without a lookup per packet", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const proxy = formatIp(nat.proxies.assign("svc.example.com").v4[2]!);
  nat.setResolved("svc.example.com", [parseIp(A)!], 0);
  const t = RESOLVE_TTL + 1;
  expect(sentTo(nat, proxy, 1000, t, TCP_SYN)).toBe(A);
  expect(nat.pollResolve()).toBe("svc.example.com");
  expect(nat.resolveFailed("svc.example.com", t)).toBe(true);
  // New connections still reach the last good address (not "unresolved" for 30 s).
  expect(sentTo(nat, proxy, 1001, t + 1, TCP_SYN)).toBe(A);
  expect(nat.pollResolve()).toBeUndefined();
  expect(sentTo(nat, proxy, 1002, t + RESOLVE_RETRY, TCP_SYN)).toBe(A);
  expect(nat.pollResolve()).toBe("svc.example.com");
  expect(nat.keptOnFailure).toBe(1);
  // A name that never resolved stays unresolved after a failure, and is retried later.
  const other = formatIp(nat.proxies.assign("new.example.com").v4[0]!);
  expect(sentTo(nat, other, 2000, t)).toBe("unresolved");
  expect(nat.pollResolve()).toBe("new.example.com");
  expect(nat.resolveFailed("new.example.com", t)).toBe(false);
  expect(sentTo(nat, other, 2000, t + 1)).toBe("unresolved");
  expect(nat.pollResolve()).toBeUndefined();
});

test("re-assigned proxy addresses end the domain's sessions (and those of a domain that held them); others stay", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const a = nat.proxies.assign("a.example.com");
  const b = nat.proxies.assign("b.example.com");
  const c = nat.proxies.assign("c.example.com");
  for (const d of ["a", "b", "c"]) nat.setResolved(`${d}.example.com`, [parseIp(A)!], 0);
  expect(sentTo(nat, formatIp(a.v4[0]!), 1, 0, TCP_SYN)).toBe(A);
  expect(sentTo(nat, formatIp(b.v4[0]!), 2, 0, TCP_SYN)).toBe(A);
  expect(sentTo(nat, formatIp(c.v4[0]!), 3, 0, TCP_SYN)).toBe(A);
  // Unchanged addresses: nothing happens.
  expect(nat.reassignProxies("c.example.com", c.v4, c.v6)).toBe(0);
  // a.example.com now uses b's first address plus new ones: a's and b's translations are void.
  const fresh = [b.v4[0]!, parseIp("100.96.9.1")!, parseIp("100.96.9.2")!, parseIp("100.96.9.3")!];
  expect(nat.reassignProxies("a.example.com", fresh, [])).toBe(2);
  expect(nat.sessionsOf("c.example.com").length).toBe(1);
  expect(nat.inbound(replyFrom(A, 1), 1)).toBe(false);
  expect(nat.inbound(replyFrom(A, 3), 1)).toBe(true);
  expect(sentTo(nat, formatIp(a.v4[0]!), 1, 1)).toBe("not_proxied");
  expect(nat.proxies.lookup(b.v4[0]!, 0, 4)).toEqual({ domain: "a.example.com", index: 0 });
  expect(sentTo(nat, "100.96.9.2", 1, 1, TCP_SYN)).toBe(A);
  expect(nat.proxies.assign("b.example.com").fresh).toBe(true);
});

test("a session's life is measured from its last packet: TCP 2 h, UDP 2 min", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const proxy = formatIp(nat.proxies.assign("t.example.com").v4[0]!);
  nat.setResolved("t.example.com", [parseIp(A)!], 0);
  sentTo(nat, proxy, 5, 0, TCP_SYN);
  nat.setResolved("t.example.com", [parseIp(B)!], 1);
  expect(sentTo(nat, proxy, 5, TCP_SESSION_TIMEOUT - 1)).toBe(A);
  expect(nat.sweep(2 * TCP_SESSION_TIMEOUT - 2)).toBe(0);
  expect(nat.sweep(2 * TCP_SESSION_TIMEOUT)).toBe(1);
  expect(sentTo(nat, proxy, 5, 2 * TCP_SESSION_TIMEOUT + 1)).toBe(B);
});

test("bad saved proxy assignments are skipped and reported; the good ones are restored", () => {
  const a = new ProxyIpAllocator();
  const skipped = a.restore([
    { domain: "ok.example.com", v4: ["100.96.0.5", "100.96.0.6", "100.96.0.7", "100.96.0.8"], v6: ["fd00:2021:1111:8000::4"], slot: 1 },
    { domain: "outside.example.com", v4: ["10.0.0.1"], v6: [], slot: 2 },
    { domain: "dup.example.com", v4: ["100.96.0.6"], v6: [], slot: 3 },
    { domain: "slot.example.com", v4: [], v6: [], slot: 2 ** 30 },
    { domain: "junk.example.com", v4: ["unreadable: [1,"], v6: [], slot: 4 },
  ]);
  expect(skipped).toEqual([
    { domain: "outside.example.com", err: 'v4 address "10.0.0.1" is not in 100.96.0.0/11' },
    { domain: "dup.example.com", err: 'v4 address "100.96.0.6" already belongs to "ok.example.com"' },
    { domain: "slot.example.com", err: 'slot "1073741824" is out of range' },
    { domain: "junk.example.com", err: 'v4 address "unreadable: [1," is not in 100.96.0.0/11' },
  ]);
  expect(a.lookup(parseIp("100.96.0.7")!, 0, 4)).toEqual({ domain: "ok.example.com", index: 2 });
  expect(a.lookup(parseIp("10.0.0.1")!, 0, 4)).toBeUndefined();
  expect(a.assign("new.example.com").v4.map(formatIp)[0]).toBe("100.96.0.9");
});

const udpFrom = (client: string, proxy: string, srcPort: number) => parsed(buildUdp({ src: client, dst: proxy, srcPort, dstPort: 53, payload: new Uint8Array(4) }));
const tcpFrom = (client: string, proxy: string, srcPort: number, flags: number) => parsed(buildTcp({ src: client, dst: proxy, srcPort, dstPort: 443, flags }));
const tcpBack = (real: string, client: string, dstPort: number, flags = TCP_ACK) => parsed(buildTcp({ src: real, dst: client, srcPort: 443, dstPort, flags }));

test("one client opening flows without end is capped per client: its idle UDP flows go first, its established TCP connection and other clients' flows stay", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const proxy = formatIp(nat.proxies.assign("flood.example.com").v4[0]!);
  nat.setResolved("flood.example.com", [parseIp(A)!], 0);
  // cid 2 has a connection (answered by the server) and a UDP flow; cid 1 then floods.
  expect(nat.outbound(tcpFrom("10.99.0.3", proxy, 40000, TCP_SYN), 0, 2)).toBe("translated");
  expect(nat.inbound(tcpBack(A, "10.99.0.3", 40000, TCP_SYN | TCP_ACK), 0)).toBe(true);
  expect(nat.outbound(udpFrom("10.99.0.3", proxy, 5353), 0, 2)).toBe("translated");
  expect(nat.outbound(tcpFrom(CLIENT, proxy, 1, TCP_SYN), 1, 1)).toBe("translated");
  expect(nat.inbound(tcpBack(A, CLIENT, 1, TCP_SYN | TCP_ACK), 1)).toBe(true);
  const flood = MAX_NAT_SESSIONS_PER_CLIENT + 3_000;
  for (let port = 2; port < flood; port++) expect(nat.outbound(udpFrom(CLIENT, proxy, port), 2 + port, 1)).toBe("translated");
  expect(nat.sessionsOfClient(1)).toBe(MAX_NAT_SESSIONS_PER_CLIENT);
  expect(nat.sessions).toBe(MAX_NAT_SESSIONS_PER_CLIENT + 2);
  expect(nat.limits.evicted.client_limit).toBe(flood - 2 - (MAX_NAT_SESSIONS_PER_CLIENT - 1));
  expect(nat.limits.refused.client_limit).toBe(0);
  // The oldest UDP flows went; the newest, the connection and the other client's flows remain.
  expect(nat.inbound(parsed(buildUdp({ src: A, dst: CLIENT, srcPort: 53, dstPort: 2 })), flood + 10)).toBe(false);
  expect(nat.inbound(parsed(buildUdp({ src: A, dst: CLIENT, srcPort: 53, dstPort: flood - 1 })), flood + 10)).toBe(true);
  expect(nat.inbound(tcpBack(A, CLIENT, 1), flood + 10)).toBe(true);
  expect(nat.inbound(tcpBack(A, "10.99.0.3", 40000), flood + 10)).toBe(true);
  expect(nat.inbound(parsed(buildUdp({ src: A, dst: "10.99.0.3", srcPort: 53, dstPort: 5353 })), flood + 10)).toBe(true);
});

test("a full table evicts closing TCP, then idle UDP, then unanswered TCP; live established connections are kept and new flows refused instead", () => {
  const nat = new DnsNat(new ProxyIpAllocator(), { total: 4, perClient: 4 });
  const proxy = formatIp(nat.proxies.assign("full.example.com").v4[0]!);
  nat.setResolved("full.example.com", [parseIp(A)!], 0);
  const clients = ["10.99.0.11", "10.99.0.12", "10.99.0.13", "10.99.0.14", "10.99.0.15"];
  const send = (i: number, p: PacketView, now: number) => nat.outbound(p, now, i);
  // Four clients, one session each: established, unanswered SYN, UDP, closing (FIN both ways).
  expect(send(0, tcpFrom(clients[0]!, proxy, 100, TCP_SYN), 0)).toBe("translated");
  nat.inbound(tcpBack(A, clients[0]!, 100, TCP_SYN | TCP_ACK), 0);
  expect(send(1, tcpFrom(clients[1]!, proxy, 100, TCP_SYN), 1)).toBe("translated");
  expect(send(2, udpFrom(clients[2]!, proxy, 100), 2)).toBe("translated");
  expect(send(3, tcpFrom(clients[3]!, proxy, 100, TCP_SYN), 3)).toBe("translated");
  nat.inbound(tcpBack(A, clients[3]!, 100, TCP_SYN | TCP_ACK), 3);
  expect(send(3, tcpFrom(clients[3]!, proxy, 100, TCP_FIN | TCP_ACK), 4)).toBe("translated");
  nat.inbound(tcpBack(A, clients[3]!, 100, TCP_FIN | TCP_ACK), 4);
  const alive = () => [0, 1, 2, 3].map((i) => nat.sessionsOfClient(i) === 1);
  // Client 4 opens connections (each answered): the closing one goes first although it was used
  // last, then the UDP flow, then the unanswered SYN; the established connection stays.
  const connect = (port: number, now: number) => {
    expect(send(4, tcpFrom(clients[4]!, proxy, port, TCP_SYN), now)).toBe("translated");
    expect(nat.inbound(tcpBack(A, clients[4]!, port, TCP_SYN | TCP_ACK), now)).toBe(true);
  };
  connect(1, 10);
  expect(alive()).toEqual([true, true, true, false]);
  connect(2, 11);
  expect(alive()).toEqual([true, true, false, false]);
  connect(3, 12);
  expect(alive()).toEqual([true, false, false, false]);
  expect(nat.limits.evicted.table_limit).toBe(3);
  // Only established connections, all active within the last 2 minutes: a new flow is refused.
  expect(send(1, tcpFrom(clients[1]!, proxy, 200, TCP_SYN), 15)).toBe("refused");
  expect(nat.limits.refused.table_limit).toBe(1);
  expect(nat.inbound(tcpBack(A, clients[0]!, 100), 15)).toBe(true);
  expect(nat.sessions).toBe(4);
  // Idle longer than a UDP flow may be: the longest idle connection makes way.
  expect(send(1, tcpFrom(clients[1]!, proxy, 200, TCP_SYN), 10 + UDP_SESSION_TIMEOUT)).toBe("translated");
  expect(nat.sessionsOfClient(4)).toBe(2); // its connection on port 1, idle since 10, made way
  expect(nat.inbound(tcpBack(A, clients[4]!, 1), 11 + UDP_SESSION_TIMEOUT)).toBe(false);
  expect(nat.inbound(tcpBack(A, clients[0]!, 100), 11 + UDP_SESSION_TIMEOUT)).toBe(true);
  // Expired sessions are reclaimed before anything is evicted.
  const before = nat.limits.evicted.table_limit;
  expect(send(2, udpFrom(clients[2]!, proxy, 300), 2 * TCP_SESSION_TIMEOUT)).toBe("translated");
  expect(nat.limits.evicted.table_limit).toBe(before);
});

test("under any mix of flows, replies and time, the table never exceeds its caps, per-client counts add up, and everything expires", () => {
  const op = fc.record({ client: fc.nat(3), port: fc.integer({ min: 1, max: 12 }), kind: fc.constantFrom("udp", "syn", "ack", "fin", "rst", "reply", "reply_fin"), dt: fc.nat(UDP_SESSION_TIMEOUT / 2) });
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const nat = new DnsNat(new ProxyIpAllocator(), { total: 10, perClient: 4 });
    const proxy = formatIp(nat.proxies.assign("p.example.com").v4[0]!);
    nat.setResolved("p.example.com", [parseIp(A)!], 0);
    let now = 0;
    for (const o of ops) {
      now += o.dt;
      const client = `10.99.1.${o.client + 1}`;
      if (o.kind === "reply" || o.kind === "reply_fin") nat.inbound(tcpBack(A, client, o.port, o.kind === "reply" ? TCP_ACK : TCP_FIN | TCP_ACK), now);
      else if (o.kind === "udp") nat.outbound(udpFrom(client, proxy, o.port), now, o.client);
      else nat.outbound(tcpFrom(client, proxy, o.port, { syn: TCP_SYN, ack: TCP_ACK, fin: TCP_FIN | TCP_ACK, rst: TCP_RST }[o.kind]), now, o.client);
      expect(nat.sessions).toBeLessThanOrEqual(10);
      for (let c = 0; c < 4; c++) expect(nat.sessionsOfClient(c)).toBeLessThanOrEqual(4);
    }
    expect([0, 1, 2, 3].reduce((n, c) => n + nat.sessionsOfClient(c), 0)).toBe(nat.sessions);
    nat.sweep(now + TCP_SESSION_TIMEOUT);
    expect(nat.sessions).toBe(0);
    expect([0, 1, 2, 3].map((c) => nat.sessionsOfClient(c))).toEqual([0, 0, 0, 0]);
  }), { numRuns: 300 });
});

test("two flows from one client port to proxies of names that resolve to the same server both work: the second leaves from another port, replies find their own flow", () => {
  const nat = new DnsNat(new ProxyIpAllocator());
  const p1 = formatIp(nat.proxies.assign("one.example.com").v4[0]!);
  const p2 = formatIp(nat.proxies.assign("two.example.com").v4[0]!);
  nat.setResolved("one.example.com", [parseIp(A)!], 0);
  nat.setResolved("two.example.com", [parseIp(A)!], 0);
  const first = tcpFrom(CLIENT, p1, 40000, TCP_SYN);
  expect(nat.outbound(first, 0)).toBe("translated");
  expect([first.dst(), first.srcPort]).toEqual([A, 40000]); // no collision: the port is kept
  const second = tcpFrom(CLIENT, p2, 40000, TCP_SYN);
  expect(nat.outbound(second, 1)).toBe("translated");
  expect(second.dst()).toBe(A);
  const port = second.srcPort;
  expect(port).not.toBe(40000);
  expect(port).toBeGreaterThanOrEqual(49152);
  expect(valid(second.buf)).toBe(true);
  expect([nat.portsRemapped, nat.displaced]).toEqual([1, 0]);
  // Later packets of the second flow keep the new port; the first flow keeps its own.
  const again = tcpFrom(CLIENT, p2, 40000, TCP_ACK);
  nat.outbound(again, 2);
  expect(again.srcPort).toBe(port);
  // Replies: each goes back to its own proxy address and the client's own port.
  const r1 = tcpBack(A, CLIENT, 40000);
  expect(nat.inbound(r1, 3)).toBe(true);
  expect([r1.src(), r1.dstPort]).toEqual([p1, 40000]);
  const r2 = tcpBack(A, CLIENT, port);
  expect(nat.inbound(r2, 3)).toBe(true);
  expect([r2.src(), r2.dstPort]).toEqual([p2, 40000]);
  expect(valid(r2.buf)).toBe(true);
  // An ICMP error about the remapped flow names the client's own port and the proxy in its quote.
  const sent = tcpFrom(CLIENT, p2, 40000, TCP_ACK);
  nat.outbound(sent, 4);
  const err = buildIcmpError(sent, "198.51.100.1", 3, 1); // host unreachable, from a router
  const e = parsed(err);
  expect(nat.inbound(e, 5)).toBe(true);
  const back = parsed(err);
  expect([formatIp(err.subarray(back.inner!.dstAt, back.inner!.dstAt + 4)), back.inner!.srcPort]).toEqual([p2, 40000]);
  expect(back.src()).toBe("198.51.100.1");
  expect(valid(err)).toBe(true);
});

test("whatever ports and proxy addresses a client's flows share, every flow's replies come back to it alone (remapped or not)", () => {
  const flow = fc.record({ port: fc.integer({ min: 1, max: 4 }), proxy: fc.nat(7), udp: fc.boolean() });
  fc.assert(fc.property(fc.array(flow, { minLength: 1, maxLength: 40 }), (flows) => {
    const nat = new DnsNat(new ProxyIpAllocator());
    const proxies = [...nat.proxies.assign("x.example.com").v4, ...nat.proxies.assign("y.example.com").v4].map(formatIp);
    // Both names, all 8 proxies, one server: every (port, protocol) pair collides across proxies.
    nat.setResolved("x.example.com", [parseIp(A)!], 0);
    nat.setResolved("y.example.com", [parseIp(A)!], 0);
    const outside = new Map<string, number>();
    for (const f of flows) {
      const v = f.udp ? udpFrom(CLIENT, proxies[f.proxy]!, f.port) : tcpFrom(CLIENT, proxies[f.proxy]!, f.port, TCP_ACK);
      expect(nat.outbound(v, 0)).toBe("translated");
      const k = `${f.udp}|${f.port}|${f.proxy}`;
      if (outside.has(k)) expect(v.srcPort).toBe(outside.get(k)!); // a flow keeps its port
      outside.set(k, v.srcPort);
    }
    expect(new Set([...outside].map(([k, port]) => `${k.split("|")[0]}|${port}`)).size).toBe(outside.size); // no two share one
    expect(nat.displaced).toBe(0);
    for (const [k, port] of outside) {
      const [udp, clientPort, proxy] = k.split("|");
      const reply = udp === "true" ? parsed(buildUdp({ src: A, dst: CLIENT, srcPort: 53, dstPort: port, payload: new Uint8Array(4) })) : tcpBack(A, CLIENT, port);
      expect(nat.inbound(reply, 1)).toBe(true);
      expect([reply.src(), reply.dstPort]).toEqual([proxies[Number(proxy)]!, Number(clientPort)]);
      expect(valid(reply.buf)).toBe(true);
    }
  }), { numRuns: 300 });
});

test("a half-closed connection still receiving (client sent FIN, server streams on) is not treated as closing when room is needed", () => {
  const nat = new DnsNat(new ProxyIpAllocator(), { total: 2, perClient: 2 });
  const proxy = formatIp(nat.proxies.assign("dl.example.com").v4[0]!);
  nat.setResolved("dl.example.com", [parseIp(A)!], 0);
  expect(nat.outbound(tcpFrom(CLIENT, proxy, 7000, TCP_SYN), 0, 1)).toBe("translated");
  nat.inbound(tcpBack(A, CLIENT, 7000, TCP_SYN | TCP_ACK), 0);
  expect(nat.outbound(tcpFrom(CLIENT, proxy, 7000, TCP_FIN | TCP_ACK), 1, 1)).toBe("translated"); // shutdown(SHUT_WR)
  expect(nat.outbound(udpFrom(CLIENT, proxy, 5353), 2, 1)).toBe("translated");
  for (let t = 3; t < 10; t++) expect(nat.inbound(tcpBack(A, CLIENT, 7000), t)).toBe(true); // the download goes on
  // A new flow needs room: the idle UDP flow goes, the download stays.
  expect(nat.outbound(udpFrom(CLIENT, proxy, 5354), 10, 1)).toBe("translated");
  expect(nat.inbound(tcpBack(A, CLIENT, 7000), 11)).toBe(true);
  expect(nat.inbound(parsed(buildUdp({ src: A, dst: CLIENT, srcPort: 53, dstPort: 5353 })), 11)).toBe(false);
  // Once the server's FIN arrives too, it is closing: the first to go, and gone 2 minutes later anyway.
  expect(nat.inbound(tcpBack(A, CLIENT, 7000, TCP_FIN | TCP_ACK), 12)).toBe(true);
  expect(nat.outbound(udpFrom(CLIENT, proxy, 5355), 13, 1)).toBe("translated");
  expect(nat.inbound(tcpBack(A, CLIENT, 7000), 14)).toBe(false);
  expect(nat.inbound(parsed(buildUdp({ src: A, dst: CLIENT, srcPort: 53, dstPort: 5354 })), 14)).toBe(true);
});
