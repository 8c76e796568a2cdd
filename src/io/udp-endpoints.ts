// Raw socket addresses ↔ the cores' `Endpoint` objects, cached both ways so a datagram from or to a
// known endpoint costs no string and no object: the cores compare endpoints by value, but the
// shell hands them the same object for the same source every time.
import { formatIp, parseIp } from "../ip/address.ts";
import type { Endpoint } from "../wire/index.ts";
import { LOCAL_WORDS } from "./udp-pktinfo.ts";
import { AF_INET, AF_INET6, SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE, SOCKADDR_ROOM } from "./udp-sys.ts";

const WAYS = 4;
const NOT_IP = -1;
const MISSING = -2;
const KEY_WORDS = 5; // family<<16|port, then the address as four words (IPv4: one, rest 0)

/**
 * The local address each cached endpoint last reached us on, for the sender (udp-sender.ts): it
 * answers from there (IP_PKTINFO). Entries are LOCAL_WORDS words in `local` (udp-pktinfo.ts).
 */
export interface StickySources {
  /**
   * Entry holding the local address of the peer at the sockaddr `buf[at]` (by value: the cores copy
   * endpoints), or -1 when none is known (no datagram from it cached, or not a sticky socket).
   */
  localAt(buf: Uint8Array, at: number): number;
  readonly local: Int32Array;
  /** Forgets an entry's local address (the kernel refused it as a source: it went away). */
  clearLocal(entry: number): void;
}

/**
 * sockaddr_in / sockaddr_in6 bytes → a shared Endpoint. A set-associative table (`sets` × 4 ways,
 * round-robin replacement) keeps it bounded: a scan from a million sources costs misses, not memory.
 * Each entry also keeps the local address its datagrams last arrived on (StickySources).
 */
export class SourceCache implements StickySources {
  readonly #keys: Uint32Array;
  readonly #endpoints: (Endpoint | undefined)[];
  readonly #mask: number;
  /** The last #find's key (family<<16|port, address words) and set: no allocation per lookup. */
  readonly #key = new Uint32Array(KEY_WORDS);
  #set = 0;
  #victim = 0;
  /** Sources seen that were not cached (an Endpoint was made). */
  misses = 0;
  /** Per entry, LOCAL_WORDS words: the local address (family 0 when none). */
  readonly local: Int32Array;
  /** Entry of the last lookup() that returned an Endpoint. */
  lastEntry = -1;

  /** `sets` is rounded up to a power of two. */
  constructor(sets = 1024) {
    const n = 1 << Math.ceil(Math.log2(Math.max(1, sets)));
    this.#mask = n - 1;
    this.#keys = new Uint32Array(n * WAYS * KEY_WORDS);
    this.#endpoints = new Array<Endpoint | undefined>(n * WAYS).fill(undefined);
    this.local = new Int32Array(n * WAYS * LOCAL_WORDS);
  }

  /**
   * Records that the last looked-up source arrived on the local address at src32[w, w+6) (a ring
   * slot's META_LOCAL); a record without an address leaves the known one alone.
   */
  noteLocal(src32: Int32Array, w: number): void {
    const family = src32[w]!;
    if (family === 0 || this.lastEntry < 0) return;
    const l = this.local;
    const o = this.lastEntry * LOCAL_WORDS;
    if (l[o] === family && l[o + 2] === src32[w + 2] && l[o + 3] === src32[w + 3] && l[o + 4] === src32[w + 4] && l[o + 5] === src32[w + 5] && l[o + 1] === src32[w + 1]) return;
    for (let i = 0; i < LOCAL_WORDS; i++) l[o + i] = src32[w + i]!;
  }

  localAt(buf: Uint8Array, at: number): number {
    const e = this.#find(buf, at);
    return e >= 0 && this.local[e * LOCAL_WORDS] !== 0 ? e : -1;
  }

  /**
   * The entry caching the sockaddr at `buf[at]`; NOT_IP when it is neither IPv4 nor IPv6, MISSING
   * when it is not cached — then #key holds its key and #set the first entry of its set.
   */
  #find(buf: Uint8Array, at: number): number {
    const family = buf[at]! | (buf[at + 1]! << 8);
    const key = this.#key;
    if (family === AF_INET) {
      key[1] = word(buf, at + 4);
      key[2] = key[3] = key[4] = 0;
    } else if (family === AF_INET6) {
      key[1] = word(buf, at + 8);
      key[2] = word(buf, at + 12);
      key[3] = word(buf, at + 16);
      key[4] = word(buf, at + 20);
    } else return NOT_IP;
    key[0] = (family << 16) | (buf[at + 2]! << 8) | buf[at + 3]!;
    const set = setOf(key[0]!, key[1]!, key[2]!, key[3]!, key[4]!, this.#mask);
    this.#set = set;
    const k = this.#keys;
    for (let w = 0; w < WAYS; w++) {
      const o = (set + w) * KEY_WORDS;
      if (k[o] === key[0] && k[o + 1] === key[1] && k[o + 2] === key[2] && k[o + 3] === key[3] && k[o + 4] === key[4]) return set + w;
    }
    return MISSING;
  }

  clearLocal(entry: number): void {
    this.local[entry * LOCAL_WORDS] = 0;
  }

  /**
   * Answers `to` from the local address `local` (4 or 16 bytes) until a datagram from `to` says
   * otherwise. For a conversation this gateway starts (a takeover after a failover): there is no
   * arrival address to copy yet, and the kernel's preferred source would pull the client away from
   * the floating address it dialled. False when the families differ or `to` is not an address.
   */
  pin(to: Endpoint, local: Uint8Array): boolean {
    const addr = parseIp(to.address);
    if (!addr || addr.length !== local.length || !Number.isInteger(to.port) || to.port < 0 || to.port > 65535) return false;
    const v4 = addr.length === 4;
    const sa = new Uint8Array(SOCKADDR_ROOM);
    sa[0] = v4 ? AF_INET : AF_INET6;
    sa[2] = to.port >> 8;
    sa[3] = to.port & 0xff;
    sa.set(addr, v4 ? 4 : 8);
    if (!this.lookup(sa, 0)) return false;
    const bytes = new Uint8Array(LOCAL_WORDS * 4);
    const words = new Int32Array(bytes.buffer);
    words[0] = v4 ? AF_INET : AF_INET6;
    bytes.set(local, 8); // ifindex 0: the route picks the interface
    this.noteLocal(words, 0);
    return true;
  }

  /** The Endpoint for the sockaddr at `buf[at]`, or undefined when it is neither IPv4 nor IPv6. */
  lookup(buf: Uint8Array, at: number): Endpoint | undefined {
    const found = this.#find(buf, at);
    if (found >= 0) {
      this.lastEntry = found;
      return this.#endpoints[found];
    }
    if (found === NOT_IP) {
      this.lastEntry = -1;
      return undefined;
    }
    this.misses++;
    const e = this.#set + (this.#victim++ & (WAYS - 1));
    this.#keys.set(this.#key, e * KEY_WORDS);
    const v4 = buf[at] === AF_INET && buf[at + 1] === 0;
    const bytes = v4 ? buf.slice(at + 4, at + 8) : buf.slice(at + 8, at + 24);
    const endpoint: Endpoint = { address: formatIp(bytes), port: (buf[at + 2]! << 8) | buf[at + 3]! };
    this.#endpoints[e] = endpoint;
    this.local[e * LOCAL_WORDS] = 0;
    this.lastEntry = e;
    return endpoint;
  }
}

/** First entry of the set a source key hashes to. */
function setOf(tag: number, a0: number, a1: number, a2: number, a3: number, mask: number): number {
  let h = Math.imul(tag ^ a0, 0x9e3779b1);
  h = Math.imul(h ^ a1 ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ a2 ^ a3 ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) & mask) * WAYS;
}

function word(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/**
 * Endpoint → a sockaddr kept in one native buffer, by object identity (endpoints are shared,
 * immutable objects: from SourceCache, the config or the store; a roaming peer gets a new one). Bounded: when full it starts over, which
 * only costs re-encoding. `reserve()` before a batch so no index of the batch is invalidated.
 */
export class DestinationCache {
  /** sockaddrs, SOCKADDR_ROOM bytes each; pointers into it go into msghdr.msg_name. */
  readonly mem: Uint8Array;
  /** Per entry: 4 or 6 (which socket sends it). */
  readonly family: Uint8Array;
  readonly #index = new Map<Endpoint, number>();
  #used = 0;

  constructor(readonly capacity = 4096) {
    this.mem = new Uint8Array(capacity * SOCKADDR_ROOM);
    this.family = new Uint8Array(capacity);
  }

  /** Makes room for `n` new entries, forgetting all when there is not. */
  reserve(n: number): void {
    if (this.capacity - this.#used >= n) return;
    this.#index.clear();
    this.#used = 0;
  }

  /** Entry index of `to`, or -1 when its address is not an IP address (counted by the caller). */
  lookup(to: Endpoint): number {
    const known = this.#index.get(to);
    if (known !== undefined) return known;
    const addr = parseIp(to.address);
    // Not cached: endpoints that are no address are a bug elsewhere, rare, and must not fill the map.
    if (!addr || !Number.isInteger(to.port) || to.port < 0 || to.port > 65535) return -1;
    if (this.#used >= this.capacity) this.reserve(this.capacity);
    const i = this.#used++;
    const at = i * SOCKADDR_ROOM;
    this.mem.fill(0, at, at + SOCKADDR_ROOM);
    const v4 = addr.length === 4;
    this.mem[at] = v4 ? AF_INET : AF_INET6;
    this.mem[at + 2] = to.port >> 8;
    this.mem[at + 3] = to.port & 0xff;
    this.mem.set(addr, at + (v4 ? 4 : 8));
    this.family[i] = v4 ? 4 : 6;
    this.#index.set(to, i);
    return i;
  }

  /** sizeof the sockaddr of entry `i`. */
  nameLength(i: number): number {
    return this.family[i] === 4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE;
  }
}
