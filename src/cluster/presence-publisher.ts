// Keeps a gateway's row in a gateways table current: on each beat it publishes last_seen, the
// connected count and its live state (gateway-presence.ts), and registers again when the row is
// gone (an operator deleted it, or the database is new). The same for the SQLite row (standalone,
// every 10 s) and the PostgreSQL one (clustered, every 5 s). A database that fails is logged once
// when it starts failing and once when it is back; the beat never throws.
import type { GatewayStart, GatewayStore } from "../store/gateways.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import type { GatewayLive } from "./gateway-presence.ts";

export interface PresenceSnapshot {
  connectedPeers: number;
  live: GatewayLive;
}

export class PresencePublisher {
  #failingSince: number | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #inFlight: Promise<boolean> | undefined;

  constructor(private readonly o: { store: GatewayStore; registration: GatewayStart; snapshot: () => PresenceSnapshot; where: string; log?: TargetLogger }) {}

  /** One beat; true when the row is current. A beat still running is not overlapped by another. */
  publishOnce(now = Date.now()): Promise<boolean> {
    this.#inFlight ??= this.#beat(now).finally(() => (this.#inFlight = undefined));
    return this.#inFlight;
  }

  start(intervalMs: number): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.publishOnce(), intervalMs);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #beat(now: number): Promise<boolean> {
    try {
      const { connectedPeers, live } = this.o.snapshot();
      const text = JSON.stringify(live);
      const { store, registration } = this.o;
      if (!(await store.publish(registration.gid, now, connectedPeers, text))) {
        await store.register(registration, now);
        await store.publish(registration.gid, now, connectedPeers, text);
      }
      if (this.#failingSince !== null) {
        this.o.log?.info("gateway presence published again", { store: this.o.where, outage_ms: now - this.#failingSince });
        this.#failingSince = null;
      }
      return true;
    } catch (err) {
      if (this.#failingSince === null) {
        this.#failingSince = now;
        this.o.log?.warn("gateway presence not published: other admins will see this gateway as stale", { store: this.o.where, err });
      }
      return false;
    }
  }
}
