// ICMP echo helpers for integration tests, as thin adapters over src/ip (builders and the strict
// parser), so tests and gateway share one packet implementation.
import { buildIcmpEcho } from "../../src/ip/build.ts";
import { PacketView, PROTO_ICMP } from "../../src/ip/packet.ts";

export function icmpEcho(opts: { src: string; dst: string; type: 0 | 8; id: number; seq: number; payload: Uint8Array }): Uint8Array {
  return buildIcmpEcho({ src: opts.src, dst: opts.dst, id: opts.id, seq: opts.seq, reply: opts.type === 0, payload: opts.payload });
}

export interface ParsedEcho {
  src: string;
  dst: string;
  type: number;
  id: number;
  seq: number;
  payload: Uint8Array;
}

/** The echo in an IPv4 packet, or undefined for anything else (or anything malformed). */
export function parseEcho(p: Uint8Array): ParsedEcho | undefined {
  const v = new PacketView();
  if (v.parse(p) || v.protocol !== PROTO_ICMP) return undefined;
  const at = v.l4At;
  return { src: v.src(), dst: v.dst(), type: v.icmpType, id: (p[at + 4]! << 8) | p[at + 5]!, seq: (p[at + 6]! << 8) | p[at + 7]!, payload: p.subarray(at + 8) };
}
