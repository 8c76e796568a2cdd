// Per-connection packet capture of inner (decrypted) traffic, opt-in from the admin. The event
// loop taps a packet only when `active.size !== 0` (one branch per packet otherwise), and copies
// only packets of captured connections. Clock-free: the shell passes `now` (Unix ms) in and calls
// `expire(now)` from a timer, so a capture ends on time even when its connection is silent.
// Memory is bounded twice: each capture by its max_bytes (the pcap file's size, headers
// included), and the captures kept (running or finished, for download) by MAX_CAPTURES.
import { PCAP_HEADER_SIZE, PCAP_RECORD_HEADER_SIZE, pcapFile, pcapRecord } from "../telemetry/pcap.ts";

export interface CaptureLimits {
  maxPackets: number;
  /** Size of the pcap file, headers included. */
  maxBytes: number;
  maxSeconds: number;
}

export const CAPTURE_DEFAULTS: CaptureLimits = { maxPackets: 1000, maxBytes: 1024 * 1024, maxSeconds: 60 };
/** Hard caps: a request above them is refused (400), not silently lowered. */
export const CAPTURE_CAPS: CaptureLimits = { maxPackets: 100_000, maxBytes: 16 * 1024 * 1024, maxSeconds: 3600 };
/** Captures kept at once (running + finished): at most MAX_CAPTURES × 16 MiB of memory. */
export const MAX_CAPTURES = 4;

export type CaptureStopReason = "max_packets" | "max_bytes" | "max_seconds" | "stopped" | "connection_gone" | "shutdown";

/** A start the capture set cannot take; nothing changed. */
export class CaptureError extends Error {
  constructor(readonly kind: "conflict" | "limit", message: string) {
    super(message);
    this.name = "CaptureError";
  }
}

export class PacketCapture {
  readonly records: Uint8Array[] = [];
  packets = 0;
  /** Bytes of the pcap file so far (its global header included). */
  bytes = PCAP_HEADER_SIZE;
  stoppedAt: number | undefined;
  stopReason: CaptureStopReason | undefined;
  /** Who stopped it ("gateway" when a limit did). */
  stoppedBy: string | undefined;
  readonly deadline: number;

  /** `subject`: whose traffic it is (the peer's public key), kept for the stop's audit row. */
  constructor(readonly cid: number, readonly limits: CaptureLimits, readonly startedAt: number, readonly startedBy: string, readonly subject?: string) {
    this.deadline = startedAt + limits.maxSeconds * 1000;
  }

  get running(): boolean {
    return this.stopReason === undefined;
  }

  /** Adds one packet; returns the reason to stop when a limit is reached (this packet or none kept). */
  add(packet: Uint8Array, length: number, now: number): CaptureStopReason | undefined {
    if (now >= this.deadline) return "max_seconds";
    const size = PCAP_RECORD_HEADER_SIZE + length;
    // A packet that does not fit is not cut: the file holds whole packets up to max_bytes.
    if (this.bytes + size > this.limits.maxBytes) return "max_bytes";
    this.records.push(pcapRecord(packet, length, now));
    this.bytes += size;
    return ++this.packets >= this.limits.maxPackets ? "max_packets" : undefined;
  }

  pcap(): Uint8Array {
    return pcapFile(this.records);
  }

  status(): CaptureStatus {
    return {
      cid: this.cid,
      state: this.running ? "running" : "stopped",
      packets: this.packets,
      bytes: this.bytes,
      limits: { max_packets: this.limits.maxPackets, max_bytes: this.limits.maxBytes, max_seconds: this.limits.maxSeconds },
      started_at: new Date(this.startedAt).toISOString(),
      started_by: this.startedBy,
      ends_at: new Date(this.deadline).toISOString(),
      stopped_at: this.stoppedAt === undefined ? undefined : new Date(this.stoppedAt).toISOString(),
      stop_reason: this.stopReason,
      stopped_by: this.stoppedBy,
    };
  }
}

/** A capture as the admin shows it (JSON field names as elsewhere in the API). */
export interface CaptureStatus {
  cid: number;
  state: "running" | "stopped";
  packets: number;
  bytes: number;
  limits: { max_packets: number; max_bytes: number; max_seconds: number };
  started_at: string;
  started_by: string;
  ends_at: string;
  stopped_at?: string;
  stop_reason?: CaptureStopReason;
  stopped_by?: string;
}

export class Captures {
  /** Running captures by cid: the data path checks `active.size` before anything else. */
  readonly active = new Map<number, PacketCapture>();
  /** Every capture kept (running and finished), oldest first. */
  readonly #kept = new Map<number, PacketCapture>();

  /** `onStopped` runs once per capture, when it stops for any reason (audit it there). */
  constructor(private readonly onStopped: (c: PacketCapture) => void = () => {}) {}

  start(cid: number, limits: CaptureLimits, now: number, actor: string, subject?: string): PacketCapture {
    if (this.active.has(cid)) throw new CaptureError("conflict", `a capture is already running on cid ${cid}: stop it first`);
    const finished = this.#kept.get(cid);
    if (finished) this.#kept.delete(cid);
    else if (this.#kept.size >= MAX_CAPTURES) {
      const oldest = [...this.#kept.values()].find((c) => !c.running);
      if (!oldest) throw new CaptureError("limit", `${MAX_CAPTURES} captures are running (the most kept at once): stop one first`);
      this.#kept.delete(oldest.cid);
    }
    const c = new PacketCapture(cid, limits, now, actor, subject);
    this.active.set(cid, c);
    this.#kept.set(cid, c);
    return c;
  }

  /** The data path's tap (call only when `active.size !== 0`): copies the packet if `cid` is captured. */
  tap(cid: number, packet: Uint8Array, length: number, now: number): void {
    const c = this.active.get(cid);
    if (c === undefined) return;
    const stop = c.add(packet, length, now);
    if (stop !== undefined) this.#stop(c, stop, now, "gateway");
  }

  stop(cid: number, reason: CaptureStopReason, now: number, actor = "gateway"): PacketCapture | undefined {
    const c = this.active.get(cid);
    if (c) this.#stop(c, reason, now, actor);
    return c;
  }

  /** Ends captures past their max_seconds; returns the next deadline (for the shell's timer). */
  expire(now: number): number | undefined {
    let next: number | undefined;
    for (const c of [...this.active.values()]) {
      if (now >= c.deadline) this.#stop(c, "max_seconds", now, "gateway");
      else if (next === undefined || c.deadline < next) next = c.deadline;
    }
    return next;
  }

  /** Stops every running capture (gateway shutdown). */
  stopAll(reason: CaptureStopReason, now: number): void {
    for (const c of [...this.active.values()]) this.#stop(c, reason, now, "gateway");
  }

  /** The running or last finished capture of `cid`. */
  get(cid: number): PacketCapture | undefined {
    return this.#kept.get(cid);
  }

  #stop(c: PacketCapture, reason: CaptureStopReason, now: number, actor: string): void {
    if (!c.running) return;
    c.stopReason = reason;
    c.stoppedAt = now;
    c.stoppedBy = actor;
    this.active.delete(c.cid);
    this.onStopped(c);
  }
}

/** Limits from a request: defaults for what is missing; callers have already checked the caps. */
export function captureLimits(req: { max_packets?: number; max_bytes?: number; max_seconds?: number }): CaptureLimits {
  return {
    maxPackets: req.max_packets ?? CAPTURE_DEFAULTS.maxPackets,
    maxBytes: req.max_bytes ?? CAPTURE_DEFAULTS.maxBytes,
    maxSeconds: req.max_seconds ?? CAPTURE_DEFAULTS.maxSeconds,
  };
}
