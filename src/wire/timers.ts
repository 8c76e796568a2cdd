// A peer's timers (whitepaper §6, wireguard-go timers.go): absolute deadlines, armed and cleared
// by hooks named after the protocol events. The peer (peer.ts) asks which deadlines are due and
// acts; this file only decides when.
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from "./constants.ts";

/** A deadline already past on any clock: fires at the first handleTimeout (sans-IO has no `now` here). */
export const DUE_NOW = 0;

/** The five timers of whitepaper §6, in the order a peer acts on them when several are due. */
export type TimerKind = "retransmit" | "send_keepalive" | "new_handshake" | "zero_keys" | "persistent_keepalive";

export class PeerTimers {
  /** Resend the initiation (no response yet). */
  retransmitAt: number | undefined;
  /** Send a keepalive: we received data and have sent nothing back. */
  sendKeepaliveAt: number | undefined;
  /** Start a new handshake: we sent data and have heard nothing back. */
  newHandshakeAt: number | undefined;
  /** Erase all keys: no new session for 3 × REJECT_AFTER_TIME. */
  zeroKeysAt: number | undefined;
  persistentKeepaliveAt: number | undefined;
  handshakeAttempts = 0;
  needAnotherKeepalive = false;

  constructor(
    /** Milliseconds; 0 disables. */
    public persistentKeepalive: number,
    private readonly jitter: (max: number) => number,
  ) {
    if (persistentKeepalive > 0) this.persistentKeepaliveTurnedOn();
  }

  /**
   * Persistent keepalive went from off to on (a new peer, or a live change): send one keepalive
   * at the next handleTimeout, whatever the clock says — as wireguard-go does when the device
   * comes up (device.go upLocked) or the interval is set from 0 (uapi.go pkaOn). With no session
   * yet, that keepalive is what starts the first handshake, so the tunnel comes up by itself.
   */
  persistentKeepaliveTurnedOn(): void {
    this.persistentKeepaliveAt = DUE_NOW;
  }

  /** Is any timer due at `now`? (What the peer's handleTimeout and a scheduler ask.) */
  due(now: number): boolean {
    const t = this.next();
    return t !== undefined && t <= now;
  }

  /**
   * Disarms `kind` and returns true if it is due at `now`. The peer asks one timer at a time, in
   * TimerKind order, because acting on one (an initiation sent) can disarm the next (a keepalive
   * becomes moot) — as wireguard-go's timer callbacks see each other's effects.
   */
  take(kind: TimerKind, now: number): boolean {
    switch (kind) {
      case "retransmit":
        if (this.retransmitAt === undefined || now < this.retransmitAt) return false;
        this.retransmitAt = undefined;
        return true;
      case "send_keepalive":
        if (this.sendKeepaliveAt === undefined || now < this.sendKeepaliveAt) return false;
        this.sendKeepaliveAt = undefined;
        return true;
      case "new_handshake":
        if (this.newHandshakeAt === undefined || now < this.newHandshakeAt) return false;
        this.newHandshakeAt = undefined;
        return true;
      case "zero_keys":
        if (this.zeroKeysAt === undefined || now < this.zeroKeysAt) return false;
        this.zeroKeysAt = undefined;
        return true;
      case "persistent_keepalive":
        if (this.persistentKeepaliveAt === undefined || now < this.persistentKeepaliveAt) return false;
        this.persistentKeepaliveAt = undefined;
        return true;
    }
  }

  /** The keepalive timer fired and one was sent: data received meanwhile asks for another. */
  keepaliveSent(now: number): void {
    if (!this.needAnotherKeepalive) return;
    this.needAnotherKeepalive = false;
    this.sendKeepaliveAt = now + KEEPALIVE_TIMEOUT;
  }

  /** The peer's sessions ended (goodbye): nothing may fire on them. The retransmit belongs to the handshake. */
  sessionsEnded(): void {
    this.sendKeepaliveAt = this.newHandshakeAt = this.zeroKeysAt = this.persistentKeepaliveAt = undefined;
  }

  /** Persistent keepalive interval, ms (0 turns it off). */
  setPersistentKeepalive(ms: number): void {
    const wasOff = this.persistentKeepalive === 0;
    this.persistentKeepalive = ms;
    if (ms === 0) this.persistentKeepaliveAt = undefined;
    else if (wasOff) this.persistentKeepaliveTurnedOn();
  }

  /** The pending handshake is over (completed or abandoned): no retransmission. */
  handshakeCleared(): void {
    this.retransmitAt = undefined;
  }

  /** The earliest armed deadline. */
  next(): number | undefined {
    // Asked after every packet (the tunnel's timer heap): compared in place, no array per call.
    let t = earlier(undefined, this.retransmitAt);
    t = earlier(t, this.sendKeepaliveAt);
    t = earlier(t, this.newHandshakeAt);
    t = earlier(t, this.zeroKeysAt);
    return earlier(t, this.persistentKeepaliveAt);
  }

  handshakeInitiated(now: number): void {
    this.retransmitAt = now + REKEY_TIMEOUT + this.jitter(REKEY_TIMEOUT_JITTER_MAX);
  }
  dataSent(now: number): void {
    this.newHandshakeAt ??= now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + this.jitter(REKEY_TIMEOUT_JITTER_MAX);
  }
  dataReceived(now: number): void {
    if (this.sendKeepaliveAt === undefined) this.sendKeepaliveAt = now + KEEPALIVE_TIMEOUT;
    else this.needAnotherKeepalive = true;
  }
  anyAuthenticatedPacketSent(): void {
    this.sendKeepaliveAt = undefined;
  }
  anyAuthenticatedPacketReceived(): void {
    this.newHandshakeAt = undefined;
  }
  anyAuthenticatedPacketTraversal(now: number): void {
    if (this.persistentKeepalive > 0) this.persistentKeepaliveAt = now + this.persistentKeepalive;
  }
  handshakeComplete(): void {
    this.retransmitAt = undefined;
    this.handshakeAttempts = 0;
  }
  sessionDerived(now: number): void {
    this.zeroKeysAt = now + 3 * REJECT_AFTER_TIME;
  }
  /** Gave up on the handshake: keys still age out, but nothing waits on a keepalive. */
  handshakeGaveUp(now: number): void {
    this.sendKeepaliveAt = undefined;
    this.zeroKeysAt ??= now + 3 * REJECT_AFTER_TIME;
  }
}

function earlier(a: number | undefined, b: number | undefined): number | undefined {
  return b !== undefined && (a === undefined || b < a) ? b : a;
}
