import { describe, expect, test } from "bun:test";
import { formatServedBy, isGid, parseServedBy, servesPeer } from "./served-by.ts";

const A = "11111111-1111-4111-8111-111111111111";
const B = "22222222-2222-4222-8222-222222222222";

describe("served by", () => {
  test("a peer nobody chose gateways for is served by every gateway", () => {
    expect(servesPeer({ servedBy: null }, A)).toBe(true);
    expect(servesPeer({ servedBy: "" }, A)).toBe(true);
    expect(servesPeer({ servedBy: " , " }, B)).toBe(true);
  });

  test("a peer with a list is served only by the gateways on it", () => {
    expect(servesPeer({ servedBy: A }, A)).toBe(true);
    expect(servesPeer({ servedBy: A }, B)).toBe(false);
    expect(servesPeer({ servedBy: `${A}, ${B.toUpperCase()}` }, B)).toBe(true);
  });

  test("a hand-edited entry that is not a gid serves no gateway rather than all", () => {
    expect(parseServedBy("not-a-gid")).toEqual([]);
    expect(servesPeer({ servedBy: "not-a-gid" }, A)).toBe(false);
  });

  test("format and parse round-trip, without duplicates; an empty choice is every gateway", () => {
    expect(formatServedBy([A, B, A.toUpperCase()])).toBe(`${A},${B}`);
    expect(parseServedBy(formatServedBy([A, B]))).toEqual([A, B]);
    expect(formatServedBy([])).toBeNull();
    expect(formatServedBy(null)).toBeNull();
    expect(isGid(A)).toBe(true);
    expect(isGid("x")).toBe(false);
  });
});
