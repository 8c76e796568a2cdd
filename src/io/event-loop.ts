// The standalone gateway's event loop: the only place where the tunnel core meets real IO.
// Each turn drains every ready source in bounded batches — UDP datagrams, TUN packets, due
// timers — then polls the core's outputs (transmits, events), so no busy source starves another.
// Per-packet failures are collected into one report per turn instead of stopping at the first.
// Anything else that throws out of a turn is fatal: the loop stops turning and reports it once
// (onFatal), so the shell can say goodbye to every peer and exit 1 — instead of the exception
// escaping a setImmediate callback and the process dying with every client left waiting out
// its timeouts (Firezone #10401).
import type { GatewayCore, GatewayEvent } from "../gateway/index.ts";
import type { Tunnel, TunnelEvent } from "../tunnel/index.ts";
import type { Endpoint } from "../wire/index.ts";
import { DEVICE_GONE, errnoOf } from "./errno.ts";
import type { TunDevice } from "./tun.ts";
import { readFailureMessage, type TunReadFailure, type TunReader } from "./tun-reader.ts";
import type { UdpSockets } from "./udp.ts";
import type { Captures } from "./capture.ts";

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
}

export interface EventLoopOptions {
  tunnel: Tunnel;
  tun: TunDevice;
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
  /** Per-connection packet captures (io/capture.ts): tapped only while one is running. */
  captures?: Captures;
}

/** Writing to the TUN failed because the device no longer exists: not a per-packet error. */
class TunGoneError extends Error {}

export class EventLoop {
  readonly stats: LoopStats = { turns: 0, udpIn: 0, tunIn: 0, tunOut: 0, udpOut: 0, batchErrors: 0, maxUdpBatch: 0, maxTunBatch: 0, tunReadErrors: 0, tunWriteErrors: 0 };
  readonly #tunnel: Tunnel;
  readonly #tun: TunDevice;
  readonly #clock: () => number;
  readonly #opts: EventLoopOptions;
  #udp: UdpSockets | undefined;
  #reader: TunReader | undefined;
  #udpQueue: { data: Uint8Array; from: Endpoint }[] = [];
  #scheduled = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #stopped = false;
  #failed = false;
  readonly #inner = new Uint8Array(65536);
  readonly #wire = new Uint8Array(65536 + 64);

  constructor(opts: EventLoopOptions) {
    this.#opts = opts;
    this.#tunnel = opts.tunnel;
    this.#tun = opts.tun;
    this.#clock = opts.clock;
  }

  attach(udp: UdpSockets, reader: TunReader): void {
    this.#udp = udp;
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
    return { udp: this.#udpQueue.length, tun: this.#reader?.ring.pending ?? 0 };
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
    const errors: unknown[] = [];
    this.stats.turns++;

    // 1. UDP → tunnel → TUN
    const udpBatch = Math.min(this.#udpQueue.length, BATCH);
    const batch = this.#udpQueue.splice(0, udpBatch);
    for (const d of batch) {
      try {
        const n = this.#tunnel.decapsulate(d.data, d.from, this.#inner, now);
        if (n > 0) {
          const gw = this.#opts.gateway;
          const cid = this.#tunnel.lastConnection!.cid;
          // Capture tap, client → gateway after decryption (before the policy: denied packets too).
          const caps = this.#opts.captures;
          if (caps !== undefined && caps.active.size !== 0) caps.tap(cid, this.#inner, n, now);
          if (!gw || gw.fromClient(cid, this.#inner, n, now)) {
            this.#writeTun(n);
          } else {
            // Denied: answer the client's stack with the ICMP error the gateway built.
            for (let r = gw.pollReply(); r; r = gw.pollReply()) {
              if (caps !== undefined && caps.active.size !== 0) caps.tap(cid, r, r.length, now);
              const m = this.#tunnel.encapsulate(r, this.#wire, now);
              if (m > 0) this.#send(this.#wire.slice(0, m), this.#tunnel.lastConnection!.peer.endpoint!);
            }
          }
        }
      } catch (err) {
        if (err instanceof TunGoneError) throw err;
        errors.push(err);
      }
    }
    this.stats.udpIn += udpBatch;
    if (udpBatch > this.stats.maxUdpBatch) this.stats.maxUdpBatch = udpBatch;

    // 2. TUN → tunnel → UDP
    const tunBatch = this.#reader
      ? this.#reader.ring.drain(BATCH, (data, offset, length) => {
          try {
            const packet = data.subarray(offset, offset + length);
            this.#opts.gateway?.toClient(packet, length, now);
            const n = this.#tunnel.encapsulate(packet, this.#wire, now);
            // Capture tap, gateway → client before encryption (after reverse NAT: what the client gets).
            const caps = this.#opts.captures;
            if (caps !== undefined && caps.active.size !== 0 && this.#tunnel.lastConnection) caps.tap(this.#tunnel.lastConnection.cid, packet, length, now);
            if (n > 0) this.#send(this.#wire.slice(0, n), this.#tunnel.lastConnection!.peer.endpoint!);
          } catch (err) {
            errors.push(err);
          }
        })
      : 0;
    this.stats.tunIn += tunBatch;
    if (tunBatch > this.stats.maxTunBatch) this.stats.maxTunBatch = tunBatch;

    // 3. timers
    const due = this.#tunnel.pollTimeout();
    if (due !== undefined && due <= now) {
      try {
        this.#tunnel.handleTimeout(now);
      } catch (err) {
        errors.push(err);
      }
    }
    const gw = this.#opts.gateway;
    const gwDue = gw?.pollTimeout();
    if (gw && gwDue !== undefined && gwDue <= now) gw.handleTimeout(now);

    // 4. outputs
    for (let t = this.#tunnel.pollTransmit(); t; t = this.#tunnel.pollTransmit()) this.#send(t.data, t.to);
    for (let e = this.#tunnel.pollEvent(); e; e = this.#tunnel.pollEvent()) this.#opts.onEvent(e, now);
    if (gw) for (let e = gw.pollEvent(); e; e = gw.pollEvent()) this.#opts.onGatewayEvent?.(e);

    if (errors.length > 0) {
      this.stats.batchErrors++;
      this.#opts.onBatchErrors(errors, this.stats.turns);
    }

    // More work waiting? Another turn right away (after other callbacks had their chance).
    if (this.#udpQueue.length > 0 || (this.#reader && this.#reader.ring.pending > 0)) {
      this.wake();
    } else if (this.#reader && !this.#reader.ring.sleep()) {
      this.wake();
    }
    this.#armTimer();
  }

  /**
   * One failed write is one lost packet (EIO while the link is down); a deleted interface
   * (EBADFD) fails every write to come, so it ends the turn as fatal instead of a warning per turn.
   */
  #writeTun(n: number): void {
    try {
      this.#tun.write(this.#inner, n);
      this.stats.tunOut++;
    } catch (err) {
      this.stats.tunWriteErrors++;
      const e = errnoOf(err);
      if (e !== undefined && DEVICE_GONE.has(e)) throw new TunGoneError(`TUN ${this.#tun.name} is gone`, { cause: err });
      throw err;
    }
  }

  #send(data: Uint8Array, to: Endpoint): void {
    this.#udp?.send(data, to);
    this.stats.udpOut++;
  }

  #armTimer(): void {
    const at = Math.min(this.#tunnel.pollTimeout() ?? Infinity, this.#opts.gateway?.pollTimeout() ?? Infinity);
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
    for (let t = this.#tunnel.pollTransmit(); t; t = this.#tunnel.pollTransmit()) {
      try {
        this.#send(t.data, t.to);
      } catch {
        // The socket may be what failed; the other peers still get theirs.
      }
    }
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#udpQueue = [];
  }
}

