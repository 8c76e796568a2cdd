// Sends a whole DatagramBatch (src/node/batches.ts) in as few syscalls as the kernel allows: runs
// of slots to one endpoint with one length (the last may be shorter) become one message with a
// UDP_SEGMENT cmsg (the kernel — or the NIC — splits it), and all messages go in one sendmmsg.
// The iovecs point into the batch's slots: nothing is copied and, after the first batch, nothing
// is allocated. Without GSO each slot is its own message, still one sendmmsg per batch.
//
// EIO from a GSO send means the path cannot segment (seen with some NICs/drivers); wireguard-go and
// Firezone then turn GSO off for good and resend plainly — so do we, and say so once.
//
// Sticky source: when `sticky` knows the local address an endpoint last reached us on, its messages
// carry an IP_PKTINFO / IPV6_PKTINFO cmsg naming it (after the UDP_SEGMENT one, in the same control
// buffer), so replies leave from the address the peer dialled. A refusal of such a message (see
// SOURCE_REFUSED) means the address went away (a floating address moved): forget it for that endpoint and
// resend without, counted and said once.
import { ptr } from "bun:ffi";
import type { DatagramBatch } from "../node/batches.ts";
import type { Endpoint } from "../wire/index.ts";
import { EADDRNOTAVAIL, EAGAIN, EINTR, EINVAL, EIO, ENETUNREACH } from "./errno.ts";
import { DestinationCache, type StickySources } from "./udp-endpoints.ts";
import { LOCAL_WORDS, writePktinfo } from "./udp-pktinfo.ts";
import { CMSG_SPACE_INT, CMSG_SPACE_PKTINFO6, errno, IOVEC_SIZE, libc, MH_CONTROL, MH_CONTROLLEN, MH_IOV, MH_IOVLEN, MH_NAME, MH_NAMELEN, MMSGHDR_SIZE, POLLOUT, setPtr, SOCKADDR_ROOM, SOL_UDP, UDP_GSO_MAX_BYTES, UDP_MAX_SEGMENTS, UDP_SEGMENT } from "./udp-sys.ts";

/** How long one wait for room in a full send buffer may take before the rest of the batch is dropped. */
const SEND_WAIT_MS = 20;
/**
 * Waits per batch: poll() may call a socket writable that still has no room for a 64 KiB GSO
 * message, so "writable" alone does not promise progress; this bounds the loop.
 */
const SEND_WAITS = 64;

export interface SenderSockets {
  v4: number;
  /** -1 without an IPv6 socket. */
  v6: number;
}

/** The calls a batch send makes; tests wrap them to make the kernel answer what they need (EIO). */
export interface SendCalls {
  sendmmsg(fd: number, mmsghdrs: number, count: number, flags: number): number;
  errno(): number;
}

/**
 * What the kernel answers a send whose pktinfo source is no local address (any more): the route
 * lookup fails with ENETUNREACH on current kernels (6.x: the source matches no device), EINVAL or
 * EADDRNOTAVAIL on others. A genuinely unreachable destination costs one resend without the source.
 */
const SOURCE_REFUSED: ReadonlySet<number> = new Set([EINVAL, EADDRNOTAVAIL, ENETUNREACH]);

/** Control buffer per message: UDP_SEGMENT's cmsg, then room for the larger pktinfo one. */
const CTL_ROOM = CMSG_SPACE_INT + CMSG_SPACE_PKTINFO6;

const LIBC_SEND: SendCalls = { sendmmsg: (fd, mm, n, flags) => libc.sendmmsg(fd, mm, n, flags), errno };

export class DatagramSender {
  /** UDP GSO in use; false from the start when the kernel lacks it, or after an EIO. */
  gso: boolean;
  /** Datagrams not sent: a send buffer that stayed full, a failed send, an unusable endpoint. */
  dropped = 0;
  /** Failed sends (any errno but EAGAIN/EINTR) and endpoints that are not IP addresses. */
  errors = 0;
  /** Sends that failed and were retried after EIO (GSO turned off, or the one control-path retry). */
  eioRetries = 0;
  /** sendmmsg/sendto calls made (for benchmarks: datagrams per syscall). */
  syscalls = 0;
  /** Where endpoints' local addresses are known (the receive side's SourceCache); none: the route picks. */
  sticky: StickySources | undefined;
  /** Called for each local address the kernel refused as a source (the shell logs the first). */
  onSourceRefused: ((errno: number, to: Endpoint) => void) | undefined;
  /** Sends retried without their local source after the kernel refused it. */
  sourceRetries = 0;

  readonly #dest = new DestinationCache();
  readonly #destBase: number;
  readonly #pfd = new Uint8Array(8);
  readonly #pfdView = new DataView(this.#pfd.buffer);
  #capacity = 0;
  #mm = new Uint8Array(0);
  #mm32 = new Uint32Array(0);
  #iov = new Uint8Array(0);
  #iov32 = new Uint32Array(0);
  #ctl = new Uint8Array(0);
  #ctl32 = new Uint32Array(0);
  #ctl16 = new Uint16Array(0);
  #msgFirst = new Int32Array(0);
  #msgSegs = new Int32Array(0);
  /** Per message: the sticky entry whose local address it names, or -1. */
  #msgSrc = new Int32Array(0);
  readonly #one = new Uint8Array(MMSGHDR_SIZE);
  readonly #one32 = new Uint32Array(this.#one.buffer);
  readonly #oneIov = new Uint32Array(IOVEC_SIZE / 4);
  readonly #oneCtl = new Uint32Array(CTL_ROOM / 4);
  #data: Uint8Array | undefined;
  #batchTo: readonly (Endpoint | undefined)[] | undefined;

  constructor(readonly sockets: SenderSockets, gso: boolean, readonly onGsoDisabled?: (errno: number) => void, readonly calls: SendCalls = LIBC_SEND) {
    this.gso = gso;
    this.#destBase = ptr(this.#dest.mem);
  }

  /** Hands every committed slot of `batch` to the kernel; returns how many datagrams it took. */
  sendBatch(batch: DatagramBatch): number {
    const n = batch.count;
    if (n === 0) return 0;
    if (batch.capacity > this.#capacity) this.#grow(batch.capacity);
    if (batch.data !== this.#data) this.#point(batch);
    this.#dest.reserve(n);
    const lengths = batch.lengths;
    const tos = batch.to;
    this.#batchTo = tos;
    const iov32 = this.#iov32;
    const mm32 = this.#mm32;
    const sticky = this.sticky;
    let sent = 0;
    let i = 0;
    while (i < n) {
      let m = 0;
      let family = 0;
      let j = i;
      while (j < n) {
        const to = tos[j];
        const d = to === undefined ? -1 : this.#dest.lookup(to);
        if (d < 0) {
          this.errors++;
          this.dropped++;
          j++;
          continue;
        }
        const f = this.#dest.family[d]!;
        if (family === 0) family = f;
        else if (f !== family) break; // the other socket: send what we have first
        const len = lengths[j]!;
        iov32[(j * IOVEC_SIZE + 8) >>> 2] = len;
        let k = 1;
        if (this.gso && len > 0) {
          let total = len;
          while (j + k < n && k < UDP_MAX_SEGMENTS) {
            const next = tos[j + k];
            const l2 = lengths[j + k]!;
            if (next === undefined || l2 > len || l2 === 0 || total + l2 > UDP_GSO_MAX_BYTES) break;
            if (next !== to && (next.port !== to!.port || next.address !== to!.address)) break;
            iov32[((j + k) * IOVEC_SIZE + 8) >>> 2] = l2;
            total += l2;
            k++;
            if (l2 < len) break; // only the last segment may be shorter
          }
        }
        const o = m * MMSGHDR_SIZE;
        setPtr(mm32, o + MH_NAME, this.#destBase + d * SOCKADDR_ROOM);
        mm32[(o + MH_NAMELEN) >>> 2] = this.#dest.nameLength(d);
        setPtr(mm32, o + MH_IOV, this.#iovBase + j * IOVEC_SIZE);
        mm32[(o + MH_IOVLEN) >>> 2] = k;
        const src = sticky === undefined ? -1 : sticky.localAt(this.#dest.mem, d * SOCKADDR_ROOM);
        const srcSpace = src < 0 ? 0 : writePktinfo(this.#ctl32, m * CTL_ROOM + CMSG_SPACE_INT, sticky!.local, src * LOCAL_WORDS);
        if (k > 1) {
          this.#ctl16[(m * CTL_ROOM + 16) >>> 1] = len;
          setPtr(mm32, o + MH_CONTROL, this.#ctlBase + m * CTL_ROOM);
          mm32[(o + MH_CONTROLLEN) >>> 2] = CMSG_SPACE_INT + srcSpace;
        } else if (srcSpace > 0) {
          setPtr(mm32, o + MH_CONTROL, this.#ctlBase + m * CTL_ROOM + CMSG_SPACE_INT);
          mm32[(o + MH_CONTROLLEN) >>> 2] = srcSpace;
        } else {
          setPtr(mm32, o + MH_CONTROL, 0);
          mm32[(o + MH_CONTROLLEN) >>> 2] = 0;
        }
        this.#msgFirst[m] = j;
        this.#msgSegs[m] = k;
        this.#msgSrc[m] = srcSpace > 0 ? src : -1;
        m++;
        j += k;
      }
      if (m > 0) {
        const resume = this.#flush(family === 4 ? this.sockets.v4 : this.sockets.v6, m);
        sent += this.#sentNow;
        if (resume >= 0) j = resume; // GSO just turned off: rebuild from there, plainly
      }
      i = j;
    }
    return sent;
  }

  /** One datagram (the control path: handshakes, cookies). Returns false when it was not sent. */
  send(data: Uint8Array, to: Endpoint): boolean {
    const d = this.#dest.lookup(to);
    if (d < 0) {
      this.errors++;
      this.dropped++;
      return false;
    }
    const fd = this.#dest.family[d] === 4 ? this.sockets.v4 : this.sockets.v6;
    if (fd < 0) {
      this.errors++;
      this.dropped++;
      return false;
    }
    const sticky = this.sticky;
    const src = sticky === undefined ? -1 : sticky.localAt(this.#dest.mem, d * SOCKADDR_ROOM);
    if (src >= 0 && this.#sendFrom(fd, data, d, src, to)) return true;
    for (let attempt = 0; ; attempt++) {
      this.syscalls++;
      if (Number(libc.sendto(fd, ptr(data), data.length, 0, this.#destBase + d * SOCKADDR_ROOM, this.#dest.nameLength(d))) >= 0) return true;
      const e = errno();
      if (e === EINTR) continue;
      if (e === EIO && attempt === 0) {
        // Seen on some kernels under load: one retry, as Firezone does, then give up.
        this.eioRetries++;
        continue;
      }
      if (e === EAGAIN && attempt === 0 && this.#waitWritable(fd)) continue;
      if (e !== EAGAIN) this.errors++;
      this.dropped++;
      return false;
    }
  }

  /**
   * One datagram from the sticky entry's local address (sendmmsg of one message: bun:ffi has no
   * sendmsg here and needs none). False when it was not sent: the caller sends it plainly.
   */
  #sendFrom(fd: number, data: Uint8Array, d: number, src: number, to: Endpoint): boolean {
    const space = writePktinfo(this.#oneCtl, 0, this.sticky!.local, src * LOCAL_WORDS);
    setPtr(this.#oneIov, 0, ptr(data));
    this.#oneIov[2] = data.length;
    this.#oneIov[3] = 0;
    const mm32 = this.#one32;
    setPtr(mm32, MH_NAME, this.#destBase + d * SOCKADDR_ROOM);
    mm32[MH_NAMELEN >>> 2] = this.#dest.nameLength(d);
    setPtr(mm32, MH_IOV, ptr(this.#oneIov));
    mm32[MH_IOVLEN >>> 2] = 1;
    setPtr(mm32, MH_CONTROL, ptr(this.#oneCtl));
    mm32[MH_CONTROLLEN >>> 2] = space;
    for (let attempt = 0; ; attempt++) {
      this.syscalls++;
      if (this.calls.sendmmsg(fd, ptr(this.#one), 1, 0) === 1) return true;
      const e = this.calls.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN && attempt === 0 && this.#waitWritable(fd)) continue;
      if (SOURCE_REFUSED.has(e)) this.#refuse(src, e, to);
      return false; // the plain path tries once more and counts what fails
    }
  }

  #refuse(src: number, e: number, to: Endpoint): void {
    this.sticky!.clearLocal(src);
    this.sourceRetries++;
    this.onSourceRefused?.(e, to);
  }

  #sentNow = 0;

  /**
   * sendmmsg of messages [0, m) on `fd`, resuming after partial sends. Returns -1 when done, or the
   * slot index to rebuild from after GSO was turned off by an EIO.
   */
  #flush(fd: number, m: number): number {
    this.#sentNow = 0;
    const segs = this.#msgSegs;
    if (fd < 0) {
      for (let x = 0; x < m; x++) this.dropped += segs[x]!;
      this.errors += m;
      return -1;
    }
    let done = 0;
    let waits = 0;
    while (done < m) {
      this.syscalls++;
      const r = this.calls.sendmmsg(fd, this.#mmBase + done * MMSGHDR_SIZE, m - done, 0);
      if (r > 0) {
        for (let x = done; x < done + r; x++) this.#sentNow += segs[x]!;
        done += r;
        continue;
      }
      const e = this.calls.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) {
        // The send buffer is full: wait for room (backpressure on the turn) or give up on the rest.
        if (waits++ < SEND_WAITS && this.#waitWritable(fd)) continue;
        for (let x = done; x < m; x++) this.dropped += segs[x]!;
        return -1;
      }
      if (e === EIO && this.gso && segs[done]! > 1) {
        this.gso = false;
        this.eioRetries++;
        this.onGsoDisabled?.(e);
        return this.#msgFirst[done]!;
      }
      const src = this.#msgSrc[done]!;
      if (src >= 0 && SOURCE_REFUSED.has(e)) {
        // The local source is gone: forget it and resend this message (and later ones naming it) without.
        this.#refuse(src, e, this.#lastTo(done));
        for (let x = done; x < m; x++) if (this.#msgSrc[x] === src) this.#dropSource(x);
        continue;
      }
      // This message failed (EMSGSIZE, ENETUNREACH, EPERM from a firewall…): skip it, keep the rest.
      this.errors++;
      this.dropped += segs[done]!;
      done++;
    }
    return -1;
  }

  /** The endpoint message `x` goes to (for the refusal callback; not on the hot path). */
  #lastTo(x: number): Endpoint {
    return this.#batchTo![this.#msgFirst[x]!]!;
  }

  /** Message `x` without its pktinfo cmsg: UDP_SEGMENT's alone when it has one, else no control. */
  #dropSource(x: number): void {
    this.#msgSrc[x] = -1;
    const o = x * MMSGHDR_SIZE;
    if (this.#msgSegs[x]! > 1) {
      this.#mm32[(o + MH_CONTROLLEN) >>> 2] = CMSG_SPACE_INT;
    } else {
      setPtr(this.#mm32, o + MH_CONTROL, 0);
      this.#mm32[(o + MH_CONTROLLEN) >>> 2] = 0;
    }
  }

  #waitWritable(fd: number): boolean {
    const v = this.#pfdView;
    v.setInt32(0, fd, true);
    v.setInt16(4, POLLOUT, true);
    v.setInt16(6, 0, true);
    return libc.poll(this.#pfd, 1, SEND_WAIT_MS) > 0;
  }

  #mmBase = 0;
  #iovBase = 0;
  #ctlBase = 0;

  /** Arrays for batches of up to `capacity` slots (once per larger batch size, not per send). */
  #grow(capacity: number): void {
    this.#capacity = capacity;
    this.#mm = new Uint8Array(capacity * MMSGHDR_SIZE);
    this.#mm32 = new Uint32Array(this.#mm.buffer);
    this.#iov = new Uint8Array(capacity * IOVEC_SIZE);
    this.#iov32 = new Uint32Array(this.#iov.buffer);
    this.#ctl = new Uint8Array(capacity * CTL_ROOM);
    this.#ctl32 = new Uint32Array(this.#ctl.buffer);
    this.#ctl16 = new Uint16Array(this.#ctl.buffer);
    for (let m = 0; m < capacity; m++) {
      const o = m * CTL_ROOM;
      this.#ctl32[o >>> 2] = 16 + 2; // CMSG_LEN(sizeof(u16))
      this.#ctl32[(o + 8) >>> 2] = SOL_UDP;
      this.#ctl32[(o + 12) >>> 2] = UDP_SEGMENT;
    }
    this.#msgFirst = new Int32Array(capacity);
    this.#msgSegs = new Int32Array(capacity);
    this.#msgSrc = new Int32Array(capacity);
    this.#mmBase = ptr(this.#mm);
    this.#iovBase = ptr(this.#iov);
    this.#ctlBase = ptr(this.#ctl);
    this.#data = undefined;
  }

  /** Points every iovec at its slot in `batch.data` (once per batch buffer). */
  #point(batch: DatagramBatch): void {
    this.#data = batch.data;
    const base = ptr(batch.data);
    for (let i = 0; i < batch.capacity; i++) setPtr(this.#iov32, i * IOVEC_SIZE, base + batch.offset(i));
  }
}
