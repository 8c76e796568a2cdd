// DoS mitigation (whitepaper §5.3, §5.4.7). Every handshake message carries mac1 (keyed by the
// receiver's public key: proves the sender knows whom it is talking to) and mac2 (keyed by a cookie
// the receiver handed out: proves the sender owns its source address). Under load a responder
// answers handshake messages that lack a valid mac2 with an encrypted cookie instead of doing
// the expensive Diffie-Hellman work.
import { XNONCE_LENGTH, type Aead } from "../crypto/aead.ts";
import { constantTimeEqual, hash, mac } from "../crypto/hash.ts";
import {
  COOKIE_REFRESH_TIME,
  COOKIE_REPLY_SIZE,
  HANDSHAKE_QUEUE_SIZE,
  HANDSHAKE_SERVICE_RATE,
  LABEL_COOKIE,
  LABEL_MAC1,
  MESSAGE_COOKIE_REPLY,
  RATE_LIMIT_ALL_BACKLOG,
  UNDER_LOAD_AFTER_TIME,
  UNDER_LOAD_BACKLOG,
} from "./constants.ts";
import { CookieReply, writeU32 } from "./messages.ts";
import { HandshakeRateLimiter } from "./ratelimiter.ts";

const MAC_SIZE = 16;

/** Where a datagram came from. Addresses are the shell's canonical text form. */
export interface Endpoint {
  address: string;
  port: number;
}

export function sameEndpoint(a: Endpoint | undefined, b: Endpoint): boolean {
  return a !== undefined && a.port === b.port && a.address === b.address;
}

export function formatEndpoint(e: Endpoint): string {
  return e.address.includes(":") ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

const encoder = new TextEncoder();
/**
 * Bytes identifying a source for cookies. Only we compute and check our own cookies, so any
 * injective encoding of (address, port) is correct; the text form avoids parsing addresses here.
 */
function sourceBytes(from: Endpoint): Uint8Array {
  return encoder.encode(`${from.address}|${from.port}`);
}

/**
 * The handshake queue we do not have, modelled (constants.ts explains why): a leaky bucket of
 * handshake messages drained at `serviceRate` per second. Its level is the backlog; at
 * UNDER_LOAD_BACKLOG we are under load, at capacity messages are dropped as a full queue drops.
 */
export class HandshakeLoad {
  #level = 0;
  #levelAt = -Infinity;
  #underLoadUntil = -Infinity;

  constructor(
    readonly serviceRate = HANDSHAKE_SERVICE_RATE,
    readonly capacity = HANDSHAKE_QUEUE_SIZE,
  ) {}

  /** The modelled backlog at `now`. */
  backlog(now: number): number {
    if (now > this.#levelAt) {
      this.#level = Math.max(0, this.#level - ((now - this.#levelAt) * this.serviceRate) / 1000);
      this.#levelAt = now;
    }
    return this.#level;
  }

  /** One message enters the queue; false when it is full (the message must be dropped). */
  admit(now: number): boolean {
    if (this.backlog(now) + 1 > this.capacity) return false;
    this.#level += 1;
    if (this.#level >= UNDER_LOAD_BACKLOG) this.#underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
    return true;
  }

  /** Backlog at 1/8 of the queue now, or within the last UNDER_LOAD_AFTER_TIME. */
  isUnderLoad(now: number): boolean {
    return this.backlog(now) >= UNDER_LOAD_BACKLOG || now < this.#underLoadUntil;
  }
}

/** Responder side, one per local identity: checks mac1/mac2, issues cookies, tracks load. */
export class CookieChecker {
  #secret: Uint8Array;
  #secretSetAt = -Infinity;
  readonly load = new HandshakeLoad();
  readonly limiter = new HandshakeRateLimiter();
  /** Tests and the IO shell can force the under-load state (e.g. from queue depth). */
  forceUnderLoad = false;

  constructor(
    private readonly mac1Key: Uint8Array,
    private readonly cookieKey: Uint8Array,
    private readonly random: (n: number) => Uint8Array,
  ) {
    this.#secret = new Uint8Array(32);
  }

  /** mac1 = MAC(HASH(LABEL_MAC1 ‖ Spub_receiver), msg[0 : len−32]). */
  checkMac1(msg: Uint8Array): boolean {
    const end = msg.length - 2 * MAC_SIZE;
    return constantTimeEqual(mac(this.mac1Key, msg.subarray(0, end)), msg.subarray(end, end + MAC_SIZE));
  }

  /** mac2 = MAC(cookie for this source, msg[0 : len−16]). */
  checkMac2(msg: Uint8Array, from: Endpoint, now: number): boolean {
    const end = msg.length - MAC_SIZE;
    const cookie = mac(this.#currentSecret(now), sourceBytes(from));
    return constantTimeEqual(mac(cookie, msg.subarray(0, end)), msg.subarray(end));
  }

  isUnderLoad(now: number): boolean {
    return this.forceUnderLoad || this.load.isUnderLoad(now);
  }

  /** The 64-byte cookie reply to `msg` (an initiation or response) from `from`. */
  createReply(aead: Aead, msg: Uint8Array, senderIndex: number, from: Endpoint, now: number): Uint8Array {
    const reply = new Uint8Array(COOKIE_REPLY_SIZE);
    reply[0] = MESSAGE_COOKIE_REPLY;
    writeU32(reply, CookieReply.receiver, senderIndex);
    const nonce = this.random(XNONCE_LENGTH);
    reply.set(nonce, CookieReply.nonce);
    const cookie = mac(this.#currentSecret(now), sourceBytes(from));
    const mac1 = msg.subarray(msg.length - 2 * MAC_SIZE, msg.length - MAC_SIZE);
    aead.xseal(this.cookieKey, nonce, cookie, mac1, reply.subarray(CookieReply.cookie));
    return reply;
  }

  /** The secret behind cookies is replaced every COOKIE_REFRESH_TIME, so old cookies expire. */
  #currentSecret(now: number): Uint8Array {
    if (now - this.#secretSetAt >= COOKIE_REFRESH_TIME) {
      this.#secret.fill(0);
      this.#secret = this.random(32);
      this.#secretSetAt = now;
    }
    return this.#secret;
  }
}

/** Initiator side, one per peer: writes mac1/mac2 on what we send, stores cookies we are given. */
export class CookieJar {
  readonly #mac1Key: Uint8Array;
  readonly #cookieKey: Uint8Array;
  #cookie: Uint8Array | undefined;
  #cookieAt = -Infinity;
  #lastMac1: Uint8Array | undefined;

  constructor(remoteStatic: Uint8Array) {
    this.#mac1Key = hash(LABEL_MAC1, remoteStatic);
    this.#cookieKey = hash(LABEL_COOKIE, remoteStatic);
  }

  /** Fills the last 32 bytes of a handshake message: mac1, then mac2 (zeros without a fresh cookie). */
  stamp(msg: Uint8Array, now: number): void {
    const mac1At = msg.length - 2 * MAC_SIZE;
    const mac1 = mac(this.#mac1Key, msg.subarray(0, mac1At));
    msg.set(mac1, mac1At);
    this.#lastMac1 = mac1;
    const mac2At = mac1At + MAC_SIZE;
    if (this.#cookie && now - this.#cookieAt < COOKIE_REFRESH_TIME) {
      msg.set(mac(this.#cookie, msg.subarray(0, mac2At)), mac2At);
    } else {
      msg.fill(0, mac2At);
    }
  }

  /** Decrypts a cookie reply to our last stamped message. False when it does not authenticate. */
  consumeReply(aead: Aead, reply: Uint8Array, now: number): boolean {
    if (!this.#lastMac1) return false;
    const cookie = new Uint8Array(MAC_SIZE);
    const n = aead.xopen(
      this.#cookieKey,
      reply.subarray(CookieReply.nonce, CookieReply.cookie),
      reply.subarray(CookieReply.cookie, COOKIE_REPLY_SIZE),
      this.#lastMac1,
      cookie,
    );
    if (n !== MAC_SIZE) return false;
    this.#cookie = cookie;
    this.#cookieAt = now;
    return true;
  }

  get hasFreshCookie(): boolean {
    return this.#cookie !== undefined;
  }
}

export type ScreenResult =
  | { ok: true }
  | { ok: false; reason: "mac1" | "handshake_rate_limited" | "handshake_queue_full" }
  | { ok: false; reason: "under_load"; cookieReply: Uint8Array };

/**
 * The cheap checks every handshake message passes before any Diffie-Hellman work, in the order
 * that keeps a flood cheap:
 * 1. backlog ≥ half the queue: the per-source limit comes first, a table lookup (Linux);
 * 2. mac1 (the sender knows our public key), then the message enters the modelled queue;
 * 3. under load: mac2 or a cookie reply instead of processing, then the per-source limit
 *    (wireguard-go RoutineHandshake), charged once per message.
 */
export function screenHandshake(checker: CookieChecker, aead: Aead, msg: Uint8Array, senderIndex: number, from: Endpoint, now: number): ScreenResult {
  let charged = false;
  if (checker.load.backlog(now) >= RATE_LIMIT_ALL_BACKLOG) {
    if (!checker.limiter.allow(from, now)) return RATE_LIMITED;
    charged = true;
  }
  if (!checker.checkMac1(msg)) return BAD_MAC1;
  if (!checker.load.admit(now)) return QUEUE_FULL;
  if (checker.isUnderLoad(now)) {
    if (!checker.checkMac2(msg, from, now)) {
      return { ok: false, reason: "under_load", cookieReply: checker.createReply(aead, msg, senderIndex, from, now) };
    }
    if (!charged && !checker.limiter.allow(from, now)) return RATE_LIMITED;
  }
  return SCREEN_OK;
}
const SCREEN_OK: ScreenResult = { ok: true };
const BAD_MAC1: ScreenResult = { ok: false, reason: "mac1" };
const RATE_LIMITED: ScreenResult = { ok: false, reason: "handshake_rate_limited" };
const QUEUE_FULL: ScreenResult = { ok: false, reason: "handshake_queue_full" };
