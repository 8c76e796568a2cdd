// UDP sockets for the WireGuard port (IPv4 and IPv6), via node:dgram because it can size the
// kernel buffers. Received datagrams are handed to `onDatagram`; sends retry once on EIO.
import dgram from "node:dgram";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

export class UdpSockets {
  #v4: dgram.Socket | undefined;
  #v6: dgram.Socket | undefined;
  #sysctls: Sysctls = procSysctls();
  #keepLimits = false;
  /** Buffer sizes in effect, as getsockopt reports them (Linux: twice what it granted), for logs and metrics. */
  buffers: SocketBuffers = { recv: 0, send: 0 };
  /** What happened to net.core.{r,w}mem_max at the last resize (empty with FIREZONE_NO_INC_BUF). */
  limits: LimitOutcome[] = [];
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
    this.limits = this.#keepLimits ? [] : raiseBufferLimits(wanted, this.#sysctls);
    for (const sock of [this.#v4, this.#v6]) {
      if (!sock) continue;
      try {
        sock.setRecvBufferSize(wanted.recv);
        sock.setSendBufferSize(wanted.send);
      } catch {
        // Not permitted or not supported: the defaults still work, just with less burst room.
      }
    }
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
