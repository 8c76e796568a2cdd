// Firezone's p2p control protocol as a client sees it: IPv6-shaped packets inside the tunnel
// (src = dst = ::, next header 0xFF, hop limit 0) whose payload is an 8-byte header — the first
// byte the event type, the rest reserved — followed by the event's body. Facts:
// ../shared/research/firezone-gateway-protocol.md §1 and Firezone's `ip-packet/src/fz_p2p_control.rs`
// and `tunnel/src/p2p_control.rs`:
//   0 AssignedIps   {resource, domain, proxy_ips}  the proxy addresses a DNS resource's domain got
//   1 DomainStatus  {resource, domain, status}     whether the gateway resolved that domain
//   2 Goodbye       (no body)                      the peer is going away: drop the connection now
// The protocol is unreliable and event-based, so every event is idempotent; AssignedIps is repeated
// by its sender until answered. The gateway's 48-byte goodbye is src/tunnel/goodbye.ts's business;
// this file reads all three and writes the two with a body.

export const ASSIGNED_IPS_EVENT = 0;
export const DOMAIN_STATUS_EVENT = 1;
export const GOODBYE_EVENT = 2;

const IPV6_HEADER = 40;
const CONTROL_HEADER = 8;

export interface AssignedIps {
  resource: string;
  domain: string;
  proxy_ips: string[];
}

export interface DomainStatus {
  resource: string;
  domain: string;
  status: string;
}

export type ControlEvent =
  | { type: "assigned_ips"; body: AssignedIps }
  | { type: "domain_status"; body: DomainStatus }
  | { type: "goodbye" }
  /** A control packet with an event we do not know, or a body that does not parse: ignored, counted. */
  | { type: "unknown"; event: number; reason: string };

/** Is this inner packet a p2p control packet? Cheap: checked on every decrypted packet. */
export function isControlPacket(p: Uint8Array, off: number, len: number): boolean {
  if (len < IPV6_HEADER + CONTROL_HEADER || p[off] !== 0x60 || p[off + 6] !== 0xff || p[off + 7] !== 0) return false;
  for (let i = 8; i < IPV6_HEADER; i++) if (p[off + i] !== 0) return false;
  return ((p[off + 4]! << 8) | p[off + 5]!) === len - IPV6_HEADER;
}

/** Reads a control packet (isControlPacket said yes). Allocates: control events are rare. */
export function readControl(p: Uint8Array, off: number, len: number): ControlEvent {
  const event = p[off + IPV6_HEADER]!;
  if (event === GOODBYE_EVENT) return { type: "goodbye" };
  if (event !== ASSIGNED_IPS_EVENT && event !== DOMAIN_STATUS_EVENT) return { type: "unknown", event, reason: "unknown event type" };
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(p.subarray(off + IPV6_HEADER + CONTROL_HEADER, off + len)));
  } catch (err) {
    return { type: "unknown", event, reason: `body is not JSON: ${(err as Error).message}` };
  }
  const o = body as Record<string, unknown>;
  if (typeof o !== "object" || o === null || typeof o.resource !== "string" || typeof o.domain !== "string") return { type: "unknown", event, reason: "body lacks resource/domain" };
  if (event === ASSIGNED_IPS_EVENT) {
    if (!Array.isArray(o.proxy_ips) || !o.proxy_ips.every((a) => typeof a === "string")) return { type: "unknown", event, reason: "proxy_ips is not a list of addresses" };
    return { type: "assigned_ips", body: { resource: o.resource, domain: o.domain, proxy_ips: o.proxy_ips as string[] } };
  }
  if (typeof o.status !== "string") return { type: "unknown", event, reason: "status missing" };
  return { type: "domain_status", body: { resource: o.resource, domain: o.domain, status: o.status } };
}

/** A control packet carrying `event` and `body` (JSON), as Firezone's `fz_p2p_control` builds it. */
export function controlPacket(event: number, body?: unknown): Uint8Array {
  const json = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
  const payload = CONTROL_HEADER + json.length;
  const p = new Uint8Array(IPV6_HEADER + payload);
  p[0] = 0x60;
  p[4] = payload >> 8;
  p[5] = payload & 0xff;
  p[6] = 0xff;
  p[7] = 0;
  p[IPV6_HEADER] = event;
  p.set(json, IPV6_HEADER + CONTROL_HEADER);
  return p;
}
