// Why a datagram was not delivered. Every drop is counted by reason — never thrown, never answered —
// so operators can see hostile or broken traffic in metrics and on the connection's timeline.

export const DROP_REASONS = [
  "truncated", // shorter than its message type requires
  "oversized", // larger than a UDP payload, or than the caller's buffer
  "wrong_size", // a handshake or cookie message longer than its fixed size
  "unknown_type", // first 4 bytes are not 1..4 with zero reserved bytes
  "mac1", // mac1 does not match our public key: not meant for us, or forged
  "under_load", // valid mac1 but no valid mac2 while under load: answered with a cookie instead
  "handshake_rate_limited", // under load, the source (IPv4 address, IPv6 /64) is over 20 handshake messages/s
  "handshake_queue_full", // the modelled handshake queue is full: more handshake work than the thread serves
  "handshake_decrypt", // initiation/response failed to authenticate (wrong keys, corrupted)
  "unknown_peer", // a valid initiation from a static key that is not this peer
  "replayed_initiation", // TAI64N timestamp not newer than the last accepted one
  "initiation_flood", // a second initiation within HANDSHAKE_INITIATION_RATE
  "unknown_session", // receiver index matches no live session or pending handshake
  "cookie_decrypt", // cookie reply that does not authenticate against our last mac1
  "expired_session", // transport on a session older than REJECT_AFTER_TIME
  "counter_limit", // transport counter at or past the reject limit
  "replay", // counter already seen, or behind the window
  "decrypt", // transport payload failed authentication
  "inner_length", // decrypted payload is not a complete IP packet
  "no_endpoint", // wanted to send but the peer has no known endpoint
  "staged_overflow", // too many packets waiting for a handshake; the oldest went
  "handshake_timeout", // staged packet dropped because the handshake gave up
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/**
 * Drops counted by reason — the one counters type of the data plane: a peer's (DropReason), the
 * tunnel's and the gateway's (their own reason unions). Iterates as [reason, count] pairs, as
 * metrics and the admin read them.
 */
export class DropCounters<R extends string = DropReason> {
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

  [Symbol.iterator](): IterableIterator<[R, number]> {
    return this.#counts.entries();
  }
}
