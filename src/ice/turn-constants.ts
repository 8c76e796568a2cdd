// The TURN client's numbers, each with where it comes from. Firezone's relays and its clients
// agree on these (snownet `allocation.rs`), so a gateway that uses other values would, e.g.,
// let a channel lapse that the client still relies on.

/** A request not answered within this is sent again (snownet REQUEST_TIMEOUT). */
export const REQUEST_TIMEOUT_MS = 1_000;
/** Each retransmission waits 1.5× the previous one: 1, 2.5, 4.75, 8.125 s (snownet backoff.rs MULTIPLIER). */
export const REQUEST_BACKOFF = 1.5;
/** A request still unanswered this long after its first send has failed (snownet REQUEST_MAX_ELAPSED). */
export const REQUEST_MAX_ELAPSED_MS = 8_000;
/**
 * A binding request to the relay every 25 s while allocated (snownet BINDING_INTERVAL): keeps the
 * NAT mapping towards the relay open (UDP mappings commonly last 30 s) and notices a changed srflx.
 */
export const BINDING_INTERVAL_MS = 25_000;
/** RFC 8656 §12: a channel binding lasts 10 minutes unless refreshed. */
export const CHANNEL_LIFETIME_MS = 10 * 60_000;
/** snownet refreshes a channel that carried traffic at half its lifetime. */
export const CHANNEL_REFRESH_AFTER_MS = CHANNEL_LIFETIME_MS / 2;
/** RFC 8656 §12: a channel number (or peer) is not re-bound until 5 minutes after its binding expired. */
export const CHANNEL_REBIND_COOLDOWN_MS = 5 * 60_000;
/** RFC 8656 §12: 0x4000–0x4FFF; 0x5000–0x7FFF are reserved. */
export const FIRST_CHANNEL = 0x4000;
export const LAST_CHANNEL = 0x4fff;
/** RFC 8656 §9: permissions last 300 s, not negotiable; refreshed a minute early (§9.1 recommends before expiry). */
export const PERMISSION_LIFETIME_MS = 300_000;
export const PERMISSION_REFRESH_AFTER_MS = 240_000;
/** An allocation is refreshed at half its granted lifetime (snownet `refresh_allocation_at`). */
export const ALLOCATION_REFRESH_FRACTION = 0.5;
/** What SOFTWARE says (RFC 8489 §14.14: informational; Firezone sends "snownet; session=…"). */
export const SOFTWARE = "glassgate";
/** Re-authentications in a row (401/438) before a request is given up: a server that keeps rejecting fresh nonces is broken. */
export const MAX_REAUTH = 3;

// RFC 8489 §14.8 / RFC 8656 §19 error codes the client acts on.
export const ERR_UNAUTHORIZED = 401;
export const ERR_UNKNOWN_ATTRIBUTE = 420;
export const ERR_ALLOCATION_MISMATCH = 437;
export const ERR_STALE_NONCE = 438;
export const ERR_ADDRESS_FAMILY = 440;
export const ERR_WRONG_CREDENTIALS = 441;
export const ERR_UNSUPPORTED_TRANSPORT = 442;
export const ERR_ALLOCATION_QUOTA = 486;
export const ERR_INSUFFICIENT_CAPACITY = 508;
/** Allocations made in a row without one surviving its first refresh before giving up (ours: a relay that loses each one is broken). */
export const MAX_REALLOCATIONS = 4;
