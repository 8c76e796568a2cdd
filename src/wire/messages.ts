// Byte layout of the four WireGuard messages (whitepaper §5.4). All integers little-endian.
//
//   initiation  148 B: type|sender|ephemeral(32)|static(32+16)|timestamp(12+16)|mac1|mac2
//   response     92 B: type|sender|receiver|ephemeral(32)|empty(0+16)|mac1|mac2
//   cookie reply 64 B: type|receiver|nonce(24)|cookie(16+16)
//   transport  ≥ 32 B: type|receiver|counter(8)|payload‖tag

export const Initiation = {
  sender: 4,
  ephemeral: 8,
  static: 40,
  timestamp: 88,
  mac1: 116,
  mac2: 132,
} as const;

export const Response = {
  sender: 4,
  receiver: 8,
  ephemeral: 12,
  empty: 44,
  mac1: 60,
  mac2: 76,
} as const;

export const CookieReply = {
  receiver: 4,
  nonce: 8,
  cookie: 32,
} as const;

export const Transport = {
  receiver: 4,
  counter: 8,
  payload: 16,
} as const;

export function readU32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

export function writeU32(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value & 0xff;
  buf[at + 1] = (value >>> 8) & 0xff;
  buf[at + 2] = (value >>> 16) & 0xff;
  buf[at + 3] = (value >>> 24) & 0xff;
}

/** The first 4 bytes as one number: type 1..4 with reserved bytes zero; anything else is unknown. */
export function messageType(buf: Uint8Array): number {
  return buf.length < 4 ? -1 : readU32(buf, 0);
}

/** A 64-bit little-endian counter as a number; values ≥ 2^53 come back inexact (callers reject them). */
export function readCounter(buf: Uint8Array, at: number): number {
  return readU32(buf, at) + readU32(buf, at + 4) * 0x1_0000_0000;
}

export function writeCounter(buf: Uint8Array, at: number, counter: number): void {
  writeU32(buf, at, counter >>> 0);
  writeU32(buf, at + 4, Math.floor(counter / 0x1_0000_0000) >>> 0);
}
