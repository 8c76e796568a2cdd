import { expect, test } from "bun:test";
import { pairPriority } from "./agent-pairs.ts";
import { pairPriorityFor, roleVerdict } from "./agent-role.ts";

const MINE = 1000n;

test("RFC 8445 §7.3.1.1: a controlling agent gives way only to a larger ICE-CONTROLLING tie-breaker", () => {
  expect(roleVerdict("controlling", false, MINE, { iceControlled: 5n })).toBe("ok");
  expect(roleVerdict("controlling", false, MINE, {})).toBe("ok");
  expect(roleVerdict("controlling", false, MINE, { iceControlling: 999n })).toBe("conflict");
  expect(roleVerdict("controlling", false, MINE, { iceControlling: MINE })).toBe("conflict"); // ties: we keep it
  expect(roleVerdict("controlling", false, MINE, { iceControlling: 1001n })).toBe("switch");
});

test("a controlled agent that may switch takes control from a smaller ICE-CONTROLLED tie-breaker", () => {
  expect(roleVerdict("controlled", false, MINE, { iceControlling: 5n })).toBe("ok");
  expect(roleVerdict("controlled", false, MINE, {})).toBe("ok");
  expect(roleVerdict("controlled", false, MINE, { iceControlled: 999n })).toBe("switch");
  expect(roleVerdict("controlled", false, MINE, { iceControlled: 1001n })).toBe("conflict");
});

test("the gateway (fixed controlled) answers anything but ICE-CONTROLLING with a conflict, whatever the tie-breakers", () => {
  expect(roleVerdict("controlled", true, MINE, { iceControlling: 5n })).toBe("ok");
  expect(roleVerdict("controlled", true, MINE, {})).toBe("conflict");
  expect(roleVerdict("controlled", true, MINE, { iceControlled: 1n })).toBe("conflict");
  expect(roleVerdict("controlled", true, 0n, { iceControlled: 2n ** 64n - 1n })).toBe("conflict");
});

test("both sides compute one pair priority: G is always the controlling side's candidate", () => {
  const client = 2130706431; // the controlling side's candidate priority
  const gateway = 1694498815;
  expect(pairPriorityFor("controlling", client, gateway)).toBe(pairPriority(client, gateway));
  expect(pairPriorityFor("controlled", gateway, client)).toBe(pairPriority(client, gateway));
});
