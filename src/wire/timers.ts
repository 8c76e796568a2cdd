// A peer's timers (whitepaper §6, wireguard-go timers.go): absolute deadlines, armed and cleared
// by hooks named after the protocol events. The peer (peer.ts) asks which deadlines are due and
// acts; this file only decides when.
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from "./constants.ts";

/** A deadline already past on any clock: fires at the first handleTimeout (sans-IO has no `now` here). */
export const DUE_NOW = 0;

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
