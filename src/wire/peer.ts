// One WireGuard peer's protocol state, sans-IO: handshakes (both roles), cookies, transport
// encryption, the replay window and every timer of whitepaper §6. No sockets and no clocks: the
// caller passes `now` (Unix milliseconds, from a monotonic source) and moves the bytes.
//
// Two speeds, as DESIGN.md §2 describes:
// - control path: handleInput / handleTimeout / pollTransmit / pollEvent / pollTimeout;
// - data path: encapsulate(plaintext, out, now) and decapsulate(datagram, from, out, now) work on
//   caller-owned buffers and return lengths, allocating nothing per packet.
import type { Aead } from "../crypto/aead.ts";
import {
  COOKIE_REPLY_SIZE,
  HANDSHAKE_INITIATION_RATE,
  INITIATION_SIZE,
  KEEPALIVE_TIMEOUT,
  MAX_DATAGRAM_SIZE,
  MAX_STAGED_PACKETS,
  MAX_TIMER_HANDSHAKES,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  REACH_OUT_INTERVAL,
  REJECT_AFTER_TIME,
  REKEY_AFTER_TIME,
  REKEY_TIMEOUT,
  RESPONSE_SIZE,
  TRANSPORT_MIN_SIZE,
} from "./constants.ts";
import { CookieJar, sameEndpoint, screenHandshake, type Endpoint } from "./cookie.ts";
import { DropCounters, type DropReason } from "./drops.ts";
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  wipeConsumedInitiation,
  wipeInitiatorState,
  type ConsumedInitiation,
  type InitiatorState,
} from "./handshake.ts";
import type { LocalIdentity } from "./identity.ts";
import { Keypair, Keypairs } from "./keypair.ts";
import { CookieReply, Initiation, Response, Transport, messageType, readU32 } from "./messages.ts";
import { SlotCounter, type SessionIndex } from "./session-index.ts";
import { isAfter } from "./tai64n.ts";
import { PeerTimers } from "./timers.ts";
import { sealTransport } from "./send.ts";
import { innerPacketLength, openTransport } from "./receive.ts";
import { staticSharedSecret } from "./handshake.ts";
import { constantTimeEqual } from "../crypto/hash.ts";
import { isUsablePublicKey } from "../crypto/x25519.ts";

export interface Transmit {
  data: Uint8Array;
  to: Endpoint;
}

export type WireEvent =
  | { type: "handshake_initiated"; session: SessionIndex; attempt: number; to: Endpoint }
  | { type: "handshake_completed"; session: SessionIndex; role: "initiator" | "responder"; remote: Endpoint; rttMs?: number }
  /**
   * A responder's new session carried its first authenticated packet and became current (key
   * confirmation). `rttMs`: response sent → that packet, the responder's handshake latency.
   */
  | { type: "session_confirmed"; session: SessionIndex; rttMs: number }
  /** No response after REKEY_ATTEMPT_TIME: staged packets were dropped. */
  | { type: "handshake_failed"; attempts: number }
  /** 3 × REJECT_AFTER_TIME without a new handshake: all session keys erased. */
  | { type: "keys_zeroed" }
  | { type: "endpoint_changed"; from: Endpoint | undefined; to: Endpoint }
  | { type: "cookie_received" }
  /** Control-path delivery (handleInput): a decrypted inner packet. */
  | { type: "data"; packet: Uint8Array };

export interface WirePeerOptions {
  aead: Aead;
  local: LocalIdentity;
  remoteStatic: Uint8Array;
  presharedKey?: Uint8Array;
  /** The upper 24 bits of every session index this peer allocates. */
  connectionId: number;
  endpoint?: Endpoint;
  /** Seconds; 0 or undefined disables it. */
  persistentKeepalive?: number;
  /** Inner MTU: plaintext is padded to a multiple of 16 but never beyond this. */
  mtu?: number;
  random: (n: number) => Uint8Array;
  /** Overrides REKEY_AFTER_TIME (tests, and Firezone's shorter schedules). */
  rekeyAfterTime?: number;
}

export interface PeerStats {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  handshakesInitiated: number;
  handshakesCompleted: number;
  handshakesFailed: number;
  cookiesSent: number;
  /** Unix ms of the last completed handshake, 0 if none. */
  lastHandshakeAt: number;
}

/**
 * What reachOut did: started a handshake, or why not (the peer has a live session with us; it was
 * reached out to less than REACH_OUT_INTERVAL ago).
 */
export type ReachOutResult = "initiated" | "live_session" | "rate_limited";

/** decapsulate() results below zero: nothing for the caller to deliver. */
export const DECAP_NONE = -1;

export class WirePeer {
  readonly remoteStatic: Uint8Array;
  readonly connectionId: number;
  readonly drops = new DropCounters();
  readonly stats: PeerStats = {
    rxBytes: 0,
    txBytes: 0,
    rxPackets: 0,
    txPackets: 0,
    handshakesInitiated: 0,
    handshakesCompleted: 0,
    handshakesFailed: 0,
    cookiesSent: 0,
    lastHandshakeAt: 0,
  };

  readonly #aead: Aead;
  readonly #local: LocalIdentity;
  readonly #presharedKey: Uint8Array | undefined;
  /**
   * DH(our static, their static), made at the first initiation we send: a responder-only peer
   * (most clients of a gateway) never needs it, and 10 000 configured peers start without
   * 10 000 scalar multiplications.
   */
  #staticShared: Uint8Array | undefined;
  readonly #cookies: CookieJar;
  readonly #slots: SlotCounter;
  readonly #random: (n: number) => Uint8Array;
  readonly #mtu: number;
  readonly #rekeyAfterTime: number;
  #endpoint: Endpoint | undefined;
  /**
   * Where the pending handshake attempt goes when it is not `#endpoint` (reachOut): its
   * initiation and retransmissions only. The answer roams `#endpoint` as any authenticated packet
   * does; a completed or abandoned attempt forgets it.
   */
  #attemptTo: Endpoint | undefined;
  #lastReachOutAt = -Infinity;
  /** The last authenticated packet from the peer (transport, initiation or response), Unix ms. */
  #lastAuthenticatedRxAt = -Infinity;

  readonly keypairs = new Keypairs();
  #handshake: (InitiatorState & { sentAt: number }) | undefined;
  #lastSentInitiationAt = -Infinity;
  #lastConsumedInitiationAt = -Infinity;
  #lastTimestamp: Uint8Array | undefined;
  #sentLastMinuteHandshake = false;

  readonly #timers: PeerTimers;

  #staged: Uint8Array[] = [];
  #transmits: Transmit[] = [];
  #events: WireEvent[] = [];

  constructor(opts: WirePeerOptions) {
    this.#aead = opts.aead;
    this.#local = opts.local;
    this.remoteStatic = opts.remoteStatic;
    this.#presharedKey = opts.presharedKey;
    // The table check that stands for the DH result: exactly the keys whose secret is all zero.
    if (!isUsablePublicKey(opts.remoteStatic)) throw new Error("peer public key is a low-order point (no usable shared secret)");
    this.#cookies = new CookieJar(opts.remoteStatic);
    this.connectionId = opts.connectionId;
    this.#slots = new SlotCounter(opts.connectionId);
    this.#random = opts.random;
    this.#mtu = opts.mtu ?? 1420;
    this.#rekeyAfterTime = opts.rekeyAfterTime ?? REKEY_AFTER_TIME;
    this.#timers = new PeerTimers((opts.persistentKeepalive ?? 0) * 1000, (max) => this.#jitter(max));
    this.#endpoint = opts.endpoint;
  }

  get presharedKey(): Uint8Array | undefined {
    return this.#presharedKey;
  }

  /**
   * Seconds; 0 disables. Turning it on (from 0) sends a keepalive at the next handleTimeout, which
   * brings the tunnel up if there is no session; otherwise it takes effect from the next packet.
   */
  setPersistentKeepalive(seconds: number): void {
    this.#timers.setPersistentKeepalive(seconds * 1000);
  }

  get endpoint(): Endpoint | undefined {
    return this.#endpoint;
  }

  /** Sets where to send (config, or the portal telling us); authenticated packets also move it. */
  setEndpoint(endpoint: Endpoint): void {
    this.#endpoint = { address: endpoint.address, port: endpoint.port };
  }

  // ───────────────────────────── control path ─────────────────────────────

  /** Feeds one datagram. Decrypted data is emitted as a `data` event (copied). */
  handleInput(datagram: Uint8Array, from: Endpoint, now: number): void {
    const n = this.decapsulate(datagram, from, RECV_SCRATCH, now);
    if (n > 0) this.#events.push({ type: "data", packet: RECV_SCRATCH.slice(0, n) });
  }

  /** Encrypts and queues one inner packet (control-path twin of `encapsulate`). */
  send(packet: Uint8Array, now: number): void {
    const n = this.encapsulate(packet, SEND_SCRATCH, now);
    if (n > 0 && this.#endpoint) this.#transmits.push({ data: SEND_SCRATCH.slice(0, n), to: this.#endpoint });
  }

  /** Starts a handshake now (e.g. a new connection), unless one was sent in the last REKEY_TIMEOUT. */
  connect(now: number): void {
    this.#sendInitiation(now, false);
  }

  pollTransmit(): Transmit | undefined {
    return this.#transmits.shift();
  }

  /**
   * Starts a handshake to `to` without making it this peer's endpoint (a gateway taking over from
   * one that crashed initiates to where the other gateway last saw the client, so the client need
   * not wait out its own 15 s re-handshake timer). Only the attempt goes there — its initiation
   * and WireGuard's own retransmissions until REKEY_ATTEMPT_TIME; the peer's endpoint moves only
   * when the answer comes (as any authenticated packet roams it). At most one per
   * REACH_OUT_INTERVAL; never over a live session (the client is talking to us already).
   */
  reachOut(to: Endpoint, now: number): ReachOutResult {
    if (this.hasLiveSession(now)) return "live_session";
    if (now - this.#lastReachOutAt < REACH_OUT_INTERVAL) return "rate_limited";
    this.#lastReachOutAt = now;
    this.#attemptTo = { address: to.address, port: to.port };
    // A handshake sent to the old place in the last REKEY_TIMEOUT does not hold this one back:
    // that limit is per destination's worth of retries, and this is a new destination.
    this.#lastSentInitiationAt = -Infinity;
    this.#sendInitiation(now, false);
    return "initiated";
  }

  /**
   * A session that can send and heard from the peer within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: past
   * that, a client that sends would already be starting a new handshake itself.
   */
  hasLiveSession(now: number): boolean {
    const kp = this.keypairs.current;
    return kp !== undefined && kp.canSend(now) && now - this.#lastAuthenticatedRxAt <= KEEPALIVE_TIMEOUT + REKEY_TIMEOUT;
  }

  /** Outputs waiting for pollTransmit / pollEvent: how a tunnel knows to queue this peer. */
  get pendingTransmits(): number {
    return this.#transmits.length;
  }

  get pendingEvents(): number {
    return this.#events.length;
  }

  pollEvent(): WireEvent | undefined {
    return this.#events.shift();
  }

  pollTimeout(): number | undefined {
    return this.#timers.next();
  }

  handleTimeout(now: number): void {
    const timers = this.#timers;
    if (!timers.due(now)) return;
    if (timers.take("retransmit", now)) this.#onRetransmitHandshake(now);
    if (timers.take("send_keepalive", now)) {
      this.#sendKeepalive(now);
      timers.keepaliveSent(now);
    }
    // We sent data and heard nothing back for KEEPALIVE + REKEY_TIMEOUT: the session may be dead.
    if (timers.take("new_handshake", now)) this.#sendInitiation(now, false);
    if (timers.take("zero_keys", now)) {
      this.keypairs.clear();
      this.#clearHandshake();
      this.#events.push({ type: "keys_zeroed" });
    }
    // Toward no known endpoint there is nothing to bring up: the peer will come to us.
    if (timers.take("persistent_keepalive", now) && timers.persistentKeepalive > 0 && this.#endpoint !== undefined) this.#sendKeepalive(now);
  }

  /**
   * The peer ended our sessions (it said goodbye): erase them, and every timer and staged packet
   * that would send on them, so the next packet needs a new handshake. The peer stays configured.
   */
  endSessions(): void {
    this.keypairs.clear();
    this.#clearHandshake();
    this.#staged = [];
    this.#timers.sessionsEnded();
  }

  /** Erases every key this peer holds (shutdown). */
  zeroize(): void {
    this.keypairs.clear();
    this.#clearHandshake();
    // Zeros, not undefined: a zeroized peer must not derive the secret again (as before, its
    // initiations are then useless to anyone).
    if (this.#staticShared) this.#staticShared.fill(0);
    else this.#staticShared = new Uint8Array(32);
    this.#staged = [];
  }

  // ───────────────────────────── data path ─────────────────────────────

  /**
   * Encrypts `plaintext` (an IP packet, or empty for a keepalive) into `out` as a transport
   * message for `this.endpoint`. Returns its length, or 0 when there is no usable session: the
   * packet is then staged (copied) and a handshake started; it goes out once the session is up.
   */
  encapsulate(plaintext: Uint8Array, out: Uint8Array, now: number): number {
    return this.encapsulateAt(plaintext, 0, plaintext.length, out, 0, now);
  }

  /**
   * `encapsulate` on caller buffers at offsets: src[srcOff, srcOff+len) into out at outOff (a
   * batch slot), so the data path makes no view per packet.
   */
  encapsulateAt(src: Uint8Array, srcOff: number, len: number, out: Uint8Array, outOff: number, now: number): number {
    const kp = this.keypairs.current;
    if (kp === undefined || !kp.canSend(now) || this.#endpoint === undefined) {
      this.#stage(src.slice(srcOff, srcOff + len));
      this.#sendInitiation(now, false);
      return 0;
    }
    const total = sealTransport(this.#aead, kp, src, srcOff, len, out, outOff, this.#mtu);

    this.stats.txPackets++;
    this.stats.txBytes += total;
    if (len > 0) this.#timers.dataSent(now);
    this.#timers.anyAuthenticatedPacketSent();
    this.#timers.anyAuthenticatedPacketTraversal(now);
    if (kp.wantsRekeyOnSend(now, this.#rekeyAfterTime)) this.#sendInitiation(now, false);
    return total;
  }

  /**
   * Consumes any datagram for this peer. Returns the length of the inner IP packet written to
   * `out` (0 for a keepalive) or DECAP_NONE when there is nothing to deliver: a handshake or
   * cookie message was handled (replies are queued for pollTransmit), or the datagram was
   * dropped with a counted reason. Never throws on bad input; never answers what fails to
   * authenticate.
   */
  decapsulate(datagram: Uint8Array, from: Endpoint, out: Uint8Array, now: number, outOff = 0): number {
    const len = datagram.length;
    if (len < 4) return this.#drop("truncated");
    if (len > MAX_DATAGRAM_SIZE) return this.#drop("oversized");
    switch (messageType(datagram)) {
      case MESSAGE_TRANSPORT:
        return this.#decapsulateTransport(datagram, from, out, outOff, now);
      case MESSAGE_INITIATION:
        if (len !== INITIATION_SIZE) return this.#drop(len < INITIATION_SIZE ? "truncated" : "wrong_size");
        this.#handleInitiation(datagram, from, now);
        return DECAP_NONE;
      case MESSAGE_RESPONSE:
        if (len !== RESPONSE_SIZE) return this.#drop(len < RESPONSE_SIZE ? "truncated" : "wrong_size");
        this.#handleResponse(datagram, from, now);
        return DECAP_NONE;
      case MESSAGE_COOKIE_REPLY:
        if (len !== COOKIE_REPLY_SIZE) return this.#drop(len < COOKIE_REPLY_SIZE ? "truncated" : "wrong_size");
        this.#handleCookieReply(datagram, now);
        return DECAP_NONE;
      default:
        return this.#drop("unknown_type");
    }
  }

  #decapsulateTransport(datagram: Uint8Array, from: Endpoint, out: Uint8Array, outOff: number, now: number): number {
    const len = datagram.length;
    if (len < TRANSPORT_MIN_SIZE) return this.#drop("truncated");
    const kp = this.keypairs.find(readU32(datagram, Transport.receiver));
    if (kp === undefined) return this.#drop("unknown_session");
    const n = openTransport(this.#aead, kp, datagram, out, outOff, now);
    if (typeof n !== "number") return this.#drop(n);
    // Only now, authenticated, may the packet confirm a session or roam us.

    if (this.keypairs.confirm(kp)) {
      this.#timers.handshakeComplete();
      this.#events.push({ type: "session_confirmed", session: kp.localIndex, rttMs: now - kp.createdAt });
      this.#flushStaged(now, false);
    }
    if (!sameEndpoint(this.#endpoint, from)) this.#roam(from);
    this.stats.rxPackets++;
    this.stats.rxBytes += len;
    this.#timers.anyAuthenticatedPacketReceived();
    this.#timers.anyAuthenticatedPacketTraversal(now);
    this.#lastAuthenticatedRxAt = now;
    if (kp === this.keypairs.current && kp.isInitiator && !this.#sentLastMinuteHandshake &&
        now - kp.createdAt > REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT) {
      // Our session is about to be rejected and the peer (responder) cannot rekey it: do it now.
      this.#sentLastMinuteHandshake = true;
      this.#sendInitiation(now, false);
    }
    if (n === 0) return 0; // keepalive

    const inner = innerPacketLength(out, outOff, n);
    if (inner < 0) return this.#drop("inner_length");
    this.#timers.dataReceived(now);
    return inner;
  }

  #handleInitiation(msg: Uint8Array, from: Endpoint, now: number): void {
    if (!this.#screen(msg, from, Initiation.sender, now)) return;
    const init = consumeInitiation(this.#aead, this.#local, msg);
    if (init === undefined) return void this.#drop("handshake_decrypt");
    if (!constantTimeEqual(init.remoteStatic, this.remoteStatic)) {
      wipeConsumedInitiation(init);
      return void this.#drop("unknown_peer");
    }
    this.acceptInitiation(init, from, now);
  }

  /**
   * Responder: answers an initiation already decrypted and matched to this peer (a tunnel that
   * serves many peers decrypts once, looks the peer up by `remoteStatic`, then calls this).
   * Takes ownership of `init`: its chaining key and hash are erased whatever the outcome.
   */
  acceptInitiation(init: ConsumedInitiation, from: Endpoint, now: number): void {
    try {
      this.#answerInitiation(init, from, now);
    } finally {
      wipeConsumedInitiation(init);
    }
  }

  #answerInitiation(init: ConsumedInitiation, from: Endpoint, now: number): void {
    if (this.#lastTimestamp && !isAfter(init.timestamp, this.#lastTimestamp)) return void this.#drop("replayed_initiation");
    if (now - this.#lastConsumedInitiationAt < HANDSHAKE_INITIATION_RATE) return void this.#drop("initiation_flood");
    const localIndex = this.#slots.next();
    const resp = createResponse(this.#aead, init, this.#presharedKey, localIndex, this.#random);
    if (resp === undefined) return void this.#drop("handshake_decrypt");
    this.#lastTimestamp = init.timestamp;
    this.#lastConsumedInitiationAt = now;
    this.#cookies.stamp(resp.message, now);

    this.keypairs.install(new Keypair(resp.keys, localIndex, init.remoteIndex, now, false));
    if (!sameEndpoint(this.#endpoint, from)) this.#roam(from);
    this.#transmits.push({ data: resp.message, to: this.#endpoint! });
    this.stats.handshakesCompleted++;
    this.stats.lastHandshakeAt = now;
    this.#events.push({ type: "handshake_completed", session: localIndex, role: "responder", remote: this.#endpoint! });
    this.#lastAuthenticatedRxAt = now;
    this.#timers.anyAuthenticatedPacketReceived();
    this.#timers.anyAuthenticatedPacketTraversal(now);
    this.#timers.sessionDerived(now);
    this.#timers.anyAuthenticatedPacketSent();
  }

  #handleResponse(msg: Uint8Array, from: Endpoint, now: number): void {
    if (!this.#screen(msg, from, Response.sender, now)) return;
    const hs = this.#handshake;
    if (hs === undefined || readU32(msg, Response.receiver) !== hs.localIndex) return void this.#drop("unknown_session");
    const done = consumeResponse(this.#aead, this.#local, hs, this.#presharedKey, msg);
    if (done === undefined) return void this.#drop("handshake_decrypt");
    this.#clearHandshake();

    this.keypairs.install(new Keypair(done.keys, hs.localIndex, done.remoteIndex, now, true));
    if (!sameEndpoint(this.#endpoint, from)) this.#roam(from);
    this.stats.handshakesCompleted++;
    this.stats.lastHandshakeAt = now;
    this.#sentLastMinuteHandshake = false;
    this.#events.push({ type: "handshake_completed", session: hs.localIndex, role: "initiator", remote: from, rttMs: now - hs.sentAt });
    this.#lastAuthenticatedRxAt = now;
    this.#timers.anyAuthenticatedPacketReceived();
    this.#timers.anyAuthenticatedPacketTraversal(now);
    this.#timers.sessionDerived(now);
    this.#timers.handshakeComplete();
    // Confirm the session to the responder right away: staged packets, or a keepalive.
    this.#flushStaged(now, true);
  }

  /**
   * A cookie reply answers the last handshake message we sent: our initiation (its index is the
   * pending handshake's) or our response (its index is a keypair's), as wireguard-go looks the
   * receiver up in one index table for both (receive.go, MessageCookieReplyType).
   */
  #handleCookieReply(msg: Uint8Array, now: number): void {
    const receiver = readU32(msg, CookieReply.receiver);
    if (this.#handshake?.localIndex !== receiver && this.keypairs.find(receiver) === undefined) return void this.#drop("unknown_session");
    if (!this.#cookies.consumeReply(this.#aead, msg, now)) return void this.#drop("cookie_decrypt");
    // Our next handshake message carries mac2: our retransmitted initiation, or the response to
    // the initiator's retransmission.
    this.#events.push({ type: "cookie_received" });
  }

  /** mac1, then (under load) mac2 — answering with a cookie instead of doing DH work. */
  #screen(msg: Uint8Array, from: Endpoint, senderAt: number, now: number): boolean {
    const r = screenHandshake(this.#local.cookies, this.#aead, msg, readU32(msg, senderAt), from, now);
    if (r.ok) return true;
    if (r.reason === "under_load") {
      this.#transmits.push({ data: r.cookieReply, to: from });
      this.stats.cookiesSent++;
    }
    this.#drop(r.reason);
    return false;
  }

  // ───────────────────────────── internals ─────────────────────────────

  #sendInitiation(now: number, isRetry: boolean): void {
    if (!isRetry) this.#timers.handshakeAttempts = 0;
    if (now - this.#lastSentInitiationAt < REKEY_TIMEOUT) return;
    const to = this.#attemptTo ?? this.#endpoint;
    if (to === undefined) return void this.#drop("no_endpoint");
    const localIndex = this.#slots.next();
    this.#staticShared ??= staticSharedSecret(this.#local, this.remoteStatic);
    if (this.#staticShared === undefined) return void this.#drop("handshake_decrypt");
    const built = createInitiation(this.#aead, this.#local, this.remoteStatic, this.#staticShared, localIndex, now, this.#random);
    if (built === undefined) return void this.#drop("handshake_decrypt");
    this.#cookies.stamp(built.message, now);
    // A retransmission supersedes the pending handshake: its secrets are of no further use.
    if (this.#handshake) wipeInitiatorState(this.#handshake);
    this.#handshake = { ...built.state, sentAt: now };
    this.#lastSentInitiationAt = now;
    this.stats.handshakesInitiated++;
    this.#transmits.push({ data: built.message, to });
    this.#events.push({ type: "handshake_initiated", session: localIndex, attempt: this.#timers.handshakeAttempts + 1, to });
    this.#timers.handshakeInitiated(now);
    this.#timers.anyAuthenticatedPacketTraversal(now);
    this.#timers.anyAuthenticatedPacketSent();
  }

  #onRetransmitHandshake(now: number): void {
    if (this.#timers.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
      // Gave up after REKEY_ATTEMPT_TIME: drop what waited and let the keys age out.
      this.stats.handshakesFailed++;
      this.#events.push({ type: "handshake_failed", attempts: this.#timers.handshakeAttempts + 1 });
      for (const _ of this.#staged) this.drops.count("handshake_timeout");
      this.#staged = [];
      this.#clearHandshake();
      this.#timers.handshakeGaveUp(now);
      return;
    }
    this.#timers.handshakeAttempts++;
    this.#sendInitiation(now, true);
  }

  #sendKeepalive(now: number): void {
    if (this.#staged.length === 0) this.#stage(EMPTY_PACKET);
    this.#flushStaged(now, false);
  }

  /** Sends staged packets if a session allows; with `keepaliveIfEmpty`, confirms the session. */
  #flushStaged(now: number, keepaliveIfEmpty: boolean): void {
    if (keepaliveIfEmpty && this.#staged.length === 0) this.#staged.push(EMPTY_PACKET);
    const kp = this.keypairs.current;
    if (kp === undefined || !kp.canSend(now) || this.#endpoint === undefined) {
      this.#sendInitiation(now, false);
      return;
    }
    const staged = this.#staged;
    this.#staged = [];
    for (const p of staged) this.send(p, now);
  }

  #stage(packet: Uint8Array): void {
    if (this.#staged.length >= MAX_STAGED_PACKETS) {
      this.#staged.shift();
      this.drops.count("staged_overflow");
    }
    this.#staged.push(packet.length === 0 ? EMPTY_PACKET : packet.slice());
  }

  #roam(to: Endpoint): void {
    const from = this.#endpoint;
    // The peer spoke from somewhere: a reach-out attempt elsewhere has nothing more to find.
    this.#attemptTo = undefined;
    this.#endpoint = { address: to.address, port: to.port };
    this.#events.push({ type: "endpoint_changed", from, to: this.#endpoint });
  }

  /** The handshake completed or was abandoned: erase its ephemeral key, chaining key and hash. */
  #clearHandshake(): void {
    if (this.#handshake) wipeInitiatorState(this.#handshake);
    this.#handshake = undefined;
    this.#attemptTo = undefined;
    this.#timers.handshakeCleared();
  }

  #drop(reason: DropReason): number {
    this.drops.count(reason);
    return DECAP_NONE;
  }

  // Jitter draws from random bytes taken 64 at a time: a request-response flow asks for one per
  // packet (every send after a receive re-arms the new-handshake timer), and random(2) each time
  // was the data path's one allocation per packet.
  #jitterPool: Uint8Array = EMPTY_PACKET;
  #jitterAt = 0;

  #jitter(max: number): number {
    if (this.#jitterAt + 2 > this.#jitterPool.length) {
      this.#jitterPool = this.#random(64);
      this.#jitterAt = 0;
    }
    const b = this.#jitterPool;
    const i = this.#jitterAt;
    this.#jitterAt = i + 2;
    return ((b[i]! << 8) | b[i + 1]!) % max;
  }
}

const EMPTY_PACKET = new Uint8Array(0);
// Control-path scratch, shared by all peers (cores run on one thread, calls never interleave).
// Separate buffers because a received packet can trigger sends (staged flush) mid-decapsulate.
const SEND_SCRATCH = new Uint8Array(MAX_DATAGRAM_SIZE + TRANSPORT_MIN_SIZE);
const RECV_SCRATCH = new Uint8Array(MAX_DATAGRAM_SIZE);
