import { expect, test } from "bun:test";
import { changeSummary } from "./audit.ts";

test("an update is summarised as the fields that changed, ids and timestamps left out", () => {
  const before = JSON.stringify({ id: "p1", name: "laptop", enabled: true, allowedIps: "10.0.0.2/32", updatedAt: 1 });
  const after = JSON.stringify({ id: "p1", name: "laptop", enabled: false, allowedIps: "10.0.0.3/32", updatedAt: 2 });
  expect(changeSummary(before, after)).toBe("allowedIps: 10.0.0.2/32 → 10.0.0.3/32; enabled: true → false");
});

test("a creation names the fields an operator looks for first, long values cut, the rest counted", () => {
  const after = JSON.stringify({ id: "p1", publicKey: "k".repeat(44), persistentKeepalive: 0, endpoint: null, name: "laptop", allowedIps: "10.0.0.2/32", createdAt: 5 });
  expect(changeSummary(null, after)).toBe(`set name=laptop; allowedIps=10.0.0.2/32; endpoint=null; +2 more`);
  expect(changeSummary(JSON.stringify({ authorized: "k".repeat(44) }), null)).toBe(`removed authorized=${"k".repeat(31)}…`);
});

test("values that are not objects still read as before → after", () => {
  expect(changeSummary('"a"', '"b"')).toBe("a → b");
  expect(changeSummary(null, null)).toBe("");
});
