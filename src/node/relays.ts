// The TURN relays the portal hands the gateway, one TurnClient (allocation) each, all sharing the
// gateway's one UDP socket. Kept apart from the ICE connections because their lives differ: a
// relay outlives any one client (every connection gets its candidates), and a relay set by the
// portal is only freed when the portal says so (removeRelays) — never because the portal went
// away (Firezone #10040).
import type { TargetLogger } from "../telemetry/log.ts";
import { TurnClient, type AllocationFailure, type TurnEvent } from "../ice/turn-client.ts";
import type { Endpoint } from "../wire/index.ts";

export interface RelaySpec {
  id: string;
  addr: Endpoint[];
  username: string;
  password: string;
  /** When the credentials lapse (ms, the node's clock): informational, the portal sends new ones. */
  expiresAt?: number;
}

export interface Relay {
  readonly id: string;
  readonly turn: TurnClient;
  spec: RelaySpec;
  /** removeRelays asked for it: freed, kept only until its last datagrams went out. */
  removing: boolean;
}

/** For the admin's Relays view and the metrics: a snapshot, never the TurnClient. */
export interface RelayView {
  id: string;
  servers: string[];
  server: string | null;
  state: string;
  relayed: string[];
  srflx: string | null;
  /** Allocation lifetime left (s), null before one exists. */
  expires_in_s: number | null;
  credentials_expire_in_s: number | null;
  channels: { number: number; peer: string; bound: boolean; sent_bytes: number; received_bytes: number }[];
  relayed_bytes: { sent: number; received: number };
  failures: Partial<Record<AllocationFailure, number>>;
}

/**
 * The agent-side name of one relayed address of a relay: the relay id, suffixed by the family for
 * IPv6 (an allocation may hold both, and the agent tells its local bases apart by this name).
 */
export function relayKey(id: string, relayed: Endpoint): string {
  return relayed.address.includes(":") ? `${id}#6` : id;
}

export function relayIdOf(key: string): string {
  return key.endsWith("#6") ? key.slice(0, -2) : key;
}

export class Relays {
  readonly #byId = new Map<string, Relay>();
  /** The same relays as an array: the data path scans it by server address without allocating. */
  list: Relay[] = [];
  /** Failures of relays since removed, so the metric never goes down. */
  readonly #pastFailures = new Map<AllocationFailure, number>();
  #pastBytes = { sent: 0, received: 0 };

  constructor(private readonly log?: TargetLogger) {}

  get size(): number {
    return this.list.length;
  }

  get(id: string): Relay | undefined {
    return this.#byId.get(id);
  }

  /**
   * Adds relays, or updates known ones: new credentials take effect at the next request; a new
   * address set starts a fresh allocation (the old one is freed).
   */
  set(specs: RelaySpec[], now: number): Relay[] {
    const added: Relay[] = [];
    for (const spec of specs) {
      const known = this.#byId.get(spec.id);
      if (known && !known.removing && sameAddrs(known.spec.addr, spec.addr)) {
        if (known.spec.username !== spec.username || known.spec.password !== spec.password) known.turn.setCredentials(spec.username, spec.password);
        known.spec = spec;
        continue;
      }
      if (known) this.#forget(known, now);
      const relay: Relay = { id: spec.id, spec, removing: false, turn: new TurnClient({ servers: spec.addr, username: spec.username, password: spec.password, log: this.log }, now) };
      this.#byId.set(spec.id, relay);
      this.list = [...this.list.filter((r) => r.id !== spec.id), relay];
      added.push(relay);
      this.log?.info("relay added", { relay: spec.id, servers: spec.addr.map((a) => `${a.address}:${a.port}`).join(" ") });
    }
    return added;
  }

  /** Frees the allocations; the relays stay listed (removing) until the frees went out. */
  remove(ids: string[], now: number): Relay[] {
    const gone: Relay[] = [];
    for (const id of ids) {
      const r = this.#byId.get(id);
      if (!r || r.removing) continue;
      r.removing = true;
      r.turn.free(now);
      gone.push(r);
      this.log?.info("relay removed", { relay: id });
    }
    return gone;
  }

  #forget(r: Relay, now: number): void {
    r.turn.free(now);
    r.removing = true;
  }

  /** Drops relays that were removed and have nothing left to send. */
  sweep(): void {
    for (const r of this.list) {
      if (!r.removing || (r.turn.state !== "freed" && r.turn.state !== "failed")) continue;
      for (const [reason, n] of Object.entries(r.turn.failures.snapshot()) as [AllocationFailure, number][]) {
        this.#pastFailures.set(reason, (this.#pastFailures.get(reason) ?? 0) + n);
      }
      this.#pastBytes.sent += r.turn.relayedBytesSent;
      this.#pastBytes.received += r.turn.relayedBytesReceived;
      if (this.#byId.get(r.id) === r) this.#byId.delete(r.id);
    }
    if (this.list.some((r) => r.removing && (r.turn.state === "freed" || r.turn.state === "failed"))) {
      this.list = this.list.filter((r) => !(r.removing && (r.turn.state === "freed" || r.turn.state === "failed")));
    }
  }

  /** The relay whose server `from` is (a scan: there are a handful, and it allocates nothing). */
  byServer(from: Endpoint): Relay | undefined {
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!;
      const s = r.turn.server;
      if (s !== undefined ? s.port === from.port && s.address === from.address : r.turn.servers.some((a) => a.port === from.port && a.address === from.address)) return r;
    }
    return undefined;
  }

  pollTimeout(): number | undefined {
    let t: number | undefined;
    for (const r of this.list) {
      const x = r.turn.pollTimeout();
      if (x !== undefined && (t === undefined || x < t)) t = x;
    }
    return t;
  }

  handleTimeout(now: number): void {
    for (const r of this.list) {
      const x = r.turn.pollTimeout();
      if (x !== undefined && x <= now) r.turn.handleTimeout(now);
    }
  }

  /** Every relay's pending events, with the relay they concern. */
  *events(): Generator<{ relay: Relay; event: TurnEvent }> {
    for (const r of this.list) for (let e = r.turn.pollEvent(); e; e = r.turn.pollEvent()) yield { relay: r, event: e };
  }

  failures(): Partial<Record<AllocationFailure, number>> {
    const out: Partial<Record<AllocationFailure, number>> = Object.fromEntries(this.#pastFailures);
    for (const r of this.list) for (const [k, n] of Object.entries(r.turn.failures.snapshot()) as [AllocationFailure, number][]) out[k] = (out[k] ?? 0) + n;
    return out;
  }

  bytes(): { sent: number; received: number } {
    let sent = this.#pastBytes.sent;
    let received = this.#pastBytes.received;
    for (const r of this.list) {
      sent += r.turn.relayedBytesSent;
      received += r.turn.relayedBytesReceived;
    }
    return { sent, received };
  }

  views(now: number): RelayView[] {
    const ep = (e: Endpoint) => (e.address.includes(":") ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);
    return this.list.map((r) => {
      const t = r.turn;
      const exp = t.expiresAt;
      return {
        id: r.id,
        servers: t.servers.map(ep),
        server: t.server ? ep(t.server) : null,
        state: r.removing && t.state !== "freed" ? "freeing" : t.state,
        relayed: t.relays.map(ep),
        srflx: t.srflx ? ep(t.srflx) : null,
        expires_in_s: exp === undefined ? null : Math.max(0, Math.round((exp - now) / 1000)),
        credentials_expire_in_s: r.spec.expiresAt === undefined ? null : Math.round((r.spec.expiresAt - now) / 1000),
        channels: [...t.channels()].map((c) => ({ number: c.number, peer: ep(c.peer), bound: c.bound, sent_bytes: c.sentBytes, received_bytes: c.receivedBytes })),
        relayed_bytes: { sent: t.relayedBytesSent, received: t.relayedBytesReceived },
        failures: t.failures.snapshot(),
      };
    });
  }
}

function sameAddrs(a: Endpoint[], b: Endpoint[]): boolean {
  return a.length === b.length && a.every((x, i) => x.address === b[i]!.address && x.port === b[i]!.port);
}
