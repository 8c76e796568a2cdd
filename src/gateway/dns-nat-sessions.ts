// The DNS-resource NAT's session table, bounded. Every flow a client opens towards a proxy address
// costs a session (two map entries, ~0.5 KiB); without a bound one client opening flows as fast as
// it can — or spoofing source ports — grows it until the process runs out of memory. So: a cap in
// total and per client (tunnel connection, not source address: a peer whose AllowedIPs cover a
// whole network could otherwise spread its flows over many addresses).
//
// When a cap is reached, room is made as a stateful NAT does (Linux conntrack's early_drop: never
// the assured flows first): an expired session if there is one, else the longest idle in this
// order — TCP flows that are closing (FIN seen both ways), UDP/ICMP flows, TCP flows the server never
// answered (a SYN flood lands here), and last an established TCP flow, but only one idle for
// longer than a UDP flow may be. If even that is not possible the new flow is refused (its packet
// dropped and counted): established connections are worth more than new ones.
//
// Each session sits in two doubly linked lists per class — the whole table's and its client's —
// in order of last use, so the candidates are the lists' heads: finding one, moving a session on
// each packet, and sweeping expired ones are O(1) per session and allocate nothing per packet.

/** RFC 5382's 2 h 4 min, as Firezone's NAT table. */
export const TCP_SESSION_TIMEOUT = (2 * 60 + 4) * 60_000;
export const UDP_SESSION_TIMEOUT = 120_000;
/** A TCP flow after both FINs: what is left is a few ACKs (conntrack: 120 s in TIME_WAIT). */
export const TCP_CLOSING_TIMEOUT = 120_000;
/**
 * Sessions in total. ~0.5 KiB each: 65,536 bound the table to ~32 MiB, and it is the number Linux
 * sizes conntrack to on a host with 1–2 GiB (nf_conntrack_max), which this gateway's NAT plays the
 * role of for DNS resources.
 */
export const MAX_NAT_SESSIONS = 65_536;
/**
 * Sessions per client. A busy browser holds a few hundred connections; carrier-grade NATs give a
 * subscriber 1–4 K ports (RFC 6888 REQ-4 asks for a per-subscriber limit). 4,096 leaves heavy
 * users room and means 16 clients, not one, are needed to fill the table.
 */
export const MAX_NAT_SESSIONS_PER_CLIENT = 4_096;
/** An established TCP flow may be evicted for a new flow only after this long without a packet. */
export const ESTABLISHED_EVICTABLE_IDLE = UDP_SESSION_TIMEOUT;

/** Session classes, in the order they are evicted. */
export const CLOSING = 0;
export const DATAGRAM = 1;
export const OPENING = 2;
export const ESTABLISHED = 3;
export type SessionClass = typeof CLOSING | typeof DATAGRAM | typeof OPENING | typeof ESTABLISHED;
const TIMEOUTS = [TCP_CLOSING_TIMEOUT, UDP_SESSION_TIMEOUT, TCP_SESSION_TIMEOUT, TCP_SESSION_TIMEOUT];

export const NAT_LIMIT_REASONS = ["client_limit", "table_limit"] as const;
export type NatLimitReason = (typeof NAT_LIMIT_REASONS)[number];

export interface Session {
  domain: string;
  /** What the client addressed: replies come back from here. */
  proxy: Uint8Array;
  /** Where this flow goes, chosen when it started and kept until it ends. */
  real: Uint8Array;
  /** (proto, client, client port, proxy, port): how the client's packets find the session. */
  outKey: string;
  /** (proto, real, real port, client, client port): how replies find it. */
  inKey: string;
  /** The client's own source port, and the one the flow uses towards the real address (they differ when remapped). */
  clientPort: number;
  natPort: number;
  /** TCP: which sides have sent a FIN (bit 1 the client, bit 2 the server). */
  fins: number;
  cls: SessionClass;
  lastSeen: number;
  readonly owner: ClientFlows;
  readonly inTable: Link;
  readonly inClient: Link;
}

interface Link {
  readonly s: Session;
  prev: Link | undefined;
  next: Link | undefined;
}

/** Least recently used first. */
class FlowList {
  head: Link | undefined;
  tail: Link | undefined;

  push(l: Link): void {
    l.prev = this.tail;
    l.next = undefined;
    if (this.tail) this.tail.next = l;
    else this.head = l;
    this.tail = l;
  }

  remove(l: Link): void {
    if (l.prev) l.prev.next = l.next;
    else this.head = l.next;
    if (l.next) l.next.prev = l.prev;
    else this.tail = l.prev;
    l.prev = l.next = undefined;
  }
}

const classLists = () => [new FlowList(), new FlowList(), new FlowList(), new FlowList()];

interface ClientFlows {
  readonly cid: number;
  count: number;
  readonly lists: FlowList[];
}

export const expiresAt = (s: Session): number => s.lastSeen + TIMEOUTS[s.cls]!;

export class SessionTable {
  readonly byOut = new Map<string, Session>();
  readonly byIn = new Map<string, Session>();
  readonly #lists = classLists();
  readonly #clients = new Map<number, ClientFlows>();
  /** Live sessions per domain: a name in use is never reclaimed. */
  readonly #perDomain = new Map<string, number>();
  /** Sessions ended to make room for a new flow, by which cap was reached. */
  readonly evicted: Record<NatLimitReason, number> = { client_limit: 0, table_limit: 0 };
  /** New flows whose packets were dropped because no session could be evicted for them. */
  readonly refused: Record<NatLimitReason, number> = { client_limit: 0, table_limit: 0 };

  constructor(readonly limits: { total: number; perClient: number } = { total: MAX_NAT_SESSIONS, perClient: MAX_NAT_SESSIONS_PER_CLIENT }) {}

  get size(): number {
    return this.byOut.size;
  }

  /** The live session under `k` in `map`; an expired one found there is ended. */
  live(map: Map<string, Session>, k: string, now: number): Session | undefined {
    const s = map.get(k);
    if (s && expiresAt(s) <= now) {
      this.end(s);
      return undefined;
    }
    return s;
  }

  /**
   * Makes room for one more session of client `cid`, evicting if a cap is reached. False when
   * the new flow must be refused (counted by the cap that refused it).
   */
  admit(cid: number, now: number): boolean {
    const c = this.#clients.get(cid);
    if (c && c.count >= this.limits.perClient && !this.#evict(c.lists, now, "client_limit")) {
      this.refused.client_limit++;
      return false;
    }
    if (this.byOut.size >= this.limits.total && !this.#evict(this.#lists, now, "table_limit")) {
      this.refused.table_limit++;
      return false;
    }
    return true;
  }

  /** Adds a session (after `admit` said yes). */
  add(cid: number, f: Pick<Session, "domain" | "proxy" | "real" | "outKey" | "inKey" | "clientPort" | "natPort" | "fins" | "cls">, now: number): Session {
    let owner = this.#clients.get(cid);
    if (!owner) {
      owner = { cid, count: 0, lists: classLists() };
      this.#clients.set(cid, owner);
    }
    const s = { ...f, lastSeen: now, owner } as Session;
    (s as { inTable: Link }).inTable = { s, prev: undefined, next: undefined };
    (s as { inClient: Link }).inClient = { s, prev: undefined, next: undefined };
    owner.count++;
    this.#perDomain.set(s.domain, (this.#perDomain.get(s.domain) ?? 0) + 1);
    this.#lists[s.cls]!.push(s.inTable);
    owner.lists[s.cls]!.push(s.inClient);
    this.byOut.set(s.outKey, s);
    this.byIn.set(s.inKey, s);
    return s;
  }

  /** A packet of `s` at `now`: it becomes the most recently used of class `cls`. */
  touch(s: Session, now: number, cls: SessionClass): void {
    this.#lists[s.cls]!.remove(s.inTable);
    s.owner.lists[s.cls]!.remove(s.inClient);
    s.cls = cls;
    s.lastSeen = now;
    this.#lists[cls]!.push(s.inTable);
    s.owner.lists[cls]!.push(s.inClient);
  }

  end(s: Session): void {
    if (this.byOut.get(s.outKey) !== s) return; // already ended
    this.byOut.delete(s.outKey);
    if (this.byIn.get(s.inKey) === s) this.byIn.delete(s.inKey);
    this.#lists[s.cls]!.remove(s.inTable);
    s.owner.lists[s.cls]!.remove(s.inClient);
    if (--s.owner.count === 0) this.#clients.delete(s.owner.cid);
    const n = (this.#perDomain.get(s.domain) ?? 1) - 1;
    if (n > 0) this.#perDomain.set(s.domain, n);
    else this.#perDomain.delete(s.domain);
  }

  /** Whether `domain` has live sessions (expired ones not yet swept count: sweep first). */
  inUse(domain: string): boolean {
    return this.#perDomain.has(domain);
  }

  /** Ends expired sessions (each class list is in expiry order: only its expired head is looked at). */
  sweep(now: number): number {
    let n = 0;
    for (const list of this.#lists) {
      while (list.head && expiresAt(list.head.s) <= now) (this.end(list.head.s), n++);
    }
    return n;
  }

  clear(): void {
    this.byOut.clear();
    this.byIn.clear();
    for (const l of this.#lists) l.head = l.tail = undefined;
    this.#clients.clear();
    this.#perDomain.clear();
  }

  /** Sessions of client `cid` (tests, admin views). */
  countOf(cid: number): number {
    return this.#clients.get(cid)?.count ?? 0;
  }

  #evict(lists: FlowList[], now: number, reason: NatLimitReason): boolean {
    for (const list of lists) {
      const head = list.head?.s;
      if (head && expiresAt(head) <= now) {
        this.end(head);
        return true;
      }
    }
    for (let cls = CLOSING; cls < ESTABLISHED; cls++) {
      const head = lists[cls]!.head?.s;
      if (head) {
        this.end(head);
        this.evicted[reason]++;
        return true;
      }
    }
    const oldest = lists[ESTABLISHED]!.head?.s;
    if (oldest && now - oldest.lastSeen >= ESTABLISHED_EVICTABLE_IDLE) {
      this.end(oldest);
      this.evicted[reason]++;
      return true;
    }
    return false;
  }
}
