// Building the packets the gateway emits (ICMP errors towards clients, DNS answers) and that
// tests and the fuzzer need. Builders allocate: they are off the fast path.
import { parseIp } from "./address.ts";
import { writeIpv4HeaderChecksum, writeL4Checksum } from "./checksum.ts";
import { PacketView, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP } from "./packet.ts";

export interface Addresses {
  src: string;
  dst: string;
}

function addr(text: string): Uint8Array {
  const b = parseIp(text);
  if (!b) throw new Error(`"${text}" is not an IP address`);
  return b;
}

/** An IP packet around `l4` (whose checksum field is then filled in). */
export function buildIp(a: Addresses, protocol: number, l4: Uint8Array, ttl = 64): Uint8Array {
  const src = addr(a.src);
  const dst = addr(a.dst);
  if (src.length !== dst.length) throw new Error(`${a.src} and ${a.dst} are not the same family`);
  let p: Uint8Array;
  if (src.length === 4) {
    p = new Uint8Array(20 + l4.length);
    p[0] = 0x45;
    p[2] = p.length >> 8;
    p[3] = p.length & 0xff;
    p[6] = 0x40; // don't fragment
    p[8] = ttl;
    p[9] = protocol;
    p.set(src, 12);
    p.set(dst, 16);
    p.set(l4, 20);
    writeIpv4HeaderChecksum(p);
  } else {
    p = new Uint8Array(40 + l4.length);
    p[0] = 0x60;
    p[4] = l4.length >> 8;
    p[5] = l4.length & 0xff;
    p[6] = protocol;
    p[7] = ttl;
    p.set(src, 8);
    p.set(dst, 24);
    p.set(l4, 40);
  }
  const view = new PacketView();
  const err = view.parse(p);
  if (err) throw new Error(`built an invalid packet: ${err.message}`);
  writeL4Checksum(view);
  return p;
}

export function buildUdp(a: Addresses & { srcPort: number; dstPort: number; payload?: Uint8Array }): Uint8Array {
  const payload = a.payload ?? new Uint8Array(0);
  const l4 = new Uint8Array(8 + payload.length);
  l4[0] = a.srcPort >> 8;
  l4[1] = a.srcPort & 0xff;
  l4[2] = a.dstPort >> 8;
  l4[3] = a.dstPort & 0xff;
  l4[4] = l4.length >> 8;
  l4[5] = l4.length & 0xff;
  l4.set(payload, 8);
  return buildIp(a, PROTO_UDP, l4);
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export function buildTcp(a: Addresses & { srcPort: number; dstPort: number; flags?: number; seq?: number; payload?: Uint8Array }): Uint8Array {
  const payload = a.payload ?? new Uint8Array(0);
  const l4 = new Uint8Array(20 + payload.length);
  const v = new DataView(l4.buffer);
  v.setUint16(0, a.srcPort);
  v.setUint16(2, a.dstPort);
  v.setUint32(4, a.seq ?? 1);
  l4[12] = 5 << 4;
  l4[13] = a.flags ?? TCP_SYN;
  v.setUint16(14, 64240);
  l4.set(payload, 20);
  return buildIp(a, PROTO_TCP, l4);
}

export function buildIcmpEcho(a: Addresses & { id: number; seq: number; reply?: boolean; payload?: Uint8Array }): Uint8Array {
  const v6 = a.src.includes(":");
  const payload = a.payload ?? new Uint8Array(0);
  const l4 = new Uint8Array(8 + payload.length);
  l4[0] = v6 ? (a.reply ? 129 : 128) : a.reply ? 0 : 8;
  l4[4] = a.id >> 8;
  l4[5] = a.id & 0xff;
  l4[6] = a.seq >> 8;
  l4[7] = a.seq & 0xff;
  l4.set(payload, 8);
  return buildIp(a, v6 ? PROTO_ICMPV6 : PROTO_ICMP, l4);
}

/**
 * An ICMP error of `type`/`code` about `offending`, from `from`. As Firezone: IPv4 quotes the IP
 * header plus 8 bytes (RFC 792), IPv6 as much as fits 1280 bytes (RFC 4443); TTL 20.
 */
export function buildIcmpError(offending: PacketView, from: string, type: number, code: number): Uint8Array {
  const v6 = offending.version === 6;
  const maxQuote = v6 ? 1280 - 40 - 8 : offending.l4At + 8;
  const quote = offending.buf.subarray(0, Math.min(offending.length, maxQuote));
  const l4 = new Uint8Array(8 + quote.length);
  l4[0] = type;
  l4[1] = code;
  l4.set(quote, 8);
  return buildIp({ src: from, dst: offending.src() }, v6 ? PROTO_ICMPV6 : PROTO_ICMP, l4, ICMP_ERROR_TTL);
}

export const ICMP_ERROR_TTL = 20;

/**
 * "Destination unreachable: communication administratively prohibited" — what a client's stack
 * should see when the gateway denies its packet: an immediate, specific error instead of a timeout.
 */
export function buildProhibited(offending: PacketView): Uint8Array {
  return offending.version === 4 ? buildIcmpError(offending, offending.dst(), 3, 13) : buildIcmpError(offending, offending.dst(), 1, 1);
}
