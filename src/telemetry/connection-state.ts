// What each connection is, computed in one place from what the gateway has proven: tunnel events
// (handshakes, confirmations, give-ups) plus a per-turn sample of received packets, and the peer
// sync's reasons for taking a peer out. Sans-IO: no clock inside, every input carries `now`.
//
// The rule it exists for: a responder has proven nothing when it sends its response — only the
// first authenticated transport packet on the new session (key confirmation, `session_confirmed`)
// shows the client derived the same keys (a wrong preshared key gets a response every 5 s and is
// never confirmed). So a responder waits in `awaiting_confirmation`, not `connected`.
import type { TunnelEvent } from "../tunnel/index.ts";
import { REJECT_AFTER_TIME } from "../wire/index.ts";

export const CONNECTION_STATES = [
  "idle", // configured, no handshake yet (or the peer said goodbye): waiting for the peer
  "handshaking", // the gateway sent an initiation and waits for the response
  "awaiting_confirmation", // the gateway answered an initiation; no authenticated packet on it yet
  "connected", // a confirmed session, with authenticated traffic within REJECT_AFTER_TIME
  "stale", // was connected; nothing authenticated received for longer than REJECT_AFTER_TIME
  "failed", // the gateway's handshake gave up (REKEY_ATTEMPT_TIME without a response)
  "expired", // the peer's expiry passed: taken out of the data plane
  "disabled", // the peer was disabled: taken out of the data plane
] as const;
export type ConnectionState = (typeof CONNECTION_STATES)[number];

/** Why the peer sync took a peer out of the data plane (peer-sync.ts). */
export type RemovalReason = "expired" | "disabled" | "deleted" | "address_clash" | "not_served";

export interface StateEntry {
  state: ConnectionState;
  /** `now` of the input that moved it there. */
  since: number;
  /** Last time the sampled received-packet count grew (an authenticated packet arrived). */
  lastRxAt: number;
  rxPackets: number;
  /** Handshakes with confirmed keys (initiator: response consumed; responder: first packet on it). */
  confirmed: number;
}

/** How many taken-out connections are remembered (their page still says expired/disabled). */
const REMEMBER_REMOVED = 1024;

export class ConnectionStates {
  readonly #live = new Map<number, StateEntry>();
  readonly #removed = new Map<number, StateEntry>();
  /**
   * Live connections in `connected`: the only state time alone changes (to `stale`), so a
   * periodic sample looks at these and at the connections with traffic, never at every idle one.
   */
  readonly #connected = new Map<number, StateEntry>();
  readonly #staleAfter: number;

  constructor(opts: { staleAfterMs?: number } = {}) {
    // A session that has heard nothing for REJECT_AFTER_TIME cannot be receiving any more.
    this.#staleAfter = opts.staleAfterMs ?? REJECT_AFTER_TIME;
  }

  /** The state of `cid`, live or recently taken out; undefined if never seen. */
  get(cid: number): StateEntry | undefined {
    return this.#live.get(cid) ?? this.#removed.get(cid);
  }

  #entry(cid: number, now: number): StateEntry {
    let e = this.#live.get(cid);
    if (!e) {
      e = { state: "idle", since: now, lastRxAt: 0, rxPackets: 0, confirmed: 0 };
      this.#live.set(cid, e);
      this.#removed.delete(cid);
    }
    return e;
  }

  #move(e: StateEntry, to: ConnectionState, now: number, cid: number): void {
    if (e.state === to) return;
    e.state = to;
    e.since = now;
    if (to === "connected") this.#connected.set(cid, e);
    else this.#connected.delete(cid);
  }

  /** A connection exists (peer added): idle until something happens. */
  added(cid: number, now: number): void {
    this.#entry(cid, now);
  }

  onEvent(ev: TunnelEvent, now: number): void {
    const e = this.#entry(ev.cid, now);
    switch (ev.type) {
      case "handshake_initiated":
        // A rekey of a working session is no change of state; anything else now waits on us.
        if (e.state !== "connected") this.#move(e, "handshaking", now, ev.cid);
        break;
      case "handshake_completed":
        if (ev.role === "initiator") {
          // The initiator consumed the response: both sides hold the keys (the response proves it).
          e.lastRxAt = now;
          e.confirmed++;
          this.#move(e, "connected", now, ev.cid);
        } else if (e.state !== "connected") {
          this.#move(e, "awaiting_confirmation", now, ev.cid);
        }
        break;
      case "session_confirmed":
        e.lastRxAt = now;
        e.confirmed++;
        this.#move(e, "connected", now, ev.cid);
        break;
      case "handshake_failed":
        this.#move(e, "failed", now, ev.cid);
        break;
      case "keys_zeroed":
        if (e.state === "connected" || e.state === "awaiting_confirmation") this.#move(e, "stale", now, ev.cid);
        break;
      case "goodbye_received":
        this.#move(e, "idle", now, ev.cid);
        break;
      default:
        break;
    }
  }

  /**
   * Per-turn sample of a live connection's received packets (a counter the data path keeps
   * anyway: nothing is counted per packet here). Growth means authenticated traffic arrived.
   */
  sample(cid: number, rxPackets: number, now: number): void {
    const e = this.#entry(cid, now);
    if (rxPackets !== e.rxPackets) {
      e.rxPackets = rxPackets;
      e.lastRxAt = now;
      if (e.state === "stale") this.#move(e, "connected", now, cid);
    } else if (e.state === "connected" && now - e.lastRxAt > this.#staleAfter) {
      this.#move(e, "stale", now, cid);
    }
  }

  /**
   * The periodic sample at scale: `touched` are the connections the tunnel listed since the last
   * call (Tunnel.takeTouched; removed ones are skipped), the only ones whose received-packet count
   * can have grown; connected ones not among them are checked for going stale. Same outcome as
   * sampling every live connection, at the cost of the active ones.
   */
  sampleTouched(touched: Iterable<{ cid: number; removed: boolean; peer: { stats: { rxPackets: number } } }>, now: number): void {
    for (const c of touched) if (!c.removed) this.sample(c.cid, c.peer.stats.rxPackets, now);
    for (const [cid, e] of this.#connected) if (now - e.lastRxAt > this.#staleAfter) this.#move(e, "stale", now, cid);
  }

  /** The peer sync took the peer out: expired and disabled stay visible; deleted ones are forgotten. */
  removed(cid: number, reason: RemovalReason, now: number): void {
    const e = this.#live.get(cid);
    this.#live.delete(cid);
    this.#connected.delete(cid);
    if (reason !== "expired" && reason !== "disabled") return;
    const kept = e ?? { state: "idle" as ConnectionState, since: now, lastRxAt: 0, rxPackets: 0, confirmed: 0 };
    this.#move(kept, reason, now, cid);
    this.#connected.delete(cid);
    this.#removed.set(cid, kept);
    if (this.#removed.size > REMEMBER_REMOVED) this.#removed.delete(this.#removed.keys().next().value!);
  }

  /** How many live connections are in each state (every state listed, zeros included). */
  counts(): [ConnectionState, number][] {
    const n = new Map<ConnectionState, number>(CONNECTION_STATES.map((st) => [st, 0]));
    for (const e of this.#live.values()) n.set(e.state, n.get(e.state)! + 1);
    return [...n];
  }

  /** Live cids the tunnel no longer has (removed without a reason we were told): forgotten. */
  retain(isLive: (cid: number) => boolean): void {
    for (const cid of this.#live.keys()) {
      if (!isLive(cid)) {
        this.#live.delete(cid);
        this.#connected.delete(cid);
      }
    }
  }
}
