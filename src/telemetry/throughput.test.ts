import { expect, test } from "bun:test";
import { ThroughputRing } from "./throughput.ts";

const c = (cid: number, rxBytes: number, txBytes: number, handshakesCompleted = 0, handshakesFailed = 0) => ({ cid, rxBytes, txBytes, handshakesCompleted, handshakesFailed });

test("the ring reports bytes per second and handshakes per interval, summed over connections", () => {
  const r = new ThroughputRing(0);
  r.sample(5000, [c(1, 5000, 1000, 1), c(2, 5000, 0)]);
  r.sample(10_000, [c(1, 15_000, 1000, 2, 1), c(2, 5000, 500)]);
  expect(r.points()).toEqual([
    { ts: 5000, interval_s: 5, rx_bytes_per_s: 2000, tx_bytes_per_s: 200, handshakes: 1, handshake_failures: 0 },
    { ts: 10_000, interval_s: 5, rx_bytes_per_s: 2000, tx_bytes_per_s: 100, handshakes: 1, handshake_failures: 1 },
  ]);
});

test("a removed or re-added peer never makes the gateway's rate negative", () => {
  const r = new ThroughputRing(0);
  r.sample(1000, [c(1, 1000, 0), c(2, 9000, 0)]);
  r.sample(2000, [c(1, 2000, 0)]); // peer 2 removed: its 9000 bytes leave the sum
  r.sample(3000, [c(1, 3000, 0), c(2, 500, 0)]); // peer 2 back, counting from zero
  expect(r.points().map((p) => p.rx_bytes_per_s)).toEqual([10_000, 1000, 1500]);
});

test("the ring keeps only its capacity, oldest dropped first", () => {
  const r = new ThroughputRing(0, 3);
  for (let i = 1; i <= 5; i++) r.sample(i * 1000, []);
  expect(r.points().map((p) => p.ts)).toEqual([3000, 4000, 5000]);
});
