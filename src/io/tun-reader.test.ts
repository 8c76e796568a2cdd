import { expect, test } from "bun:test";
import { mkdtempSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { readerLayout, TunReader, type TunReadFailure } from "./tun-reader.ts";

/** Waits until `n` failures were reported (the test's own timeout bounds it). */
async function failures(n: number, start: (onReadError: (f: TunReadFailure) => void) => TunReader): Promise<{ seen: TunReadFailure[]; reader: TunReader }> {
  const seen: TunReadFailure[] = [];
  let done!: () => void;
  const enough = new Promise<void>((r) => (done = r));
  const reader = start((f) => {
    seen.push(f);
    if (seen.length >= n) done();
  });
  await enough;
  return { seen, reader };
}

test("a device that is gone (EBADF) is reported once as lost, and reading stops", async () => {
  // Far above any fd this process has open: read() fails with EBADF, as on a closed device.
  const { seen, reader } = await failures(1, (onReadError) => new TunReader(1_000_000, 1420, { onReadable: () => undefined, onReadError }));
  await reader.stop();
  expect(seen).toEqual([{ kind: "read_error", errno: 9, consecutive: 1, lost: true }]);
  expect(reader.readErrors).toBe(1);
});

test("read errors that persist are each reported, then the device counts as lost", async () => {
  // A directory: every read() fails with EISDIR, an errno that does not by itself mean "gone".
  const fd = openSync(mkdtempSync(`${tmpdir()}/glassgate-tunreader-`), "r");
  try {
    const { seen, reader } = await failures(3, (onReadError) =>
      new TunReader(fd, 1420, { onReadable: () => undefined, onReadError, lostAfter: { failures: 3, spanMs: 0 } }));
    await reader.stop();
    expect(seen.map((f) => [f.errno, f.consecutive, f.lost])).toEqual([[21, 1, false], [21, 2, false], [21, 3, true]]);
  } finally {
    closeSync(fd);
  }
});

test("an offload reader's slots hold a vnet header and a 64 KB super-packet; plain ones stay MTU-sized", () => {
  expect(readerLayout(1420, {})).toEqual({ slots: 1024, slotSize: 1484 });
  const off = readerLayout(1420, { vnetHeader: true });
  expect(off.slotSize - (off.lead ?? 0)).toBeGreaterThanOrEqual(10 + 65535);
  expect(((off.lead ?? 0) + 10) % 4).toBe(0); // the packet behind the header starts word-aligned
  expect(off.slots * off.slotSize).toBeLessThan(16 * 1024 * 1024);
});
