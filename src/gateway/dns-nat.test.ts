import { expect, test } from "bun:test";
import fc from "fast-check";
import { formatIp, parseIp } from "../ip/address.ts";
import { buildIcmpError, buildTcp, buildUdp, TCP_RST, TCP_SYN } from "../ip/build.ts";
import { computeL4Checksum, ipv4HeaderChecksum, l4ChecksumOffset } from "../ip/checksum.ts";
import { PacketView } from "../ip/packet.ts";
import { DnsNat, ProxyIpAllocator, UDP_SESSION_TIMEOUT } from "./dns-nat.ts";

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
  const seen: string[] = [];
  for (let i = 0; i < 72_800; i++) seen.push(...a.assign(`d${i}.example.com`).v4.map(formatIp));
  expect(seen.some((ip) => ip.startsWith("100.100.111."))).toBe(false);
  expect(seen).toContain("100.100.110.250");
  expect(seen.some((ip) => ip.startsWith("100.100.112."))).toBe(true);
});
