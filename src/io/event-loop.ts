// The standalone gateway's event loop: the only place where the tunnel core meets real IO.
// Each turn drains every ready source in bounded batches — UDP datagrams, TUN packets, due
// timers — then polls the core's outputs (transmits, events), so no busy source starves another.
// Per-packet failures are collected into one report per turn instead of stopping at the first.
// Anything else that throws out of a turn is fatal: the loop stops turning and reports it once
// (onFatal), so the shell can say goodbye to every peer and exit 1 — instead of the exception
// escaping a setImmediate callback and the process dying with every client left waiting out
// its timeouts (Firezone #10401).
import type { GatewayCore, GatewayEvent } from "../gateway/index.ts";
import { TcpCoalescer } from "../ip/tcp-coalesce.ts";
import { TcpSegmenter } from "../ip/tcp-segment.ts";
import { DatagramBatch, GatewayNode, TunBatch, isGatewayEvent, isIceEvent, type CaptureTap, type IceNodeEvent } from "../node/index.ts";
import type { Tunnel, TunnelEvent } from "../tunnel/index.ts";
import type { Endpoint } from "../wire/index.ts";
import { DEVICE_GONE, errnoOf } from "./errno.ts";
import type { TunDevice } from "./tun.ts";
import { readFailureMessage, type TunReadFailure, type TunReader } from "./tun-reader.ts";
import type { UdpSockets } from "./udp.ts";

/** Per-source work per turn: big enough to amortise a turn, small enough to interleave sources. */
export const BATCH = 256;

export interface LoopStats {
  turns: number;
  udpIn: number;
  tunIn: number;
  tunOut: number;
  udpOut: number;
  batchErrors: number;
  /** Largest UDP / TUN batch seen in one turn. */
  maxUdpBatch: number;
  maxTunBatch: number;
  /** Failed TUN reads (reported by the reader worker) and writes. */
  tunReadErrors: number;
  tunWriteErrors: number;
  /** Offload mode: TUN reads that held more than one segment, and the segments all reads made. */
  tunSuperPackets: number;
  tunSegments: number;
  /** Offload mode: TUN writes that carried merged segments, and how many segments they carried. */
  tunCoalescedWrites: number;
  tunCoalescedSegments: number;
}

/**
 * A UDP socket that receives in batches into its own ring (io/udp-socket.ts's GatewayUdp): the loop
 * drains it each turn, straight into the node, instead of queueing one callback per datagram.
 */
export interface BatchedUdp {
  send(data: Uint8Array, to: Endpoint): void;
  /** Sends every slot of `batch` (sendmmsg, GSO runs); returns how many datagrams the kernel took. */
  sendBatch(batch: DatagramBatch): number;
  /** Hands up to `budget` received datagrams to `fn` (valid during the call only); returns how many. */
  drain(budget: number, fn: (buf: Uint8Array, off: number, len: number, from: Endpoint) => void): number;
  readonly pending: number;
  /** The loop is going idle: false when datagrams arrived meanwhile (run another turn). */
  sleep(): boolean;
}

/**
 * Hands a whole batch to the kernel (the loop clears it afterwards). The defaults here are one write / one send per
 * slot; the batched shells (TUN with offloads, sendmmsg + UDP GSO) plug in instead. A throw is a
 * per-batch error (reported with the turn's others); a TunGoneError is fatal. A custom flush counts its own writes/sends
 * (stats.tunOut / udpOut count the default flushes only).
 */
export type FlushTun = (batch: TunBatch) => void;
export type FlushUdp = (batch: DatagramBatch) => void;

export interface EventLoopOptions {
  /** The core. Or `tunnel` (+ `gateway`, `captures`), from which the loop makes one. */
  node?: GatewayNode;
  tunnel?: Tunnel;
  tun: TunDevice;
  flushTun?: FlushTun;
  flushUdp?: FlushUdp;
  clock: () => number;
  /** `now`: the turn's clock, when the core produced the event (span times are taken from it). */
  onEvent: (e: TunnelEvent, now: number) => void;
  onBatchErrors: (errors: unknown[], turn: number) => void;
  /** A failed TUN read (the worker backs off between them); for a rate-limited log line. */
  onTunReadError?: (failure: TunReadFailure) => void;
  /**
   * A turn failed outside per-packet handling, or the TUN device is gone; the loop has stopped
   * turning (stop() still flushes).
   */
  onFatal?: (err: unknown) => void;
  /** Resources and authorizations: decides what clients may send into the network. */
  gateway?: GatewayCore;
  onGatewayEvent?: (e: GatewayEvent) => void;
  /** ICE / TURN events (portal mode): candidates to signal, the timeline, relay state. */
  onIceEvent?: (e: IceNodeEvent, now: number) => void;
  /** Per-connection packet captures (io/capture.ts): tapped only while one is running. */
  captures?: CaptureTap;
}

/** Writing to the TUN failed because the device no longer exists: not a per-packet error (fatal). */
export class TunGoneError extends Error {}

export class EventLoop {
  readonly stats: LoopStats = {
    turns: 0, udpIn: 0, tunIn: 0, tunOut: 0, udpOut: 0, batchErrors: 0, maxUdpBatch: 0, maxTunBatch: 0, tunReadErrors: 0, tunWriteErrors: 0,
    tunSuperPackets: 0, tunSegments: 0, tunCoalescedWrites: 0, tunCoalescedSegments: 0,
  };
  readonly node: GatewayNode;
  readonly #tun: TunDevice;
  readonly #clock: () => number;
  readonly #opts: EventLoopOptions;
  #udp: UdpSockets | BatchedUdp | undefined;
  /** Set when the socket receives in batches (GatewayUdp); else datagrams come through onDatagram. */
  #batched: BatchedUdp | undefined;
  #reader: TunReader | undefined;
  // Datagrams from Bun's socket callback, until the batched UDP shell replaces it: a moving head,
  // no splice per turn.
  #udpQueue: { data: Uint8Array; from: Endpoint }[] = [];
  #udpHead = 0;
  #scheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #stopped = false;
  #failed = false;
  /** The turn's output batches, reused every turn. */
  readonly #tunOut = new TunBatch(BATCH);
  readonly #udpOut = new DatagramBatch(BATCH);
  readonly #flushTun: FlushTun;
  readonly #flushUdp: FlushUdp;
  /** The TUN was opened with offloads: reads carry a vnet header (segmented by the node), writes get one (coalesced). */
  readonly #offload: boolean;
  readonly #coalescer: TcpCoalescer;
  /** Per-packet errors of the running turn (the default flushes add theirs). */
  #errors: unknown[] = [];
  #now = 0;

  constructor(opts: EventLoopOptions) {
    this.#opts = opts;
    if (!opts.node && !opts.tunnel) throw new Error("EventLoop needs a node or a tunnel");
    this.node = opts.node ?? new GatewayNode({ tunnel: opts.tunnel!, gateway: opts.gateway, captures: opts.captures });
    this.#tun = opts.tun;
    this.#clock = opts.clock;
    this.#offload = opts.tun.vnetHeader === true;
    this.#coalescer = new TcpCoalescer(this.#offload);
    if (this.#offload) this.node.segmenter ??= new TcpSegmenter();
    this.#flushTun = opts.flushTun ?? this.#writeEachToTun;
    this.#flushUdp = opts.flushUdp ?? this.#sendEach;
  }

  attach(udp: UdpSockets | BatchedUdp, reader: TunReader): void {
    this.#udp = udp;
    this.#batched = typeof (udp as BatchedUdp).drain === "function" ? (udp as BatchedUdp) : undefined;
    this.#reader = reader;
    this.wake();
  }

  /** UDP socket callback: queue, and make sure a turn is coming. */
  onDatagram = (data: Uint8Array, from: Endpoint): void => {
    if (this.#stopped || this.#failed) return;
    this.#udpQueue.push({ data, from });
    this.wake();
  };

  /** Something changed (TUN readable, config applied): run a turn soon. */
  wake = (): void => {
    if (this.#scheduled || this.#stopped || this.#failed) return;
    this.#scheduled = true;
    setImmediate(this.#turn);
  };

  /**
   * The TUN reader's failure callback: counted and reported; a lost device is fatal, because
   * a gateway that cannot read its TUN moves nothing while looking healthy.
   */
  onTunReadError = (failure: TunReadFailure): void => {
    this.stats.tunReadErrors++;
    this.#opts.onTunReadError?.(failure);
    if (failure.lost && !this.#stopped && !this.#failed) this.#fail(new Error(`TUN ${this.#tun.name} is gone: ${readFailureMessage(failure)}`));
  };

  /** Queue depths, sampled for gauges. */
  depths(): { udp: number; tun: number } {
    return { udp: this.#batched ? this.#batched.pending : this.#udpQueue.length - this.#udpHead, tun: this.#reader?.ring.pending ?? 0 };
  }

  #turn = (): void => {
    this.#scheduled = false;
    if (this.#stopped || this.#failed) return;
    try {
      this.#runTurn();
    } catch (err) {
      this.#fail(err);
    }
  };

  #fail(err: unknown): void {
    this.#failed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#opts.onFatal) this.#opts.onFatal(err);
    else throw err;
  }

  #runTurn(): void {
    const now = this.#clock();
    this.#now = now;
    this.#errors = [];
    const errors = this.#errors;
    const node = this.node;
    this.stats.turns++;

    // 1. UDP → node → TunBatch → TUN
    const tunOut = this.#tunOut;
    const queue = this.#udpQueue;
    const batched = this.#batched;
    const udpBatch = batched ? batched.drain(BATCH, this.#fromUdp) : Math.min(queue.length - this.#udpHead, BATCH);
    for (let i = 0; i < (batched ? 0 : udpBatch); i++) {
      const d = queue[this.#udpHead]!;
      queue[this.#udpHead++] = undefined as never;
      if (tunOut.full) this.#flushTunBatch();
      try {
        node.handleNetworkInput(d.data, 0, d.data.length, d.from, now, tunOut);
      } catch (err) {
        errors.push(err);
      }
    }
    if (this.#udpHead === queue.length) {
      queue.length = 0;
      this.#udpHead = 0;
    }
    this.#flushTunBatch();
    this.stats.udpIn += udpBatch;
    if (udpBatch > this.stats.maxUdpBatch) this.stats.maxUdpBatch = udpBatch;

    // 2. TUN → node → DatagramBatch → UDP
    const udpOut = this.#udpOut;
    const tunBatch = this.#reader ? this.#reader.ring.drain(BATCH, this.#fromTun) : 0;
    this.stats.tunIn += tunBatch;
    if (tunBatch > this.stats.maxTunBatch) this.stats.maxTunBatch = tunBatch;

    // 3. timers: only the due peers (the node's heap), authorization expiry, NAT sweep
    const due = node.pollTimeout();
    if (due !== undefined && due <= now) {
      try {
        node.handleTimeout(now);
      } catch (err) {
        errors.push(err);
      }
    }

    // 4. outputs: handshakes, denials, goodbyes join the turn's datagrams; then events
    for (;;) {
      if (udpOut.full) this.#flushUdpBatch();
      if (node.drainTransmits(udpOut) === 0) break;
    }
    this.#flushUdpBatch();
    for (let e = node.pollEvent(); e; e = node.pollEvent()) {
      if (isGatewayEvent(e)) this.#opts.onGatewayEvent?.(e);
      else if (isIceEvent(e)) this.#opts.onIceEvent?.(e, now);
      else this.#opts.onEvent(e, now);
    }

    if (errors.length > 0) {
      this.stats.batchErrors++;
      this.#opts.onBatchErrors(errors, this.stats.turns);
    }

    // More work waiting? Another turn right away (after other callbacks had their chance).
    // Each ring is told we sleep (its producer then sends a wake-up); one that filled meanwhile says no.
    if (this.#udpQueue.length > this.#udpHead || (batched && batched.pending > 0) || (this.#reader && this.#reader.ring.pending > 0)) {
      this.wake();
    } else if ((batched && !batched.sleep()) || (this.#reader && !this.#reader.ring.sleep())) {
      this.wake();
    }
    this.#armTimer();
  }

  /** The batched socket's per-datagram callback, made once (no closure per turn). */
  readonly #fromUdp = (buf: Uint8Array, off: number, len: number, from: Endpoint): void => {
    if (this.#tunOut.full) this.#flushTunBatch();
    try {
      this.node.handleNetworkInput(buf, off, len, from, this.#now, this.#tunOut);
    } catch (err) {
      this.#errors.push(err);
    }
  };

  /** The ring's per-packet callback, made once (no closure per turn). */
  readonly #fromTun = (data: Uint8Array, offset: number, length: number): void => {
    if (this.#udpOut.full) this.#flushUdpBatch();
    try {
      if (this.#offload) this.#segmentTunRead(data, offset, length);
      else this.node.handleTunInput(data, offset, length, this.#now, this.#udpOut);
    } catch (err) {
      this.#errors.push(err);
    }
  };

  /** Offload mode: one read (vnet header + maybe a 64 KB super-packet) → segments → encrypted datagrams. */
  #segmentTunRead(data: Uint8Array, offset: number, length: number): void {
    const node = this.node;
    const count = node.beginTunRead(data, offset, length);
    if (count <= 0) return;
    this.stats.tunSegments += count;
    if (count > 1) this.stats.tunSuperPackets++;
    const out = this.#udpOut;
    for (let i = 0; ; ) {
      i = node.encryptSegments(this.#now, out, i);
      if (i >= count) break;
      this.#flushUdpBatch(); // full: send what is there and go on with the rest of this read
    }
  }

  #flushTunBatch(): void {
    const b = this.#tunOut;
    if (b.count === 0) return;
    try {
      this.#flushTun(b);
    } catch (err) {
      if (err instanceof TunGoneError) throw err;
      this.#errors.push(err);
    } finally {
      b.clear();
    }
  }

  #flushUdpBatch(): void {
    const b = this.#udpOut;
    if (b.count === 0) return;
    try {
      this.#flushUdp(b);
    } catch (err) {
      this.#errors.push(err);
    } finally {
      b.clear();
    }
  }

  /**
   * The default TUN flush: one write per slot. One failed write is one lost packet (EIO while the
   * link is down); a deleted interface (EBADFD) fails every write to come, so it ends the turn as
   * fatal instead of a warning per turn.
   */
  readonly #writeEachToTun = (b: TunBatch): void => {
    // Offload mode: the segments of one TCP flow merge into super-packets, every write gets its vnet
    // header; plain mode: one write per slot, as planned by the same coalescer.
    const c = this.#coalescer;
    const writes = c.coalesce(b);
    if (this.#offload) {
      this.stats.tunCoalescedWrites = c.mergedWrites;
      this.stats.tunCoalescedSegments = c.mergedSegments;
    }
    for (let i = 0; i < writes; i++) {
      try {
        // A merged super-packet is gathered from its slots by one writev (no copy into one buffer).
        if (c.writeParts(i) > 1) this.#tun.writeParts(c.data, c.partOffsets, c.partLengths, c.writeFirstPart(i), c.writeParts(i));
        else this.#tun.writeAt(c.writeBuffer(i), c.writeOffset(i), c.writeLength(i));
        this.stats.tunOut++;
      } catch (err) {
        this.stats.tunWriteErrors++;
        const e = errnoOf(err);
        if (e !== undefined && DEVICE_GONE.has(e)) throw new TunGoneError(`TUN ${this.#tun.name} is gone`, { cause: err });
        this.#errors.push(err);
      }
    }
  };

  /** The default UDP flush: the batched socket's sendBatch, else one send per slot; a failed send loses that datagram only. */
  readonly #sendEach = (b: DatagramBatch): void => {
    if (this.#batched) {
      // sendmmsg + GSO: failures are counted by the socket (one datagram lost, never the batch).
      this.stats.udpOut += this.#batched.sendBatch(b);
      return;
    }
    for (let i = 0; i < b.count; i++) {
      const at = b.offset(i);
      try {
        this.#udp?.send(b.data.subarray(at, at + b.lengths[i]!), b.to[i]!);
        this.stats.udpOut++;
      } catch (err) {
        this.#errors.push(err);
      }
    }
  };

  #armTimer(): void {
    const at = this.node.pollTimeout() ?? Infinity;
    if (at === this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = at;
    if (at === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timerAt = Infinity;
      this.#timer = undefined;
      this.wake();
    }, Math.max(0, at - this.#clock()));
  }

  /**
   * Stops turning: pending datagrams are dropped, timers cancelled. Outputs still queued (the
   * goodbyes) are flushed — after a fatal error too; one failing send does not stop the rest.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#errors = [];
    this.#udpOut.clear();
    try {
      while (this.node.drainTransmits(this.#udpOut) > 0) this.#flushUdpBatch();
      this.#flushUdpBatch();
    } catch {
      // The socket may be what failed; what was sent is sent.
    }
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#udpQueue = [];
    this.#udpHead = 0;
  }
}
