import { expect, test } from "bun:test";
import fc from "fast-check";
import { REPLAY_WINDOW_SIZE } from "./constants.ts";
import { ReplayWindow } from "./replay-window.ts";

/** The obvious model: a counter is fresh if never seen and not more than the window behind the newest. */
class ModelWindow {
  seen = new Set<number>();
  last = 0;
  accept(c: number): boolean {
    if (this.seen.has(c) || (c < this.last && this.last - c > REPLAY_WINDOW_SIZE)) return false;
    this.seen.add(c);
    if (c > this.last) this.last = c;
    return true;
  }
}

test("a packet 8128 counters behind the newest still decrypts once, as with wireguard-go and Linux; 8129 behind does not", () => {
  const w = new ReplayWindow();
  const newest = 100_000;
  expect(w.accept(newest)).toBe(true);
  expect(w.check(newest - 8128)).toBe(true);
  expect(w.accept(newest - 8128)).toBe(true);
  expect(w.accept(newest - 8128)).toBe(false);
  expect(w.check(newest - 8129)).toBe(false);
  expect(w.accept(newest - 8129)).toBe(false);
  // Every counter of a fully reordered window of 8128 is taken exactly once.
  const v = new ReplayWindow();
  v.accept(newest);
  for (let c = newest - 1; c >= newest - 8128; c--) expect(v.accept(c)).toBe(true);
  for (let c = newest; c >= newest - 8128; c -= 97) expect(v.accept(c)).toBe(false);
});

test("matches a Set-of-seen-counters model on arbitrary sequences", () => {
  // Counters cluster around a moving point with occasional big jumps, so both in-window
  // duplicates and far-behind counters occur often.
  const step = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: -300, max: 300 }) },
    { weight: 2, arbitrary: fc.integer({ min: -REPLAY_WINDOW_SIZE - 100, max: REPLAY_WINDOW_SIZE + 100 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 1_000_000 }) },
  );
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 600 }), (steps) => {
      const w = new ReplayWindow();
      const m = new ModelWindow();
      let c = 0;
      for (const s of steps) {
        c = Math.max(0, c + s);
        const expected = m.accept(c);
        expect(w.check(c) || !expected).toBe(true); // check never refuses what accept would take
        expect(w.accept(c)).toBe(expected);
        expect(w.check(c)).toBe(false); // and now it is seen
      }
    }),
    { numRuns: 400 },
  );
});

test("exact boundary: the oldest counter in the window is still accepted once", () => {
  const w = new ReplayWindow();
  expect(w.accept(REPLAY_WINDOW_SIZE + 5000)).toBe(true);
  expect(w.accept(5000)).toBe(true);
  expect(w.accept(5000)).toBe(false);
  expect(w.accept(4999)).toBe(false);
});

test("counters past the reject limit are refused", () => {
  const w = new ReplayWindow();
  expect(w.check(2 ** 53)).toBe(false);
  expect(w.accept(2 ** 53)).toBe(false);
  expect(w.accept(2 ** 53 - 2)).toBe(true);
});
