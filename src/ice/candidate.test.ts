import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { candidatePriority, formatCandidate, localCandidate, parseCandidate, type Candidate } from "./candidate.ts";

function parsed(text: string): Candidate {
  const r = parseCandidate(text);
  if (!r.ok) throw new Error(r.reason);
  return r.candidate;
}

describe("candidate attributes", () => {
  test("the forms str0m and browsers send parse to the same candidate", () => {
    const a = parsed("candidate:7 1 UDP 2130706431 10.0.0.1 52625 typ host");
    const b = parsed("a=candidate:7 1 udp 2130706431 10.0.0.1 52625 typ host generation 0 network-id 1");
    expect(a).toEqual(b);
    expect(a).toMatchObject({ foundation: "7", priority: 2130706431, address: "10.0.0.1", port: 52625, type: "host" });
  });

  test("srflx and relay keep their related address", () => {
    const c = parsed("candidate:2 1 udp 1694498815 203.0.113.7 40000 typ srflx raddr 192.168.1.2 rport 52625");
    expect(c).toMatchObject({ type: "srflx", relatedAddress: "192.168.1.2", relatedPort: 52625 });
    const v6 = parsed("candidate:3 1 udp 16777215 2001:DB8::0:1 3478 typ relay raddr :: rport 0");
    expect(v6.address).toBe("2001:db8::1");
  });

  test("format and parse are inverses", () => {
    const types = ["host", "srflx", "prflx", "relay"] as const;
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (type, ip, port, pref) => {
        const c = localCandidate(type, ip, port, type === "host" ? undefined : { address: "10.1.2.3", port: 9 }, pref);
        expect(parsed(formatCandidate(c))).toEqual(c);
      }),
    );
  });

  test("faulty candidates are refused with a reason naming the field", () => {
    const cases: [string, RegExp][] = [
      ["candidate:1 1 tcp 2130706431 10.0.0.1 9 typ host tcptype active", /^transport:/],
      ["candidate:1 2 udp 2130706431 10.0.0.1 9 typ host", /^component:/],
      ["candidate:1 1 udp 0 10.0.0.1 9 typ host", /^priority:/],
      ["candidate:1 1 udp 99999999999 10.0.0.1 9 typ host", /^priority:/],
      ["candidate:1 1 udp 2130706431 abcd.local 9 typ host", /^address:.*mDNS/],
      ["candidate:1 1 udp 2130706431 10.0.0.300 9 typ host", /^address:/],
      ["candidate:1 1 udp 2130706431 10.0.0.1 70000 typ host", /^port:/],
      ["candidate:1 1 udp 2130706431 10.0.0.1 0 typ host", /^port:/],
      ["candidate:1 1 udp 2130706431 10.0.0.1 9 type host", /^typ:/],
      ["candidate:1 1 udp 2130706431 10.0.0.1 9 typ bogus", /^type:/],
      ["candidate:1 1 udp 2130706431 10.0.0.1 9 typ srflx raddr x rport 1", /^raddr:/],
      ["candidate:1 1 udp 2130706431 10.0.0.1", /fields/],
      ["candidate:f!o 1 udp 2130706431 10.0.0.1 9 typ host", /^foundation:/],
      ["candidate:" + "1".repeat(600), /characters/],
    ];
    for (const [text, reason] of cases) {
      const r = parseCandidate(text);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
  });

  test("priorities follow RFC 8445: host over prflx over srflx over relay", () => {
    expect(candidatePriority("host", 65535, 1)).toBe(2130706431);
    const order = (["host", "prflx", "srflx", "relay"] as const).map((t) => candidatePriority(t, 0));
    expect([...order].sort((a, b) => b - a)).toEqual(order);
    expect(candidatePriority("relay", 65535)).toBeLessThan(candidatePriority("srflx", 0));
  });
});
