// Why a datagram on the ICE/TURN path was not used. As in src/wire/drops.ts: counted by reason,
// never thrown, so hostile or broken traffic shows in metrics instead of in stack traces.

import { DropCounters } from "../wire/drops.ts";
import type { ChannelDataErrorKind } from "./channel-data.ts";
import { parseStun, StunMessage, type StunParseErrorKind } from "./stun.ts";

/** The data plane's one counters type (src/wire/drops.ts), under the name the ICE code uses. */
export { DropCounters as ReasonCounters };

export type StunDropReason = StunParseErrorKind | ChannelDataErrorKind;

/** Parses, and counts a rejection exactly once under its reason. */
export function readStun(buf: Uint8Array, length: number, drops: { count(reason: StunDropReason): void }): StunMessage | undefined {
  const m = parseStun(buf, length);
  if (m instanceof StunMessage) return m;
  drops.count(m.kind);
  return undefined;
}
