// Tiny IPv4/ICMP echo builders for interop tests (the real packet layer is src/ip).

export function internetChecksum(buf: Uint8Array, start = 0, end = buf.length): number {
  let sum = 0;
  for (let i = start; i < end - 1; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if ((end - start) & 1) sum += buf[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const ip4 = (s: string) => s.split(".").map(Number);

export function icmpEcho(opts: { src: string; dst: string; type: 0 | 8; id: number; seq: number; payload: Uint8Array }): Uint8Array {
  const p = new Uint8Array(20 + 8 + opts.payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 1;
  p.set(ip4(opts.src), 12);
  p.set(ip4(opts.dst), 16);
  const ipsum = internetChecksum(p, 0, 20);
  p[10] = ipsum >> 8;
  p[11] = ipsum & 0xff;
  p[20] = opts.type;
  p[24] = opts.id >> 8;
  p[25] = opts.id & 0xff;
  p[26] = opts.seq >> 8;
  p[27] = opts.seq & 0xff;
  p.set(opts.payload, 28);
  const sum = internetChecksum(p, 20, p.length);
  p[22] = sum >> 8;
  p[23] = sum & 0xff;
  return p;
}

export interface ParsedEcho {
  src: string;
  dst: string;
  type: number;
  id: number;
  seq: number;
  payload: Uint8Array;
}

export function parseEcho(p: Uint8Array): ParsedEcho | undefined {
  if (p.length < 28 || p[0]! >> 4 !== 4 || p[9] !== 1) return undefined;
  const ihl = (p[0]! & 15) * 4;
  const icmp = p.subarray(ihl);
  return {
    src: Array.from(p.subarray(12, 16)).join("."),
    dst: Array.from(p.subarray(16, 20)).join("."),
    type: icmp[0]!,
    id: (icmp[4]! << 8) | icmp[5]!,
    seq: (icmp[6]! << 8) | icmp[7]!,
    payload: icmp.subarray(8),
  };
}
