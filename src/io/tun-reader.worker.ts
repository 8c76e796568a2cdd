// Worker: reads the TUN fd (poll + non-blocking read via bun:ffi) straight into the shared packet
// ring, so the main thread's event loop never blocks on the device.
//
// Read failures are reported, never swallowed: each one goes to the main thread (TunReadFailure)
// with its errno. After a failure the worker backs off (1 ms doubling to 100 ms) instead of
// spinning: a deleted interface makes poll() report POLLERR at once, so a plain retry loop burns
// a core forever while the gateway looks healthy. The device counts as lost — and the worker
// stops reading — when the errno says it is gone (EBADFD, ENODEV, EBADF) or reads have failed
// without a single success `lostAfter.failures` times over at least `lostAfter.spanMs`.
import { dlopen, FFIType, ptr, read as readMemory } from "bun:ffi";
import { DEVICE_GONE, EAGAIN, EINTR } from "./errno.ts";
import { CTL_PRODUCER_WAITING, CTL_READ, CTL_SLEEPING, CTL_STOP, CTL_WRITE, PacketRing, waitForRoom, type RingLayout } from "./tun-ring.ts";
import type { TunReadFailure, TunWorkerInit } from "./tun-reader.ts";

declare const self: Worker;

const libc = dlopen("libc.so.6", {
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;

const POLLIN = 1;
const POLL_TIMEOUT_MS = 100; // how quickly a stop request is noticed
const MAX_BACKOFF_MS = 100;

function errno(): number {
  const p = libc.__errno_location();
  return p === null ? 0 : readMemory.i32(p, 0);
}

self.onmessage = (ev: MessageEvent<TunWorkerInit>) => {
  const { fd, sab, layout, lostAfter } = ev.data;
  const ring = new PacketRing(sab, layout as RingLayout);
  const pfd = new Uint8Array(8);
  const pv = new DataView(pfd.buffer);
  pv.setInt32(0, fd, true);
  pv.setInt16(4, POLLIN, true);
  const base = ptr(ring.data);
  let consecutive = 0;
  let firstFailureAt = 0;

  for (;;) {
    if (Atomics.load(ring.ctl, CTL_STOP) === 1) break;
    const w = Atomics.load(ring.ctl, CTL_WRITE);
    if (((w - Atomics.load(ring.ctl, CTL_READ)) | 0) >= layout.slots) {
      // Full: the consumer is behind. Wait for it instead of dropping at the device.
      waitForRoom(ring.ctl, CTL_READ, CTL_PRODUCER_WAITING, w, layout.slots, POLL_TIMEOUT_MS);
      continue;
    }
    const lead = layout.lead ?? 0;
    const n = Number(libc.read(fd, base + ring.slotOffset(w) + lead, layout.slotSize - lead));
    if (n < 0) {
      const e = errno(); // read at once: the next FFI call may overwrite it
      if (e !== EAGAIN && e !== EINTR) {
        const now = performance.now();
        if (consecutive++ === 0) firstFailureAt = now;
        const lost = DEVICE_GONE.has(e) || (consecutive >= lostAfter.failures && now - firstFailureAt >= lostAfter.spanMs);
        self.postMessage({ kind: "read_error", errno: e, consecutive, lost } satisfies TunReadFailure);
        if (lost) break;
        // Back off (woken early by stop()): an error storm must not become a busy loop.
        Atomics.wait(ring.ctl, CTL_STOP, 0, Math.min(MAX_BACKOFF_MS, 2 ** (consecutive - 1)));
        continue;
      }
    }
    if (n <= 0) {
      // Nothing ready: wait until the device is readable.
      libc.poll(pfd, 1, POLL_TIMEOUT_MS);
      continue;
    }
    consecutive = 0;
    ring.lengths[w % layout.slots] = n;
    Atomics.store(ring.ctl, CTL_WRITE, (w + 1) | 0);
    if (Atomics.compareExchange(ring.ctl, CTL_SLEEPING, 1, 0) === 1) self.postMessage(0);
  }
  // After a lost device, stay until stop() so its "stopped" message is not missed.
  while (Atomics.load(ring.ctl, CTL_STOP) !== 1) Atomics.wait(ring.ctl, CTL_STOP, 0, POLL_TIMEOUT_MS);
  self.postMessage(-1);
};
