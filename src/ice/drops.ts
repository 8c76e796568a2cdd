// Why a datagram on the ICE/TURN path was not used. As in src/wire/drops.ts: counted by reason,
// never thrown, so hostile or broken traffic shows in metrics instead of in stack traces.

import type { ChannelDataErrorKind } from "./channel-data.ts";
import { parseStun, StunMessage, type StunParseErrorKind } from "./stun.ts";

export class ReasonCounters<R extends string> {
  readonly #counts = new Map<R, number>();
  #total = 0;

  count(reason: R): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
    this.#total++;
  }

  get(reason: R): number {
    return this.#counts.get(reason) ?? 0;
  }

  get total(): number {
    return this.#total;
  }

  /** Non-zero counts, for logs, metrics and the admin view. */
  snapshot(): Partial<Record<R, number>> {
    return Object.fromEntries(this.#counts) as Partial<Record<R, number>>;
  }
}

export type StunDropReason = StunParseErrorKind | ChannelDataErrorKind;

/** Parses, and counts a rejection exactly once under its reason. */
export function readStun(buf: Uint8Array, length: number, drops: ReasonCounters<StunDropReason>): StunMessage | undefined {
  const m = parseStun(buf, length);
  if (m instanceof StunMessage) return m;
  drops.count(m.kind);
  return undefined;
}
