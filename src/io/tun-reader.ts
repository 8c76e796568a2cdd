// Main-thread side of the TUN reader: owns the worker and the ring, and calls `onReadable` when
// packets are waiting after the event loop said it was idle.
import { CTL_STOP, PacketRing } from "./tun-ring.ts";

export class TunReader {
  readonly ring: PacketRing;
  readonly #worker: Worker;
  #stopped = false;

  constructor(fd: number, mtu: number, onReadable: () => void, slots = 1024) {
    this.ring = PacketRing.create({ slots, slotSize: Math.max(mtu, 1280) + 64 });
    this.#worker = new Worker(new URL("./tun-reader.worker.ts", import.meta.url).href);
    this.#worker.onmessage = (ev: MessageEvent<number>) => {
      if (ev.data === 0) onReadable();
    };
    this.#worker.postMessage({ fd, sab: this.ring.sab, layout: this.ring.layout });
  }

  /** Stops the worker (it notices within its poll timeout) and waits for it. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    Atomics.store(this.ring.ctl, CTL_STOP, 1);
    Atomics.notify(this.ring.ctl, 1);
    await Promise.race([
      new Promise<void>((resolve) => this.#worker.addEventListener("message", (ev) => (ev as MessageEvent).data === -1 && resolve())),
      Bun.sleep(500),
    ]);
    this.#worker.terminate();
  }
}
