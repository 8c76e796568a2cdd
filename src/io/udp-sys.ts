// The Linux socket API the gateway's own UDP socket needs, through bun:ffi (glibc, x86-64/arm64 LP64):
// the calls, the constants and the byte layouts of the structs we fill by hand. Shared by the main
// thread (udp-socket.ts, udp-sender.ts) and the receive worker (udp-receiver.worker.ts).
import { dlopen, FFIType, ptr, read as readMemory } from "bun:ffi";

// bits/socket.h, bits/socket_type.h, asm-generic/fcntl.h
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0x800;
export const SOCK_CLOEXEC = 0x80000;
export const MSG_DONTWAIT = 0x40;
/** msg_flags: the datagram was longer than the buffer and cut. */
export const MSG_TRUNC = 0x20;

// asm-generic/socket.h
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
/**
 * SO_TIMESTAMPNS (the _OLD value, which is the 64-bit-time one on LP64): each received datagram
 * carries an SCM_TIMESTAMPNS cmsg (same number) with the kernel's receive time, CLOCK_REALTIME:
 *   struct timespec { i64 tv_sec; i64 tv_nsec; }  16 B  (CMSG_SPACE 32)
 */
export const SO_TIMESTAMPNS = 35;
export const SCM_TIMESTAMPNS = 35;
/** time.h CLOCK_REALTIME: the clock SO_TIMESTAMPNS stamps with. */
export const CLOCK_REALTIME = 0;
// netinet/in.h (IPPROTO_IPV6), linux/in6.h (IPV6_V6ONLY)
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
// linux/udp.h: SOL_UDP is IPPROTO_UDP. UDP_SEGMENT takes a u16 segment size (sendmsg cmsg or
// setsockopt); UDP_GRO an int flag, and recvmsg then reports the segment size in an int cmsg.
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;
export const UDP_GRO = 104;
/** include/linux/udp.h UDP_MAX_SEGMENTS, 1 << 6 (later kernels may allow more); more segments in one send is EINVAL. */
export const UDP_MAX_SEGMENTS = 64;
/** One GSO send is one UDP datagram before splitting: its payload must fit 65535 − IPv4 (20) − UDP (8). */
export const UDP_GSO_MAX_BYTES = 65507;

// poll.h
export const POLLIN = 0x1;
export const POLLOUT = 0x4;

/**
 * Struct layouts on LP64 Linux (x86-64, arm64), from bits/socket.h and bits/uio.h:
 *   struct iovec   { void *iov_base; size_t iov_len; }                                   16 B
 *   struct msghdr  { void *msg_name; socklen_t msg_namelen; (pad 4) struct iovec *msg_iov;
 *                    size_t msg_iovlen; void *msg_control; size_t msg_controllen; int msg_flags; (pad 4) }  56 B
 *   struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; (pad 4) }               64 B
 *   struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; data… }             16 B + data, 8-aligned
 *   sockaddr_in    { u16 family; u16 port (BE); u8 addr[4]; u8 zero[8] }                 16 B
 *   sockaddr_in6   { u16 family; u16 port (BE); u32 flowinfo; u8 addr[16]; u32 scope_id } 28 B
 */
export const IOVEC_SIZE = 16;
export const MMSGHDR_SIZE = 64;
export const MH_NAME = 0;
export const MH_NAMELEN = 8;
export const MH_IOV = 16;
export const MH_IOVLEN = 24;
export const MH_CONTROL = 32;
export const MH_CONTROLLEN = 40;
export const MH_FLAGS = 48;
export const MH_LEN = 56;
export const CMSG_HDR = 16;
/** CMSG_SPACE(sizeof(u16 or int)): header + data rounded up to 8. */
export const CMSG_SPACE_INT = 24;
export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;
/** Room for either sockaddr, 8-aligned. */
export const SOCKADDR_ROOM = 32;

// Sticky source ("answer from the address the datagram arrived on", as kernel WireGuard does):
// linux/in.h IP_PKTINFO (SOL_IP = 0): on receive a cmsg per datagram, on send the source to use.
//   struct in_pktinfo  { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; }  12 B
// linux/in6.h IPV6_RECVPKTINFO asks for it on receive, IPV6_PKTINFO (SOL_IPV6 = 41) is the cmsg type.
//   struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }                           20 B
export const SOL_IP = 0;
export const IP_PKTINFO = 8;
export const SOL_IPV6 = 41;
export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
/** CMSG_LEN / CMSG_SPACE of in_pktinfo and in6_pktinfo. */
export const CMSG_LEN_PKTINFO4 = CMSG_HDR + 12;
export const CMSG_SPACE_PKTINFO4 = 32;
export const CMSG_LEN_PKTINFO6 = CMSG_HDR + 20;
export const CMSG_SPACE_PKTINFO6 = 40;

export const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64_fast },
  sendmmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.u32, FFIType.i32], returns: FFIType.i32 },
  recvmmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;

/** errno of the last failed call; read it at once, the next FFI call may overwrite it. */
export function errno(): number {
  const p = libc.__errno_location();
  return p === null ? 0 : readMemory.i32(p, 0);
}

/** Writes a pointer (a JS number from `ptr()`, < 2^53) as a little-endian u64 without a BigInt. */
export function setPtr(u32: Uint32Array, byteOffset: number, p: number): void {
  const i = byteOffset >>> 2;
  u32[i] = p >>> 0;
  u32[i + 1] = Math.floor(p / 0x1_0000_0000);
}

// Its own ArrayBuffer: a small typed array made with `new Int32Array(4)` keeps its bytes in the
// garbage-collected heap, where they do not stay put; ptr() of it went stale and clock_gettime
// then wrote into a live object (Bun aborted under the handshake-flood bench).
const timespec = new Int32Array(new ArrayBuffer(16));
const timespecPtr = ptr(timespec);
/** CLOCK_REALTIME in ms with the nanoseconds kept (Date.now() truncates to the ms: a 1 ms bias on a 5 ms target). */
export function realtimeMs(): number {
  libc.clock_gettime(CLOCK_REALTIME, timespecPtr);
  return timespecMs(timespec, 0);
}

/** A struct timespec at i32 index `i` (i64 tv_sec low word first, then i64 tv_nsec) as milliseconds. */
export function timespecMs(i32: Int32Array, i: number): number {
  return ((i32[i]! >>> 0) + i32[i + 1]! * 0x1_0000_0000) * 1000 + i32[i + 2]! / 1e6;
}
