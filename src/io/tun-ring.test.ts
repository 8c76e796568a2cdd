import { expect, test } from "bun:test";
import { CTL_PRODUCER_WAITING, CTL_READ, PacketRing, waitForRoom, wakeProducer } from "./tun-ring.ts";

test("waitForRoom returns at once when a slot is free, and leaves no waiting flag behind", () => {
  const ring = PacketRing.create({ slots: 4, slotSize: 64 });
  waitForRoom(ring.ctl, CTL_READ, CTL_PRODUCER_WAITING, 3, 4, 60_000); // 3 in use of 4: room
  expect(Atomics.load(ring.ctl, CTL_PRODUCER_WAITING)).toBe(0);
});

test("a producer waiting on a full ring is woken by the consumer's release, not by its timeout", async () => {
  const ring = PacketRing.create({ slots: 4, slotSize: 64 });
  // The producer has written 4 (full) and waits with a timeout far beyond the test's own: only a
  // notify can let it go on before the test fails.
  const src = `import { waitForRoom } from ${JSON.stringify(new URL("./tun-ring.ts", import.meta.url).pathname)};
    self.onmessage = (ev) => { const ctl = new Int32Array(ev.data, 0, 8); postMessage("waiting");
      waitForRoom(ctl, ${CTL_READ}, ${CTL_PRODUCER_WAITING}, 4, 4, 600000); postMessage("woken"); };`;
  const worker = new Worker(URL.createObjectURL(new Blob([src], { type: "application/typescript" })));
  const seen: string[] = [];
  const woken = new Promise<void>((resolve) => {
    worker.onmessage = (ev) => {
      seen.push(ev.data);
      if (ev.data === "woken") resolve();
    };
  });
  worker.postMessage(ring.sab);
  while (Atomics.load(ring.ctl, CTL_PRODUCER_WAITING) === 0) await Bun.sleep(1);
  Atomics.store(ring.ctl, CTL_READ, 1); // the consumer frees one slot…
  wakeProducer(ring.ctl, CTL_READ, CTL_PRODUCER_WAITING); // …and, seeing the flag, notifies
  await woken;
  worker.terminate();
  expect(seen).toEqual(["waiting", "woken"]);
}, 30_000);
