import { describe, expect, test } from "bun:test";
import { buildIcmpEcho } from "../ip/build.ts";
import { LINKTYPE_RAW, pcapFile, pcapHeader, pcapRecord } from "./pcap.ts";

describe("pcap writer", () => {
  test("the global header is classic pcap 2.4, little endian, microseconds, LINKTYPE_RAW", () => {
    expect([...pcapHeader()]).toEqual([
      0xd4, 0xc3, 0xb2, 0xa1, // magic 0xa1b2c3d4 little endian: microsecond timestamps
      2, 0, 4, 0, // version 2.4
      0, 0, 0, 0, // thiszone
      0, 0, 0, 0, // sigfigs
      0xff, 0xff, 0, 0, // snaplen 65535
      101, 0, 0, 0, // LINKTYPE_RAW
    ]);
    expect(LINKTYPE_RAW).toBe(101);
  });

  test("a record carries seconds, microseconds, both lengths and the packet bytes", () => {
    const packet = buildIcmpEcho({ src: "10.99.0.2", dst: "10.202.0.2", id: 7, seq: 1 });
    const r = pcapRecord(packet, packet.length, 1_764_410_400_123.456);
    const v = new DataView(r.buffer);
    expect(v.getUint32(0, true)).toBe(1_764_410_400);
    expect(v.getUint32(4, true)).toBe(123_456);
    expect(v.getUint32(8, true)).toBe(packet.length);
    expect(v.getUint32(12, true)).toBe(packet.length);
    expect(r.subarray(16)).toEqual(packet);
    // Only `length` bytes of the buffer are the packet (buffers are reused on the data path).
    const big = new Uint8Array(2000);
    big.set(packet);
    expect(pcapRecord(big, packet.length, 0).length).toBe(16 + packet.length);
  });

  test("a packet longer than the snaplen is cut, and orig_len says how long it was", () => {
    const r = pcapRecord(new Uint8Array(300), 300, 0, 100);
    const v = new DataView(r.buffer);
    expect([v.getUint32(8, true), v.getUint32(12, true), r.length]).toEqual([100, 300, 116]);
  });

  test("a file is the header followed by the records in order", () => {
    const a = pcapRecord(new Uint8Array([0x45, 1]), 2, 1000);
    const b = pcapRecord(new Uint8Array([0x45, 2, 3]), 3, 2000);
    const f = pcapFile([a, b]);
    expect(f.length).toBe(24 + 18 + 19);
    expect(f.subarray(24, 42)).toEqual(a);
    expect(f.subarray(42)).toEqual(b);
  });
});
