import { expect, test } from "bun:test";
import { Throttle } from "./throttle.ts";

test("a repeating report passes `burst` times per window; the next window's first one says how many were held back", () => {
  const t = new Throttle({ windowMs: 10_000, burst: 3 });
  const passed = Array.from({ length: 1000 }, (_, i) => t.admit("tun_read:5", i)).filter((s) => s !== undefined);
  expect(passed).toEqual([0, 0, 0]);
  expect(t.admit("tun_read:5", 10_000)).toBe(997);
  expect(t.suppressedTotal).toBe(997);
});

test("keys are limited independently, and the number of keys remembered is bounded", () => {
  const t = new Throttle({ windowMs: 1000, burst: 1, maxKeys: 100 });
  for (let i = 0; i < 100_000; i++) expect(t.admit(`key${i}`, 0)).toBe(0);
  expect(t.keys).toBe(100);
  expect(t.admit("key99999", 0)).toBeUndefined();
});
