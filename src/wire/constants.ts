// WireGuard protocol constants. Source: the WireGuard whitepaper §5.4 and §6, cross-checked with
// wireguard-go device/constants.go and device/noise-protocol.go. Times are milliseconds.

export const CONSTRUCTION = new TextEncoder().encode("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s");
export const IDENTIFIER = new TextEncoder().encode("WireGuard v1 zx2c4 Jason@zx2c4.com");
export const LABEL_MAC1 = new TextEncoder().encode("mac1----");
export const LABEL_COOKIE = new TextEncoder().encode("cookie--");

// Message types: the first 4 bytes, little-endian (type byte + 3 reserved zero bytes).
export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

// Sizes in bytes (whitepaper §5.4.2–§5.4.7).
export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
export const TRANSPORT_HEADER_SIZE = 16;
export const TRANSPORT_MIN_SIZE = TRANSPORT_HEADER_SIZE + 16; // header + tag (a keepalive)
/** Largest datagram we accept at all: the largest UDP payload (wireguard-go MaxMessageSize). */
export const MAX_DATAGRAM_SIZE = 65535;
export const PADDING_MULTIPLE = 16;

// Timers (whitepaper §6.1, wireguard-go constants.go).
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/** 2^64 − 2^13 − 1. Not exactly representable as a double; see REJECT_COUNTER below. */
export const REJECT_AFTER_MESSAGES = 2 ** 64 - 2 ** 13 - 1;
/**
 * Counters are JS numbers on the hot path (no BigInt per packet), exact up to 2^53. A counter
 * at or beyond that is treated as past the reject limit: no honest peer gets there (2^53 packets
 * at 10 Mpps is 28 years), and REKEY_AFTER_MESSAGES is far below the real limit anyway.
 */
export const REJECT_COUNTER = Number.MAX_SAFE_INTEGER;
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
/** Upper bound of the random jitter added to each handshake retransmission (wireguard-go: 334 ms). */
export const REKEY_TIMEOUT_JITTER_MAX = 334;
export const KEEPALIVE_TIMEOUT = 10_000;
export const COOKIE_REFRESH_TIME = 120_000;
/** Attempts before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT. */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;
/**
 * glassgate's own: a peer is reached out to (WirePeer.reachOut, a takeover) at most once per this
 * interval — REKEY_TIMEOUT, the spacing WireGuard itself keeps between a peer's initiations, so a
 * takeover run twice in a row (or in a loop) adds nothing a retransmission would not.
 */
export const REACH_OUT_INTERVAL = REKEY_TIMEOUT;
/** A responder accepts at most one initiation per peer per this interval (wireguard-go HandshakeInitationRate). */
export const HANDSHAKE_INITIATION_RATE = 20;
/** TAI64N timestamps are truncated to this many nanoseconds (2^24 ns) so they do not leak fine timing. */
export const TIMESTAMP_WHITENING_NS = 0x1000000;

/**
 * Receive window: counters up to this far behind the newest still decrypt once. 8128, as both
 * references: wireguard-go replay/replay.go (128 ring blocks of 64 bits, window (128 − 1) × 64)
 * and Linux drivers/net/wireguard/messages.h (COUNTER_BITS_TOTAL 8192 − BITS_PER_LONG 64). A
 * narrower window than the peer's own drops packets that multi-queue NICs and parallel encryption
 * legitimately reorder. Our ring has 32-bit words, so 256 of them hold the same 8192 bits; the
 * window must stay ≤ (blocks − 1) × 32 = 8160 so the newest block never shares a slot with one
 * still inside the window.
 */
export const REPLAY_WINDOW_BLOCKS = 256;
export const REPLAY_WINDOW_SIZE = 8128;

/** Packets held while a handshake is in flight (wireguard-go QueueStagedSize is 128). */
export const MAX_STAGED_PACKETS = 128;
// ── Handshake load (whitepaper §5.3) ──
// Neither reference counts a rate. Both queue handshake messages for worker threads and are
// "under load" (cookies required) while the backlog is at least 1/8 of the queue, and for
// UNDER_LOAD_AFTER_TIME after: wireguard-go device.go IsUnderLoad with QueueHandshakeSize 1024
// (queueconstants_default.go) → 128; Linux receive.c with MAX_QUEUED_INCOMING_HANDSHAKES 4096
// → 512. We have no queue: each handshake is handled at once on the one thread that also moves
// packets. So we model one (cookie.ts HandshakeLoad): every message that passes mac1 — each will
// cost a cookie reply or Diffie-Hellman — enters a leaky bucket drained at HANDSHAKE_SERVICE_RATE,
// and the bucket's level is the backlog a queue served at that rate would have. A burst or a
// sustained stream above the service rate builds it up; a trickle never does.
/** Capacity of the modelled handshake queue (wireguard-go QueueHandshakeSize); a full queue drops. */
export const HANDSHAKE_QUEUE_SIZE = 1024;
/** Backlog that puts us under load: 1/8 of the queue (wireguard-go IsUnderLoad, Linux receive.c). */
export const UNDER_LOAD_BACKLOG = HANDSHAKE_QUEUE_SIZE / 8;
/**
 * Backlog from which every handshake message is rate-limited per source before any MAC work:
 * half the queue (Linux receive.c wg_packet_receive), so a single flooding address costs a table
 * lookup per packet rather than a BLAKE2s.
 */
export const RATE_LIMIT_ALL_BACKLOG = HANDSHAKE_QUEUE_SIZE / 2;
/**
 * Handshake messages per second the thread serves before a backlog builds: a budget of 10 % of
 * one core, so the data path keeps ≥ 90 % under a handshake flood. What a flood buys is
 * consume-initiation work — 2 DH, 2.7 ms with @noble/curves X25519 on the 2-core CI VM (Nov
 * 2026) — and 0.1 s / 2.7 ms ≈ 37; 32 keeps some margin. A response (2 more DH, 3 ms) follows
 * only for a configured peer's key, at most once per HANDSHAKE_INITIATION_RATE per peer. It must
 * stay above HANDSHAKE_RATE_PER_SOURCE, or one source that answers cookies could fill the queue
 * by itself. Re-derive it if the X25519 backend changes (native X25519 is ~17× faster here).
 */
export const HANDSHAKE_SERVICE_RATE = 32;
/** Once under load, stay so for this long (wireguard-go UnderLoadAfterTime). */
export const UNDER_LOAD_AFTER_TIME = 1_000;

// Per-source rate limit under load (wireguard-go ratelimiter/ratelimiter.go, Linux ratelimiter.c).
/** Handshake messages per second one source (IPv4 address, IPv6 /64) may have processed. */
export const HANDSHAKE_RATE_PER_SOURCE = 20;
/** Messages a source may send at once before its rate applies. */
export const HANDSHAKE_BURST_PER_SOURCE = 5;
/** A source idle this long is forgotten (its bucket would be full again anyway). */
export const RATE_LIMITER_GC_TIME = 1_000;
/** Sources tracked at most; new ones beyond are refused (Linux caps its table the same way). */
export const RATE_LIMITER_MAX_SOURCES = 65_536;
