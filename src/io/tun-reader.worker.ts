// Worker: reads the TUN fd (poll + non-blocking read via bun:ffi) straight into the shared packet
// ring, so the main thread's event loop never blocks on the device.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { CTL_READ, CTL_SLEEPING, CTL_STOP, CTL_WRITE, PacketRing, type RingLayout } from "./tun-ring.ts";

declare const self: Worker;

const libc = dlopen("libc.so.6", {
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
}).symbols;

const POLLIN = 1;
const POLL_TIMEOUT_MS = 100; // how quickly a stop request is noticed

self.onmessage = (ev: MessageEvent<{ fd: number; sab: SharedArrayBuffer; layout: RingLayout }>) => {
  const { fd, sab, layout } = ev.data;
  const ring = new PacketRing(sab, layout);
  const pfd = new Uint8Array(8);
  const pv = new DataView(pfd.buffer);
  pv.setInt32(0, fd, true);
  pv.setInt16(4, POLLIN, true);
  const base = ptr(ring.data);

  for (;;) {
    if (Atomics.load(ring.ctl, CTL_STOP) === 1) break;
    const w = Atomics.load(ring.ctl, CTL_WRITE);
    if (((w - Atomics.load(ring.ctl, CTL_READ)) | 0) >= layout.slots) {
      // Full: the consumer is behind. Wait for it instead of dropping at the device.
      Atomics.wait(ring.ctl, CTL_READ, Atomics.load(ring.ctl, CTL_READ), POLL_TIMEOUT_MS);
      continue;
    }
    const n = Number(libc.read(fd, base + ring.slotOffset(w), layout.slotSize));
    if (n <= 0) {
      // EAGAIN (or a transient error): wait until the device is readable.
      libc.poll(pfd, 1, POLL_TIMEOUT_MS);
      continue;
    }
    ring.lengths[w % layout.slots] = n;
    Atomics.store(ring.ctl, CTL_WRITE, (w + 1) | 0);
    if (Atomics.compareExchange(ring.ctl, CTL_SLEEPING, 1, 0) === 1) self.postMessage(0);
  }
  self.postMessage(-1);
};
