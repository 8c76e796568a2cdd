// The connection manager, sans-IO: many WireGuard peers behind one static key and one UDP port.
// Incoming datagrams are demuxed by receiver index (upper 24 bits → connection, no per-session
// table); initiations are decrypted once and matched to a peer by the static key inside them.
// Outgoing inner packets are routed by AllowedIPs (longest prefix), and incoming inner packets
// must come from an address the sending peer owns (else dropped with reason `allowed_ips`).
import type { Aead } from "../crypto/aead.ts";
import { constantTimeEqual } from "../crypto/hash.ts";
import { encodeKey, isUsablePublicKey } from "../crypto/x25519.ts";
import type { Cidr } from "../ip/address.ts";
import {
  ConnectionIdAllocator,
  DECAP_NONE,
  INITIATION_SIZE,
  Initiation,
  LocalIdentity,
  MAX_DATAGRAM_SIZE,
  MESSAGE_INITIATION,
  WirePeer,
  consumeInitiation,
  connectionIdOf,
  messageType,
  readU32,
  screenHandshake,
  wipeConsumedInitiation,
  type Endpoint,
  type ReachOutResult,
  type Transmit,
  type WireEvent,
} from "../wire/index.ts";
import { DropCounters } from "../wire/drops.ts";
import { AllowedIps } from "./allowed-ips.ts";
import { MinHeap } from "./min-heap.ts";
import { ReadyQueue } from "./ready-queue.ts";
import { GOODBYE_EVENT, controlEventOf, goodbyePacket } from "./goodbye.ts";

/** Drops decided here, before or after a peer's own checks (those are counted on the peer). */
export type TunnelDropReason = "truncated" | "oversized" | "wrong_size" | "unknown_type" | "mac1" | "under_load" | "handshake_rate_limited" | "handshake_queue_full" | "handshake_decrypt" | "unknown_peer" | "unknown_session" | "allowed_ips" | "no_route" | "unexpected_control";

export interface PeerSpec {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  allowedIPs: Cidr[];
  endpoint?: Endpoint;
  persistentKeepalive?: number;
}

export interface Connection {
  /** 24-bit connection id: the upper bits of every session index of this peer. */
  cid: number;
  publicKey: string;
  peer: WirePeer;
  allowedIPs: Cidr[];
  /** Inner packets dropped because their source is outside AllowedIPs, and the last such source. */
  rejectedSources: RejectedSources;
  /** Scheduling (see Tunnel #touch): the deadline of its newest timer-heap entry, Infinity when none. */
  timerAt: number;
  /** In the transmit / event ready queue. */
  txQueued: boolean;
  eventQueued: boolean;
  /** Removed from the tunnel: its heap and queue entries are skipped when they surface. */
  removed: boolean;
  /** The activity round it was last listed in (see Tunnel.takeTouched). */
  touchedRound: number;
}

/**
 * Per-peer work done by the control path since construction: how a test proves a turn costs the
 * peers that have something to do, not every configured one.
 */
export interface TunnelWork {
  /** Connections taken off the timer heap (due, or their deadline moved). */
  timerVisits: number;
  /** Connections looked at by pollTransmit / pollEvent. */
  queueVisits: number;
  /** Connections handed to periodic samplers by takeTouched (telemetry's share of the work). */
  touchedVisits: number;
}

/** Written on the data path without allocating (a copy into bytes this connection owns). */
export interface RejectedSources {
  count: number;
  /** The last rejected inner source address: `last[0..family === 4 ? 4 : 16)`. */
  last: Uint8Array;
  family: 0 | 4 | 6;
}

/**
 * A handshake dropped before any peer is known — mac1 for another key (a client configured with
 * the wrong gateway public key), or an initiation that decrypted to a static key no peer has —
 * kept in a small ring by source so the problem detector can name who knocks (read per turn).
 */
export interface HandshakeDropSample {
  seq: number;
  reason: "mac1" | "unknown_peer";
  address: string;
  port: number;
  /** unknown_peer: the static key the initiation carried. */
  publicKey?: Uint8Array;
}

const SAMPLE_RING = 16;

/** Events the tunnel itself raises about a connection (the rest come from its WirePeer). */
export type ConnectionEvent =
  /** The peer sent a Firezone goodbye: its sessions were erased (Firezone #10400). */
  | { type: "goodbye_received" };

export type TunnelEvent = (WireEvent | ConnectionEvent) & { cid: number };

/**
 * Whose packet it was: filled by encapsulate/decapsulate when the caller passes one (a reusable
 * object the caller owns — an explicit output, allocated once, not state to read back).
 */
export interface PacketOwner {
  conn: Connection | undefined;
}

/** A peer spec the tunnel cannot take; nothing was changed. `field` names the PeerSpec field. */
export class PeerSpecError extends Error {
  constructor(readonly field: keyof PeerSpec, message: string, options?: { cause?: unknown }) {
    super(`${field}: ${message}`, options);
    this.name = "PeerSpecError";
  }
}

export interface TunnelOptions {
  aead: Aead;
  privateKey: Uint8Array;
  random: (n: number) => Uint8Array;
  mtu?: number;
}

export class Tunnel {
  readonly identity: LocalIdentity;
  readonly #tunnelDrops = new DropCounters<TunnelDropReason>();
  readonly #aead: Aead;
  readonly #random: (n: number) => Uint8Array;
  readonly #mtu: number;
  readonly #ids: ConnectionIdAllocator;
  readonly #byCid = new Map<number, Connection>();
  readonly #byKey = new Map<string, Connection>();
  readonly #routes = new AllowedIps<Connection>();
  /** Datagrams that belong to no peer (cookie replies) or outlive one (a goodbye before removal). */
  #outbox: Transmit[] = [];
  #events: TunnelEvent[] = [];
  readonly #controlScratch = new Uint8Array(128);
  // The handshake-drop ring (see HandshakeDropSample): parallel arrays, no allocation per drop.
  #sampleSeq = 0;
  readonly #sampleReason: ("mac1" | "unknown_peer")[] = new Array(SAMPLE_RING).fill("mac1");
  readonly #sampleAddress: string[] = new Array(SAMPLE_RING).fill("");
  readonly #samplePort = new Int32Array(SAMPLE_RING);
  readonly #sampleKey = new Uint8Array(SAMPLE_RING * 32);
  readonly work: TunnelWork = { timerVisits: 0, queueVisits: 0, touchedVisits: 0 };
  /** Every connection's next deadline (lazily: see #touch). */
  readonly #timers = new MinHeap<Connection>();
  readonly #txReady = new ReadyQueue<Connection>();
  readonly #eventReady = new ReadyQueue<Connection>();
  readonly #dueScratch: Connection[] = [];
  // Connections touched since the last takeTouched(), each once: what periodic samplers (problems,
  // connection states, rates, traffic history) read instead of walking every configured peer. Two
  // arrays swapped per round, so listing a connection allocates nothing once they have grown.
  #touched: Connection[] = [];
  #touchedSpare: Connection[] = [];
  #touchedRound = 1;

  constructor(opts: TunnelOptions) {
    this.#aead = opts.aead;
    this.#random = opts.random;
    this.#mtu = opts.mtu ?? 1420;
    this.identity = new LocalIdentity(opts.privateKey, opts.random);
    this.#ids = new ConnectionIdAllocator(opts.random);
  }

  /**
   * Adds a peer, or updates it in place when its key is known: same preshared key keeps the
   * sessions (only AllowedIPs/endpoint/keepalive change); a new preshared key replaces the peer.
   * A spec it cannot use throws PeerSpecError before anything changes.
   */
  upsertPeer(spec: PeerSpec): Connection {
    const key = encodeKey(spec.publicKey);
    const existing = this.#byKey.get(key);
    // A known key was checked when it was added; only new peers pay for the X25519 check.
    if (!existing) this.#checkNewKey(spec.publicKey, key);
    if (spec.presharedKey !== undefined && spec.presharedKey.length !== 32) {
      throw new PeerSpecError("presharedKey", `is ${spec.presharedKey.length} bytes, not 32`);
    }
    if (existing && samePsk(existing.peer.presharedKey, spec.presharedKey)) {
      this.#routes.removeValue(existing);
      existing.allowedIPs = spec.allowedIPs;
      for (const c of spec.allowedIPs) this.#routes.insert(c, existing);
      // An endpoint learnt after the peer was added (a hostname resolved later): its keepalive
      // timer already fired with nowhere to send, so it is re-armed to bring the peer up now.
      const firstEndpoint = spec.endpoint !== undefined && existing.peer.endpoint === undefined;
      if (spec.endpoint) existing.peer.setEndpoint(spec.endpoint);
      if (firstEndpoint) existing.peer.setPersistentKeepalive(0);
      existing.peer.setPersistentKeepalive(spec.persistentKeepalive ?? 0);
      this.#touch(existing);
      return existing;
    }
    const cid = this.#ids.allocate();
    let peer: WirePeer;
    try {
      peer = new WirePeer({
        aead: this.#aead,
        local: this.identity,
        remoteStatic: spec.publicKey,
        presharedKey: spec.presharedKey,
        connectionId: cid,
        endpoint: spec.endpoint,
        persistentKeepalive: spec.persistentKeepalive,
        mtu: this.#mtu,
        random: this.#random,
      });
    } catch (err) {
      // The precomputation refused the key after all: give the id back, keep nothing half-made.
      this.#ids.release(cid);
      throw new PeerSpecError("publicKey", `"${key}" cannot be used`, { cause: err });
    }
    // Replaced only once its successor exists: a failure above leaves the old connection in place.
    if (existing) this.removePeer(spec.publicKey);
    const conn: Connection = {
      cid, publicKey: key, peer, allowedIPs: spec.allowedIPs, rejectedSources: { count: 0, last: new Uint8Array(16), family: 0 },
      timerAt: Infinity, txQueued: false, eventQueued: false, removed: false, touchedRound: 0,
    };
    this.#byCid.set(cid, conn);
    this.#byKey.set(key, conn);
    for (const c of spec.allowedIPs) this.#routes.insert(c, conn);
    this.#touch(conn);
    return conn;
  }

  #checkNewKey(publicKey: Uint8Array, key: string): void {
    if (!isUsablePublicKey(publicKey)) {
      throw new PeerSpecError("publicKey", `"${key}" is a low-order point (X25519 with it gives an all-zero secret): not a usable public key`);
    }
    // As wireguard-go: our own key is no peer (a handshake with ourselves is no tunnel).
    if (constantTimeEqual(publicKey, this.identity.publicKey)) throw new PeerSpecError("publicKey", `"${key}" is this gateway's own public key`);
  }

  removePeer(publicKey: Uint8Array): boolean {
    const conn = this.#byKey.get(encodeKey(publicKey));
    if (!conn) return false;
    this.#routes.removeValue(conn);
    this.#byKey.delete(conn.publicKey);
    this.#byCid.delete(conn.cid);
    this.#ids.release(conn.cid);
    conn.peer.zeroize();
    // Its heap and queue entries go stale; they are dropped when they surface.
    conn.removed = true;
    conn.timerAt = Infinity;
    // Samplers learn of the removal the way they learn of traffic: it is listed as touched.
    if (conn.touchedRound !== this.#touchedRound) this.#listTouched(conn);
    return true;
  }

  /**
   * After anything that may have changed a connection's timers or queued output — every peer call
   * the tunnel makes, and `touch(cid)` for callers that drive a peer directly: a deadline earlier
   * than its newest heap entry gets a new entry (a later one is found out when the old entry
   * surfaces), and pending output puts it in the ready queues once. O(1) per packet, no allocation.
   */
  #touch(conn: Connection): void {
    if (conn.touchedRound !== this.#touchedRound) this.#listTouched(conn);
    const peer = conn.peer;
    const t = peer.pollTimeout();
    if (t !== undefined && t < conn.timerAt) {
      conn.timerAt = t;
      this.#timers.push(t, conn);
    }
    if (!conn.txQueued && peer.pendingTransmits > 0) {
      conn.txQueued = true;
      this.#txReady.push(conn);
    }
    if (!conn.eventQueued && peer.pendingEvents > 0) {
      conn.eventQueued = true;
      this.#eventReady.push(conn);
    }
  }

  #listTouched(conn: Connection): void {
    conn.touchedRound = this.#touchedRound;
    this.#touched.push(conn);
  }

  /**
   * The connections touched since the previous call — by a packet either way, a timer, an event,
   * a peer call or their removal (then `removed` is set) — each listed once. Every counter a
   * sampler reads (stats, rejectedSources, keypairs) only changes on those paths, so a connection
   * not listed has nothing new to say. The array is valid until the next call.
   */
  takeTouched(): readonly Connection[] {
    const out = this.#touched;
    this.#touched = this.#touchedSpare;
    this.#touched.length = 0;
    this.#touchedSpare = out;
    this.#touchedRound++;
    this.work.touchedVisits += out.length;
    return out;
  }

  /**
   * Starts a handshake with a configured peer at `to` for this attempt only (WirePeer.reachOut):
   * the peer's endpoint and everything its PeerSpec said stay as they were. `unknown_peer`: this
   * tunnel has no such peer (not configured here, or not served by this gateway).
   */
  reachOut(publicKey: string, to: Endpoint, now: number): ReachOutResult | "unknown_peer" {
    const conn = this.#byKey.get(publicKey);
    if (!conn) return "unknown_peer";
    const r = conn.peer.reachOut(to, now);
    this.#touch(conn);
    return r;
  }

  /** A caller drove a connection's peer directly (connect, send): schedule what it produced. */
  touch(cid: number): void {
    const conn = this.#byCid.get(cid);
    if (conn) this.#touch(conn);
  }

  connections(): IterableIterator<Connection> {
    return this.#byCid.values();
  }

  connection(cid: number): Connection | undefined {
    return this.#byCid.get(cid);
  }

  /** The connection whose AllowedIPs contain `addr` (4 or 16 bytes): who a tunnel address belongs to. */
  connectionFor(addr: Uint8Array): Connection | undefined {
    return this.#routes.lookup(addr, 0, addr.length === 16 ? 6 : 4);
  }

  tunnelDrops(): Partial<Record<TunnelDropReason, number>> {
    return this.#tunnelDrops.snapshot();
  }

  // ───────────────────────────── data path ─────────────────────────────

  /**
   * Routes an inner IP packet to its peer by destination address and encrypts it into `out`.
   * Returns the datagram length (send it to `owner.conn.peer.endpoint`), 0 when the packet
   * waits for a handshake, or DECAP_NONE when no peer owns the destination (`no_route`).
   */
  encapsulate(packet: Uint8Array, out: Uint8Array, now: number, owner?: PacketOwner): number {
    const version = packet.length > 0 ? packet[0]! >> 4 : 0;
    let conn: Connection | undefined;
    if (version === 4 && packet.length >= 20) conn = this.#routes.lookup(packet, 16, 4);
    else if (version === 6 && packet.length >= 40) conn = this.#routes.lookup(packet, 24, 6);
    if (owner) owner.conn = conn;
    if (!conn) return this.#drop("no_route");
    const n = conn.peer.encapsulate(packet, out, now);
    this.#touch(conn);
    return n;
  }

  /**
   * Which connection `encapsulateAt` would route src[srcOff, srcOff+len) to, without encrypting:
   * the node asks first when some connections are relayed (their datagrams get a ChannelData
   * header in front, so they are encrypted 4 bytes further into the slot).
   */
  routeAt(src: Uint8Array, srcOff: number, len: number): Connection | undefined {
    const version = len > 0 ? src[srcOff]! >> 4 : 0;
    if (version === 4 && len >= 20) return this.#routes.lookup(src, srcOff + 16, 4);
    if (version === 6 && len >= 40) return this.#routes.lookup(src, srcOff + 24, 6);
    return undefined;
  }

  /**
   * `encapsulate` at offsets: the inner packet src[srcOff, srcOff+len) is routed and encrypted
   * into out at outOff (a batch slot). Same results; `owner.conn` names the peer.
   */
  encapsulateAt(src: Uint8Array, srcOff: number, len: number, out: Uint8Array, outOff: number, now: number, owner?: PacketOwner): number {
    const version = len > 0 ? src[srcOff]! >> 4 : 0;
    let conn: Connection | undefined;
    if (version === 4 && len >= 20) conn = this.#routes.lookup(src, srcOff + 16, 4);
    else if (version === 6 && len >= 40) conn = this.#routes.lookup(src, srcOff + 24, 6);
    if (owner) owner.conn = conn;
    if (!conn) return this.#drop("no_route");
    const n = conn.peer.encapsulateAt(src, srcOff, len, out, outOff, now);
    this.#touch(conn);
    return n;
  }

  /**
   * Consumes one datagram from the UDP socket. Returns the inner packet length written to `out`
   * (write it to the TUN device), or DECAP_NONE. `owner.conn` names the peer it came from.
   */
  decapsulate(datagram: Uint8Array, from: Endpoint, out: Uint8Array, now: number, outOff = 0, owner?: PacketOwner): number {
    if (owner) owner.conn = undefined;
    if (datagram.length > MAX_DATAGRAM_SIZE) return this.#drop("oversized");
    const type = messageType(datagram);
    if (type < 1 || type > 4) return this.#drop(datagram.length < 4 ? "truncated" : "unknown_type");
    if (type === MESSAGE_INITIATION) return this.#handleInitiation(datagram, from, now, owner);
    if (datagram.length < 12) return this.#drop("truncated");
    // Response, cookie reply and transport all carry our index at offset 4 (receiver) — except
    // the response, whose receiver sits at 8 after its own sender index.
    const receiver = readU32(datagram, type === 2 ? 8 : 4);
    const conn = this.#byCid.get(connectionIdOf(receiver));
    if (!conn) return this.#drop("unknown_session");
    if (owner) owner.conn = conn;
    const n = conn.peer.decapsulate(datagram, from, out, now, outOff);
    this.#touch(conn);
    if (n <= 0) return n;
    // Before the AllowedIPs check: a control packet's source `::` is inside a peer's ::/0.
    if (n === 48 && out[outOff] === 0x60 && out[outOff + 6] === 0xff) {
      const event = controlEventOf(out.subarray(outOff, outOff + n));
      if (event !== undefined) return this.#onControl(conn, event);
    }
    if (!this.#sourceAllowed(conn, out, outOff, n)) return this.#rejectSource(conn, out, outOff, n);
    return n;
  }

  /**
   * A Firezone p2p control packet from a peer (authenticated: it decrypted on that peer's
   * session). A goodbye ends its sessions at once, so the next packet either way needs a new
   * handshake instead of going into a session the peer has already thrown away. The other events
   * only ever flow gateway → client.
   */
  #onControl(conn: Connection, event: number): number {
    if (event !== GOODBYE_EVENT) return this.#drop("unexpected_control");
    conn.peer.endSessions();
    this.#touch(conn);
    this.#events.push({ type: "goodbye_received", cid: conn.cid });
    return DECAP_NONE;
  }

  #handleInitiation(msg: Uint8Array, from: Endpoint, now: number, owner: PacketOwner | undefined): number {
    if (msg.length !== INITIATION_SIZE) return this.#drop(msg.length < INITIATION_SIZE ? "truncated" : "wrong_size");
    const screen = screenHandshake(this.identity.cookies, this.#aead, msg, readU32(msg, Initiation.sender), from, now);
    if (!screen.ok) {
      if (screen.reason === "under_load") this.#outbox.push({ data: screen.cookieReply, to: from });
      if (screen.reason === "mac1") this.#sample("mac1", from, undefined);
      return this.#drop(screen.reason);
    }
    const init = consumeInitiation(this.#aead, this.identity, msg);
    if (!init) return this.#drop("handshake_decrypt");
    const conn = this.#byKey.get(encodeKey(init.remoteStatic));
    if (!conn) {
      this.#sample("unknown_peer", from, init.remoteStatic);
      wipeConsumedInitiation(init);
      return this.#drop("unknown_peer");
    }
    if (owner) owner.conn = conn;
    conn.peer.acceptInitiation(init, from, now);
    this.#touch(conn);
    return DECAP_NONE;
  }

  /** Cryptokey routing: the inner source must be inside the sending peer's AllowedIPs. */
  #sourceAllowed(conn: Connection, packet: Uint8Array, off: number, n: number): boolean {
    const version = packet[off]! >> 4;
    if (version === 4 && n >= 20) return this.#routes.lookup(packet, off + 12, 4) === conn;
    if (version === 6 && n >= 40) return this.#routes.lookup(packet, off + 8, 6) === conn;
    return false;
  }

  #rejectSource(conn: Connection, packet: Uint8Array, off: number, n: number): number {
    const r = conn.rejectedSources;
    r.count++;
    const v6 = packet[off]! >> 4 === 6 && n >= 40;
    // A byte loop, not subarray(): a flood of spoofed sources must not allocate per packet.
    const at = off + (v6 ? 8 : 12);
    const len = v6 ? 16 : n >= 20 ? 4 : 0;
    for (let i = 0; i < len; i++) r.last[i] = packet[at + i]!;
    r.family = v6 ? 6 : len === 4 ? 4 : 0;
    return this.#drop("allowed_ips");
  }

  #sample(reason: "mac1" | "unknown_peer", from: Endpoint, key: Uint8Array | undefined): void {
    const i = this.#sampleSeq++ % SAMPLE_RING;
    this.#sampleReason[i] = reason;
    this.#sampleAddress[i] = from.address;
    this.#samplePort[i] = from.port;
    if (key) this.#sampleKey.set(key, i * 32);
  }

  /**
   * Handshake drops by source since `afterSeq` (at most the last SAMPLE_RING: a flood is
   * sampled, not recorded). Control path: the detector calls it once per turn.
   */
  handshakeDropsSince(afterSeq: number): HandshakeDropSample[] {
    const out: HandshakeDropSample[] = [];
    for (let seq = Math.max(afterSeq, this.#sampleSeq - SAMPLE_RING); seq < this.#sampleSeq; seq++) {
      const i = seq % SAMPLE_RING;
      const reason = this.#sampleReason[i]!;
      out.push({ seq: seq + 1, reason, address: this.#sampleAddress[i]!, port: this.#samplePort[i]!, publicKey: reason === "unknown_peer" ? this.#sampleKey.slice(i * 32, i * 32 + 32) : undefined });
    }
    return out;
  }

  // ───────────────────────────── control path ─────────────────────────────

  /**
   * Runs the timers of the connections that are due — taken off the heap, so the work is theirs
   * alone. Due ones are collected first: a timer re-armed at or before `now` waits for the next
   * call (pollTimeout says so) instead of looping here.
   */
  handleTimeout(now: number): void {
    const due = this.#dueScratch;
    const heap = this.#timers;
    while (heap.size > 0 && heap.peekAt() <= now) {
      const at = heap.peekAt();
      const c = heap.pop()!;
      if (c.removed || at !== c.timerAt) continue; // stale: superseded by an earlier entry, or gone
      c.timerAt = Infinity;
      due.push(c);
    }
    for (let i = 0; i < due.length; i++) {
      const c = due[i]!;
      this.work.timerVisits++;
      // The entry may be older than the deadline (it moved later since): then only re-arm.
      const t = c.peer.pollTimeout();
      if (t !== undefined && t <= now) c.peer.handleTimeout(now);
      this.#touch(c);
    }
    due.length = 0;
  }

  /** The earliest deadline of any connection: O(1) (stale heap tops are dropped on the way). */
  pollTimeout(): number | undefined {
    const heap = this.#timers;
    while (heap.size > 0) {
      const c = heap.peek()!;
      if (!c.removed && heap.peekAt() === c.timerAt) return c.timerAt;
      heap.pop();
    }
    return undefined;
  }

  pollTransmit(): Transmit | undefined {
    const own = this.#outbox.shift();
    if (own) return own;
    for (let c = this.#txReady.peek(); c; c = this.#txReady.peek()) {
      this.work.queueVisits++;
      const t = c.removed ? undefined : c.peer.pollTransmit();
      if (t) return t;
      c.txQueued = false;
      this.#txReady.shift();
    }
    return undefined;
  }

  pollEvent(): TunnelEvent | undefined {
    const own = this.#events.shift();
    if (own) return own;
    for (let c = this.#eventReady.peek(); c; c = this.#eventReady.peek()) {
      this.work.queueVisits++;
      const e = c.removed ? undefined : c.peer.pollEvent();
      if (e) return { ...e, cid: c.cid };
      c.eventQueued = false;
      this.#eventReady.shift();
    }
    return undefined;
  }

  /**
   * Shutdown: queues a goodbye to every peer with a live session (for pollTransmit), then erases
   * every key. Returns how many peers were told.
   */
  goodbye(now: number): number {
    let told = 0;
    for (const c of this.#byCid.values()) if (this.goodbyeTo(c.cid, now)) told++;
    return told;
  }

  /**
   * Tells one peer we are done with it (removed, disabled, its last resource gone, shutdown).
   * False if it has no session to say it on. The datagram is queued on the tunnel, not the peer,
   * so it is still sent when the peer is removed right after.
   */
  goodbyeTo(cid: number, now: number): boolean {
    const c = this.#byCid.get(cid);
    const to = c?.peer.endpoint;
    if (!c || !to || !c.peer.keypairs.current?.canSend(now)) return false;
    const n = c.peer.encapsulate(GOODBYE, this.#controlScratch, now);
    this.#touch(c);
    if (n <= 0) return false;
    this.#outbox.push({ data: this.#controlScratch.slice(0, n), to });
    return true;
  }

  /** Erases every key: peers' sessions and our static private key. */
  zeroize(): void {
    for (const c of this.#byCid.values()) c.peer.zeroize();
    this.identity.zeroize();
  }

  #drop(reason: TunnelDropReason): number {
    this.#tunnelDrops.count(reason);
    return DECAP_NONE;
  }
}

const GOODBYE = goodbyePacket();

function samePsk(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
