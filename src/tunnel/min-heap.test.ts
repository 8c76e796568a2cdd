import { expect, test } from "bun:test";
import fc from "fast-check";
import { MinHeap } from "./min-heap.ts";
import { ReadyQueue } from "./ready-queue.ts";

test("the heap yields deadlines in order, whatever order they were pushed in", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 1000 })), (xs) => {
      const h = new MinHeap<number>();
      xs.forEach((x, i) => h.push(x, i));
      const out: number[] = [];
      while (h.size > 0) {
        const at = h.peekAt();
        const i = h.pop()!;
        expect(xs[i]).toBe(at);
        out.push(at);
      }
      expect(out).toEqual([...xs].sort((a, b) => a - b));
      expect(h.peekAt()).toBe(Infinity);
    }),
  );
});

test("a ready queue hands items back in order and empties cleanly", () => {
  const q = new ReadyQueue<number>();
  q.push(1);
  q.push(2);
  expect(q.shift()).toBe(1);
  q.push(3);
  expect([q.shift(), q.shift(), q.shift()]).toEqual([2, 3, undefined]);
  expect(q.length).toBe(0);
});
