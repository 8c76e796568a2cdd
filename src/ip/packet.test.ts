import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { parseIp } from "./address.ts";
import { buildIcmpEcho, buildIcmpError, buildProhibited, buildTcp, buildUdp, TCP_RST } from "./build.ts";
import { computeL4Checksum, ipv4HeaderChecksum, l4ChecksumOffset } from "./checksum.ts";
import { IpParseError, PacketView, PROTO_TCP, PROTO_UDP } from "./packet.ts";
import { setAddress, setInnerAddress, setInnerPort, setPort } from "./rewrite.ts";

const view = new PacketView();
function parsed(p: Uint8Array): PacketView {
  const v = new PacketView();
  const err = v.parse(p);
  if (err) throw err;
  return v;
}
function checksumsValid(p: Uint8Array): boolean {
  const v = parsed(p);
  const at = v.l4At + l4ChecksumOffset(v.protocol);
  const stored = (p[at]! << 8) | p[at + 1]!;
  const ipOk = v.version === 6 || ipv4HeaderChecksum(p) === ((p[10]! << 8) | p[11]!);
  return ipOk && stored === computeL4Checksum(v);
}

const port = fc.integer({ min: 0, max: 65535 });
const payload = fc.uint8Array({ maxLength: 300 });
const addrs = fc.oneof(fc.tuple(fc.ipV4(), fc.ipV4()), fc.tuple(fc.ipV6(), fc.ipV6())).map(([src, dst]) => ({ src, dst }));
const anyPacket = fc.oneof(
  fc.record({ a: addrs, srcPort: port, dstPort: port, payload }).map((r) => ({ kind: "udp", p: buildUdp({ ...r.a, ...r }), r })),
  fc.record({ a: addrs, srcPort: port, dstPort: port, payload, flags: fc.integer({ min: 0, max: 255 }) }).map((r) => ({ kind: "tcp", p: buildTcp({ ...r.a, ...r }), r })),
  fc.record({ a: addrs, id: port, seq: port, payload }).map((r) => ({ kind: "icmp", p: buildIcmpEcho({ ...r.a, ...r }), r })),
);

test("parse ∘ build: every field comes back, checksums valid", () => {
  fc.assert(fc.property(anyPacket, ({ kind, p, r }) => {
    const v = parsed(p);
    expect(v.src()).toBe(parsed(buildUdp({ ...r.a, srcPort: 1, dstPort: 1 })).src());
    expect(Buffer.from(p.subarray(v.dstAt, v.dstAt + v.addressLength)).equals(Buffer.from(parseIp(r.a.dst)!))).toBe(true);
    if (kind === "icmp") {
      const id = (r as { id: number }).id;
      expect([v.srcPort, v.dstPort]).toEqual([id, id]);
    } else {
      expect([v.srcPort, v.dstPort]).toEqual([(r as { srcPort: number }).srcPort, (r as { dstPort: number }).dstPort]);
    }
    expect(checksumsValid(p)).toBe(true);
  }), { numRuns: 500 });
});

test("NAT twice is the identity, and checksums stay valid after each rewrite", () => {
  fc.assert(fc.property(anyPacket, fc.oneof(fc.ipV4(), fc.ipV6()), port, ({ p }, other, newPort) => {
    const v = parsed(p);
    const newAddr = parseIp(other)!;
    fc.pre(newAddr.length === v.addressLength);
    const original = p.slice();
    const oldDst = p.slice(v.dstAt, v.dstAt + v.addressLength);
    const oldPort = v.dstPort;
    setAddress(v, "dst", newAddr);
    setPort(v, "dst", newPort);
    expect(checksumsValid(p)).toBe(true);
    expect(parsed(p).dstPort).toBe(newPort);
    setAddress(v, "dst", oldDst);
    setPort(v, "dst", oldPort);
    expect(checksumsValid(p)).toBe(true);
    // Checksum bytes may differ only by 0x0000/0xffff equivalence; everything else is identical.
    const at = v.l4At + l4ChecksumOffset(v.protocol);
    for (let i = 0; i < p.length; i++) if (i !== at && i !== at + 1) expect(p[i]).toBe(original[i]!);
  }), { numRuns: 500 });
});

test("ICMP errors: the quoted packet is parsed and rewritten with valid outer checksums", () => {
  fc.assert(fc.property(fc.oneof(fc.tuple(fc.ipV4(), fc.ipV4(), fc.ipV4()), fc.tuple(fc.ipV6(), fc.ipV6(), fc.ipV6())), port, port, port, ([a, b, c], sp, dp, np) => {
    const offending = parsed(buildUdp({ src: a, dst: b, srcPort: sp, dstPort: dp, payload: new Uint8Array(20) }));
    const err = buildIcmpError(offending, c, a.includes(":") ? 1 : 3, a.includes(":") ? 4 : 3);
    const v = parsed(err);
    expect(v.inner).toBeDefined();
    expect([v.inner!.srcPort, v.inner!.dstPort]).toEqual([sp, dp]);
    setInnerAddress(v, "src", parseIp(c)!);
    setInnerPort(v, "src", np);
    expect(checksumsValid(err)).toBe(true);
    const again = parsed(err);
    expect(again.inner!.srcPort).toBe(np);
    if (again.version === 4) expect(ipv4HeaderChecksum(err, again.inner!.at)).toBe((err[again.inner!.at + 10]! << 8) | err[again.inner!.at + 11]!);
  }), { numRuns: 300 });
});

test("a denied packet gets 'administratively prohibited' from its destination, quoting it", () => {
  const tcp = parsed(buildTcp({ src: "100.64.0.2", dst: "10.0.0.5", srcPort: 40000, dstPort: 22 }));
  const icmp = parsed(buildProhibited(tcp));
  expect([icmp.icmpType, icmp.icmpCode, icmp.src(), icmp.dst()]).toEqual([3, 13, "10.0.0.5", "100.64.0.2"]);
  expect([icmp.inner!.srcPort, icmp.inner!.dstPort, icmp.inner!.protocol]).toEqual([40000, 22, PROTO_TCP]);
  const udp6 = parsed(buildUdp({ src: "fd00::2", dst: "fd00::9", srcPort: 5, dstPort: 53, payload: new Uint8Array(1400) }));
  const icmp6 = parsed(buildProhibited(udp6));
  expect([icmp6.icmpType, icmp6.icmpCode, icmp6.inner!.protocol]).toEqual([1, 1, PROTO_UDP]);
  expect(icmp6.length).toBeLessThanOrEqual(1280);
  expect(checksumsValid(buildProhibited(udp6))).toBe(true);
});

describe("strict parsing: each malformed packet is refused with a reason naming who it concerns", () => {
  const udp = buildUdp({ src: "10.1.2.3", dst: "10.9.8.7", srcPort: 1234, dstPort: 53, payload: new Uint8Array(10) });
  const tcp = buildTcp({ src: "10.1.2.3", dst: "10.9.8.7", srcPort: 1234, dstPort: 443, flags: TCP_RST });
  const v6 = buildUdp({ src: "fd00::1", dst: "fd00::2", srcPort: 1, dstPort: 2 });
  const mutate = (p: Uint8Array, f: (x: Uint8Array) => void) => {
    const x = p.slice();
    f(x);
    return x;
  };
  const cases: [string, Uint8Array, string, string?][] = [
    ["empty", new Uint8Array(0), "empty"],
    ["version 5", mutate(udp, (x) => (x[0] = 0x55)), "bad_version"],
    ["shorter than an IPv4 header", udp.subarray(0, 19), "truncated_ip_header"],
    ["IHL below 5", mutate(udp, (x) => (x[0] = 0x44)), "bad_ihl"],
    ["total length longer than the buffer", mutate(udp, (x) => (x[3]! += 1)), "length_mismatch", "10.1.2.3 → 10.9.8.7, udp"],
    ["trailing bytes after the packet", Uint8Array.of(...udp, 0), "length_mismatch"],
    ["IPv4 fragment (MF)", mutate(udp, (x) => (x[6] = 0x20)), "fragment"],
    ["IPv4 fragment (offset)", mutate(udp, (x) => (x[7] = 1)), "fragment"],
    ["UDP length wrong", mutate(udp, (x) => (x[25]! += 1)), "bad_udp_length", "10.1.2.3:1234 → 10.9.8.7:53, udp"],
    ["TCP data offset below 5", mutate(tcp, (x) => (x[32] = 0x40)), "bad_tcp_offset", ":443"],
    ["TCP data offset past the end", mutate(tcp, (x) => (x[32] = 0xf0)), "bad_tcp_offset"],
    ["GRE", mutate(udp, (x) => (x[9] = 47)), "unsupported_protocol"],
    ["ICMPv6 inside IPv4", mutate(udp, (x) => (x[9] = 58)), "icmp_wrong_family"],
    ["IPv6 payload length wrong", mutate(v6, (x) => (x[5]! += 1)), "length_mismatch", "fd00::1 → fd00::2"],
    ["IPv6 fragment header", (() => { const x = mutate(v6, (y) => (y[6] = 44)); return x; })(), "fragment"],
    ["truncated UDP header", buildUdpTruncated(), "truncated_l4_header"],
  ];
  for (const [name, p, kind, mentions] of cases) {
    test(`${name} → ${kind}`, () => {
      const err = view.parse(p);
      expect(err).toBeInstanceOf(IpParseError);
      expect(err!.kind).toBe(kind as IpParseError["kind"]);
      if (mentions) expect(err!.message).toContain(mentions);
    });
  }
});

function buildUdpTruncated(): Uint8Array {
  const p = new Uint8Array(24);
  p[0] = 0x45;
  p[3] = 24;
  p[9] = 17;
  return p;
}

test("random bytes never throw from parse", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
    try {
      const err = view.parse(b);
      return err === undefined || err instanceof IpParseError;
    } catch {
      return false;
    }
  }), { numRuns: 3000 });
});
