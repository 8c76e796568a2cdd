// Timers of the ICE agent, in milliseconds. Firezone's snownet configures str0m with these
// (rust/connlib/snownet/src/node.rs; ../shared/research/firezone-gateway-protocol.md §2); a gateway
// that times out differently from its clients would flap connections the client thinks are fine.

/** First retransmission timeout of a connectivity check; doubles per retransmit (RFC 8489 §6.2.1). */
export const INITIAL_RTO_MS = 250;
/** Ceiling of the doubling while the connection carries traffic (snownet: 1.5 s, not RFC's 3 s). */
export const MAX_RTO_MS = 1_500;
/**
 * Transmissions of one check before its pair fails. With the RTOs above the last answer may arrive
 * 250+500+1000+9×1500 = 15 250 ms after the first request: snownet's "ICE timeout".
 */
export const MAX_RETRANSMITS = 12;

/** No traffic for this long and the connection goes idle: checks slow down to save wake-ups. */
export const IDLE_AFTER_MS = 20_000;
/** Idle: the nominated pair is checked every 25 s, and 4 unanswered checks (100 s) end it. */
export const IDLE_RTO_MS = 25_000;
export const IDLE_RETRANSMITS = 4;

/** Disconnected (every pair failed) this long without recovery means failed. */
export const DISCONNECT_GRACE_MS = 2_000;
/** A connection that has no remote candidate to check for this long has failed. */
export const NO_CANDIDATES_TIMEOUT_MS = 10_000;

/** Optimistic remote candidates (remote srflx IP × remote host port, IPv4 only) per connection. */
export const MAX_OPTIMISTIC_CANDIDATES = 2;

/**
 * Delay before transmission `n` (1-based: the delay after the first send is `rto(1)`) of a check.
 * RFC 8489 doubling from INITIAL_RTO, capped at `maxRto`.
 */
export function retransmitDelay(n: number, maxRto: number): number {
  return Math.min(INITIAL_RTO_MS * 2 ** Math.min(n - 1, 16), maxRto);
}

/** Sum of the delays of `transmissions` sends: when an unanswered check gives up. */
export function checkTimeout(transmissions: number, maxRto: number): number {
  let t = 0;
  for (let n = 1; n <= transmissions; n++) t += retransmitDelay(n, maxRto);
  return t;
}
