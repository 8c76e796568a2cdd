// Proxy addresses of DNS resources (Firezone's model): each domain gets 4 IPv4 addresses from
// 100.96.0.0/11 and 4 IPv6 from fd00:2021:1111:8000::/107, stable for as long as it is assigned
// and saved so they survive restarts (clients cache DNS answers).
//
// Bounded: an authorized client under a `**.` pattern can ask for any number of names, and each
// new one would take 8 addresses and a database row for ever. So assignments are capped in total
// and per client (the client whose query created them), a name over a cap is refused (the
// resolver answers SERVFAIL, as Firezone does when it cannot produce proxy addresses), and names
// nobody asked for and no NAT session used for RECLAIM_AFTER are reclaimed: their row goes and
// their slot is handed out again (after that long, no client still holds the old answer: it was
// given with a 60 s TTL).
import { addressKey, parseCidr, parseIp, type Cidr } from "../ip/address.ts";

export const PROXY_V4: Cidr = parseCidr("100.96.0.0/11");
export const PROXY_V6: Cidr = parseCidr("fd00:2021:1111:8000::/107");
export const PROXY_IPS_PER_FAMILY = 4;
/** Slots whose IPv4 addresses would fall into 100.100.111.0/24. */
const SENTINEL_SLOTS = new Set(Array.from({ length: 66 }, (_, i) => Math.floor((0x046f00 - 1) / PROXY_IPS_PER_FAMILY) + i));
/**
 * Names assigned at once, in total. Each costs 8 addresses, ~0.3 KiB of memory and a ~100 B row:
 * 65,536 bound that to ~20 MiB and ~7 MiB, and use an eighth of the 524,288 slots of the /11.
 */
export const MAX_PROXY_NAMES = 65_536;
/**
 * Names one client may have caused to be assigned (until they are reclaimed). A user of a
 * `**.corp.example` resource touches tens to hundreds of names a day; 1,024 leaves room and
 * takes 64 clients, not one, to reach the total.
 */
export const MAX_PROXY_NAMES_PER_CLIENT = 1_024;
/** A name neither queried nor used by a new NAT session for this long is reclaimed. */
export const RECLAIM_AFTER = 24 * 3600_000;

export const PROXY_LIMIT_REASONS = ["client_limit", "table_limit", "range_exhausted"] as const;
export type ProxyLimitReason = (typeof PROXY_LIMIT_REASONS)[number];

export interface ProxyAssignment {
  domain: string;
  v4: Uint8Array[];
  v6: Uint8Array[];
}

/**
 * Hands out proxy addresses: stable per domain while assigned, and restorable from storage
 * (`restore`) so they survive restarts — clients cache DNS answers.
 */
export class ProxyIpAllocator {
  readonly #byDomain = new Map<string, ProxyAssignment>();
  readonly #byIp = new Map<string, { domain: string; index: number }>();
  #next = 0;
  /** The slot of each allocator-made assignment (a portal's own addresses have none). */
  readonly #slotOf = new Map<string, number>();
  /** Slots of reclaimed names, oldest first: handed out again before new ones. */
  #free: number[] = [];
  #freeHead = 0;
  /** Which client's query created a name, and how many each client has. */
  readonly #owner = new Map<string, number>();
  readonly #owned = new Map<number, number>();
  /** When each name was last used, least recently used first (re-inserted on use). */
  readonly #lastUsed = new Map<string, number>();
  /** New names refused, by reason. */
  readonly refused: Record<ProxyLimitReason, number> = { client_limit: 0, table_limit: 0, range_exhausted: 0 };

  constructor(readonly limits: { total: number; perClient: number } = { total: MAX_PROXY_NAMES, perClient: MAX_PROXY_NAMES_PER_CLIENT }) {}

  get size(): number {
    return this.#byDomain.size;
  }

  /** Names client `cid` created that are still assigned. */
  namesOf(cid: number): number {
    return this.#owned.get(cid) ?? 0;
  }

  /**
   * A client's query for `domain`: its assignment, made now if it has none and no cap stops it.
   * Marks the name used at `now`.
   */
  request(domain: string, cid: number, now: number): (ProxyAssignment & { slot: number; fresh: boolean }) | { refused: ProxyLimitReason } {
    const d = normalize(domain);
    if (!this.#byDomain.has(d)) {
      const reason = (this.#owned.get(cid) ?? 0) >= this.limits.perClient ? "client_limit" : this.#byDomain.size >= this.limits.total ? "table_limit" : undefined;
      if (reason) {
        this.refused[reason]++;
        return { refused: reason };
      }
    }
    let a: ProxyAssignment & { slot: number; fresh: boolean };
    try {
      a = this.assign(d);
    } catch {
      this.refused.range_exhausted++;
      return { refused: "range_exhausted" };
    }
    if (a.fresh) {
      this.#owner.set(d, cid);
      this.#owned.set(cid, (this.#owned.get(cid) ?? 0) + 1);
      this.#lastUsed.set(d, now);
    } else this.touch(d, now);
    return a;
  }

  /** `domain` was used at `now` (a query, a new NAT session): not to be reclaimed yet. */
  touch(domain: string, now: number): void {
    if (!this.#lastUsed.has(domain)) return; // not reclaimable (a portal's assignment)
    this.#lastUsed.delete(domain);
    this.#lastUsed.set(domain, now);
  }

  /**
   * Reclaims names unused since `now - RECLAIM_AFTER` that `inUse` (live NAT sessions) does not
   * claim; returns them (the caller deletes their rows and routes). Looks only at the least
   * recently used end, so a pass costs what it reclaims plus the old names still in use.
   */
  reclaimIdle(now: number, inUse: (domain: string) => boolean, after = RECLAIM_AFTER): string[] {
    const out: string[] = [];
    const keep: string[] = [];
    for (const [d, at] of this.#lastUsed) {
      if (at > now - after) break;
      if (inUse(d)) keep.push(d);
      else out.push(d);
    }
    for (const d of keep) this.touch(d, now); // in use now: counts as used
    for (const d of out) this.#release(d);
    return out;
  }

  #release(domain: string): void {
    this.#unindex(domain);
    this.#lastUsed.delete(domain);
    const slot = this.#slotOf.get(domain);
    if (slot !== undefined) {
      this.#slotOf.delete(domain);
      this.#free.push(slot);
    }
    const cid = this.#owner.get(domain);
    if (cid !== undefined) {
      this.#owner.delete(domain);
      const n = (this.#owned.get(cid) ?? 1) - 1;
      if (n > 0) this.#owned.set(cid, n);
      else this.#owned.delete(cid);
    }
  }

  /**
   * Restores saved assignments (after a restart). A row that is not a valid assignment — an
   * address outside the proxy ranges, a slot out of range, an address another row already has —
   * is skipped and reported, never fatal: one bad stored row must not keep the gateway down.
   */
  restore(saved: { domain: string; v4: string[]; v6: string[]; slot: number }[], now = 0): { domain: string; err: string }[] {
    const skipped: { domain: string; err: string }[] = [];
    for (const s of saved) {
      const err = this.#invalid(s);
      if (err) {
        skipped.push({ domain: String(s.domain).slice(0, 253), err });
        continue;
      }
      const a = { domain: s.domain, v4: s.v4.map((x) => parseIp(x)!), v6: s.v6.map((x) => parseIp(x)!) };
      this.#index(a);
      this.#slotOf.set(s.domain, s.slot);
      this.#lastUsed.set(s.domain, now);
      this.#next = Math.max(this.#next, s.slot + 1);
    }
    return skipped;
  }

  #invalid(s: { domain: unknown; v4: unknown; v6: unknown; slot: unknown }): string | undefined {
    const show = (v: unknown) => JSON.stringify(String(v).slice(0, 64));
    if (typeof s.domain !== "string" || s.domain.length === 0 || s.domain.length > 253 || s.domain !== s.domain.toLowerCase()) return `domain ${show(s.domain)} is not a lower-case name`;
    if (this.#byDomain.has(s.domain)) return `domain ${show(s.domain)} is saved twice`;
    if (!Number.isInteger(s.slot) || (s.slot as number) < 0 || ((s.slot as number) + 1) * PROXY_IPS_PER_FAMILY + 1 > 2 ** (32 - PROXY_V4.prefix)) return `slot ${show(s.slot)} is out of range`;
    for (const [field, list, range] of [["v4", s.v4, PROXY_V4], ["v6", s.v6, PROXY_V6]] as const) {
      if (!Array.isArray(list) || list.length > PROXY_IPS_PER_FAMILY) return `${field} ${show(JSON.stringify(list))} is not a list of at most ${PROXY_IPS_PER_FAMILY} addresses`;
      for (const x of list) {
        const ip = typeof x === "string" ? parseIp(x) : undefined;
        if (!ip || !inPrefix(ip, range)) return `${field} address ${show(x)} is not in ${range === PROXY_V4 ? "100.96.0.0/11" : "fd00:2021:1111:8000::/107"}`;
        const owner = this.#byIp.get(key(ip));
        if (owner) return `${field} address ${show(x)} already belongs to ${show(owner.domain)}`;
      }
    }
    return undefined;
  }

  /** The proxy addresses of `domain`, assigning them on first use. `slot` is for persistence. */
  assign(domain: string): ProxyAssignment & { slot: number; fresh: boolean } {
    const d = normalize(domain);
    const have = this.#byDomain.get(d);
    if (have) return { ...have, slot: -1, fresh: false };
    let slot: number;
    if (this.#freeHead < this.#free.length) {
      slot = this.#free[this.#freeHead++]!;
      if (this.#freeHead === this.#free.length) (this.#free = []), (this.#freeHead = 0);
    } else {
      slot = this.#next;
      // Firezone keeps 100.100.111.0/24 (and its IPv6 twin) for its DNS sentinels: never hand them out.
      while (SENTINEL_SLOTS.has(slot)) slot++;
      if ((slot + 1) * PROXY_IPS_PER_FAMILY + 1 > 2 ** (32 - PROXY_V4.prefix)) throw new Error("DNS proxy address range exhausted");
      this.#next = slot + 1;
    }
    const a: ProxyAssignment = { domain: d, v4: [], v6: [] };
    for (let i = 0; i < PROXY_IPS_PER_FAMILY; i++) {
      // IPv4 skips the network address (Firezone starts at 100.96.0.1); IPv6 starts at ::0.
      a.v4.push(offsetAddress(PROXY_V4.bytes, slot * PROXY_IPS_PER_FAMILY + i + 1));
      a.v6.push(offsetAddress(PROXY_V6.bytes, slot * PROXY_IPS_PER_FAMILY + i));
    }
    this.#index(a);
    this.#slotOf.set(d, slot);
    return { ...a, slot, fresh: true };
  }

  /**
   * The proxy addresses of `domain` are now `v4`/`v6` (a portal's client assigned them). Returns
   * the domains whose translations are void: `domain` itself if its addresses changed, and any
   * domain that held one of the new addresses (it loses its assignment and gets a fresh one on
   * its next query). Empty when nothing changed.
   */
  reassign(domain: string, v4: Uint8Array[], v6: Uint8Array[]): string[] {
    const d = normalize(domain);
    const old = this.#byDomain.get(d);
    const same = (a: Uint8Array[], b: Uint8Array[]) => a.length === b.length && a.every((x, i) => key(x) === key(b[i]!));
    if (old && same(old.v4, v4) && same(old.v6, v6)) return [];
    const affected = new Set<string>([d]);
    for (const ip of [...v4, ...v6]) {
      const owner = this.#byIp.get(key(ip))?.domain;
      if (owner !== undefined && owner !== d) affected.add(owner);
    }
    for (const x of affected) {
      // Their old slots are not handed out again: a client may still hold them for another name.
      this.#slotOf.delete(x);
      this.#release(x);
    }
    // The portal manages these addresses: never reclaimed here (not in #lastUsed).
    this.#index({ domain: d, v4, v6 });
    return [...affected];
  }

  #unindex(domain: string): void {
    const a = this.#byDomain.get(domain);
    if (!a) return;
    this.#byDomain.delete(domain);
    for (const ip of [...a.v4, ...a.v6]) if (this.#byIp.get(key(ip))?.domain === domain) this.#byIp.delete(key(ip));
  }

  #index(a: ProxyAssignment): void {
    this.#byDomain.set(a.domain, a);
    a.v4.forEach((ip, index) => this.#byIp.set(key(ip), { domain: a.domain, index }));
    a.v6.forEach((ip, index) => this.#byIp.set(key(ip), { domain: a.domain, index }));
  }

  /** Which domain (and which of its 4 addresses) a proxy address stands for. */
  lookup(buf: Uint8Array, at: number, length: 4 | 16): { domain: string; index: number } | undefined {
    return this.#byIp.get(key(buf.subarray(at, at + length)));
  }

  assignments(): ProxyAssignment[] {
    return [...this.#byDomain.values()];
  }
}

function inPrefix(ip: Uint8Array, c: Cidr): boolean {
  if (ip.length !== c.bytes.length) return false;
  for (let bit = 0; bit < c.prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((ip[bit >> 3]! & mask) !== (c.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

function offsetAddress(base: Uint8Array, n: number): Uint8Array {
  const out = base.slice();
  let carry = n;
  for (let i = out.length - 1; i >= 0 && carry > 0; i--) {
    const v = out[i]! + (carry & 0xff);
    out[i] = v & 0xff;
    carry = (carry >>> 8) + (v >> 8);
  }
  return out;
}

export const key = (ip: Uint8Array): string => addressKey(ip);


function normalize(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, "");
}
