// The channels of one allocation (RFC 8656 §12): which number is bound to which peer, since
// when, and whether it carried traffic. A channel is usable from the moment its ChannelBind is
// sent (data sent before the relay confirms is dropped there at worst — snownet does the same,
// because by the time it arrives the binding usually has), until its 10-minute lifetime ends.
// One that received data is refreshed at 5 minutes; an idle one lapses, and its number (and its
// peer) is not bound again until the 5-minute cooldown RFC 8656 asks for has passed.

import type { Endpoint } from "../wire/index.ts";
import {
  CHANNEL_LIFETIME_MS, CHANNEL_REBIND_COOLDOWN_MS, CHANNEL_REFRESH_AFTER_MS, FIRST_CHANNEL, LAST_CHANNEL,
} from "./turn-constants.ts";

/** One channel. The caller keeps it as the handle it sends on: no lookup per packet. */
export class Channel {
  /** True once the relay confirmed a ChannelBind for it. */
  bound = false;
  /** When the last ChannelBind for it was sent (lifetime runs from the confirmation, see `boundAt`). */
  requestedAt: number;
  /** When the relay last confirmed it; its 10-minute lifetime runs from here. */
  boundAt = -Infinity;
  /** Data received since the last confirmation: it is in use, so it is refreshed. */
  receivedSinceBind = false;
  /** A ChannelBind for it is in flight. */
  binding = false;
  receivedBytes = 0;
  sentBytes = 0;

  constructor(readonly number: number, readonly peer: Endpoint, now: number) {
    this.requestedAt = now;
  }

  /** Can data go out on it now? Bound and not lapsed, or being (re-)bound. */
  usable(now: number): boolean {
    return this.binding || (this.bound && now < this.boundAt + CHANNEL_LIFETIME_MS);
  }

  /** When it needs a refresh: at half its lifetime, if it carried traffic. */
  refreshAt(): number | undefined {
    return this.bound && this.receivedSinceBind && !this.binding ? this.boundAt + CHANNEL_REFRESH_AFTER_MS : undefined;
  }

  /** When its number may be given to another peer (lapsed + cooldown). */
  reusableAt(): number {
    return (this.bound ? this.boundAt : this.requestedAt) + CHANNEL_LIFETIME_MS + CHANNEL_REBIND_COOLDOWN_MS;
  }
}

export class ChannelTable {
  readonly #byNumber = new Map<number, Channel>();
  #next = FIRST_CHANNEL;

  get size(): number {
    return this.#byNumber.size;
  }

  byNumber(n: number): Channel | undefined {
    return this.#byNumber.get(n);
  }

  /** The channel for this peer that is usable or still within its rebind cooldown. */
  forPeer(peer: Endpoint, now: number): Channel | undefined {
    for (const c of this.#byNumber.values()) {
      if (c.peer.port === peer.port && c.peer.address === peer.address && now < c.reusableAt()) return c;
    }
    return undefined;
  }

  /**
   * A new channel to `peer`: the next number in turn (0x4000 upwards, wrapping), skipping numbers
   * still bound or cooling down. Undefined when all 4096 are taken.
   */
  open(peer: Endpoint, now: number): Channel | undefined {
    const span = LAST_CHANNEL - FIRST_CHANNEL + 1;
    for (let i = 0; i < span; i++) {
      const n = FIRST_CHANNEL + ((this.#next - FIRST_CHANNEL + i) % span);
      const old = this.#byNumber.get(n);
      if (old && now < old.reusableAt()) continue;
      const c = new Channel(n, peer, now);
      this.#byNumber.set(n, c);
      this.#next = n === LAST_CHANNEL ? FIRST_CHANNEL : n + 1;
      return c;
    }
    return undefined;
  }

  remove(c: Channel): void {
    if (this.#byNumber.get(c.number) === c) this.#byNumber.delete(c.number);
  }

  clear(): void {
    this.#byNumber.clear();
  }

  values(): IterableIterator<Channel> {
    return this.#byNumber.values();
  }
}
