import { expect, test } from "bun:test";
import { CoDel } from "./codel.ts";

/** Feeds one packet per `stepMs` for `forMs`, each having waited `sojourn(t)`; returns the times of the drops. */
function run(codel: CoDel, from: number, forMs: number, stepMs: number, sojourn: (t: number) => number): number[] {
  const drops: number[] = [];
  for (let t = from; t < from + forMs; t += stepMs) if (codel.shouldDrop(sojourn(t), t)) drops.push(t);
  return drops;
}

test("waits below the target never drop, however long the queue stands", () => {
  const c = new CoDel();
  expect(run(c, 1000, 10_000, 1, () => 4.9)).toEqual([]);
  expect(c.dropped).toBe(0);
});

test("a burst that drains within one interval loses nothing", () => {
  const c = new CoDel();
  // 80 ms above target (up to 60 ms of wait), then back below: shorter than the 100 ms interval.
  expect(run(c, 1000, 80, 1, (t) => 60 - (t - 1000) * 0.5)).toEqual([]);
  expect(run(c, 1080, 1000, 1, () => 1)).toEqual([]);
});

test("a standing queue: the first drop one interval after the wait went above target, then interval/√count apart", () => {
  const c = new CoDel();
  const drops = run(c, 1000, 400, 1, () => 20);
  // Above target from t=1000, so dropping may start at 1100; the next drops come 100/√1, 100/√2,
  // 100/√3, 100/√4 ms after the one before (1200, 1270.7, 1328.4, 1378.4: the first packet at or after).
  expect(drops).toEqual([1100, 1200, 1271, 1329, 1379]);
  expect(c.dropped).toBe(5);
  expect(c.dropping).toBe(true);
});

test("it stops dropping as soon as a packet waits less than target, and a quick return resumes at the rate that worked", () => {
  const c = new CoDel();
  run(c, 1000, 400, 1, () => 20); // 5 drops in that dropping state
  expect(run(c, 1400, 50, 1, () => 1)).toEqual([]);
  expect(c.dropping).toBe(false);
  // Back above target within 16 intervals: after the first interval it drops, and resumes at
  // count 5 − 1 = 4, so the next drop comes 100/√4 = 50 ms later rather than 100 ms.
  const again = run(c, 1450, 200, 1, () => 20);
  expect(again.slice(0, 2)).toEqual([1550, 1600]);
});

test("a long pause forgets the old rate: the next standing queue starts at one drop per interval again", () => {
  const c = new CoDel();
  run(c, 1000, 400, 1, () => 20);
  run(c, 1400, 5000, 1, () => 1);
  const again = run(c, 6400, 300, 1, () => 20);
  expect(again.slice(0, 2)).toEqual([6500, 6600]);
});

test("target and interval are settable", () => {
  const c = new CoDel({ targetMs: 1, intervalMs: 10 });
  expect(run(c, 0, 30, 1, () => 2)).toEqual([10, 20, 28]);
});
