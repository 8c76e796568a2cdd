import { expect, test } from "bun:test";
import { realtimeMs } from "./udp-sys.ts";

test("realtimeMs reads CLOCK_REALTIME below the millisecond, and stays sound while the collector runs", () => {
  // The receive queue's CoDel compares it with the kernel's SO_TIMESTAMPNS (also CLOCK_REALTIME)
  // once per drain, so it runs all the time. Its first version handed clock_gettime a pointer into
  // a small typed array's storage, which went stale after a collection: the process aborted with
  // "GC scan found object in bad state". Millions of calls with collections and small typed arrays
  // churned between them brought that out every time.
  let sum = 0;
  let fractions = 0;
  let worst = 0;
  for (let i = 0; i < 5_000_000; i++) {
    const t = realtimeMs();
    sum += t;
    if (t % 1 !== 0) fractions++;
    if (i % 100_000 === 0) {
      worst = Math.max(worst, Math.abs(t - Date.now()));
      Bun.gc(true);
      const churn = new Array(1000).fill(0).map(() => new Int32Array(4));
      sum += churn.length;
    }
  }
  expect(sum).toBeGreaterThan(0);
  expect(worst).toBeLessThan(1000);
  expect(fractions).toBeGreaterThan(4_500_000); // nanoseconds kept, not Date.now()'s whole milliseconds
});
