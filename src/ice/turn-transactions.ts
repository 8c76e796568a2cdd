// Outstanding TURN requests and their retransmission schedule. A request is resent unchanged
// (same transaction id, so a late answer to an earlier copy still counts) at 1, 2.5 and 4.75 s,
// and given up at 8.125 s — snownet's backoff: interval ×1.5 from 1 s, stop once 8 s have passed.
// Re-authenticating (401/438) is a new request with a new id and a fresh schedule.

import type { Endpoint } from "../wire/index.ts";
import type { Channel } from "./turn-channels.ts";
import { REQUEST_BACKOFF, REQUEST_MAX_ELAPSED_MS, REQUEST_TIMEOUT_MS } from "./turn-constants.ts";

/** What a request is for, kept to act on its answer (or its silence). */
export type RequestPurpose =
  | { kind: "binding"; keepalive: boolean }
  | { kind: "allocate"; dual: boolean }
  | { kind: "refresh"; lifetimeS?: number }
  | { kind: "channel_bind"; channel: Channel }
  | { kind: "permission"; address: string };

export interface PendingRequest {
  readonly tid: string;
  readonly method: number;
  readonly purpose: RequestPurpose;
  readonly to: Endpoint;
  readonly bytes: Uint8Array;
  /** Did it carry USERNAME/NONCE/MESSAGE-INTEGRITY (so a success must carry a valid MAC)? */
  readonly authenticated: boolean;
  /** 401/438 answers already followed for this request's purpose. */
  readonly reauths: number;
  readonly firstSentAt: number;
  nextAt: number;
  interval: number;
}

export class Transactions {
  readonly #pending = new Map<string, PendingRequest>();

  get size(): number {
    return this.#pending.size;
  }

  add(p: Omit<PendingRequest, "firstSentAt" | "nextAt" | "interval">, now: number): PendingRequest {
    const full: PendingRequest = { ...p, firstSentAt: now, nextAt: now + REQUEST_TIMEOUT_MS, interval: REQUEST_TIMEOUT_MS };
    this.#pending.set(p.tid, full);
    return full;
  }

  take(tid: string): PendingRequest | undefined {
    const p = this.#pending.get(tid);
    if (p) this.#pending.delete(tid);
    return p;
  }

  get(tid: string): PendingRequest | undefined {
    return this.#pending.get(tid);
  }

  /** Is a request of this kind in flight (optionally: matching `test`)? */
  some(test: (p: PendingRequest) => boolean): boolean {
    for (const p of this.#pending.values()) if (test(p)) return true;
    return false;
  }

  /**
   * Requests due at `now`: `resend` gets those to send again, `giveUp` those past 8 s (removed).
   * Each request is handled once per call however far `now` jumped.
   */
  due(now: number, resend: (p: PendingRequest) => void, giveUp: (p: PendingRequest) => void): void {
    for (const p of [...this.#pending.values()]) {
      if (now < p.nextAt) continue;
      if (now >= p.firstSentAt + REQUEST_MAX_ELAPSED_MS) {
        this.#pending.delete(p.tid);
        giveUp(p);
        continue;
      }
      p.interval *= REQUEST_BACKOFF;
      p.nextAt += p.interval;
      resend(p);
    }
  }

  nextTimeout(): number | undefined {
    let t: number | undefined;
    for (const p of this.#pending.values()) if (t === undefined || p.nextAt < t) t = p.nextAt;
    return t;
  }

  /** Drops every request matching `test` (an allocation that is gone takes its requests with it). */
  drop(test: (p: PendingRequest) => boolean): void {
    for (const [k, p] of this.#pending) if (test(p)) this.#pending.delete(k);
  }

  clear(): void {
    this.#pending.clear();
  }
}
