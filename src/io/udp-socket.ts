// The gateway's own UDP sockets (IPv4, and IPv6 with IPV6_V6ONLY: two sockets, as with node:dgram)
// through bun:ffi: batches both ways instead of one callback, one Buffer and one send per datagram.
//   receive: a worker calls recvmmsg (≥ 32 per call, GRO super-datagrams where the kernel offers
//            them) into a shared ring; `drain()` on the main thread hands out each datagram (GRO
//            ones split into their segments) with a cached, shared Endpoint per source.
//   send:    `sendBatch()` — GSO runs + one sendmmsg per batch (udp-sender.ts); `send()` for one.
// Offloads are probed at open and exposed (`gso`, `gro`, `recvBatch`) for the shell to log once.
// Wildcard-bound sockets are sticky (`sticky`): each datagram's arrival address is remembered per
// source endpoint and replies leave from it (udp-pktinfo.ts says why).
// Same public surface as UdpSockets (udp.ts) where it overlaps, so the shell can swap it in.
import { ptr } from "bun:ffi";
import { parseIp } from "../ip/address.ts";
import type { DatagramBatch } from "../node/batches.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { Endpoint } from "../wire/index.ts";
import { errnoName, OsError } from "./errno.ts";
import { procSysctls, resizeSocketBuffers, WANTED_SOCKET_BUFFER, type LimitOutcome, type SizedSocket, type SocketBuffers, type Sysctls } from "./udp.ts";
import { SourceCache } from "./udp-endpoints.ts";
import type { UdpWorkerInit } from "./udp-receiver.worker.ts";
import { CoDel } from "./codel.ts";
import { DatagramRing, META_LEN, META_LOCAL, META_NAME, META_RX_MS, META_SEGMENT, META_SIZE, UCTL_ERRORS, UCTL_READ, UCTL_RECV_CALLS, UCTL_RUNNING, UCTL_SLEEPING, UCTL_STOP, UCTL_TRUNCATED, UCTL_WRITE } from "./udp-ring.ts";
import { DatagramSender } from "./udp-sender.ts";
import { AF_INET, AF_INET6, errno, realtimeMs, SO_TIMESTAMPNS, IPPROTO_IPV6, IPV6_V6ONLY, libc, SO_RCVBUF, SO_SNDBUF, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE, SOCKADDR_ROOM, SOL_SOCKET, SOL_UDP, UDP_GRO, UDP_SEGMENT, IP_PKTINFO, IPV6_RECVPKTINFO, SOL_IP, SOL_IPV6 } from "./udp-sys.ts";

/** Called per received datagram; `buf[off, off+len)` is valid only during the call. */
export type DatagramHandler = (buf: Uint8Array, off: number, len: number, from: Endpoint) => void;

export interface GatewayUdpOptions {
  port: number;
  /** Listen on "::" as well (skipped when the host has no IPv6). */
  ipv6?: boolean;
  bindV4?: string;
  bindV6?: string;
  onDatagram: DatagramHandler;
  /**
   * Datagrams wait after `sleep()` returned true: call `drain()`. Without it the socket drains
   * itself into `onDatagram` (tests, benchmarks, a shell without its own loop).
   */
  onReadable?: () => void;
  /** FIREZONE_NO_INC_BUF: leave the kernel's default buffer sizes (and their limits) alone. */
  keepDefaultBuffers?: boolean;
  sysctls?: Sysctls;
  /** Use UDP GSO / GRO when the kernel offers them (default true); false forces the plain path. */
  gso?: boolean;
  gro?: boolean;
  /** Answer each source from the address its datagrams arrive on (default true; see #stick). */
  stickySource?: boolean;
  /**
   * Keep the receive queue short (default true): CoDel (codel.ts) on how long each WireGuard data
   * packet waited since the kernel received it, where the kernel gives receive timestamps.
   */
  aqm?: boolean;
  /** Messages per recvmmsg (default 64). */
  recvBatch?: number;
  /** Ring slots (default 1024 without GRO, 128 with: each GRO slot takes 64 KiB). */
  ringSlots?: number;
  /** Largest datagram received without GRO (default 2048; WireGuard's are MTU + 32). */
  maxDatagram?: number;
  log?: TargetLogger;
}

/**
 * Room for one GRO super-datagram (the kernel coalesces up to 64 KiB), plus 1.5 KiB so slots do not
 * start 64 KiB apart: at a power-of-two stride every slot's first bytes — all a datagram uses when
 * nothing was coalesced (a wireguard-go client, veth) — fall into the same few L1/L2 cache sets,
 * and the kernel's copy into the ring and the decrypt out of it miss on each other. With 67 072 B
 * (1048 lines) consecutive slots start 24 sets apart. Exported for the layout test.
 */
export const GRO_SLOT = 65536 + 1536;

export class GatewayUdp {
  port = 0;
  /** Buffer sizes in effect, as getsockopt reports them (Linux: twice what it granted). */
  buffers: SocketBuffers = { recv: 0, send: 0 };
  limits: LimitOutcome[] = [];
  forced = false;
  /** Receives coalesce (UDP_GRO accepted by the kernel). */
  gro = false;
  /** Messages per recvmmsg call. */
  recvBatch = 64;
  /** Datagrams handed to onDatagram. */
  received = 0;
  /** Received GRO super-datagrams that were split into segments (0 without GRO). */
  coalesced = 0;
  /** Replies leave from the address the peer's datagram arrived on (a wildcard-bound socket took IP_PKTINFO). */
  sticky = false;
  /** The oldest datagram of the last non-empty drain: how long it waited (ms), and when that drain ran (epoch ms). */
  #delay = { ms: 0, at: 0 };

  readonly #fds: number[] = [];
  #v6 = -1;
  #sender!: DatagramSender;
  #ring!: DatagramRing;
  #worker: Worker | undefined;
  #sources = new SourceCache();
  /** The receive queue's discipline; undefined when off or the kernel gives no receive timestamps. */
  #codel: CoDel | undefined;
  #onDatagram: DatagramHandler;
  #keepLimits = false;
  #sysctls: Sysctls = procSysctls();
  #closed: Promise<void> | undefined;

  private constructor(onDatagram: DatagramHandler) {
    this.#onDatagram = onDatagram;
  }

  static async open(opts: GatewayUdpOptions): Promise<GatewayUdp> {
    const s = new GatewayUdp(opts.onDatagram);
    const v4 = openUdpSocket(AF_INET, opts.bindV4 ?? "0.0.0.0", opts.port);
    s.#fds.push(v4.fd);
    s.port = v4.port;
    if (opts.ipv6 !== false) {
      try {
        s.#v6 = openUdpSocket(AF_INET6, opts.bindV6 ?? "::", s.port).fd;
        s.#fds.push(s.#v6);
      } catch {
        s.#v6 = -1; // no IPv6 on this host: IPv4 only
      }
    }
    const one = Int32Array.of(1);
    // Probes: GRO is a setsockopt the kernel accepts or refuses (5.0+); GSO is readable as a
    // socket option exactly where sendmsg takes its cmsg (4.18+), as wireguard-go checks it.
    s.gro = opts.gro !== false && s.#fds.every((fd) => libc.setsockopt(fd, SOL_UDP, UDP_GRO, ptr(one), 4) === 0);
    if (!s.gro) for (const fd of s.#fds) libc.setsockopt(fd, SOL_UDP, UDP_GRO, ptr(Int32Array.of(0)), 4);
    const gso = opts.gso !== false && s.#fds.every((fd) => getInt(fd, SOL_UDP, UDP_SEGMENT) !== undefined);
    s.#sender = new DatagramSender({ v4: v4.fd, v6: s.#v6 }, gso, (e) => {
      opts.log?.warn("UDP GSO disabled: a segmented send failed, sending datagrams one by one from now on", { err: errnoName(e) });
    });
    s.sticky = s.#stick(opts);
    if (s.sticky) s.#sender.sticky = s.#sources;
    s.#sender.onSourceRefused = (e, to) => {
      if (s.#sender.sourceRetries === 1) {
        opts.log?.warn("a local address the gateway answered from went away (moved?): sending from the route's source for that peer until it reaches us again", { err: errnoName(e), remote: `${to.address}:${to.port}` });
      }
    };
    // Receive timestamps for the queue discipline: every socket must give them, or none is managed.
    if (opts.aqm !== false && s.#fds.every((fd) => libc.setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, ptr(one), 4) === 0)) s.#codel = new CoDel();
    s.#sysctls = opts.sysctls ?? procSysctls();
    s.#keepLimits = opts.keepDefaultBuffers ?? false;
    if (s.#keepLimits) s.#readBack();
    else s.resize({ recv: WANTED_SOCKET_BUFFER, send: WANTED_SOCKET_BUFFER });

    s.recvBatch = Math.max(32, opts.recvBatch ?? 64);
    s.#ring = DatagramRing.create(s.gro ? { slots: opts.ringSlots ?? 128, slotSize: GRO_SLOT } : { slots: opts.ringSlots ?? 1024, slotSize: opts.maxDatagram ?? 2048 });
    Atomics.store(s.#ring.ctl, UCTL_SLEEPING, 1); // the first datagram wakes us
    const onReadable = opts.onReadable ?? (() => s.#pump());
    const worker = new Worker(new URL("./udp-receiver.worker.ts", import.meta.url).href);
    s.#worker = worker;
    worker.onmessage = (ev: MessageEvent<number>) => {
      if (ev.data === 0) onReadable();
    };
    const init: UdpWorkerInit = { fds: s.#fds, sab: s.#ring.sab, layout: s.#ring.layout, batch: s.recvBatch };
    worker.postMessage(init);
    // Started means receiving: a caller that sends right after open() must not race the worker.
    for (let i = 0; i < 500 && Atomics.load(s.#ring.ctl, UCTL_RUNNING) === 0; i++) await Bun.sleep(2);
    return s;
  }

  /** UDP GSO in use (false when the kernel lacks it, when asked not to, or after an EIO). */
  get gso(): boolean {
    return this.#sender.gso;
  }
  get sendErrors(): number {
    return this.#sender.errors;
  }
  get eioRetries(): number {
    return this.#sender.eioRetries;
  }
  /**
   * Sends to `to` from the local address `local` (an IP literal) until `to`'s own datagrams say
   * otherwise (SourceCache.pin). False when this socket is not sticky or the address does not fit.
   */
  answerFrom(to: Endpoint, local: string): boolean {
    const bytes = parseIp(local);
    return this.sticky && bytes !== undefined && this.#sources.pin(to, bytes);
  }

  /** The receive queue is managed (CoDel on kernel receive timestamps). */
  get aqm(): boolean {
    return this.#codel !== undefined;
  }
  /**
   * How long datagrams wait in the receive queue (socket buffer + ring) since the kernel received
   * them, in ms: the oldest of the last batch, or 0 when nothing arrived in the last second (an idle
   * queue has no delay; a stale figure would read as a live one). 0 without receive timestamps.
   */
  get queueDelayMs(): number {
    return this.#delay.at > 0 && Date.now() - this.#delay.at < 1000 ? this.#delay.ms : 0;
  }
  /** WireGuard data packets dropped because the receive queue stood above CoDel's target. */
  get aqmDropped(): number {
    return this.#codel?.dropped ?? 0;
  }

  /** Sends resent without their sticky source because the kernel refused it (the address went away). */
  get sourceRetries(): number {
    return this.#sender.sourceRetries;
  }
  /** Datagrams lost here: not sent (full buffer, failed send) or cut on receive (larger than a slot). */
  get dropped(): number {
    return this.#sender.dropped + Atomics.load(this.#ring.ctl, UCTL_TRUNCATED);
  }
  /** Failed send and receive calls. */
  get errors(): number {
    return this.#sender.errors + Atomics.load(this.#ring.ctl, UCTL_ERRORS);
  }
  /** send syscalls so far (datagrams per syscall = sent / this). */
  get sendSyscalls(): number {
    return this.#sender.syscalls;
  }
  /** recvmmsg calls that returned datagrams (ring slots filled / this = messages per call). */
  get recvSyscalls(): number {
    return Atomics.load(this.#ring.ctl, UCTL_RECV_CALLS);
  }
  /** Received datagrams waiting in the ring (GRO ones count once). */
  get pending(): number {
    return this.#ring.pending;
  }

  sendBatch(batch: DatagramBatch): number {
    return this.#sender.sendBatch(batch);
  }

  send(data: Uint8Array, to: Endpoint): void {
    this.#sender.send(data, to);
  }

  /**
   * Hands up to `budget` received datagrams (ring slots; a GRO slot yields all its segments) to
   * onDatagram (the one given at open unless another is passed), in arrival order. Returns the
   * number of datagrams handed out.
   */
  drain(budget = Number.MAX_SAFE_INTEGER, onDatagram: DatagramHandler = this.#onDatagram): number {
    const ring = this.#ring;
    const ctl = ring.ctl;
    const slots = ring.layout.slots;
    const slotSize = ring.layout.slotSize;
    const meta32 = ring.meta32;
    const meta64 = ring.meta64;
    const data = ring.data;
    const w = Atomics.load(ctl, UCTL_WRITE);
    let r = Atomics.load(ctl, UCTL_READ);
    let n = 0;
    let taken = 0;
    const codel = this.#codel;
    // One clock read per drain: the kernel's receive time is CLOCK_REALTIME, so this must be too.
    const now = codel !== undefined && r !== w ? realtimeMs() : 0;
    let oldest = true;
    try {
      while (r !== w && taken < budget) {
        const slot = r % slots;
        const mb = slot * META_SIZE;
        const len = meta32[(mb + META_LEN) >>> 2]!;
        const seg = meta32[(mb + META_SEGMENT) >>> 2]!;
        const from = len >= 0 ? this.#sources.lookup(ring.meta, mb + META_NAME) : undefined;
        r = (r + 1) | 0; // consumed even if the handler throws: a bad datagram must not wedge the ring
        taken++;
        if (from === undefined) continue;
        this.#sources.noteLocal(meta32, (mb + META_LOCAL) >>> 2);
        const off = slot * slotSize;
        // Queue discipline: only WireGuard data (type 4) is dropped, never a handshake, cookie or
        // STUN/TURN message; of a GRO super-datagram, its first segment (CoDel drops one at a time).
        let first = 0;
        if (codel !== undefined) {
          const rx = meta64[(mb + META_RX_MS) >>> 3]!;
          if (rx > 0) {
            const sojourn = now - rx;
            if (oldest) {
              this.#delay.ms = sojourn;
              this.#delay.at = now;
              oldest = false;
            }
            if (data[off] === 4 && codel.shouldDrop(sojourn, now)) {
              if (seg <= 0 || len <= seg) {
                Atomics.store(ctl, UCTL_READ, r);
                continue;
              }
              first = seg;
            }
          }
        }
        if (seg > 0 && len > seg) {
          this.coalesced++;
          for (let o = first; o < len; o += seg) {
            n++;
            onDatagram(data, off + o, Math.min(seg, len - o), from);
          }
        } else {
          n++;
          onDatagram(data, off, len, from);
        }
        // Hand the slot back now so the worker can receive into it while we work on the rest.
        Atomics.store(ctl, UCTL_READ, r);
      }
    } finally {
      this.received += n;
      if (taken > 0) ring.release(r);
    }
    return n;
  }

  /** Announces the consumer will wait for onReadable; false: datagrams arrived, drain again. */
  sleep(): boolean {
    return this.#ring.sleep();
  }

  #pump(): void {
    do this.drain();
    while (!this.#ring.sleep());
  }

  /**
   * Asks wildcard-bound sockets for each datagram's arrival address. A socket bound to one address
   * already answers from it; a kernel that refuses leaves the route to pick, as before. True when
   * a socket took it (only its sources get a local address, so a mix is fine).
   */
  #stick(opts: GatewayUdpOptions): boolean {
    if (opts.stickySource === false) return false;
    const one = Int32Array.of(1);
    let took = false;
    if (isWildcard(opts.bindV4 ?? "0.0.0.0")) took = libc.setsockopt(this.#fds[0]!, SOL_IP, IP_PKTINFO, ptr(one), 4) === 0;
    if (this.#v6 >= 0 && isWildcard(opts.bindV6 ?? "::")) took = libc.setsockopt(this.#v6, SOL_IPV6, IPV6_RECVPKTINFO, ptr(one), 4) === 0 || took;
    return took;
  }

  /** Asks for these buffer sizes on both sockets; returns what is in effect afterwards. */
  resize(wanted: SocketBuffers): SocketBuffers {
    const r = resizeSocketBuffers(this.#fds.map(sized), wanted, this.#keepLimits, this.#sysctls);
    this.limits = r.limits;
    this.forced = r.forced;
    return this.#readBack();
  }

  #readBack(): SocketBuffers {
    const s = sized(this.#fds[0]!);
    this.buffers = { recv: s.getRecvBufferSize(), send: s.getSendBufferSize() };
    return this.buffers;
  }

  /** Stops the receive worker, then closes the sockets (never under a worker still polling them). */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const worker = this.#worker;
      if (worker) {
        Atomics.store(this.#ring.ctl, UCTL_STOP, 1);
        Atomics.notify(this.#ring.ctl, UCTL_READ);
        Atomics.notify(this.#ring.ctl, UCTL_STOP);
        await Promise.race([
          new Promise<void>((resolve) => worker.addEventListener("message", (ev) => (ev as MessageEvent).data === -1 && resolve())),
          Bun.sleep(500),
        ]);
        worker.terminate();
      }
      for (const fd of this.#fds) libc.close(fd);
      this.#fds.length = 0;
    })();
    return this.#closed;
  }
}

/** A bound non-blocking UDP socket (IPv6 ones IPv6-only): its fd and port. */
export function openUdpSocket(family: typeof AF_INET | typeof AF_INET6, address: string, port: number): { fd: number; port: number } {
  const bytes = parseIp(address);
  if (!bytes || (bytes.length === 4) !== (family === AF_INET)) throw new Error(`UDP bind address ${address} is not an IPv${family === AF_INET ? 4 : 6} address`);
  const fd = libc.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`opening a UDP socket`, { cause: new OsError("socket", errno()) });
  try {
    if (family === AF_INET6 && libc.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, ptr(Int32Array.of(1)), 4) !== 0) {
      throw new OsError("setsockopt IPV6_V6ONLY", errno());
    }
    const sa = new Uint8Array(SOCKADDR_ROOM);
    sa[0] = family;
    sa[2] = port >> 8;
    sa[3] = port & 0xff;
    sa.set(bytes, family === AF_INET ? 4 : 8);
    const len = family === AF_INET ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
    if (libc.bind(fd, ptr(sa), len) !== 0) throw new Error(`binding UDP ${address} port ${port}`, { cause: new OsError("bind", errno()) });
    const out = new Uint8Array(SOCKADDR_ROOM);
    const outLen = Uint32Array.of(SOCKADDR_ROOM);
    if (libc.getsockname(fd, ptr(out), ptr(outLen)) !== 0) throw new OsError("getsockname", errno());
    return { fd, port: (out[2]! << 8) | out[3]! };
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

function isWildcard(address: string): boolean {
  const b = parseIp(address);
  return b !== undefined && b !== null && b.every((x) => x === 0);
}

function getInt(fd: number, level: number, name: number): number | undefined {
  const v = new Int32Array(1);
  const len = Uint32Array.of(4);
  return libc.getsockopt(fd, level, name, ptr(v), ptr(len)) === 0 ? v[0] : undefined;
}

function sized(fd: number): SizedSocket {
  const set = (name: number, bytes: number) => {
    if (libc.setsockopt(fd, SOL_SOCKET, name, ptr(Int32Array.of(Math.min(bytes, 0x3fffffff))), 4) !== 0) throw new OsError("setsockopt", errno());
  };
  return {
    setRecvBufferSize: (n) => set(SO_RCVBUF, n),
    setSendBufferSize: (n) => set(SO_SNDBUF, n),
    getRecvBufferSize: () => getInt(fd, SOL_SOCKET, SO_RCVBUF) ?? 0,
    getSendBufferSize: () => getInt(fd, SOL_SOCKET, SO_SNDBUF) ?? 0,
    fd,
  };
}
