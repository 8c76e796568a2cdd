// Numbers of Firezone's portal connection, each with where it comes from. Firezone source paths are
// relative to firezone/firezone `rust/` at 8378819621c7 (2025-10-15); see
// shared/research/firezone-gateway-protocol.md §1. Milliseconds throughout, like every `now` here.

/** The gateway's channel topic (`gateway/src/eventloop.rs` PHOENIX_TOPIC); clients join `client`. */
export const GATEWAY_TOPIC = "gateway";
export const CLIENT_TOPIC = "client";
/** Phoenix's own topic for heartbeats (phoenix.js `socket.js`, Firezone `phoenix-channel/src/lib.rs`). */
export const PHOENIX_TOPIC = "phoenix";

/** No join reply within this long means reconnect (`phoenix-channel/src/lib.rs`, `> Duration::from_secs(5)`). */
export const JOIN_TIMEOUT_MS = 5_000;
/** Heartbeat period; the timer restarts on every frame sent (`heartbeat.reset()` after each send). The
 * portal's idle timeout is 37 s (`elixir/apps/api/lib/api/endpoint.ex`), so one lost beat is survivable. */
export const HEARTBEAT_INTERVAL_MS = 30_000;
/** The TCP connect (here: the whole WebSocket opening) gives up after 5 s (`create_and_connect_websocket`). */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Messages held while not joined; the rest are dropped, oldest first (MAX_BUFFERED_MESSAGES, "chosen
 * pretty arbitrarily. If we are connected, these should never build up"). */
export const MAX_BUFFERED_MESSAGES = 32;

/** Reconnect backoff: the `backoff` crate's ExponentialBackoff defaults, with the gateway's 15-minute
 * max elapsed time (`gateway/src/main.rs`). The first retry after a working connection is immediate. */
export const BACKOFF_INITIAL_MS = 500;
export const BACKOFF_MULTIPLIER = 1.5;
/** ±50 %: a delay is drawn from [interval × 0.5, interval × 1.5]. */
export const BACKOFF_RANDOMIZATION = 0.5;
/** Caps the interval, not the jittered delay (the crate's documented behaviour): a delay reaches 90 s at most. */
export const BACKOFF_MAX_INTERVAL_MS = 60_000;
export const BACKOFF_MAX_ELAPSED_MS = 15 * 60_000;

/**
 * Exit codes of a fatal portal error, in the project's contract (DESIGN §3: 1 runtime failure, 2 bad
 * config naming the field). A token the portal refuses or expires is the operator's FIREZONE_TOKEN to
 * replace — restarting will not help — so it exits 2 (a supervisor can stop retrying on it); a portal
 * that rejects the join or stays away for 15 minutes is a runtime failure, 1.
 */
export const EXIT_BAD_CONFIG = 2;
export const EXIT_RUNTIME = 1;
