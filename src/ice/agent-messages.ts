// The STUN Binding messages ICE connectivity checks are made of (RFC 8445 §7.1–7.3), as the agent
// needs them: build a request or answer, read one back. The agent stays ignorant of STUN encoding.
// INTERIM: a minimal codec until src/ice/stun.ts (the turn helper's full codec) is cherry-picked;
// then these functions delegate to it and the byte handling below goes away.
import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import type { Endpoint } from "../wire/cookie.ts";
import { formatIp, parseIp } from "../ip/address.ts";

const MAGIC_COOKIE = 0x2112a442; // RFC 8489 §5
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const BINDING_ERROR = 0x0111;
const ATTR_USERNAME = 0x0006;
const ATTR_MESSAGE_INTEGRITY = 0x0008;
const ATTR_ERROR_CODE = 0x0009;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_PRIORITY = 0x0024; // RFC 8445 §16.1
const ATTR_USE_CANDIDATE = 0x0025;
const ATTR_FINGERPRINT = 0x8028;
const ATTR_ICE_CONTROLLED = 0x8029;
const ATTR_ICE_CONTROLLING = 0x802a;
const FINGERPRINT_XOR = 0x5354554e; // RFC 8489 §14.7

export interface BindingRequestFields {
  transactionId: Uint8Array;
  username: string;
  password: string;
  priority: number;
  iceControlled?: bigint;
  iceControlling?: bigint;
  useCandidate?: boolean;
}

export interface BindingMessage {
  class: "request" | "success" | "error";
  transactionId: Uint8Array;
  username?: string;
  priority?: number;
  useCandidate: boolean;
  iceControlling?: bigint;
  iceControlled?: bigint;
  mapped?: Endpoint;
  errorCode?: number;
  /** MESSAGE-INTEGRITY (HMAC-SHA1, short-term credentials) is present and matches `password`. */
  verify(data: Uint8Array, password: string): boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

class Writer {
  buf = new Uint8Array(256);
  view = new DataView(this.buf.buffer);
  len = 20;
  constructor(type: number, transactionId: Uint8Array) {
    this.view.setUint16(0, type);
    this.view.setUint32(4, MAGIC_COOKIE);
    this.buf.set(transactionId, 8);
  }
  attr(type: number, value: Uint8Array): void {
    this.view.setUint16(this.len, type);
    this.view.setUint16(this.len + 2, value.length);
    this.buf.set(value, this.len + 4);
    this.len += 4 + ((value.length + 3) & ~3);
  }
  /** MESSAGE-INTEGRITY then FINGERPRINT, each over the message with its length counting itself. */
  finish(password: string | undefined): Uint8Array {
    if (password !== undefined) {
      this.view.setUint16(2, this.len - 20 + 24);
      const mac = hmac(sha1, encoder.encode(password), this.buf.subarray(0, this.len));
      this.attr(ATTR_MESSAGE_INTEGRITY, mac);
    }
    this.view.setUint16(2, this.len - 20 + 8);
    const crc = (crc32(this.buf.subarray(0, this.len)) ^ FINGERPRINT_XOR) >>> 0;
    const v = new Uint8Array(4);
    new DataView(v.buffer).setUint32(0, crc);
    this.attr(ATTR_FINGERPRINT, v);
    return this.buf.slice(0, this.len);
  }
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return b;
}

export function encodeBindingRequest(f: BindingRequestFields): Uint8Array {
  const w = new Writer(BINDING_REQUEST, f.transactionId);
  w.attr(ATTR_USERNAME, encoder.encode(f.username));
  w.attr(ATTR_PRIORITY, u32(f.priority));
  if (f.iceControlled !== undefined) w.attr(ATTR_ICE_CONTROLLED, u64(f.iceControlled));
  if (f.iceControlling !== undefined) w.attr(ATTR_ICE_CONTROLLING, u64(f.iceControlling));
  if (f.useCandidate) w.attr(ATTR_USE_CANDIDATE, new Uint8Array(0));
  return w.finish(f.password);
}

export function encodeBindingSuccess(transactionId: Uint8Array, mapped: Endpoint, password: string): Uint8Array {
  const w = new Writer(BINDING_SUCCESS, transactionId);
  w.attr(ATTR_XOR_MAPPED_ADDRESS, xorAddress(mapped, transactionId));
  return w.finish(password);
}

export function encodeBindingError(transactionId: Uint8Array, code: number, reason: string, password?: string): Uint8Array {
  const w = new Writer(BINDING_ERROR, transactionId);
  const text = encoder.encode(reason);
  const v = new Uint8Array(4 + text.length);
  v[2] = Math.floor(code / 100);
  v[3] = code % 100;
  v.set(text, 4);
  w.attr(ATTR_ERROR_CODE, v);
  return w.finish(password);
}

function xorAddress(e: Endpoint, transactionId: Uint8Array): Uint8Array {
  const ip = parseIp(e.address)!;
  const v = new Uint8Array(4 + ip.length);
  v[1] = ip.length === 4 ? 1 : 2;
  const dv = new DataView(v.buffer);
  dv.setUint16(2, e.port ^ (MAGIC_COOKIE >>> 16));
  const mask = new Uint8Array(16);
  mask.set(u32(MAGIC_COOKIE), 0);
  mask.set(transactionId, 4);
  for (let i = 0; i < ip.length; i++) v[4 + i] = ip[i]! ^ mask[i]!;
  return v;
}

function readXorAddress(v: Uint8Array, transactionId: Uint8Array): Endpoint | undefined {
  if (v.length < 8) return undefined;
  const family = v[1];
  const n = family === 1 ? 4 : family === 2 ? 16 : 0;
  if (!n || v.length !== 4 + n) return undefined;
  const port = ((v[2]! << 8) | v[3]!) ^ (MAGIC_COOKIE >>> 16);
  const mask = new Uint8Array(16);
  mask.set(u32(MAGIC_COOKIE), 0);
  mask.set(transactionId, 4);
  const ip = new Uint8Array(n);
  for (let i = 0; i < n; i++) ip[i] = v[4 + i]! ^ mask[i]!;
  return { address: formatIp(ip), port };
}

/** RFC 8489 §6: first two bits zero and the magic cookie. Anything else is not ours to read. */
export function looksLikeStun(data: Uint8Array): boolean {
  return data.length >= 20 && (data[0]! & 0xc0) === 0 && data[4] === 0x21 && data[5] === 0x12 && data[6] === 0xa4 && data[7] === 0x42;
}

export function decodeBinding(data: Uint8Array): BindingMessage | "not_stun" | "malformed" {
  if (!looksLikeStun(data)) return "not_stun";
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const type = dv.getUint16(0);
  const length = dv.getUint16(2);
  if (length + 20 !== data.length || (length & 3) !== 0) return "malformed";
  const cls = type === BINDING_REQUEST ? "request" : type === BINDING_SUCCESS ? "success" : type === BINDING_ERROR ? "error" : undefined;
  if (!cls) return "malformed";
  const transactionId = data.slice(8, 20);
  const msg: BindingMessage = { class: cls, transactionId, useCandidate: false, verify: () => false };
  let integrityAt = -1;
  let fingerprintOk = false;
  let off = 20;
  while (off + 4 <= data.length) {
    const at = dv.getUint16(off);
    const len = dv.getUint16(off + 2);
    const start = off + 4;
    if (start + len > data.length) return "malformed";
    const v = data.subarray(start, start + len);
    if (fingerprintOk) return "malformed"; // nothing may follow FINGERPRINT
    if (integrityAt >= 0 && at !== ATTR_FINGERPRINT) {
      // Attributes after MESSAGE-INTEGRITY are ignored (RFC 8489 §14.5), FINGERPRINT excepted.
    } else {
      try {
        switch (at) {
          case ATTR_USERNAME: msg.username = decoder.decode(v); break;
          case ATTR_PRIORITY: if (len !== 4) return "malformed"; msg.priority = dv.getUint32(start); break;
          case ATTR_USE_CANDIDATE: msg.useCandidate = true; break;
          case ATTR_ICE_CONTROLLING: if (len !== 8) return "malformed"; msg.iceControlling = dv.getBigUint64(start); break;
          case ATTR_ICE_CONTROLLED: if (len !== 8) return "malformed"; msg.iceControlled = dv.getBigUint64(start); break;
          case ATTR_XOR_MAPPED_ADDRESS: { const m = readXorAddress(v, transactionId); if (!m) return "malformed"; msg.mapped = m; break; }
          case ATTR_ERROR_CODE: if (len < 4) return "malformed"; msg.errorCode = (v[2]! & 7) * 100 + v[3]!; break;
          case ATTR_MESSAGE_INTEGRITY: if (len !== 20) return "malformed"; integrityAt = off; break;
          case ATTR_FINGERPRINT: {
            if (len !== 4) return "malformed";
            const want = (crc32(data.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0;
            if (dv.getUint32(start) !== want) return "malformed";
            fingerprintOk = true;
            break;
          }
        }
      } catch {
        return "malformed"; // USERNAME not UTF-8
      }
    }
    off = start + ((len + 3) & ~3);
  }
  if (off !== data.length) return "malformed";
  if (integrityAt >= 0) {
    const end = integrityAt;
    msg.verify = (bytes, password) => {
      // The HMAC covers the header (length as if MESSAGE-INTEGRITY were last) up to the attribute.
      const copy = bytes.slice(0, end);
      new DataView(copy.buffer).setUint16(2, end - 20 + 24);
      const mac = hmac(sha1, encoder.encode(password), copy);
      const got = bytes.subarray(end + 4, end + 24);
      let diff = 0;
      for (let i = 0; i < 20; i++) diff |= mac[i]! ^ got[i]!;
      return diff === 0;
    };
  }
  return msg;
}

let crcTable: Uint32Array | undefined;
function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
