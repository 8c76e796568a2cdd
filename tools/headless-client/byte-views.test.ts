import { describe, expect, test } from "bun:test";
import { ByteViews } from "./byte-views.ts";

describe("exact-length views of the shell's buffers", () => {
  test("a length asked twice gets the same view, so steady traffic allocates nothing", () => {
    const v = new ByteViews(new Uint8Array(2048));
    const a = v.of(1312);
    expect(v.of(1312)).toBe(a);
    expect(v.of(148)).not.toBe(a);
  });

  test("a view is the buffer's first bytes as they are now, not a copy", () => {
    const buf = new Uint8Array(64);
    const v = new ByteViews(buf);
    const view = v.of(3);
    buf.set([7, 8, 9, 10]);
    expect([...view]).toEqual([7, 8, 9]);
    expect([...v.of(3)]).toEqual([7, 8, 9]);
  });

  test("a length past the buffer is an error, not a short view", () => {
    expect(() => new ByteViews(new Uint8Array(16)).of(17)).toThrow(/17 bytes over a 16-byte buffer/);
  });
});
