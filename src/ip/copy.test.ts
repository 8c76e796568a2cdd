import { expect, test } from "bun:test";
import fc from "fast-check";
import { copyAndSum16, copyBytes } from "./copy.ts";

/** The model: byte by byte, big-endian pairs. */
function model(src: Uint8Array, s: number, n: number, acc: number): { bytes: number[]; sum: number } {
  let sum = acc;
  for (let i = 0; i < n; i += 2) sum += (src[s + i]! << 8) | (i + 1 < n ? src[s + i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return { bytes: [...src.subarray(s, s + n)], sum };
}

const arb = fc.record({
  data: fc.uint8Array({ minLength: 0, maxLength: 3000 }),
  srcBase: fc.integer({ min: 0, max: 7 }), // views at any byte offset of their buffer
  dstBase: fc.integer({ min: 0, max: 7 }),
  s: fc.integer({ min: 0, max: 9 }),
  d: fc.integer({ min: 0, max: 9 }),
  acc: fc.integer({ min: 0, max: 0xffff }),
  shared: fc.boolean(),
});

test("property: word-wise copy and sum agree with a byte-by-byte model at every alignment", () => {
  fc.assert(
    fc.property(arb, ({ data, srcBase, dstBase, s, d, acc, shared }) => {
      const mk = (len: number, base: number) => new Uint8Array(shared ? new SharedArrayBuffer(len + base + 16) : new ArrayBuffer(len + base + 16), base, len + 8);
      const src = mk(data.length + s, srcBase);
      src.set(data, s);
      const dst1 = mk(data.length + d, dstBase);
      const dst2 = mk(data.length + d, dstBase);
      const m = model(src, s, data.length, acc);
      const sum = copyAndSum16(src, s, dst1, d, data.length, acc);
      copyBytes(src, s, dst2, d, data.length);
      // A ones-complement sum has two zeros (0 and 0xffff) only when everything summed is 0.
      expect(sum === m.sum || (sum % 0xffff === 0 && m.sum % 0xffff === 0)).toBe(true);
      expect([...dst1.subarray(d, d + data.length)]).toEqual(m.bytes);
      expect([...dst2.subarray(d, d + data.length)]).toEqual(m.bytes);
      expect(dst1[d + data.length]).toBe(0); // nothing written past the end
      expect(dst2[d + data.length]).toBe(0);
    }),
    { numRuns: 1000 },
  );
});
