// Worker: receives from the gateway's UDP sockets with recvmmsg straight into the shared datagram
// ring (udp-ring.ts), so the main thread never makes a receive syscall and never sees a datagram it
// has to copy. One mmsghdr per ring slot is filled once at start (buffer, sockaddr and control
// pointers into that slot), so a receive call only resets two lengths per message.
//
// Failures other than EAGAIN/EINTR are counted in the ring (UCTL_ERRORS) and followed by a short
// back-off, so an error storm (POLLERR at once) cannot become a busy loop.
import { ptr } from "bun:ffi";
import { EAGAIN, EINTR } from "./errno.ts";
import { DatagramRing, META_CONTROL, META_CONTROL_ROOM, META_LEN, META_NAME, META_RX_MS, META_SEGMENT, META_SIZE, UCTL_ERRORS, UCTL_READ, UCTL_RECV_CALLS, UCTL_RUNNING, UCTL_SLEEPING, UCTL_STOP, UCTL_TRUNCATED, UCTL_PRODUCER_WAITING, UCTL_WRITE, META_LOCAL, type DatagramRingLayout } from "./udp-ring.ts";
import { waitForRoom } from "./tun-ring.ts";
import { readLocalAddress } from "./udp-pktinfo.ts";
import { CMSG_HDR, errno, IOVEC_SIZE, libc, MH_CONTROL, MH_CONTROLLEN, MH_FLAGS, MH_IOV, MH_IOVLEN, MH_LEN, MH_NAME, MH_NAMELEN, MMSGHDR_SIZE, MSG_DONTWAIT, MSG_TRUNC, POLLIN, SCM_TIMESTAMPNS, setPtr, SOCKADDR_ROOM, SOL_SOCKET, SOL_UDP, timespecMs, UDP_GRO } from "./udp-sys.ts";

declare const self: Worker;

export interface UdpWorkerInit {
  fds: number[];
  sab: SharedArrayBuffer;
  layout: DatagramRingLayout;
  /** Messages per recvmmsg call. */
  batch: number;
}

const POLL_TIMEOUT_MS = 100; // how quickly a stop request is noticed

self.onmessage = (ev: MessageEvent<UdpWorkerInit>) => {
  const { fds, sab, layout, batch } = ev.data;
  const ring = new DatagramRing(sab, layout);
  const slots = layout.slots;

  const mm = new Uint8Array(slots * MMSGHDR_SIZE);
  const mm32 = new Uint32Array(mm.buffer);
  const iov = new Uint8Array(slots * IOVEC_SIZE);
  const iov32 = new Uint32Array(iov.buffer);
  const dataBase = ptr(ring.data);
  const metaBase = ptr(ring.meta);
  const iovBase = ptr(iov);
  for (let i = 0; i < slots; i++) {
    setPtr(iov32, i * IOVEC_SIZE, dataBase + i * layout.slotSize);
    iov32[(i * IOVEC_SIZE + 8) >>> 2] = layout.slotSize;
    const m = i * MMSGHDR_SIZE;
    setPtr(mm32, m + MH_NAME, metaBase + i * META_SIZE + META_NAME);
    setPtr(mm32, m + MH_IOV, iovBase + i * IOVEC_SIZE);
    mm32[(m + MH_IOVLEN) >>> 2] = 1;
    setPtr(mm32, m + MH_CONTROL, metaBase + i * META_SIZE + META_CONTROL);
  }
  const mmBase = ptr(mm);

  const pfd = new Uint8Array(8 * fds.length);
  const pv = new DataView(pfd.buffer);
  fds.forEach((fd, i) => {
    pv.setInt32(8 * i, fd, true);
    pv.setInt16(8 * i + 4, POLLIN, true);
  });
  const meta32 = ring.meta32;
  const meta64 = ring.meta64;
  const ctl = ring.ctl;
  let failures = 0;
  /** Messages the last receive() asked for: fewer arriving means the socket was drained. */
  let asked = 0;
  Atomics.store(ctl, UCTL_RUNNING, 1);

  /** One recvmmsg on `fd` into the free slots after `w`; returns how many arrived (published). */
  function receive(fd: number): number {
    const w = Atomics.load(ctl, UCTL_WRITE);
    const free = slots - ((w - Atomics.load(ctl, UCTL_READ)) | 0);
    asked = 0;
    if (free <= 0) return 0;
    const first = w % slots;
    const k = Math.min(batch, free, slots - first);
    asked = k;
    for (let i = first; i < first + k; i++) {
      const m = i * MMSGHDR_SIZE;
      mm32[(m + MH_NAMELEN) >>> 2] = SOCKADDR_ROOM;
      mm32[(m + MH_CONTROLLEN) >>> 2] = META_CONTROL_ROOM;
      mm32[(m + MH_CONTROLLEN + 4) >>> 2] = 0;
    }
    const n = libc.recvmmsg(fd, mmBase + first * MMSGHDR_SIZE, k, MSG_DONTWAIT, null);
    if (n < 0) {
      const e = errno();
      if (e !== EAGAIN && e !== EINTR) {
        Atomics.add(ctl, UCTL_ERRORS, 1);
        failures++;
      }
      return 0;
    }
    failures = 0;
    let out = w;
    for (let i = first; i < first + n; i++) {
      const m = i * MMSGHDR_SIZE;
      const len = mm32[(m + MH_LEN) >>> 2]!;
      if ((mm32[(m + MH_FLAGS) >>> 2]! & MSG_TRUNC) !== 0) {
        Atomics.add(ctl, UCTL_TRUNCATED, 1);
        meta32[(i * META_SIZE + META_LEN) >>> 2] = -1; // the consumer skips it: keeps slots in step with the ring
      } else {
        meta32[(i * META_SIZE + META_LEN) >>> 2] = len;
      }
      const ctlAt = i * META_SIZE + META_CONTROL;
      const ctlLen = mm32[(m + MH_CONTROLLEN) >>> 2]!;
      // UDP_GRO's segment size (0: not coalesced).
      const gro = cmsgData(ctlAt, ctlLen, SOL_UDP, UDP_GRO);
      meta32[(i * META_SIZE + META_SEGMENT) >>> 2] = gro < 0 ? 0 : meta32[gro]!;
      // The kernel's receive time (SCM_TIMESTAMPNS, a timespec) in ms, 0 without.
      const ts = cmsgData(ctlAt, ctlLen, SOL_SOCKET, SCM_TIMESTAMPNS);
      meta64[(i * META_SIZE + META_RX_MS) >>> 3] = ts < 0 ? 0 : timespecMs(meta32, ts);
      // The local address it arrived on (wildcard sockets with IP_PKTINFO), so the reply can leave from it.
      readLocalAddress(meta32, ctlAt, ctlLen, meta32, (i * META_SIZE + META_LOCAL) >>> 2);
      out = (out + 1) | 0;
    }
    if (n > 0) {
      Atomics.add(ctl, UCTL_RECV_CALLS, 1);
      Atomics.store(ctl, UCTL_WRITE, out);
      if (Atomics.compareExchange(ctl, UCTL_SLEEPING, 1, 0) === 1) self.postMessage(0);
    }
    return n;
  }

  /** Where the data of the (level, type) control message among those at meta[at, at+len) starts, as an i32 index; -1 when absent. */
  function cmsgData(at: number, len: number, level: number, type: number): number {
    let o = 0;
    while (o + CMSG_HDR <= len) {
      const c = at + o;
      const clen = meta32[c >>> 2]!; // size_t, low word (control room is < 4 GiB)
      if (clen < CMSG_HDR) break;
      if (meta32[(c + 8) >>> 2] === level && meta32[(c + 12) >>> 2] === type) return (c + CMSG_HDR) >>> 2;
      o += (clen + 7) & ~7;
    }
    return -1;
  }

  // poll says which sockets are readable; each is then received from until a call returns fewer
  // messages than it asked for (drained: back to poll, which returns at once if more came) or the
  // ring fills. Receiving blindly on every socket instead cost an EAGAIN recvmmsg (plus an errno
  // FFI call) on the idle one (IPv6, mostly) and on the drained one per wake-up.
  for (;;) {
    if (Atomics.load(ctl, UCTL_STOP) === 1) break;
    const w = Atomics.load(ctl, UCTL_WRITE);
    if (((w - Atomics.load(ctl, UCTL_READ)) | 0) >= slots) {
      // Full: the consumer is behind. Wait for it; the kernel's socket buffer takes the burst (and
      // drops past it, counted by the kernel), while the ring's slots stay intact.
      waitForRoom(ctl, UCTL_READ, UCTL_PRODUCER_WAITING, w, slots, POLL_TIMEOUT_MS);
      continue;
    }
    if (failures > 0) {
      Atomics.wait(ctl, UCTL_STOP, 0, Math.min(100, 2 ** Math.min(failures - 1, 7)));
    }
    if (libc.poll(pfd, fds.length, POLL_TIMEOUT_MS) <= 0) continue;
    for (let i = 0; i < fds.length; i++) {
      if (pv.getInt16(8 * i + 6, true) === 0) continue; // revents: nothing on this socket
      // Readable (or an error to collect): receive until drained, the ring is full, or a call fails.
      while (receive(fds[i]!) === asked && asked > 0);
    }
  }
  self.postMessage(-1);
};
