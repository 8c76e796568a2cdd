// Per-source token bucket for handshake messages (wireguard-go ratelimiter/ratelimiter.go, Linux
// drivers/net/wireguard/ratelimiter.c). A cookie only proves that a sender owns its address; an
// attacker that does can still ask for Diffie-Hellman work as fast as it sends. Under load each
// source therefore gets HANDSHAKE_RATE_PER_SOURCE messages per second after a burst of
// HANDSHAKE_BURST_PER_SOURCE, so one address cannot keep the only thread busy with handshakes.
import { parseIPv6 } from "../ip/address.ts";
import {
  HANDSHAKE_BURST_PER_SOURCE,
  HANDSHAKE_RATE_PER_SOURCE,
  RATE_LIMITER_GC_TIME,
  RATE_LIMITER_MAX_SOURCES,
} from "./constants.ts";
import type { Endpoint } from "./cookie.ts";

/** Milliseconds of tokens one message costs, and the most a source can save up. */
const COST = 1000 / HANDSHAKE_RATE_PER_SOURCE;
const MAX_TOKENS = COST * HANDSHAKE_BURST_PER_SOURCE;

interface Bucket {
  tokens: number;
  lastAt: number;
}

export class HandshakeRateLimiter {
  readonly #table = new Map<string, Bucket>();
  #sweptAt = -Infinity;

  /**
   * Takes one message's worth of tokens from `from`'s bucket. False when the source is over its
   * rate, or when the table is full and the source is new (Linux does the same on its entry cap:
   * the table's memory stays bounded however many addresses an attacker sends from).
   */
  allow(from: Endpoint, now: number): boolean {
    this.#sweep(now);
    const key = sourceKey(from.address);
    const b = this.#table.get(key);
    if (b === undefined) {
      if (this.#table.size >= RATE_LIMITER_MAX_SOURCES) return false;
      this.#table.set(key, { tokens: MAX_TOKENS - COST, lastAt: now });
      return true;
    }
    b.tokens = Math.min(MAX_TOKENS, b.tokens + Math.max(0, now - b.lastAt));
    b.lastAt = now;
    // ≥ as Linux: a fresh source gets exactly HANDSHAKE_BURST_PER_SOURCE messages at once.
    if (b.tokens >= COST) {
      b.tokens -= COST;
      return true;
    }
    return false;
  }

  /** Sources currently tracked. */
  get size(): number {
    return this.#table.size;
  }

  /** Forgets sources idle for RATE_LIMITER_GC_TIME (a full bucket again), at most once per that interval. */
  #sweep(now: number): void {
    if (now - this.#sweptAt < RATE_LIMITER_GC_TIME) return;
    this.#sweptAt = now;
    for (const [key, b] of this.#table) if (now - b.lastAt > RATE_LIMITER_GC_TIME) this.#table.delete(key);
  }
}

/**
 * Who counts as one source: an IPv4 address, or an IPv6 /64 — one subscriber usually gets a whole
 * /64, so per-address buckets would give a single attacker 2^64 of them (Linux ratelimiter.c masks
 * IPv6 to /64 for the same reason). IPv4-mapped IPv6 counts as the IPv4 address.
 */
export function sourceKey(address: string): string {
  if (!address.includes(":")) return address;
  const zone = address.indexOf("%");
  const bytes = parseIPv6(zone < 0 ? address : address.slice(0, zone));
  if (bytes === undefined) return address;
  if (bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.subarray(12).join(".");
  let key = "";
  for (let i = 0; i < 8; i += 2) key += ((bytes[i]! << 8) | bytes[i + 1]!).toString(16) + ":";
  return `${key}:/64`;
}
