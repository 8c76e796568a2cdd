import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { TunBatch } from "../node/batches.ts";
import { ACK, bytes, checksumsValid, FIN, PSH, refSum, tcpPacket, udpPacket, type TcpSpec } from "./fixtures/offload-packets.ts";
import { TcpCoalescer } from "./tcp-coalesce.ts";
import { TcpSegmenter } from "./tcp-segment.ts";
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_LEN, VnetHeader } from "./vnet-header.ts";

function batchOf(pkts: Uint8Array[]): TunBatch {
  const b = new TunBatch(Math.max(pkts.length, 1), 2048);
  for (const p of pkts) {
    const at = b.next();
    b.data.set(p, at);
    b.commit(p.length);
  }
  return b;
}

function writesOf(c: TcpCoalescer): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < c.writeCount; i++) out.push(c.writeBuffer(i).slice(c.writeOffset(i), c.writeOffset(i) + c.writeLength(i)));
  return out;
}

/** What the kernel would make of our writes: each resegmented (the segmenter is GSO's model). */
function resegment(writes: Uint8Array[]): Uint8Array[] {
  const seg = new TcpSegmenter();
  const out: Uint8Array[] = [];
  const dst = new Uint8Array(70000);
  for (const w of writes) {
    const n = seg.begin(w, 0, w.length);
    expect(n).toBeGreaterThan(0);
    for (let i = 0; i < n; i++) out.push(dst.slice(0, seg.writeSegment(i, dst, 0)));
  }
  return out;
}

/** `n` in-order segments of one flow, `mss` each (the last `last` bytes when given). */
function flow(n: number, mss: number, spec: Partial<TcpSpec> = {}, last = mss): Uint8Array[] {
  const seq0 = spec.seq ?? 1000;
  const id0 = spec.id ?? 100;
  return Array.from({ length: n }, (_, i) => tcpPacket({ ...spec, seq: seq0 + i * mss, id: id0 + i, payload: bytes(i === n - 1 ? last : mss, i + 1) }));
}

describe("merging", () => {
  test("in-order segments of one flow become one super-packet with the header the kernel expects", () => {
    const segs = flow(4, 1380, {}, 500);
    const c = new TcpCoalescer(true);
    expect(c.coalesce(batchOf(segs))).toBe(1);
    const [w] = writesOf(c);
    const h = new VnetHeader().read(w!, 0);
    expect({ ...h }).toEqual({ flags: VNET_F_NEEDS_CSUM, gsoType: VNET_GSO_TCPV4, hdrLen: 40, gsoSize: 1380, csumStart: 20, csumOffset: 16 });
    const p = w!.subarray(VNET_HDR_LEN);
    expect(p.length).toBe(40 + 3 * 1380 + 500);
    expect(refSum(p, 0, 20)).toBe(0xffff); // the IPv4 header checksum is complete
    // The TCP field holds the pseudo-header sum: adding the segment bytes completes it (NEEDS_CSUM).
    expect(refSum(p, 20, p.length) ^ 0xffff).not.toBe(0);
    const pseudo = refSum(p, 12, 20, 6 + p.length - 20);
    expect((p[36]! << 8) | p[37]!).toBe(pseudo);
    expect(resegment([w!])).toEqual(segs);
    expect({ merged: c.mergedWrites, segments: c.mergedSegments, lone: c.loneWrites }).toEqual({ merged: 1, segments: 4, lone: 0 });
  });

  test("IPv6 segments with timestamps merge and come back byte for byte", () => {
    const options = Uint8Array.from([1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 2, 0]);
    const segs = flow(5, 1000, { v6: true, options, flowLabel: 7 });
    const c = new TcpCoalescer(true);
    expect(c.coalesce(batchOf(segs))).toBe(1);
    const w = writesOf(c)[0]!;
    expect(w[1]).toBe(VNET_GSO_TCPV6);
    expect(resegment([w])).toEqual(segs);
  });

  test("PSH on the last segment is kept and ends the group", () => {
    const segs = flow(3, 800);
    segs[2] = tcpPacket({ seq: 1000 + 1600, id: 102, flags: ACK | PSH, payload: bytes(800, 3) });
    const more = flow(2, 800, { seq: 1000 + 2400, id: 103 });
    const c = new TcpCoalescer(true);
    expect(c.coalesce(batchOf([...segs, ...more]))).toBe(2);
    expect(resegment(writesOf(c))).toEqual([...segs, ...more]);
  });

  test("two interleaved flows make two super-packets, each flow in order", () => {
    const a = flow(4, 1000, { sport: 1 });
    const b = flow(4, 1000, { sport: 2, seq: 5 });
    const mixed = a.flatMap((p, i) => [p, b[i]!]);
    const c = new TcpCoalescer(true);
    expect(c.coalesce(batchOf(mixed))).toBe(2);
    expect(resegment(writesOf(c))).toEqual([...a, ...b]);
  });

  test("a merged write stays within 64 KB", () => {
    const segs = flow(100, 1400);
    const c = new TcpCoalescer(true);
    c.coalesce(batchOf(segs));
    const ws = writesOf(c);
    expect(ws.length).toBe(3);
    for (const w of ws) expect(w.length - VNET_HDR_LEN).toBeLessThanOrEqual(65535);
    expect(resegment(ws)).toEqual(segs);
  });
});

describe("what is not merged", () => {
  const cases: [string, (s: Uint8Array[]) => Uint8Array[]][] = [
    ["a gap in sequence numbers", (s) => [s[0]!, tcpPacket({ seq: 3000, id: 101, payload: bytes(1000, 2) })]],
    ["a different ACK", (s) => [s[0]!, tcpPacket({ seq: 2000, id: 101, ack: 1, payload: bytes(1000, 2) })]],
    ["a different window", (s) => [s[0]!, tcpPacket({ seq: 2000, id: 101, window: 9, payload: bytes(1000, 2) })]],
    ["a different TTL", (s) => [s[0]!, tcpPacket({ seq: 2000, id: 101, ttl: 3, payload: bytes(1000, 2) })]],
    ["non-consecutive IPv4 ids", (s) => [s[0]!, tcpPacket({ seq: 2000, id: 150, payload: bytes(1000, 2) })]],
    ["a longer segment after a shorter one", (s) => [tcpPacket({ seq: 1000, id: 100, payload: bytes(500) }), tcpPacket({ seq: 1500, id: 101, payload: bytes(1000) })]],
    ["PSH before the last", (s) => [tcpPacket({ seq: 1000, id: 100, flags: ACK | PSH, payload: bytes(1000) }), s[1]!]],
    ["FIN", (s) => [s[0]!, tcpPacket({ seq: 2000, id: 101, flags: ACK | FIN, payload: bytes(1000, 2) })]],
    ["different options", (s) => [s[0]!, tcpPacket({ seq: 2000, id: 101, options: Uint8Array.from([1, 1, 1, 1]), payload: bytes(1000, 2) })]],
  ];
  for (const [what, make] of cases) {
    test(what, () => {
      const pkts = make(flow(3, 1000));
      const c = new TcpCoalescer(true);
      expect(c.coalesce(batchOf(pkts))).toBe(2);
      expect(c.mergedWrites).toBe(0);
      expect(resegment(writesOf(c))).toEqual(pkts);
    });
  }

  test("a pure ACK between segments keeps its place in its flow", () => {
    const s = flow(4, 1000);
    const ack = tcpPacket({ seq: 3000, id: 102, payload: new Uint8Array(0) });
    const pkts = [s[0]!, s[1]!, ack, s[2]!, s[3]!];
    const c = new TcpCoalescer(true);
    expect(c.coalesce(batchOf(pkts))).toBe(3);
    expect(resegment(writesOf(c))).toEqual(pkts);
  });

  test("a merged write is planned as parts in the batch itself (no copy): head slot whole, then each payload", () => {
    const segs = flow(3, 1000, {}, 400);
    const batch = batchOf(segs);
    const c = new TcpCoalescer(true);
    expect(c.coalesce(batch)).toBe(1);
    expect(c.writeParts(0)).toBe(3);
    const first = c.writeFirstPart(0);
    const parts = [0, 1, 2].map((k) => [c.partOffsets[first + k]!, c.partLengths[first + k]!]);
    expect(parts).toEqual([
      [batch.offset(0) - VNET_HDR_LEN, VNET_HDR_LEN + 1040],
      [batch.offset(1) + 40, 1000],
      [batch.offset(2) + 40, 400],
    ]);
    expect(c.data).toBe(batch.data);
    // Gathered, the parts are exactly the contiguous write (what writev hands the kernel).
    const gathered = new Uint8Array(c.writeLength(0));
    let at = 0;
    for (const [o, n] of parts) {
      gathered.set(batch.data.subarray(o!, o! + n!), at);
      at += n!;
    }
    expect(at).toBe(c.writeLength(0));
    expect(Array.from(gathered)).toEqual(Array.from(writesOf(c)[0]!));
    expect(resegment([gathered])).toEqual(segs);
  });

  test("a lone packet is written from its slot with a zero header in the headroom (no copy)", () => {
    const u = udpPacket({ payload: bytes(100) });
    const batch = batchOf([u]);
    const c = new TcpCoalescer(true);
    expect(c.coalesce(batch)).toBe(1);
    expect(c.writeBuffer(0)).toBe(batch.data);
    expect(c.writeOffset(0)).toBe(batch.offset(0) - VNET_HDR_LEN);
    expect([...writesOf(c)[0]!.subarray(0, VNET_HDR_LEN)]).toEqual(new Array(10).fill(0));
  });

  test("without a vnet header (offload refused) every packet is written as it is", () => {
    const segs = flow(4, 1000);
    const batch = batchOf(segs);
    const c = new TcpCoalescer(false);
    expect(c.coalesce(batch)).toBe(4);
    expect(writesOf(c)).toEqual(segs);
    expect(c.writeOffset(0)).toBe(batch.offset(0));
  });
});

test("property: coalesce then segment gives back every packet, in order per flow, checksums valid", () => {
  const c = new TcpCoalescer(true);
  const flowArb = fc.record({
    v6: fc.boolean(),
    sport: fc.integer({ min: 1, max: 4 }),
    n: fc.integer({ min: 1, max: 12 }),
    mss: fc.integer({ min: 1, max: 1400 }),
    last: fc.integer({ min: 1, max: 1400 }),
    psh: fc.boolean(),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    lost: fc.integer({ min: -1, max: 11 }), // a segment lost upstream: a sequence gap, ids still consecutive
  });
  fc.assert(
    fc.property(fc.array(flowArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 40 }), fc.integer({ min: 0, max: 3 }), (flows, order, udps) => {
      // Distinct flows (ports), each a run of segments; interleave them by `order`, plus a few UDP packets.
      const runs = flows.map((f, k) => {
        const pk = flow(f.n, f.mss, { v6: f.v6, sport: 100 + k, seq: f.seq, id: (f.seq & 0xffff) }, Math.min(f.last, f.mss));
        if (f.psh) pk[pk.length - 1]![(f.v6 ? 40 : 20) + 13] = ACK | PSH; // checksum now stale: fix below
        if (f.lost > 0 && f.lost < pk.length - 1) pk.splice(f.lost, 1);
        return pk.map((p, i) => tcpPacket({ ...reparse(p), id: f.v6 ? undefined : (f.seq + i) & 0xffff }));
      });
      const queues = runs.map((r) => [...r]);
      const input: Uint8Array[] = [];
      let o = 0;
      while (queues.some((q) => q.length)) {
        const live = queues.filter((q) => q.length);
        input.push(live[(order[o++] ?? 0) % live.length]!.shift()!);
        if (udps > 0 && o % 3 === 0) input.push(udpPacket({ payload: bytes(50 + o) }));
      }
      const out = resegment((c.coalesce(batchOf(input)), writesOf(c)));
      expect(out.every(checksumsValid)).toBe(true);
      const key = (p: Uint8Array) => (p[0]! >> 4 === 6 ? p[6] : p[9]) === 6 ? `tcp${(p[(p[0]! >> 4 === 6 ? 40 : 20)]! << 8) | p[(p[0]! >> 4 === 6 ? 41 : 21)]!}` : "udp";
      const perFlow = (ps: Uint8Array[]) => {
        const m = new Map<string, Uint8Array[]>();
        for (const p of ps) m.set(key(p), [...(m.get(key(p)) ?? []), p]);
        return m;
      };
      expect(perFlow(out)).toEqual(perFlow(input));
      expect(c.writeCount).toBeLessThanOrEqual(input.length);
    }),
    { numRuns: 300 },
  );
});

/** The TcpSpec of a packet made by tcpPacket (enough to rebuild it with a fresh checksum). */
function reparse(p: Uint8Array): TcpSpec {
  const v6 = p[0]! >> 4 === 6;
  const t = v6 ? 40 : 20;
  const dv = new DataView(p.buffer, p.byteOffset);
  return {
    v6, sport: dv.getUint16(t), dport: dv.getUint16(t + 2), seq: dv.getUint32(t + 4), ack: dv.getUint32(t + 8), flags: p[t + 13],
    window: dv.getUint16(t + 14), id: v6 ? undefined : dv.getUint16(4), payload: p.slice(t + 20),
  };
}
