import { expect, test } from "bun:test";
import { ConnectionIdAllocator, SlotCounter, connectionIdOf, formatIndex, lfsrStep, makeIndex, sessionField, slotOf } from "./session-index.ts";

test("an index splits into 24-bit connection id and 8-bit slot and prints (c|s)", () => {
  const idx = makeIndex(3428714, 1);
  expect(idx).toBe((3428714 << 8) + 1);
  expect(connectionIdOf(idx)).toBe(3428714);
  expect(slotOf(idx)).toBe(1);
  expect(formatIndex(idx)).toBe("(3428714|1)");
  expect(sessionField(idx)).toBe("3428714|1");
  expect(makeIndex(0xffffff, 0xff)).toBe(0xffffffff); // unsigned, fits the 32-bit wire field
});

test("slots go round-robin 0..255 and wrap", () => {
  const s = new SlotCounter(42);
  const slots = Array.from({ length: 258 }, () => slotOf(s.next()));
  expect(slots.slice(0, 3)).toEqual([0, 1, 2]);
  expect(slots.slice(255)).toEqual([255, 0, 1]);
  expect(connectionIdOf(s.next())).toBe(42);
});

test("the LFSR visits every non-zero 24-bit value exactly once per period", () => {
  let s = 1;
  let period = 0;
  do {
    s = lfsrStep(s);
    period++;
  } while (s !== 1 && period <= 1 << 24);
  expect(period).toBe((1 << 24) - 1);
});

test("connection ids are unique among live connections and reusable once released", () => {
  const alloc = new ConnectionIdAllocator(() => Uint8Array.of(1, 2, 3, 4, 5, 6));
  const ids = new Set(Array.from({ length: 10_000 }, () => alloc.allocate()));
  expect(ids.size).toBe(10_000);
  for (const id of ids) expect(id).toBeLessThan(1 << 24);
  expect(alloc.live).toBe(10_000);
  alloc.release([...ids][0]!);
  expect(alloc.live).toBe(9_999);
});
