// UDP sockets for the WireGuard port (IPv4 and IPv6), via node:dgram because it can size the
// kernel buffers. Received datagrams are handed to `onDatagram`; sends retry once on EIO.
import dgram from "node:dgram";
import type { Endpoint } from "../wire/index.ts";

/** What we ask for; Linux caps it at net.core.{r,w}mem_max and reports double the granted size. */
export const WANTED_SOCKET_BUFFER = 8 * 1024 * 1024;

export interface UdpOptions {
  port: number;
  /** Listen on "::" as well as "0.0.0.0" (skipped when the host has no IPv6). */
  ipv6?: boolean;
  bindV4?: string;
  bindV6?: string;
  onDatagram: (data: Uint8Array, from: Endpoint) => void;
  onError: (err: Error) => void;
  /** FIREZONE_NO_INC_BUF: leave the kernel's default buffer sizes alone. */
  keepDefaultBuffers?: boolean;
}

export class UdpSockets {
  #v4: dgram.Socket | undefined;
  #v6: dgram.Socket | undefined;
  /** Buffer sizes the kernel granted, for logs and metrics. */
  buffers = { recv: 0, send: 0 };
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
    if (!opts.keepDefaultBuffers) {
      for (const sock of [s.#v4, s.#v6]) {
        if (!sock) continue;
        try {
          sock.setRecvBufferSize(WANTED_SOCKET_BUFFER);
          sock.setSendBufferSize(WANTED_SOCKET_BUFFER);
        } catch {
          // Not permitted or not supported: the defaults still work, just with less burst room.
        }
      }
    }
    s.buffers = { recv: s.#v4.getRecvBufferSize(), send: s.#v4.getSendBufferSize() };
    return s;
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
