// STUN messages (RFC 8489) with the attributes ICE (RFC 8445) and TURN (RFC 8656) add: strict
// parsing into a `StunMessage`, a `StunWriter` to build them, MESSAGE-INTEGRITY (HMAC-SHA1 and
// HMAC-SHA256) and FINGERPRINT. STUN is the control path (a handful of messages per connection
// per second), so parsing allocates; the relayed data path is ChannelData (channel-data.ts).
//
// Strict means: the header's length matches the datagram exactly, every attribute is complete
// and padded, a known attribute has exactly its defined shape (a 5-byte LIFETIME is an error,
// not a truncated number), a FINGERPRINT is last and correct. Unknown comprehension-optional
// attributes (0x8000–0xFFFF) are skipped; unknown comprehension-required ones are listed in
// `unknownRequired` so a server can answer 420 and a client can fail the transaction (§6.3).

import { hmac } from "@noble/hashes/hmac.js";
import { md5, sha1 } from "@noble/hashes/legacy.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { formatIp, parseIp } from "../ip/address.ts";
import type { Endpoint } from "../wire/index.ts";

export const MAGIC_COOKIE = 0x2112a442; // RFC 8489 §5
export const HEADER_SIZE = 20;
export const TRANSACTION_ID_SIZE = 12;
const FINGERPRINT_XOR = 0x5354554e; // RFC 8489 §14.7: "STUN" — tells STUN apart from other protocols on one port

export const StunClass = { request: 0, indication: 1, success: 2, error: 3 } as const;
export type StunClass = (typeof StunClass)[keyof typeof StunClass];

export const StunMethod = {
  binding: 0x001, // RFC 8489
  allocate: 0x003, // RFC 8656 §17
  refresh: 0x004,
  send: 0x006,
  data: 0x007,
  createPermission: 0x008,
  channelBind: 0x009,
} as const;

export const Attr = {
  MAPPED_ADDRESS: 0x0001,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  CHANNEL_NUMBER: 0x000c, // RFC 8656 §18
  LIFETIME: 0x000d,
  XOR_PEER_ADDRESS: 0x0012,
  DATA: 0x0013,
  REALM: 0x0014,
  NONCE: 0x0015,
  XOR_RELAYED_ADDRESS: 0x0016,
  REQUESTED_ADDRESS_FAMILY: 0x0017,
  REQUESTED_TRANSPORT: 0x0019,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  XOR_MAPPED_ADDRESS: 0x0020,
  PRIORITY: 0x0024, // RFC 8445 §16.1
  USE_CANDIDATE: 0x0025,
  ADDITIONAL_ADDRESS_FAMILY: 0x8000, // RFC 8656 §18.11
  ADDRESS_ERROR_CODE: 0x8001,
  SOFTWARE: 0x8022,
  FINGERPRINT: 0x8028,
  ICE_CONTROLLED: 0x8029,
  ICE_CONTROLLING: 0x802a,
} as const;

/** REQUESTED-TRANSPORT's protocol number for UDP (RFC 8656 §18.8: the IANA protocol number). */
export const TRANSPORT_UDP = 17;
/** Address family codes of XOR-*-ADDRESS and the *-ADDRESS-FAMILY attributes. */
export const FAMILY_V4 = 0x01;
export const FAMILY_V6 = 0x02;

// Length limits of the text attributes (RFC 8489 §14: "fewer than 128/509 characters", bounded in bytes).
const MAX_USERNAME = 513;
const MAX_TEXT = 763;

export type StunParseErrorKind =
  | "truncated" // shorter than the 20-byte header
  | "not_stun" // the two leading bits are not zero (ChannelData, WireGuard, anything else)
  | "bad_cookie" // the magic cookie is wrong: RFC 3489 or not STUN at all
  | "length_mismatch" // header length + 20 is not the datagram's length
  | "unaligned" // length not a multiple of 4
  | "truncated_attribute" // an attribute's header or value runs past the end
  | "bad_attribute" // a known attribute with a value of the wrong size or content
  | "after_fingerprint" // an attribute after FINGERPRINT, which must be last
  | "bad_fingerprint"; // FINGERPRINT present but the CRC does not match

export const STUN_PARSE_ERROR_KINDS: readonly StunParseErrorKind[] = [
  "truncated", "not_stun", "bad_cookie", "length_mismatch", "unaligned", "truncated_attribute", "bad_attribute", "after_fingerprint", "bad_fingerprint",
];

export class StunParseError extends Error {
  constructor(
    readonly kind: StunParseErrorKind,
    /** The attribute at fault, when one is (`0x000d LIFETIME: 5 bytes, not 4`). */
    readonly detail?: string,
  ) {
    super(`${kind.replace(/_/g, " ")}${detail ? ` (${detail})` : ""}`);
    this.name = "StunParseError";
  }
}

export interface ErrorCode {
  code: number; // 300–699
  reason: string;
}

/** A parsed message. Values are decoded; `raw` keeps the bytes for the integrity check. */
export class StunMessage {
  mappedAddress?: Endpoint;
  xorMappedAddress?: Endpoint;
  /** One per family: a dual-stack allocation answers with two (RFC 8656 §7.3). */
  xorRelayedAddresses: Endpoint[] = [];
  xorPeerAddresses: Endpoint[] = [];
  username?: string;
  realm?: string;
  nonce?: string;
  software?: string;
  errorCode?: ErrorCode;
  /** RFC 8656 §18.12: why the server refused one family of a dual allocation. */
  addressErrorCode?: ErrorCode & { family: number };
  unknownAttributes?: number[];
  lifetime?: number;
  data?: Uint8Array;
  channelNumber?: number;
  requestedTransport?: number;
  requestedAddressFamily?: number;
  additionalAddressFamily?: number;
  priority?: number;
  useCandidate = false;
  iceControlled?: bigint;
  iceControlling?: bigint;
  /** Comprehension-required attribute types this codec does not know. */
  unknownRequired: number[] = [];
  /** Offsets into `raw` of the integrity attributes' headers, -1 when absent. */
  integrityAt = -1;
  integritySha256At = -1;
  hasFingerprint = false;

  constructor(
    readonly method: number,
    readonly cls: StunClass,
    readonly transactionId: Uint8Array,
    readonly raw: Uint8Array,
  ) {}

  /** The transaction id as text, for maps of outstanding requests and for logs. */
  get tid(): string {
    return transactionKey(this.transactionId);
  }
}

export function transactionKey(tid: Uint8Array): string {
  let s = "";
  for (let i = 0; i < tid.length; i++) s += tid[i]!.toString(16).padStart(2, "0");
  return s;
}

export function messageType(method: number, cls: StunClass): number {
  // RFC 8489 §5: the class bits C0 and C1 are interleaved into the method bits.
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7);
}

function splitType(t: number): { method: number; cls: StunClass } {
  const method = (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2);
  const cls = (((t >> 4) & 1) | ((t >> 7) & 2)) as StunClass;
  return { method, cls };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * Cheap test for the demux: could `buf` be STUN? First byte 0–3 (RFC 7983) and the magic
 * cookie in place. Full validation is `parseStun`'s job.
 */
export function looksLikeStun(buf: Uint8Array, length = buf.length): boolean {
  return length >= HEADER_SIZE && buf[0]! < 4 && readU32(buf, 4) === MAGIC_COOKIE;
}

/** Parses `buf[0, length)`. Copies the bytes, so the caller may reuse its buffer at once. */
export function parseStun(buf: Uint8Array, length = buf.length): StunMessage | StunParseError {
  if (length < HEADER_SIZE) return new StunParseError("truncated");
  if ((buf[0]! & 0xc0) !== 0) return new StunParseError("not_stun");
  if (readU32(buf, 4) !== MAGIC_COOKIE) return new StunParseError("bad_cookie");
  const declared = (buf[2]! << 8) | buf[3]!;
  if (declared + HEADER_SIZE !== length) return new StunParseError("length_mismatch", `header says ${declared} bytes of attributes, datagram has ${length - HEADER_SIZE}`);
  if ((declared & 3) !== 0) return new StunParseError("unaligned", `length ${declared}`);
  // A copy as a plain Uint8Array: a node Buffer's slice() is a view into the socket's pool, which
  // the fingerprint check below would then write into (and the next datagram overwrite).
  const raw = new Uint8Array(buf.subarray(0, length));
  const { method, cls } = splitType((raw[0]! << 8) | raw[1]!);
  const msg = new StunMessage(method, cls, raw.subarray(8, HEADER_SIZE), raw);
  let at = HEADER_SIZE;
  while (at < length) {
    if (at + 4 > length) return new StunParseError("truncated_attribute", `header at ${at}`);
    const type = (raw[at]! << 8) | raw[at + 1]!;
    const len = (raw[at + 2]! << 8) | raw[at + 3]!;
    const padded = (len + 3) & ~3;
    if (at + 4 + padded > length) return new StunParseError("truncated_attribute", `${attrName(type)}: ${len} bytes at ${at}`);
    if (msg.hasFingerprint) return new StunParseError("after_fingerprint", attrName(type));
    const value = raw.subarray(at + 4, at + 4 + len);
    // After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count (§14.5): the
    // rest is not covered by the HMAC, so it is ignored rather than trusted.
    const protectedOnly = msg.integrityAt >= 0 || msg.integritySha256At >= 0;
    const ignored = protectedOnly && type !== Attr.FINGERPRINT && !(type === Attr.MESSAGE_INTEGRITY_SHA256 && msg.integritySha256At < 0);
    if (!ignored) {
      const err = readAttribute(msg, type, value, at);
      if (err) return new StunParseError("bad_attribute", `${attrName(type)}: ${err}`);
      if (type === Attr.FINGERPRINT) {
        const expected = (crc32(withLength(raw, at, at + 8)) ^ FINGERPRINT_XOR) >>> 0;
        if (readU32(value, 0) !== expected) return new StunParseError("bad_fingerprint");
      }
    }
    at += 4 + padded;
  }
  return msg;
}

/** Decodes one attribute into `msg`; returns what is wrong with it, or undefined. */
function readAttribute(msg: StunMessage, type: number, v: Uint8Array, at: number): string | undefined {
  const exact = (n: number) => (v.length === n ? undefined : `${v.length} bytes, not ${n}`);
  switch (type) {
    case Attr.MAPPED_ADDRESS:
    case Attr.XOR_MAPPED_ADDRESS:
    case Attr.XOR_RELAYED_ADDRESS:
    case Attr.XOR_PEER_ADDRESS: {
      const xor = type !== Attr.MAPPED_ADDRESS;
      const ep = readAddress(v, xor ? msg.transactionId : undefined);
      if (typeof ep === "string") return ep;
      if (type === Attr.MAPPED_ADDRESS) msg.mappedAddress ??= ep;
      else if (type === Attr.XOR_MAPPED_ADDRESS) msg.xorMappedAddress ??= ep;
      else if (type === Attr.XOR_RELAYED_ADDRESS) msg.xorRelayedAddresses.push(ep);
      else msg.xorPeerAddresses.push(ep);
      return undefined;
    }
    case Attr.USERNAME:
    case Attr.REALM:
    case Attr.NONCE:
    case Attr.SOFTWARE: {
      if (v.length > (type === Attr.USERNAME ? MAX_USERNAME : MAX_TEXT)) return `${v.length} bytes, over the limit`;
      const text = decodeText(v);
      if (text === undefined) return "not UTF-8";
      if (type === Attr.USERNAME) msg.username ??= text;
      else if (type === Attr.REALM) msg.realm ??= text;
      else if (type === Attr.NONCE) msg.nonce ??= text;
      else msg.software ??= text;
      return undefined;
    }
    case Attr.ERROR_CODE: {
      const e = readErrorCode(v);
      if (typeof e === "string") return e;
      msg.errorCode ??= e;
      return undefined;
    }
    case Attr.ADDRESS_ERROR_CODE: {
      const e = readErrorCode(v);
      if (typeof e === "string") return e;
      if (v[0] !== FAMILY_V4 && v[0] !== FAMILY_V6) return `family ${v[0]}`;
      msg.addressErrorCode ??= { ...e, family: v[0]! };
      return undefined;
    }
    case Attr.UNKNOWN_ATTRIBUTES: {
      if ((v.length & 1) !== 0) return `${v.length} bytes, not a list of 16-bit types`;
      const list: number[] = [];
      for (let i = 0; i < v.length; i += 2) list.push((v[i]! << 8) | v[i + 1]!);
      msg.unknownAttributes ??= list;
      return undefined;
    }
    case Attr.LIFETIME:
      if (exact(4)) return exact(4);
      msg.lifetime ??= readU32(v, 0);
      return undefined;
    case Attr.PRIORITY:
      if (exact(4)) return exact(4);
      msg.priority ??= readU32(v, 0);
      return undefined;
    case Attr.CHANNEL_NUMBER: {
      if (exact(4)) return exact(4);
      const n = (v[0]! << 8) | v[1]!;
      if (!isChannelNumber(n)) return `channel 0x${n.toString(16)} outside 0x4000–0x4fff`;
      msg.channelNumber ??= n;
      return undefined;
    }
    case Attr.REQUESTED_TRANSPORT:
      if (exact(4)) return exact(4);
      msg.requestedTransport ??= v[0]!;
      return undefined;
    case Attr.REQUESTED_ADDRESS_FAMILY:
    case Attr.ADDITIONAL_ADDRESS_FAMILY:
      if (exact(4)) return exact(4);
      if (v[0] !== FAMILY_V4 && v[0] !== FAMILY_V6) return `family ${v[0]}`;
      if (type === Attr.REQUESTED_ADDRESS_FAMILY) msg.requestedAddressFamily ??= v[0];
      else msg.additionalAddressFamily ??= v[0];
      return undefined;
    case Attr.DATA:
      msg.data ??= v;
      return undefined;
    case Attr.USE_CANDIDATE:
      if (exact(0)) return exact(0);
      msg.useCandidate = true;
      return undefined;
    case Attr.ICE_CONTROLLED:
    case Attr.ICE_CONTROLLING: {
      if (exact(8)) return exact(8);
      const tie = (BigInt(readU32(v, 0)) << 32n) | BigInt(readU32(v, 4));
      if (type === Attr.ICE_CONTROLLED) msg.iceControlled ??= tie;
      else msg.iceControlling ??= tie;
      return undefined;
    }
    case Attr.MESSAGE_INTEGRITY:
      if (exact(20)) return exact(20);
      msg.integrityAt = at;
      return undefined;
    case Attr.MESSAGE_INTEGRITY_SHA256:
      // §14.6: may be truncated, but to no fewer than 16 bytes and in whole 4-byte words.
      if (v.length < 16 || v.length > 32 || (v.length & 3) !== 0) return `${v.length} bytes, not 16–32 in steps of 4`;
      msg.integritySha256At = at;
      return undefined;
    case Attr.FINGERPRINT:
      if (exact(4)) return exact(4);
      msg.hasFingerprint = true;
      return undefined;
    default:
      if (type < 0x8000) msg.unknownRequired.push(type);
      return undefined;
  }
}

function readAddress(v: Uint8Array, tid: Uint8Array | undefined): Endpoint | string {
  if (v.length < 4) return `${v.length} bytes`;
  const family = v[1]!;
  const size = family === FAMILY_V4 ? 4 : family === FAMILY_V6 ? 16 : 0;
  if (size === 0) return `family ${family}`;
  if (v.length !== 4 + size) return `${v.length} bytes for ${family === FAMILY_V4 ? "IPv4" : "IPv6"}`;
  let port = (v[2]! << 8) | v[3]!;
  const addr = v.slice(4, 4 + size);
  if (tid) {
    port ^= MAGIC_COOKIE >>> 16;
    xorAddress(addr, tid);
  }
  return { address: formatIp(addr), port };
}

/** XOR-*-ADDRESS: the address XORed with the cookie (IPv4) or cookie ‖ transaction id (IPv6). */
function xorAddress(addr: Uint8Array, tid: Uint8Array): void {
  for (let i = 0; i < addr.length; i++) addr[i]! ^= i < 4 ? (MAGIC_COOKIE >>> (24 - 8 * i)) & 0xff : tid[i - 4]!;
}

// ERROR-CODE and ADDRESS-ERROR-CODE share a layout; the latter's first byte is the family.
function readErrorCode(v: Uint8Array): ErrorCode | string {
  if (v.length < 4) return `${v.length} bytes`;
  const cls = v[2]! & 0x07;
  const num = v[3]!;
  if (cls < 3 || cls > 6 || num > 99) return `code ${cls}${String(num).padStart(2, "0")}`;
  if (v.length - 4 > MAX_TEXT) return "reason over the limit";
  const reason = decodeText(v.subarray(4));
  if (reason === undefined) return "reason not UTF-8";
  return { code: cls * 100 + num, reason };
}

function decodeText(v: Uint8Array): string | undefined {
  try {
    return utf8.decode(v);
  } catch {
    return undefined;
  }
}

export function isChannelNumber(n: number): boolean {
  return n >= 0x4000 && n <= 0x4fff; // RFC 8656 §12: 0x5000–0x7fff are reserved
}

export function attrName(type: number): string {
  for (const k in Attr) if (Attr[k as keyof typeof Attr] === type) return `0x${type.toString(16).padStart(4, "0")} ${k.replace(/_/g, "-")}`;
  return `0x${type.toString(16).padStart(4, "0")}`;
}

// ---- integrity -------------------------------------------------------------------------------

/** The long-term credential key (RFC 8489 §9.2.2): MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Uint8Array {
  return md5(utf8Encoder.encode(`${username}:${realm}:${password}`));
}

/** The short-term credential key (§9.1.1): the password itself (ICE's ufrag/pwd). */
export function shortTermKey(password: string): Uint8Array {
  return utf8Encoder.encode(password);
}

export type IntegrityResult = "ok" | "missing" | "mismatch";

/**
 * Checks MESSAGE-INTEGRITY-SHA256 when present (the stronger one wins, §9.1.4), else
 * MESSAGE-INTEGRITY. The HMAC covers the message up to the attribute, with the header length
 * rewritten to end at the attribute — as the sender computed it.
 */
export function checkIntegrity(msg: StunMessage, key: Uint8Array): IntegrityResult {
  const sha256At = msg.integritySha256At;
  const at = sha256At >= 0 ? sha256At : msg.integrityAt;
  if (at < 0) return "missing";
  const raw = msg.raw;
  const len = (raw[at + 2]! << 8) | raw[at + 3]!;
  const covered = withLength(raw, at, at + 4 + len);
  const mac = sha256At >= 0 ? hmac(sha256, key, covered) : hmac(sha1, key, covered);
  let diff = 0;
  for (let i = 0; i < len; i++) diff |= mac[i]! ^ raw[at + 4 + i]!;
  return diff === 0 ? "ok" : "mismatch";
}

/** A copy of raw[0, upTo) whose header length says the message ends at `endsAt`. */
function withLength(raw: Uint8Array, upTo: number, endsAt: number): Uint8Array {
  const c = raw.slice(0, upTo);
  const l = endsAt - HEADER_SIZE;
  c[2] = l >> 8;
  c[3] = l & 0xff;
  return c;
}

// ---- building --------------------------------------------------------------------------------

/**
 * Builds one message, attribute by attribute, in the order called: integrity and fingerprint
 * last (`finish`). Sizes are small; the buffer grows as needed.
 */
export class StunWriter {
  #buf = new Uint8Array(256);
  #len = HEADER_SIZE;
  readonly transactionId: Uint8Array;

  constructor(method: number, cls: StunClass, transactionId: Uint8Array) {
    if (transactionId.length !== TRANSACTION_ID_SIZE) throw new Error(`STUN transaction id must be 12 bytes, got ${transactionId.length}`);
    this.transactionId = transactionId;
    const t = messageType(method, cls);
    this.#buf[0] = t >> 8;
    this.#buf[1] = t & 0xff;
    writeU32(this.#buf, 4, MAGIC_COOKIE);
    this.#buf.set(transactionId, 8);
  }

  /** Appends an attribute with the given value, padded to 4 bytes with zeros. */
  bytes(type: number, value: Uint8Array): this {
    const at = this.#reserve(type, value.length);
    this.#buf.set(value, at);
    return this;
  }

  text(type: number, value: string): this {
    return this.bytes(type, utf8Encoder.encode(value));
  }

  u32(type: number, value: number): this {
    const at = this.#reserve(type, 4); // first: reserving may replace the buffer
    writeU32(this.#buf, at, value >>> 0);
    return this;
  }

  u64(type: number, value: bigint): this {
    const at = this.#reserve(type, 8);
    writeU32(this.#buf, at, Number((value >> 32n) & 0xffffffffn));
    writeU32(this.#buf, at + 4, Number(value & 0xffffffffn));
    return this;
  }

  /** REQUESTED-TRANSPORT, *-ADDRESS-FAMILY, CHANNEL-NUMBER: a value in the first byte(s), then RFFU. */
  u8(type: number, value: number): this {
    const at = this.#reserve(type, 4);
    this.#buf[at] = value;
    return this;
  }

  channelNumber(n: number): this {
    const at = this.#reserve(Attr.CHANNEL_NUMBER, 4);
    this.#buf[at] = n >> 8;
    this.#buf[at + 1] = n & 0xff;
    return this;
  }

  flag(type: number): this {
    this.#reserve(type, 0);
    return this;
  }

  errorCode(code: number, reason: string): this {
    const r = utf8Encoder.encode(reason);
    const at = this.#reserve(Attr.ERROR_CODE, 4 + r.length);
    this.#buf[at + 2] = Math.floor(code / 100);
    this.#buf[at + 3] = code % 100;
    this.#buf.set(r, at + 4);
    return this;
  }

  /** MAPPED-ADDRESS when `type` is it, else the XOR form. */
  address(type: number, ep: Endpoint): this {
    const addr = parseIp(ep.address);
    if (!addr) throw new Error(`STUN ${attrName(type)}: "${ep.address}" is not an IP address`);
    const at = this.#reserve(type, 4 + addr.length);
    let port = ep.port;
    if (type !== Attr.MAPPED_ADDRESS) {
      port ^= MAGIC_COOKIE >>> 16;
      xorAddress(addr, this.transactionId);
    }
    this.#buf[at + 1] = addr.length === 4 ? FAMILY_V4 : FAMILY_V6;
    this.#buf[at + 2] = port >> 8;
    this.#buf[at + 3] = port & 0xff;
    this.#buf.set(addr, at + 4);
    return this;
  }

  /** MESSAGE-INTEGRITY (HMAC-SHA1) or, with `sha256`, MESSAGE-INTEGRITY-SHA256 over all so far. */
  integrity(key: Uint8Array, sha256Variant = false): this {
    const size = sha256Variant ? 32 : 20;
    this.#setLength(this.#len + 4 + size);
    const mac = sha256Variant ? hmac(sha256, key, this.#buf.subarray(0, this.#len)) : hmac(sha1, key, this.#buf.subarray(0, this.#len));
    return this.bytes(sha256Variant ? Attr.MESSAGE_INTEGRITY_SHA256 : Attr.MESSAGE_INTEGRITY, mac);
  }

  fingerprint(): this {
    this.#setLength(this.#len + 8);
    const crc = (crc32(this.#buf.subarray(0, this.#len)) ^ FINGERPRINT_XOR) >>> 0;
    return this.u32(Attr.FINGERPRINT, crc);
  }

  /** The finished message (a fresh array, the writer can be dropped). */
  finish(): Uint8Array {
    this.#setLength(this.#len);
    return this.#buf.slice(0, this.#len);
  }

  #reserve(type: number, length: number): number {
    const padded = (length + 3) & ~3;
    if (this.#len + 4 + padded > 0xffff + HEADER_SIZE) throw new Error(`STUN message over 64 KiB adding ${attrName(type)}`);
    if (this.#len + 4 + padded > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + 4 + padded));
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    const at = this.#len;
    this.#buf[at] = type >> 8;
    this.#buf[at + 1] = type & 0xff;
    this.#buf[at + 2] = length >> 8;
    this.#buf[at + 3] = length & 0xff;
    this.#buf.fill(0, at + 4, at + 4 + padded);
    this.#len = at + 4 + padded;
    this.#setLength(this.#len);
    return at + 4;
  }

  #setLength(end: number): void {
    const l = end - HEADER_SIZE;
    this.#buf[2] = l >> 8;
    this.#buf[3] = l & 0xff;
  }
}

// ---- bytes -----------------------------------------------------------------------------------

export function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

// CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320) as FINGERPRINT needs (§14.7).
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
