import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { TunBatch } from "../node/batches.ts";
import { ACK, bytes, checksumsValid, CWR, FIN, PSH, refSum, superPacket, tcpPacket, udpPacket } from "./fixtures/offload-packets.ts";
import { TcpSegmenter } from "./tcp-segment.ts";
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_HDR_LEN } from "./vnet-header.ts";

const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

function segmentAll(sp: Uint8Array, seg = new TcpSegmenter()): Uint8Array[] {
  const n = seg.begin(sp, 0, sp.length);
  expect(n).toBeGreaterThan(0);
  const out: Uint8Array[] = [];
  const dst = new Uint8Array(70000);
  for (let i = 0; i < n; i++) out.push(dst.slice(5, 5 + seg.writeSegment(i, dst, 5)));
  return out;
}

describe("TCP super-packets", () => {
  test("an IPv4 super-packet becomes MSS-sized valid segments: lengths, ids, seq, flags, checksums", () => {
    const payload = bytes(5000);
    const sp = superPacket(tcpPacket({ payload, seq: 0xfffff000, id: 0xfffe, flags: ACK | PSH | FIN | CWR }), 1448);
    sp[1]! |= VNET_GSO_ECN;
    const segs = segmentAll(sp);
    expect(segs.map((s) => s.length)).toEqual([1488, 1488, 1488, 40 + 656]);
    segs.forEach((s, i) => {
      expect(checksumsValid(s)).toBe(true);
      expect(u16(s, 2)).toBe(s.length);
      expect(u16(s, 4)).toBe((0xfffe + i) & 0xffff);
      expect(u32(s, 24)).toBe((0xfffff000 + i * 1448) >>> 0); // wraps past 2^32
      expect(u32(s, 28)).toBe(777);
      const last = i === segs.length - 1;
      expect(s[33]).toBe(ACK | (last ? PSH | FIN : 0) | (i === 0 ? CWR : 0));
    });
    expect(Buffer.concat(segs.map((s) => s.subarray(40)))).toEqual(Buffer.from(payload));
  });

  test("an IPv6 super-packet with TCP options keeps the options on every segment", () => {
    const options = Uint8Array.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
    const payload = bytes(4000, 7);
    const segs = segmentAll(superPacket(tcpPacket({ v6: true, payload, options, flowLabel: 0x12345 }), 1396));
    expect(segs.length).toBe(3);
    for (const s of segs) {
      expect(checksumsValid(s)).toBe(true);
      expect(u16(s, 4)).toBe(s.length - 40);
      expect([...s.subarray(60, 72)]).toEqual([...options]);
      expect(u32(s, 0) & 0xfffff).toBe(0x12345);
    }
    expect(Buffer.concat(segs.map((s) => s.subarray(72)))).toEqual(Buffer.from(payload));
  });

  test("a super-packet whose payload fits one segment still gets a full checksum", () => {
    const segs = segmentAll(superPacket(tcpPacket({ payload: bytes(100) }), 1448));
    expect(segs.length).toBe(1);
    expect(checksumsValid(segs[0]!)).toBe(true);
  });

  test("property: any size and gso_size, v4 or v6, gives valid segments that reassemble the payload", () => {
    const seg = new TcpSegmenter();
    fc.assert(
      fc.property(fc.boolean(), fc.integer({ min: 1, max: 65000 }), fc.integer({ min: 1, max: 9000 }), fc.integer(), (v6, len, gso, seed) => {
        const payload = bytes(Math.min(len, 65535 - 60), seed);
        const pkt = tcpPacket({ v6, payload, seq: seed >>> 0 });
        const segs = segmentAll(superPacket(pkt, gso), seg);
        expect(segs.length).toBe(Math.ceil(payload.length / gso));
        for (const s of segs) expect(checksumsValid(s)).toBe(true);
        expect(Buffer.concat(segs.map((s) => s.subarray(v6 ? 60 : 40))).equals(Buffer.from(payload))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });
});

describe("UDP super-packets (USO)", () => {
  test("each datagram gets its own UDP length and checksum, IPv4 ids incremented", () => {
    for (const v6 of [false, true]) {
      const payload = bytes(3000, 3);
      const segs = segmentAll(superPacket(udpPacket({ v6, payload, id: 10 }), 1200, true));
      const ipHl = v6 ? 40 : 20;
      expect(segs.map((s) => s.length - ipHl - 8)).toEqual([1200, 1200, 600]);
      segs.forEach((s, i) => {
        expect(checksumsValid(s)).toBe(true);
        expect(u16(s, ipHl + 4)).toBe(s.length - ipHl);
        if (!v6) expect(u16(s, 4)).toBe(10 + i);
      });
    }
  });
});

describe("lone packets", () => {
  test("a packet with NEEDS_CSUM and no GSO gets its checksum completed in place", () => {
    const pkt = tcpPacket({ payload: bytes(333) });
    const sp = superPacket(pkt, 0);
    sp[1] = 0; // GSO_NONE, NEEDS_CSUM still set
    const seg = new TcpSegmenter();
    expect(seg.begin(sp, 0, sp.length)).toBe(1);
    expect(seg.single).toBe(true);
    expect(seg.packetOffset).toBe(VNET_HDR_LEN);
    expect(seg.packetLength).toBe(pkt.length);
    expect(sp.subarray(VNET_HDR_LEN)).toEqual(pkt); // the very checksum the reference computed
  });

  test("a UDP packet whose checksum completes to zero sends 0xffff", () => {
    // Find a payload whose UDP checksum is 0xffff in the reference (the sum then completes to 0).
    for (let seed = 1; seed < 200000; seed++) {
      const pkt = udpPacket({ payload: bytes(4, seed) });
      if (u16(pkt, 26) !== 0xffff) continue;
      const sp = superPacket(pkt, 0, true);
      sp[1] = 0;
      expect(new TcpSegmenter().begin(sp, 0, sp.length)).toBe(1);
      expect(u16(sp, VNET_HDR_LEN + 26)).toBe(0xffff);
      return;
    }
    throw new Error("no payload found");
  });

  test("a packet with a zero header passes untouched", () => {
    const pkt = tcpPacket({ payload: bytes(10) });
    const sp = new Uint8Array(VNET_HDR_LEN + pkt.length);
    sp.set(pkt, VNET_HDR_LEN);
    const seg = new TcpSegmenter();
    expect(seg.begin(sp, 0, sp.length)).toBe(1);
    expect(sp.subarray(VNET_HDR_LEN)).toEqual(pkt as Uint8Array<ArrayBuffer>);
    const dst = new Uint8Array(200);
    expect(seg.writeSegment(0, dst, 0)).toBe(pkt.length);
    expect(dst.subarray(0, pkt.length)).toEqual(pkt as Uint8Array<ArrayBuffer>);
  });
});

describe("malformed reads are refused and counted, never thrown", () => {
  const good = () => superPacket(tcpPacket({ payload: bytes(3000) }), 1448);
  const cases: [string, (b: Uint8Array) => Uint8Array][] = [
    ["short", (b) => b.slice(0, 20)],
    ["gso_type", (b) => ((b[1] = 3), b)],
    ["ip_version", (b) => ((b[1] = 4), b)],
    ["ip_header", (b) => ((b[VNET_HDR_LEN] = 0x44), b)],
    ["length_mismatch", (b) => b.slice(0, b.length - 1)],
    ["fragment", (b) => ((b[VNET_HDR_LEN + 6] = 0x20), b)],
    ["protocol", (b) => ((b[VNET_HDR_LEN + 9] = 17), b)],
    ["l4_header", (b) => ((b[VNET_HDR_LEN + 32] = 0x40), b)],
    ["csum_offsets", (b) => ((b[8] = 6), b)],
    ["gso_size", (b) => ((b[4] = b[5] = 0), b)],
  ];
  for (const [reason, mangle] of cases) {
    test(reason, () => {
      const seg = new TcpSegmenter();
      const b = mangle(good());
      expect(seg.begin(b, 0, b.length)).toBe(-1);
      expect(seg.refused[reason as keyof typeof seg.refused]).toBe(1);
      expect(seg.count).toBe(0);
    });
  }

  test("IPv6 extension headers and payload-less GSO packets", () => {
    const seg = new TcpSegmenter();
    const v6 = superPacket(tcpPacket({ v6: true, payload: bytes(3000) }), 1448);
    v6[VNET_HDR_LEN + 6] = 0; // hop-by-hop
    expect(seg.begin(v6, 0, v6.length)).toBe(-1);
    const empty = superPacket(tcpPacket({ payload: new Uint8Array(0) }), 1448);
    expect(seg.begin(empty, 0, empty.length)).toBe(-1);
    expect(seg.refused).toMatchObject({ ipv6_extension: 1, no_payload: 1 });
  });

  test("a lone packet whose NEEDS_CSUM offsets point outside it", () => {
    const sp = good();
    sp[1] = 0;
    sp[6] = 0xff;
    sp[7] = 0xff;
    const seg = new TcpSegmenter();
    expect(seg.begin(sp, 0, sp.length)).toBe(-1);
    expect(seg.refused.csum_offsets).toBe(1);
  });

  test("property: random bytes never throw", () => {
    const seg = new TcpSegmenter();
    const dst = new Uint8Array(70000);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.boolean(), (b, asGso) => {
        if (asGso && b.length > 12) {
          b[0] = VNET_F_NEEDS_CSUM;
          b[1] = 1;
          b[10] = 0x45;
        }
        const n = seg.begin(b, 0, b.length);
        for (let i = 0; i < n; i++) seg.writeSegment(i, dst, 0);
      }),
      { numRuns: 2000 },
    );
  });
});

test("segmentInto fills a TunBatch and resumes where a full batch stopped", () => {
  const payload = bytes(10 * 1000);
  const sp = superPacket(tcpPacket({ payload }), 1000);
  const seg = new TcpSegmenter();
  expect(seg.begin(sp, 0, sp.length)).toBe(10);
  const batch = new TunBatch(4, 2048);
  const got: Uint8Array[] = [];
  let next = 0;
  while (next < seg.count) {
    batch.clear();
    next = seg.segmentInto(batch, next);
    for (let i = 0; i < batch.count; i++) got.push(batch.data.slice(batch.offset(i), batch.offset(i) + batch.lengths[i]!));
  }
  expect(got.length).toBe(10);
  expect(got.every(checksumsValid)).toBe(true);
  expect(Buffer.concat(got.map((s) => s.subarray(40)))).toEqual(Buffer.from(payload));
  expect(refSum(got[0]!, 0, 20)).toBe(0xffff);
});
