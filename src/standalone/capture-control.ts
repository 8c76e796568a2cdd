// Packet captures as the admin drives them: start/stop/status/download per connection, each start
// and stop audited (capture.started / capture.stopped with the reason and counts), a timer so a
// capture on a silent connection still ends at its max_seconds, and captures of connections that
// left the data plane ended. The captures themselves live in io/capture.ts; the event loop taps.
import { Captures, CaptureError, type CaptureLimits, type CaptureStatus, type PacketCapture } from "../io/capture.ts";
import type { Store } from "../store/index.ts";
import type { Tunnel } from "../tunnel/index.ts";

export interface CaptureControl {
  start(cid: number, limits: CaptureLimits, actor: string): CaptureStatus;
  stop(cid: number, actor: string): CaptureStatus | undefined;
  status(cid: number): CaptureStatus | undefined;
  pcap(cid: number): Uint8Array | undefined;
}

export class CaptureService implements CaptureControl {
  readonly captures: Captures;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly tunnel: Tunnel, private readonly store: Store, private readonly clock: () => number) {
    this.captures = new Captures((c) => this.#audit(c));
  }

  start(cid: number, limits: CaptureLimits, actor: string): CaptureStatus {
    const conn = this.tunnel.connection(cid);
    if (!conn) throw new CaptureError("conflict", `no connection ${cid} in the data plane`);
    const c = this.captures.start(cid, limits, this.clock(), actor, conn.publicKey);
    this.store.audit.record({
      actor, action: "capture.started", cid, subject: conn.publicKey,
      after: { max_packets: limits.maxPackets, max_bytes: limits.maxBytes, max_seconds: limits.maxSeconds },
    });
    this.#arm();
    return c.status();
  }

  stop(cid: number, actor: string): CaptureStatus | undefined {
    return this.captures.stop(cid, "stopped", this.clock(), actor)?.status();
  }

  status(cid: number): CaptureStatus | undefined {
    // A capture past its deadline on a silent link reads as stopped even before the timer fires.
    this.captures.expire(this.clock());
    return this.captures.get(cid)?.status();
  }

  pcap(cid: number): Uint8Array | undefined {
    return this.captures.get(cid)?.pcap();
  }

  /** Ends captures whose connection left the data plane (peer deleted, disabled, expired). */
  sweep(): void {
    for (const cid of [...this.captures.active.keys()]) if (!this.tunnel.connection(cid)) this.captures.stop(cid, "connection_gone", this.clock());
  }

  shutdown(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.captures.stopAll("shutdown", this.clock());
  }

  /** One timer for the earliest max_seconds deadline. */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const next = this.captures.expire(this.clock());
    if (next === undefined) return;
    this.#timer = setTimeout(() => this.#arm(), Math.max(0, next - this.clock()) + 1);
    this.#timer.unref?.();
  }

  #audit(c: PacketCapture): void {
    this.store.audit.record({
      actor: c.stoppedBy ?? "gateway", action: "capture.stopped", cid: c.cid, subject: c.subject,
      reason: c.stopReason,
      after: { packets: c.packets, bytes: c.bytes, seconds: Math.round(((c.stoppedAt ?? c.startedAt) - c.startedAt) / 100) / 10 },
    });
  }
}
