// A Linux TUN device through bun:ffi: open /dev/net/tun, TUNSETIFF with IFF_TUN|IFF_NO_PI, then
// one IP packet per read()/write(). The fd is non-blocking: read() returns 0 when nothing is
// ready, so the event loop can drain it in batches without blocking the thread.
import { dlopen, FFIType, ptr, read as readMemory } from "bun:ffi";

import { EACCES, EAGAIN, EINTR, EPERM, OsError } from "./errno.ts";

/**
 * The TUN's transmit queue, in packets: the kernel's default for a TUN is 500, which a burst from
 * the host overflows while our single thread is busy. Firezone sets 10 000 (#10231,
 * rust/bin-shared/src/tun_device_manager/linux.rs).
 */
export const TUN_TX_QUEUE_LEN = 10_000;

const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const IFNAMSIZ = 16;

const libc = dlopen("libc.so.6", {
  open: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
}).symbols;

function errno(): number {
  const p = libc.__errno_location();
  return p === null ? 0 : readMemory.i32(p, 0);
}

function osError(what: string, code: number): OsError {
  return new OsError(what, code, String(libc.strerror(code)));
}

export class TunDevice {
  #closed = false;
  private constructor(readonly fd: number, readonly name: string) {}

  /** Creates (or attaches to) the TUN interface `name`. Fails clearly without CAP_NET_ADMIN. */
  static open(name: string): TunDevice {
    if (new TextEncoder().encode(name).length >= IFNAMSIZ) throw new Error(`interface name "${name}" is longer than 15 bytes`);
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
    new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TUN | IFF_NO_PI, true);
    if (libc.ioctl(fd, TUNSETIFF, ifr) < 0) {
      const e = errno();
      libc.close(fd);
      if (e === EPERM || e === EACCES) throw new Error(`creating TUN "${name}" needs root or CAP_NET_ADMIN`, { cause: osError("ioctl TUNSETIFF", e) });
      throw new Error(`creating TUN "${name}"`, { cause: osError("ioctl TUNSETIFF", e) });
    }
    const actual = new TextDecoder().decode(ifr.subarray(0, ifr.indexOf(0) < 0 ? IFNAMSIZ : ifr.indexOf(0)));
    return new TunDevice(fd, actual);
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
  /** Writes one packet, buf[offset, offset+length) (a batch slot: no view made). */
  write(buf: Uint8Array, length = buf.length, offset = 0): void {
    for (;;) {
      const n = Number(libc.write(this.fd, ptr(buf, offset), length));
      if (n >= 0) return;
      const e = errno();
      if (e !== EINTR) throw new Error(`writing TUN ${this.name}`, { cause: osError("write", e) });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.fd);
  }
}
