import { expect, test } from "bun:test";
import fc from "fast-check";
import { formatIp, parseIp } from "../ip/address.ts";
import { buildAnswer, buildQuery, parseQuery, parseResponse, TYPE_A, type DnsQuestion } from "./dns-message.ts";

const q = buildQuery(0xbeef, "App.Example.org", TYPE_A);
const good = buildAnswer(q, parseQuery(q) as DnsQuestion, [parseIp("192.0.2.1")!, parseIp("192.0.2.2")!], 30);

test("an upstream response is read: id, question, addresses", () => {
  const r = parseResponse(good);
  expect(typeof r === "string" ? r : { ...r, addresses: r.addresses.map(formatIp) }).toEqual({
    id: 0xbeef, rcode: 0, question: { name: "app.example.org", qtype: TYPE_A, qclass: 1 }, addresses: ["192.0.2.1", "192.0.2.2"],
  });
  expect(parseResponse(q)).toBe("is a query, not a response");
});

test("a hostile upstream's bytes give an error string, never an exception or a read past the end", () => {
  for (let n = 0; n < good.length; n++) expect(typeof parseResponse(good.subarray(0, n))).toBe("string");
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(good.length), (noise, at) => {
    const m = good.slice();
    m.set(noise.subarray(0, m.length - at), at);
    const r = parseResponse(m);
    if (typeof r !== "string") for (const a of r.addresses) expect([4, 16]).toContain(a.length);
    parseResponse(noise);
  }), { numRuns: 2000 });
});

test("a response whose question hides a dot inside a label cannot pass for the question asked", () => {
  // "app.example" + "org" would read as app.example.org, the name our query asked for.
  const forged = good.slice();
  forged[12] = 11; // first label length: "app" (3) + "." + "example" (7) = 11 bytes
  forged[16] = 0x2e; // the length byte of "example" becomes a dot inside the first label
  expect(parseResponse(forged)).toBe("label contains a dot");
  expect(parseQuery(forged.map((b, i) => (i === 2 ? b & 0x7f : b)))).toBe("label contains a dot");
});
