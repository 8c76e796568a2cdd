import { expect, test } from "bun:test";
import fc from "fast-check";
import { parseCidr, parseIp } from "../ip/address.ts";
import { AllowedIps } from "./allowed-ips.ts";

test("longest prefix wins, per family", () => {
  const t = new AllowedIps<string>();
  t.insert(parseCidr("0.0.0.0/0"), "default");
  t.insert(parseCidr("10.0.0.0/8"), "ten");
  t.insert(parseCidr("10.1.0.0/16"), "ten-one");
  t.insert(parseCidr("10.1.2.3/32"), "host");
  t.insert(parseCidr("fd00::/8"), "ula");
  expect(t.lookup(parseIp("10.1.2.3")!)).toBe("host");
  expect(t.lookup(parseIp("10.1.2.4")!)).toBe("ten-one");
  expect(t.lookup(parseIp("10.2.0.1")!)).toBe("ten");
  expect(t.lookup(parseIp("192.0.2.1")!)).toBe("default");
  expect(t.lookup(parseIp("fd12::1")!)).toBe("ula");
  expect(t.lookup(parseIp("2001:db8::1")!)).toBeUndefined();
  t.removeValue("ten-one");
  expect(t.lookup(parseIp("10.1.2.4")!)).toBe("ten");
});

test("lookup reads addresses in place inside a packet", () => {
  const t = new AllowedIps<number>();
  t.insert(parseCidr("10.9.0.0/24"), 7);
  const packet = new Uint8Array(20);
  packet.set([10, 9, 0, 5], 16);
  expect(t.lookup(packet, 16, 4)).toBe(7);
});

test("agrees with a linear scan of the longest matching prefix", () => {
  const prefixes = fc.array(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })), { maxLength: 30 });
  fc.assert(fc.property(prefixes, fc.array(fc.ipV4(), { maxLength: 30 }), (ps, probes) => {
    const t = new AllowedIps<number>();
    const list = ps.map(([a, p], i) => ({ c: parseCidr(`${a}/${p}`), i }));
    for (const { c, i } of list) t.insert(c, i);
    for (const probe of probes) {
      const addr = parseIp(probe)!;
      const n = (b: Uint8Array) => ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      let best: { len: number; i: number } | undefined;
      for (const { c, i } of list) {
        const mask = c.prefix === 0 ? 0 : (~0 << (32 - c.prefix)) >>> 0;
        if (((n(addr) & mask) >>> 0) === n(c.bytes) && (!best || c.prefix >= best.len)) best = { len: c.prefix, i };
      }
      expect(t.lookup(addr)).toBe(best?.i);
    }
  }), { numRuns: 300 });
});
