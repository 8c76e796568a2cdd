// The STUN Binding messages ICE connectivity checks are made of (RFC 8445 §7.1–7.3), as the agent
// needs them: build a request or an answer, read one back. Bytes are stun.ts's business; this file
// only knows which attributes a check carries, so the agent stays free of STUN encoding.
import type { Endpoint } from "../wire/cookie.ts";
import { Attr, StunClass, StunMessage, StunMethod, StunWriter, checkIntegrity, parseStun, shortTermKey, type StunParseErrorKind } from "./stun.ts";

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
  /** MESSAGE-INTEGRITY (short-term credentials: the ICE password) is present and matches. */
  verify(password: string): boolean;
}

/** RFC 8445 §7.1: USERNAME, PRIORITY, the role with its tie-breaker, USE-CANDIDATE; then integrity and fingerprint. */
export function encodeBindingRequest(f: BindingRequestFields): Uint8Array {
  const w = new StunWriter(StunMethod.binding, StunClass.request, f.transactionId).text(Attr.USERNAME, f.username).u32(Attr.PRIORITY, f.priority);
  if (f.iceControlled !== undefined) w.u64(Attr.ICE_CONTROLLED, f.iceControlled);
  if (f.iceControlling !== undefined) w.u64(Attr.ICE_CONTROLLING, f.iceControlling);
  if (f.useCandidate) w.flag(Attr.USE_CANDIDATE);
  return w.integrity(shortTermKey(f.password)).fingerprint().finish();
}

/** RFC 8445 §7.3.1.1: the source the request came from, as XOR-MAPPED-ADDRESS. */
export function encodeBindingSuccess(transactionId: Uint8Array, mapped: Endpoint, password: string): Uint8Array {
  return new StunWriter(StunMethod.binding, StunClass.success, transactionId).address(Attr.XOR_MAPPED_ADDRESS, mapped).integrity(shortTermKey(password)).fingerprint().finish();
}

export function encodeBindingError(transactionId: Uint8Array, code: number, reason: string, password?: string): Uint8Array {
  const w = new StunWriter(StunMethod.binding, StunClass.error, transactionId).errorCode(code, reason);
  if (password !== undefined) w.integrity(shortTermKey(password));
  return w.fingerprint().finish();
}

export type BindingParse = BindingMessage | { drop: StunParseErrorKind | "not_binding" };

/** A Binding request or response, or why not (the STUN parse error kind, or another method/class). */
export function decodeBinding(data: Uint8Array): BindingParse {
  const m = parseStun(data);
  if (!(m instanceof StunMessage)) return { drop: m.kind };
  if (m.method !== StunMethod.binding || m.cls === StunClass.indication) return { drop: "not_binding" };
  const msg: BindingMessage = {
    class: m.cls === StunClass.request ? "request" : m.cls === StunClass.success ? "success" : "error",
    transactionId: m.transactionId,
    useCandidate: m.useCandidate,
    verify: (password) => checkIntegrity(m, shortTermKey(password)) === "ok",
  };
  if (m.username !== undefined) msg.username = m.username;
  if (m.priority !== undefined) msg.priority = m.priority;
  if (m.iceControlling !== undefined) msg.iceControlling = m.iceControlling;
  if (m.iceControlled !== undefined) msg.iceControlled = m.iceControlled;
  const mapped = m.xorMappedAddress ?? m.mappedAddress;
  if (mapped) msg.mapped = mapped;
  if (m.errorCode) msg.errorCode = m.errorCode.code;
  return msg;
}
