import { expect, test } from "bun:test";
import fc from "fast-check";
import { formatCidr, formatIp, parseCidr, parseIPv4, parseIPv6, parseIp } from "./address.ts";

test("IPv4 parsing is strict", () => {
  expect(parseIPv4("10.0.0.1")).toEqual(Uint8Array.of(10, 0, 0, 1));
  for (const bad of ["10.0.0", "10.0.0.256", "01.0.0.1", "1.2.3.4.5", "a.b.c.d", ""]) expect(parseIPv4(bad)).toBeUndefined();
});

test("IPv6 parsing handles :: and embedded IPv4", () => {
  expect(formatIp(parseIPv6("fd00::1")!)).toBe("fd00::1");
  expect(formatIp(parseIPv6("::")!)).toBe("::");
  expect(formatIp(parseIPv6("::ffff:10.0.0.1")!)).toBe("::ffff:a00:1");
  expect(formatIp(parseIPv6("2001:db8:0:0:1:0:0:1")!)).toBe("2001:db8::1:0:0:1");
  for (const bad of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", ":"]) expect(parseIPv6(bad)).toBeUndefined();
});

test("format ∘ parse is the identity on addresses", () => {
  fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
    const b = parseIp(text);
    expect(b).toBeDefined();
    expect(formatIp(parseIp(formatIp(b!))!)).toBe(formatIp(b!));
  }), { numRuns: 1000 });
});

test("CIDR prefixes clear host bits and name bad input", () => {
  expect(formatCidr(parseCidr("10.1.2.3/8"))).toBe("10.0.0.0/8");
  expect(formatCidr(parseCidr("fd00::1/64"))).toBe("fd00::/64");
  expect(formatCidr(parseCidr("10.1.2.3"))).toBe("10.1.2.3/32");
  expect(formatCidr(parseCidr("10.1.2.3/24", { clearHostBits: false }))).toBe("10.1.2.3/24");
  expect(() => parseCidr("10.0.0.0/33")).toThrow('"10.0.0.0/33" has prefix length "33" (IPv4: 0–32)');
  expect(() => parseCidr("nope/3")).toThrow('"nope/3" is not an IP address or CIDR prefix');
});
