// Tunnel addresses two peers both claim. wireguard-go (and our tunnel's AllowedIPs trie) keep one
// owner per prefix: the peer inserted last takes it over, so the other keeps its handshakes and
// looks "connected" while every packet from that address is dropped as outside its AllowedIPs.
// That silent loss is what this check refuses (UI, API, `peers add`, `check-config`) and reports
// at start. One check, used everywhere, so the answer never depends on where a peer was added.
//
// Only equal prefixes clash. A prefix inside a wider one (a /32 next to a /24, or the split
// default route 0.0.0.0/1 + 128.0.0.0/1 next to client /32s) is longest-prefix routing, which
// behaves the same whichever peer came first — a deliberate, common layout (exit peer + clients).
import { formatCidr, parseCidr, type Cidr } from "../ip/address.ts";

/** A peer as the check sees it: how to name it, and its AllowedIPs. */
export interface AddressOwner {
  /** How messages name it: `"alice"`, `the file peer at line 12 (AbC…)`. */
  label: string;
  allowedIPs: readonly Cidr[];
}

export interface AddressClash<T extends AddressOwner = AddressOwner> {
  /** The prefix both claim, formatted. */
  address: string;
  /** The peer that had it first (earlier in the list). */
  owner: T;
  /** The peer that claims it again. */
  claimant: T;
}

/**
 * A prefix as a Map key, host bits cleared, so "10.99.0.5/24" and "10.99.0.0/24" are one key:
 * family, prefix length and the network bytes, without formatting or parsing text (this runs for
 * every prefix of every peer at start — 10 000 peers — and at every peer sync).
 */
function prefixKey(c: Cidr): string | number {
  if (c.family === 4) {
    // IPv4 as a number, prefix length above the 32 address bits (exact in a double): no string.
    const b = c.bytes;
    const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
    return c.prefix * 0x1_0000_0000 + ((((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) & mask) >>> 0);
  }
  let key = `${c.family}/${c.prefix}:`;
  for (let i = 0; i < c.bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, c.prefix - i * 8));
    key += `${(c.bytes[i]! & (0xff00 >> keep)) & 0xff},`;
  }
  return key;
}

/** Host bits cleared, so the clash names the prefix as both peers mean it. */
function normal(c: Cidr): Cidr {
  return parseCidr(formatCidr(c), { clearHostBits: true });
}

/**
 * Owners by prefix, in the order they were added: "who had this prefix first" in O(prefixes)
 * instead of comparing against every earlier owner (quadratic: minutes for 10 000 peers).
 */
export class AddressIndex<T extends AddressOwner> {
  readonly #byPrefix = new Map<string | number, T[]>();
  readonly #order = new Map<T, number>();

  constructor(owners: Iterable<T> = []) {
    for (const o of owners) this.add(o);
  }

  add(owner: T): void {
    if (this.#order.has(owner)) return;
    this.#order.set(owner, this.#order.size);
    for (const c of owner.allowedIPs) {
      const key = prefixKey(c);
      const list = this.#byPrefix.get(key);
      if (list) list.push(owner);
      else this.#byPrefix.set(key, [owner]);
    }
  }

  /** The earliest-added owner other than `claimant` that has one of its prefixes, or undefined. */
  clashOf(claimant: T): AddressClash<T> | undefined {
    let best: { owner: T; rank: number; prefix: Cidr } | undefined;
    for (const c of claimant.allowedIPs) {
      for (const owner of this.#byPrefix.get(prefixKey(c)) ?? []) {
        if (owner === claimant) continue;
        const rank = this.#order.get(owner)!;
        if (!best || rank < best.rank) best = { owner, rank, prefix: c };
        break; // the list is in insertion order: the first other owner is this prefix's earliest
      }
    }
    return best ? { address: formatCidr(normal(best.prefix)), owner: best.owner, claimant } : undefined;
  }
}

/** The first prefix `claimant` shares with any of `owners` (earliest owner first), or undefined. */
export function clashWith<T extends AddressOwner>(claimant: T, owners: readonly T[]): AddressClash<T> | undefined {
  return new AddressIndex(owners).clashOf(claimant);
}

/** Every later peer that claims a prefix an earlier one in `owners` has (at most one clash each). */
export function addressClashes<T extends AddressOwner>(owners: readonly T[]): AddressClash<T>[] {
  const out: AddressClash<T>[] = [];
  const index = new AddressIndex<T>();
  for (const o of owners) {
    const clash = index.clashOf(o);
    if (clash) out.push(clash);
    index.add(o);
  }
  return out;
}

/** How errors say it: `10.99.0.5/32 is already an address of "alice" (…)`. */
export function clashMessage(c: AddressClash): string {
  return `${c.address} is already an address of ${c.owner.label} (one address, two peers: one of them would silently lose its packets)`;
}
