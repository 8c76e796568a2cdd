// UDP sockets for the WireGuard port (IPv4 and IPv6), via node:dgram because it can size the
// kernel buffers. Received datagrams are handed to `onDatagram`; sends retry once on EIO.
import { dlopen, FFIType, ptr, type Pointer } from "bun:ffi";
import dgram from "node:dgram";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Endpoint } from "../wire/index.ts";

/** What we ask for; Linux caps it at net.core.{r,w}mem_max and reports double the granted size. */
export const WANTED_SOCKET_BUFFER = 8 * 1024 * 1024;

/**
 * What the admin API accepts (#10234). Below 64 KiB a burst of 1420-byte datagrams (about 45)
 * overflows at once; above 256 MiB per socket is kernel memory nobody should pin by accident.
 */
export const SOCKET_BUFFER_MIN = 64 * 1024;
export const SOCKET_BUFFER_MAX = 256 * 1024 * 1024;

export interface SocketBuffers {
  recv: number;
  send: number;
}

/** The two sysctls that cap SO_RCVBUF / SO_SNDBUF. */
export type BufferLimit = "rmem_max" | "wmem_max";

export interface LimitOutcome {
  limit: BufferLimit;
  before: number | undefined;
  after: number | undefined;
  /** enough: already ≥ wanted; raised: we wrote it; not_permitted / unavailable: left as it was. */
  result: "enough" | "raised" | "not_permitted" | "unavailable";
  err?: string;
}

/** Reads and writes net.core sysctls; a directory other than /proc/sys/net/core in tests. */
export interface Sysctls {
  read(name: BufferLimit): string;
  write(name: BufferLimit, value: string): void;
}

export function procSysctls(dir = "/proc/sys/net/core"): Sysctls {
  return {
    read: (name) => readFileSync(join(dir, name), "utf8"),
    write: (name, value) => writeFileSync(join(dir, name), value),
  };
}

/**
 * Raises net.core.rmem_max / wmem_max to what we want when they are lower and we may: without
 * this, asking for 8 MiB silently gets the kernel's cap (often 208 KiB). Never lowers them. In a
 * network namespace or container these are often the host's (or read-only): then we report it.
 */
export function raiseBufferLimits(wanted: SocketBuffers, sys: Sysctls = procSysctls()): LimitOutcome[] {
  const out: LimitOutcome[] = [];
  for (const [limit, want] of [["rmem_max", wanted.recv], ["wmem_max", wanted.send]] as const) {
    let before: number;
    try {
      before = Number(sys.read(limit).trim());
      if (!Number.isSafeInteger(before)) throw new Error(`unreadable value`);
    } catch (err) {
      out.push({ limit, before: undefined, after: undefined, result: "unavailable", err: (err as Error).message });
      continue;
    }
    if (before >= want) {
      out.push({ limit, before, after: before, result: "enough" });
      continue;
    }
    try {
      sys.write(limit, String(want));
      out.push({ limit, before, after: Number(sys.read(limit).trim()), result: "raised" });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      out.push({ limit, before, after: before, result: code === "EACCES" || code === "EPERM" || code === "EROFS" ? "not_permitted" : "unavailable", err: (err as Error).message });
    }
  }
  return out;
}

export interface UdpOptions {
  port: number;
  /** Listen on "::" as well as "0.0.0.0" (skipped when the host has no IPv6). */
  ipv6?: boolean;
  bindV4?: string;
  bindV6?: string;
  onDatagram: (data: Uint8Array, from: Endpoint) => void;
  onError: (err: Error) => void;
  /** FIREZONE_NO_INC_BUF: leave the kernel's default buffer sizes (and their limits) alone. */
  keepDefaultBuffers?: boolean;
  /** Where net.core.{r,w}mem_max live (tests point it elsewhere). */
  sysctls?: Sysctls;
}

// SO_RCVBUFFORCE / SO_SNDBUFFORCE (asm-generic/socket.h): like SO_RCVBUF / SO_SNDBUF, but not
// capped by net.core.{r,w}mem_max; needs CAP_NET_ADMIN. wireguard-go sets its buffers this way.
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
let setsockopt: ((fd: number, level: number, name: number, value: Pointer, len: number) => number) | undefined | null;

function forceBufferSize(fd: number, option: number, bytes: number): boolean {
  if (setsockopt === undefined) {
    try {
      setsockopt = dlopen("libc.so.6", { setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 } }).symbols.setsockopt;
    } catch {
      setsockopt = null; // not glibc Linux: the capped sizes stand
    }
  }
  if (!setsockopt) return false;
  const value = Int32Array.of(Math.min(bytes, 0x3fffffff));
  return setsockopt(fd, SOL_SOCKET, option, ptr(value), 4) === 0;
}

/** A UDP socket whose kernel buffers can be sized: node:dgram's or one we own (udp-socket.ts). */
export interface SizedSocket {
  setRecvBufferSize(bytes: number): void;
  setSendBufferSize(bytes: number): void;
  getRecvBufferSize(): number;
  getSendBufferSize(): number;
  /** For SO_*BUFFORCE; undefined when the socket hides it. */
  fd: number | undefined;
}

/**
 * Asks for `wanted` on every socket, raising the kernel's limits first unless `keepLimits`
 * (FIREZONE_NO_INC_BUF). Returns what happened to the limits and whether *FORCE was needed.
 */
export function resizeSocketBuffers(socks: SizedSocket[], wanted: SocketBuffers, keepLimits: boolean, sysctls: Sysctls): { limits: LimitOutcome[]; forced: boolean } {
  const limits = keepLimits ? [] : raiseBufferLimits(wanted, sysctls);
  let forced = false;
  for (const sock of socks) {
    try {
      sock.setRecvBufferSize(wanted.recv);
      sock.setSendBufferSize(wanted.send);
    } catch {
      // Not permitted or not supported: the defaults still work, just with less burst room.
    }
    // Still capped (limits we may not raise, as in a namespace or container): with CAP_NET_ADMIN,
    // which the TUN needs anyway, the *FORCE options bypass the caps, as wireguard-go does.
    if (!keepLimits && (sock.getRecvBufferSize() < 2 * wanted.recv || sock.getSendBufferSize() < 2 * wanted.send)) {
      const fd = sock.fd;
      if (fd !== undefined) {
        const r = forceBufferSize(fd, SO_RCVBUFFORCE, wanted.recv);
        const w = forceBufferSize(fd, SO_SNDBUFFORCE, wanted.send);
        forced ||= r || w;
      }
    }
  }
  return { limits, forced };
}

function dgramSized(sock: dgram.Socket): SizedSocket {
  return {
    setRecvBufferSize: (n) => sock.setRecvBufferSize(n),
    setSendBufferSize: (n) => sock.setSendBufferSize(n),
    getRecvBufferSize: () => sock.getRecvBufferSize(),
    getSendBufferSize: () => sock.getSendBufferSize(),
    fd: socketFd(sock),
  };
}

/** The socket's file descriptor. Bun's node:dgram keeps it in internal state: absent → undefined. */
function socketFd(sock: dgram.Socket): number | undefined {
  try {
    const state = Object.getOwnPropertySymbols(sock).find((sym) => sym.description === "state symbol");
    const fd = state && (sock as unknown as Record<symbol, { handle?: { fd?: unknown } }>)[state]?.handle?.fd;
    return typeof fd === "number" && fd >= 0 ? fd : undefined;
  } catch {
    return undefined;
  }
}

export class UdpSockets {
  #v4: dgram.Socket | undefined;
  #v6: dgram.Socket | undefined;
  #sysctls: Sysctls = procSysctls();
  #keepLimits = false;
  /** Buffer sizes in effect, as getsockopt reports them (Linux: twice what it granted), for logs and metrics. */
  buffers: SocketBuffers = { recv: 0, send: 0 };
  /** What happened to net.core.{r,w}mem_max at the last resize (empty with FIREZONE_NO_INC_BUF). */
  limits: LimitOutcome[] = [];
  /** The last resize had to use SO_RCVBUFFORCE/SO_SNDBUFFORCE to get past the kernel's limits. */
  forced = false;
  port = 0;
  eioRetries = 0;
  sendErrors = 0;

  static async open(opts: UdpOptions): Promise<UdpSockets> {
    const s = new UdpSockets();
    s.#v4 = await bind("udp4", opts.bindV4 ?? "0.0.0.0", opts.port, opts);
    s.port = s.#v4.address().port;
    if (opts.ipv6 !== false) {
      try {
        s.#v6 = await bind("udp6", opts.bindV6 ?? "::", s.port, opts);
      } catch {
        s.#v6 = undefined; // no IPv6 on this host: IPv4 only
      }
    }
    s.#sysctls = opts.sysctls ?? procSysctls();
    s.#keepLimits = opts.keepDefaultBuffers ?? false;
    if (opts.keepDefaultBuffers) s.#readBack();
    else s.resize({ recv: WANTED_SOCKET_BUFFER, send: WANTED_SOCKET_BUFFER });
    return s;
  }

  /**
   * Asks for these buffer sizes on every socket (raising the kernel's limits first unless
   * FIREZONE_NO_INC_BUF) and returns what is in effect afterwards, which may be less.
   */
  resize(wanted: SocketBuffers): SocketBuffers {
    const socks: SizedSocket[] = [];
    for (const sock of [this.#v4, this.#v6]) if (sock) socks.push(dgramSized(sock));
    const r = resizeSocketBuffers(socks, wanted, this.#keepLimits, this.#sysctls);
    this.limits = r.limits;
    this.forced = r.forced;
    return this.#readBack();
  }

  #readBack(): SocketBuffers {
    this.buffers = { recv: this.#v4!.getRecvBufferSize(), send: this.#v4!.getSendBufferSize() };
    return this.buffers;
  }

  send(data: Uint8Array, to: Endpoint): void {
    const sock = to.address.includes(":") ? this.#v6 : this.#v4;
    if (!sock) {
      this.sendErrors++;
      return;
    }
    sock.send(data, to.port, to.address, (err) => {
      if (!err) return;
      if ((err as NodeJS.ErrnoException).code === "EIO") {
        // Seen on some kernels under load: one retry, as Firezone does, then give up.
        this.eioRetries++;
        sock.send(data, to.port, to.address, (again) => again && this.sendErrors++);
        return;
      }
      this.sendErrors++;
    });
  }

  close(): void {
    this.#v4?.close();
    this.#v6?.close();
  }
}

function bind(type: "udp4" | "udp6", address: string, port: number, opts: UdpOptions): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type, ipv6Only: type === "udp6", reuseAddr: false });
    sock.once("error", reject);
    sock.on("message", (msg, rinfo) => opts.onDatagram(msg, { address: rinfo.address, port: rinfo.port }));
    sock.bind(port, address, () => {
      sock.off("error", reject);
      sock.on("error", opts.onError);
      resolve(sock);
    });
  });
}

/**
 * Logs what the kernel's limits did to a request for `wanted` (undefined: defaults kept): one line
 * per limit, and a warning when the sizes in effect came out smaller than asked. Takes UdpSockets
 * or GatewayUdp (udp-socket.ts).
 */
export function reportSocketBuffers(udp: Pick<UdpSockets, "buffers" | "limits" | "forced">, wanted: SocketBuffers | undefined, log: TargetLogger): void {
  // Linux reports twice what it granted (bookkeeping overhead included).
  const short = wanted !== undefined && (udp.buffers.recv < 2 * wanted.recv || udp.buffers.send < 2 * wanted.send);
  for (const l of udp.limits) {
    const fields = { limit: `net.core.${l.limit}`, before: l.before, after: l.after, result: l.result, forced: udp.forced, err: l.err };
    if (l.result === "raised" || l.result === "enough") log.info("socket buffer limit", fields);
    // In a network namespace or container the limit is usually the host's; CAP_NET_ADMIN got past it.
    else if (!short) log.info("socket buffer limit left as it was; sizes set past it (SO_RCVBUFFORCE/SO_SNDBUFFORCE)", fields);
    else log.warn("socket buffer limit could not be raised (set it on the host: sysctl -w net.core.rmem_max=… wmem_max=…)", fields);
  }
  if (wanted && short) {
    log.warn("UDP socket buffers smaller than asked", { recv_wanted: wanted.recv, send_wanted: wanted.send, udp_recv_buffer: udp.buffers.recv, udp_send_buffer: udp.buffers.send });
  }
}
