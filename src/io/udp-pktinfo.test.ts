import { expect, test } from "bun:test";
import { LOCAL_WORDS, pktinfoSpace, readLocalAddress, writePktinfo } from "./udp-pktinfo.ts";
import { AF_INET, AF_INET6, CMSG_SPACE_INT, IP_PKTINFO, IPV6_PKTINFO, SOL_IP, SOL_IPV6, SOL_UDP, UDP_GRO } from "./udp-sys.ts";

/** Control messages as the kernel lays them out: each header (len u64, level, type), data, padded to 8. */
function control(...msgs: { level: number; type: number; data: number[] }[]): Uint8Array {
  const out = new Uint8Array(128);
  const v = new DataView(out.buffer);
  let o = 0;
  for (const m of msgs) {
    v.setUint32(o, 16 + m.data.length, true);
    v.setInt32(o + 8, m.level, true);
    v.setInt32(o + 12, m.type, true);
    out.set(m.data, o + 16);
    o += (16 + m.data.length + 7) & ~7;
  }
  return out.subarray(0, o);
}

const le32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
const gro = { level: SOL_UDP, type: UDP_GRO, data: le32(1400) };

function parse(ctl: Uint8Array): { family: number; ifindex: number; address: number[] } {
  const buf = new Uint8Array(256);
  buf.set(ctl, 8);
  const out = new Int32Array(LOCAL_WORDS);
  const family = readLocalAddress(new Int32Array(buf.buffer), 8, ctl.length, out, 0);
  expect(out[0]).toBe(family);
  const bytes = new Uint8Array(out.buffer, 8, family === AF_INET ? 4 : 16);
  return { family, ifindex: out[1]!, address: [...bytes] };
}

test("the IPv4 arrival address is ipi_spec_dst of IP_PKTINFO, found after the GRO cmsg", () => {
  const info = [...le32(3), 10, 0, 0, 7, 10, 0, 0, 255]; // ifindex 3, spec_dst 10.0.0.7, ipi_addr (a broadcast) 10.0.0.255
  expect(parse(control(gro, { level: SOL_IP, type: IP_PKTINFO, data: info }))).toEqual({ family: AF_INET, ifindex: 3, address: [10, 0, 0, 7] });
});

test("the IPv6 arrival address and interface come from IPV6_PKTINFO", () => {
  const addr = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42];
  expect(parse(control({ level: SOL_IPV6, type: IPV6_PKTINFO, data: [...addr, ...le32(5)] }))).toEqual({ family: AF_INET6, ifindex: 5, address: addr });
});

test("no pktinfo, a cut one or an unrelated cmsg of the same type number give no address", () => {
  expect(parse(control(gro)).family).toBe(0);
  expect(parse(new Uint8Array(0)).family).toBe(0);
  const cut = control(gro, { level: SOL_IP, type: IP_PKTINFO, data: [...le32(3), 10, 0, 0, 7, 10, 0, 0, 7] }).subarray(0, CMSG_SPACE_INT + 20);
  expect(parse(cut).family).toBe(0);
  expect(parse(control({ level: SOL_UDP, type: IP_PKTINFO, data: [...le32(3), 10, 0, 0, 7, 10, 0, 0, 7] })).family).toBe(0);
});

test("a send names the recorded address in the cmsg the kernel reads back, IPv4 without pinning the interface", () => {
  const rec = new Int32Array(LOCAL_WORDS);
  const recBytes = new Uint8Array(rec.buffer);
  rec[0] = AF_INET;
  rec[1] = 3;
  recBytes.set([192, 0, 2, 10], 8);
  const ctl = new Uint32Array(16);
  const space = writePktinfo(ctl, 8, rec, 0);
  expect(space).toBe(pktinfoSpace(AF_INET));
  const bytes = new Uint8Array(ctl.buffer, 8, space);
  expect([...bytes]).toEqual([28, 0, 0, 0, 0, 0, 0, 0, ...le32(SOL_IP), ...le32(IP_PKTINFO), 0, 0, 0, 0, 192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  expect(parse(bytes)).toEqual({ family: AF_INET, ifindex: 0, address: [192, 0, 2, 10] });
});

test("an IPv6 send keeps the interface only for a link-local source", () => {
  const rec = new Int32Array(LOCAL_WORDS);
  const recBytes = new Uint8Array(rec.buffer);
  rec[0] = AF_INET6;
  rec[1] = 9;
  const global = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const linkLocal = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const ctl = new Uint32Array(16);
  recBytes.set(global, 8);
  expect(writePktinfo(ctl, 0, rec, 0)).toBe(40);
  expect(parse(new Uint8Array(ctl.buffer, 0, 40))).toEqual({ family: AF_INET6, ifindex: 0, address: global });
  recBytes.set(linkLocal, 8);
  writePktinfo(ctl, 0, rec, 0);
  expect(parse(new Uint8Array(ctl.buffer, 0, 40))).toEqual({ family: AF_INET6, ifindex: 9, address: linkLocal });
  rec[0] = 0;
  expect(writePktinfo(ctl, 0, rec, 0)).toBe(0);
});
