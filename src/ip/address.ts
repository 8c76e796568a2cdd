// IP addresses and CIDR prefixes as bytes (4 for IPv4, 16 for IPv6): what AllowedIPs, routes and
// configs are made of. Parsing is strict and errors say what was wrong with which text.

export type IpFamily = 4 | 6;

export interface Cidr {
  family: IpFamily;
  /** Network address with host bits cleared (4 or 16 bytes). */
  bytes: Uint8Array;
  prefix: number;
}

export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

export function parseIPv6(text: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length < 2) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes(".")) {
        const v4 = parseIPv4(g);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

export function parseIp(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run (≥ 2) of zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/**
 * Parses "10.0.0.0/24", "fd00::/64" or a bare address (a host prefix). With `strict`, host bits
 * must be zero (AllowedIPs); without, they are kept as the interface's own address (Address =).
 */
export function parseCidr(text: string, opts: { clearHostBits?: boolean } = { clearHostBits: true }): Cidr {
  const t = text.trim();
  const slash = t.indexOf("/");
  const addrText = slash < 0 ? t : t.slice(0, slash);
  const bytes = parseIp(addrText);
  if (!bytes) throw new Error(`"${t}" is not an IP address or CIDR prefix`);
  const family: IpFamily = bytes.length === 4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) throw new Error(`"${t}" has prefix length "${p}" (IPv${family}: 0–${max})`);
    prefix = Number(p);
  }
  if (opts.clearHostBits !== false) maskInPlace(bytes, prefix);
  return { family, bytes, prefix };
}

export function maskInPlace(bytes: Uint8Array, prefix: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i]! &= bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.bytes)}/${c.prefix}`;
}

const NON_PUBLIC_V4: [number, number][] = [
  [0x00000000, 8], [0x0a000000, 8], [0x64400000, 10], [0x7f000000, 8], [0xa9fe0000, 16], [0xac100000, 12],
  [0xc0000000, 24], [0xc0000200, 24], [0xc0a80000, 16], [0xc6120000, 15], [0xc6336400, 24], [0xcb007100, 24],
  [0xe0000000, 4], [0xf0000000, 4],
];

/**
 * Is the address at `at` publicly routable? IPv4: not private (RFC 1918), CGNAT, loopback,
 * link-local, documentation, benchmarking, multicast or reserved. IPv6: global unicast (2000::/3)
 * outside documentation (2001:db8::/32).
 */
export function isPublicAddress(b: Uint8Array, at: number, version: 4 | 6): boolean {
  if (version === 6) {
    if ((b[at]! & 0xe0) !== 0x20) return false;
    return !(b[at] === 0x20 && b[at + 1] === 0x01 && b[at + 2] === 0x0d && b[at + 3] === 0xb8);
  }
  const v = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  for (const [net, len] of NON_PUBLIC_V4) if (((v ^ net) >>> (32 - len)) === 0) return false;
  return true;
}

/** A map key for the address bytes at buf[at, at+length) (hex). */
export function addressKey(buf: Uint8Array, at = 0, length = buf.length - at): string {
  return Buffer.from(buf.buffer, buf.byteOffset + at, length).toString("hex");
}
