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

function samePrefix(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family || a.prefix !== b.prefix) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

/** Host bits cleared, so "10.99.0.5/24" and "10.99.0.0/24" compare as the same prefix. */
function normal(c: Cidr): Cidr {
  return parseCidr(formatCidr(c), { clearHostBits: true });
}

/** The first prefix `claimant` shares with any of `owners`, or undefined. */
export function clashWith<T extends AddressOwner>(claimant: T, owners: readonly T[]): AddressClash<T> | undefined {
  const mine = claimant.allowedIPs.map(normal);
  for (const owner of owners) {
    if (owner === claimant) continue;
    for (const theirs of owner.allowedIPs) {
      const t = normal(theirs);
      if (mine.some((m) => samePrefix(m, t))) return { address: formatCidr(t), owner, claimant };
    }
  }
  return undefined;
}

/** Every later peer that claims a prefix an earlier one in `owners` has (at most one clash each). */
export function addressClashes<T extends AddressOwner>(owners: readonly T[]): AddressClash<T>[] {
  const out: AddressClash<T>[] = [];
  for (let i = 1; i < owners.length; i++) {
    const clash = clashWith(owners[i]!, owners.slice(0, i));
    if (clash) out.push(clash);
  }
  return out;
}

/** How errors say it: `10.99.0.5/32 is already an address of "alice" (…)`. */
export function clashMessage(c: AddressClash): string {
  return `${c.address} is already an address of ${c.owner.label} (one address, two peers: one of them would silently lose its packets)`;
}
