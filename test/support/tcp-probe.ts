// Tries one TCP connection to HOST:PORT (IPv4) and prints JSON {ok, error?, ms}: how a client
// application experiences an allowed, refused or prohibited destination. Plain libc through
// bun:ffi, because the errno is the point (EHOSTUNREACH for "administratively prohibited").
import { dlopen, FFIType, read } from "bun:ffi";

const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;

const NAMES: Record<number, string> = { 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 101: "ENETUNREACH", 110: "timeout", 115: "timeout", 11: "timeout", 13: "EACCES", 1: "EPERM" };
const [host, port] = process.argv.slice(2);
const fd = libc.socket(2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
const tv = new BigInt64Array([8n, 0n]); // 8 s connect timeout (SO_SNDTIMEO applies to connect)
libc.setsockopt(fd, 1 /* SOL_SOCKET */, 21 /* SO_SNDTIMEO */, tv, 16);
const addr = new Uint8Array(16);
addr[0] = 2; // sin_family (little-endian u16)
addr[2] = Number(port) >> 8;
addr[3] = Number(port) & 0xff;
addr.set(host!.split(".").map(Number), 4);
const t0 = performance.now();
const rc = libc.connect(fd, addr, 16);
const errno = rc === 0 ? 0 : read.i32(libc.__errno_location()!, 0);
libc.close(fd);
process.stdout.write(JSON.stringify({ ok: rc === 0, error: rc === 0 ? undefined : NAMES[errno] ?? `errno ${errno}`, ms: Math.round(performance.now() - t0) }) + "\n");
