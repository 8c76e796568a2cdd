// Main-thread side of the TUN reader: owns the worker and the ring, and calls `onReadable` when
// packets are waiting after the event loop said it was idle. Read failures in the worker come
// back as `onReadError` (each one, with its errno; the worker backs off between them), the last
// one marked `lost` when the device is gone for good — the event loop makes that fatal.
import { errnoName } from "./errno.ts";
import { CTL_STOP, PacketRing, type RingLayout } from "./tun-ring.ts";

/** One failed read() in the worker. `lost`: the worker gave up on the device and stopped reading. */
export interface TunReadFailure {
  kind: "read_error";
  errno: number;
  /** Failures in a row without a successful read. */
  consecutive: number;
  lost: boolean;
}

/** When persistent failure means the device is lost, even if its errno does not say so. */
export interface LostAfter {
  failures: number;
  spanMs: number;
}

/**
 * ~5 s of nothing but failures (with the worker's backoff, about 50 reads). wireguard-go closes
 * the device on the first read error it does not know to be transient (RoutineReadFromTUN); a
 * short storm is tolerated here, a persistent one is not.
 */
export const DEFAULT_LOST_AFTER: LostAfter = { failures: 50, spanMs: 5000 };

export interface TunWorkerInit {
  fd: number;
  sab: SharedArrayBuffer;
  layout: RingLayout;
  lostAfter: LostAfter;
}

export interface TunReaderOptions {
  onReadable: () => void;
  onReadError?: (failure: TunReadFailure) => void;
  slots?: number;
  lostAfter?: LostAfter;
  /** The device was opened with offloads (TunDevice.vnetHeader): reads are a vnet header + up to 64 KB. */
  vnetHeader?: boolean;
}

/** Bytes one read from an offload TUN can return: a virtio_net_hdr (10 B) + an IP packet of up to 64 KB. */
export const OFFLOAD_READ_SIZE = 10 + 65535;

/**
 * Ring layout for a reader: MTU-sized slots in plain mode; in offload mode each slot holds a whole
 * super-packet, so fewer of them (128 × 64 KB ≈ 8 MB of SharedArrayBuffer instead of 1024 × 64 KB).
 */
export function readerLayout(mtu: number, opts: { slots?: number; vnetHeader?: boolean }): RingLayout {
  if (opts.vnetHeader) return { slots: opts.slots ?? 128, slotSize: (OFFLOAD_READ_SIZE + 6 + 15) & ~15, lead: 6 };
  return { slots: opts.slots ?? 1024, slotSize: Math.max(mtu, 1280) + 64 };
}

export class TunReader {
  readonly ring: PacketRing;
  readonly #worker: Worker;
  #stopped = false;
  /** Failed reads since start (EAGAIN is not a failure). */
  readErrors = 0;

  constructor(fd: number, mtu: number, opts: TunReaderOptions) {
    this.ring = PacketRing.create(readerLayout(mtu, opts));
    this.#worker = new Worker(new URL("./tun-reader.worker.ts", import.meta.url).href);
    this.#worker.onmessage = (ev: MessageEvent<number | TunReadFailure>) => {
      if (ev.data === 0) opts.onReadable();
      else if (typeof ev.data === "object" && ev.data.kind === "read_error") {
        this.readErrors++;
        opts.onReadError?.(ev.data);
      }
    };
    const init: TunWorkerInit = { fd, sab: this.ring.sab, layout: this.ring.layout, lostAfter: opts.lostAfter ?? DEFAULT_LOST_AFTER };
    this.#worker.postMessage(init);
  }

  /** Stops the worker (it notices within its poll timeout) and waits for it. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    Atomics.store(this.ring.ctl, CTL_STOP, 1);
    Atomics.notify(this.ring.ctl, 1);
    Atomics.notify(this.ring.ctl, CTL_STOP); // a worker backing off after an error
    await Promise.race([
      new Promise<void>((resolve) => this.#worker.addEventListener("message", (ev) => (ev as MessageEvent).data === -1 && resolve())),
      Bun.sleep(500),
    ]);
    this.#worker.terminate();
  }
}

/** "reading the TUN fails with EBADFD (3 in a row)": the error a lost device is reported with. */
export function readFailureMessage(f: TunReadFailure): string {
  return `reading the TUN fails with ${errnoName(f.errno)} (${f.consecutive} in a row)`;
}
