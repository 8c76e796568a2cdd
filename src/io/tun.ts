// A Linux TUN device through bun:ffi: open /dev/net/tun, TUNSETIFF with IFF_TUN|IFF_NO_PI, then
// one IP packet per read()/write(). The fd is non-blocking: read() returns 0 when nothing is
// ready, so the event loop can drain it in batches without blocking the thread.
//
// With `{ offload: true }` the device is opened with IFF_VNET_HDR and TUNSETOFFLOAD (checksum, TSO
// v4/v6, and USO where the kernel takes it, ≥ 6.2): every read then starts with a virtio_net_hdr
// and may be a TCP/UDP super-packet of up to 64 KB (ip/tcp-segment.ts splits it), and every write
// must start with one (ip/tcp-coalesce.ts makes them). One read or write then moves up to ~45
// packets. When the kernel refuses, the device is reopened in plain mode and `offload` says so.
import { dlopen, FFIType, ptr, read as readMemory } from "bun:ffi";

import { EACCES, EAGAIN, EINTR, EPERM, errnoName, OsError } from "./errno.ts";
import { IOVEC_SIZE, setPtr } from "./udp-sys.ts";

/**
 * The TUN's transmit queue, in packets: the kernel's default for a TUN is 500, which a burst from
 * the host overflows while our single thread is busy. Firezone sets 10 000 (#10231,
 * rust/bin-shared/src/tun_device_manager/linux.rs).
 */
export const TUN_TX_QUEUE_LEN = 10_000;

const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
// Offload facts from Linux include/uapi/linux/if_tun.h.
const IFF_VNET_HDR = 0x4000;
const TUNSETOFFLOAD = 0x400454d0; // _IOW('T', 208, unsigned int)
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;
const TCP_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
const ALL_OFFLOADS = TCP_OFFLOADS | TUN_F_USO4 | TUN_F_USO6;
const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const IFNAMSIZ = 16;
/** Linux UIO_MAXIOV: the most parts one writev takes (a 64 KB super-packet has ~46). */
export const MAX_WRITE_PARTS = 1024;

const libc = dlopen("libc.so.6", {
  open: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
  writev: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64_fast },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
}).symbols;

// TUNSETOFFLOAD takes its flags as the ioctl's third argument itself, not through a pointer.
const libcIoctlValue = dlopen("libc.so.6", {
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
}).symbols;

function errno(): number {
  const p = libc.__errno_location();
  return p === null ? 0 : readMemory.i32(p, 0);
}

function osError(what: string, code: number): OsError {
  return new OsError(what, code, String(libc.strerror(code)));
}

/** What the device does for us: "tcp+udp" (TSO + USO), "tcp" (TSO only), or "off" (plain packets, no vnet header). */
export type TunOffload = "tcp+udp" | "tcp" | "off";

export interface TunOpenOptions {
  /** Ask for IFF_VNET_HDR + TUNSETOFFLOAD; falls back to plain mode when refused. */
  offload?: boolean;
  /** The TUNSETOFFLOAD flags to try first (tests pass a value the kernel refuses to see the fallback). */
  offloadFlags?: number;
}

export class TunDevice {
  #closed = false;
  /** The iovec array of writeParts, filled per call (nothing allocated per write). */
  readonly #iov = new Uint8Array(MAX_WRITE_PARTS * IOVEC_SIZE);
  readonly #iov32 = new Uint32Array(this.#iov.buffer);
  private constructor(
    readonly fd: number,
    readonly name: string,
    /** The offloads in effect: log it once at start. */
    readonly offload: TunOffload,
    /** Why offloads were asked for but not granted (the kernel's answer), else undefined. */
    readonly offloadRefused?: string,
  ) {}

  /** Every read starts with, and every write must start with, a virtio_net_hdr (ip/vnet-header.ts). */
  get vnetHeader(): boolean {
    return this.offload !== "off";
  }

  /** Creates (or attaches to) the TUN interface `name`. Fails clearly without CAP_NET_ADMIN. */
  static open(name: string, opts: TunOpenOptions = {}): TunDevice {
    if (new TextEncoder().encode(name).length >= IFNAMSIZ) throw new Error(`interface name "${name}" is longer than 15 bytes`);
    if (!opts.offload) {
      const plain = TunDevice.#create(name, false);
      return new TunDevice(plain.fd, plain.name, "off");
    }
    const { fd, name: actual } = TunDevice.#create(name, true);
    const tried = opts.offloadFlags === undefined ? [ALL_OFFLOADS, TCP_OFFLOADS] : [opts.offloadFlags];
    let refusal = "";
    for (const flags of tried) {
      if (libcIoctlValue.ioctl(fd, TUNSETOFFLOAD, flags) === 0) {
        return new TunDevice(fd, actual, flags & TUN_F_USO4 ? "tcp+udp" : "tcp");
      }
      refusal = `TUNSETOFFLOAD 0x${flags.toString(16)}: ${errnoName(errno())}`;
    }
    // A vnet-header fd cannot drop the header again: close it (the interface goes with it, it is
    // not persistent) and open the device the way it worked before offloads.
    libc.close(fd);
    const plain = TunDevice.#create(name, false);
    return new TunDevice(plain.fd, plain.name, "off", refusal);
  }

  /** Opens /dev/net/tun and attaches it to `name`; returns the fd and the kernel's name for it. */
  static #create(name: string, vnetHeader: boolean): { fd: number; name: string } {
    const fd = libc.open(Buffer.from("/dev/net/tun\0"), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const e = errno();
      // EACCES here is the device node's mode, not a capability: say which, since containers and
      // some VMs ship /dev/net/tun as 0600 and a non-root gateway then fails however capable it is.
      if (e === EACCES) throw new Error(`opening /dev/net/tun: permission denied for uid ${process.getuid?.()} (the device must be read-write for this user, usually mode 0666; creating the interface then needs root or CAP_NET_ADMIN)`, { cause: osError("open", e) });
      if (e === EPERM) throw new Error("opening /dev/net/tun needs root or CAP_NET_ADMIN", { cause: osError("open", e) });
      throw new Error("opening /dev/net/tun", { cause: osError("open", e) });
    }
    const ifr = new Uint8Array(40);
    ifr.set(new TextEncoder().encode(name));
    new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TUN | IFF_NO_PI | (vnetHeader ? IFF_VNET_HDR : 0), true);
    if (libc.ioctl(fd, TUNSETIFF, ifr) < 0) {
      const e = errno();
      libc.close(fd);
      if (e === EPERM || e === EACCES) throw new Error(`creating TUN "${name}" needs root or CAP_NET_ADMIN`, { cause: osError("ioctl TUNSETIFF", e) });
      throw new Error(`creating TUN "${name}"`, { cause: osError("ioctl TUNSETIFF", e) });
    }
    return { fd, name: new TextDecoder().decode(ifr.subarray(0, ifr.indexOf(0) < 0 ? IFNAMSIZ : ifr.indexOf(0))) };
  }

  /** Reads one packet into `buf`. Returns its length, or 0 when none is ready. */
  read(buf: Uint8Array): number {
    for (;;) {
      const n = Number(libc.read(this.fd, ptr(buf), buf.length));
      if (n >= 0) return n;
      const e = errno();
      if (e === EAGAIN) return 0;
      if (e !== EINTR) throw new Error(`reading TUN ${this.name}`, { cause: osError("read", e) });
    }
  }

  /**
   * Writes one packet (buf[0, length)). Failures throw with the errno in the cause chain
   * (`errnoOf`): EIO while the link is down is one lost packet; EBADFD means the interface was
   * deleted, which the event loop treats as fatal (io/errno.ts DEVICE_GONE).
   */
  write(buf: Uint8Array, length = buf.length): void {
    this.writeAt(buf, 0, length);
  }

  /** Writes buf[offset, offset+length) as one packet (with its vnet header in offload mode). */
  writeAt(buf: Uint8Array, offset: number, length: number): void {
    for (;;) {
      const n = Number(libc.write(this.fd, ptr(buf, offset), length));
      if (n >= 0) return;
      const e = errno();
      if (e !== EINTR) throw new Error(`writing TUN ${this.name}`, { cause: osError("write", e) });
    }
  }

  /**
   * Writes one packet gathered from parts of `data` — parts first..first+count-1 of
   * offsets/lengths — with one writev: a merged TCP super-packet goes to the kernel without being
   * copied into one buffer first (the kernel copies from the parts as it would from one). Failures
   * throw as write's do.
   */
  writeParts(data: Uint8Array, offsets: Int32Array, lengths: Int32Array, first: number, count: number): void {
    if (count > MAX_WRITE_PARTS) throw new RangeError(`writeParts: ${count} parts, at most ${MAX_WRITE_PARTS}`);
    const base = ptr(data);
    const iov32 = this.#iov32;
    for (let k = 0; k < count; k++) {
      const o = offsets[first + k]!;
      const n = lengths[first + k]!;
      if (o < 0 || n < 0 || o + n > data.length) throw new RangeError(`writeParts: part ${k} [${o}, ${o + n}) outside the buffer`);
      setPtr(iov32, k * IOVEC_SIZE, base + o);
      iov32[(k * IOVEC_SIZE + 8) >>> 2] = n;
      iov32[(k * IOVEC_SIZE + 12) >>> 2] = 0;
    }
    for (;;) {
      const n = Number(libc.writev(this.fd, this.#iov, count));
      if (n >= 0) return;
      const e = errno();
      if (e !== EINTR) throw new Error(`writing TUN ${this.name}`, { cause: osError("writev", e) });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.fd);
  }
}
