// The connection manager, sans-IO: many WireGuard peers behind one static key and one UDP port.
// Incoming datagrams are demuxed by receiver index (upper 24 bits → connection, no per-session
// table); initiations are decrypted once and matched to a peer by the static key inside them.
// Outgoing inner packets are routed by AllowedIPs (longest prefix), and incoming inner packets
// must come from an address the sending peer owns (else dropped with reason `allowed_ips`).
import type { Aead } from "../crypto/aead.ts";
import { encodeKey } from "../crypto/x25519.ts";
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
  type Transmit,
  type WireEvent,
} from "../wire/index.ts";
import { AllowedIps } from "./allowed-ips.ts";
import { goodbyePacket } from "./goodbye.ts";

/** Drops decided here, before or after a peer's own checks (those are counted on the peer). */
export type TunnelDropReason = "truncated" | "oversized" | "wrong_size" | "unknown_type" | "mac1" | "under_load" | "handshake_rate_limited" | "handshake_queue_full" | "handshake_decrypt" | "unknown_peer" | "unknown_session" | "allowed_ips" | "no_route";

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
}

export type TunnelEvent = WireEvent & { cid: number };

export interface TunnelOptions {
  aead: Aead;
  privateKey: Uint8Array;
  random: (n: number) => Uint8Array;
  mtu?: number;
}

export class Tunnel {
  readonly identity: LocalIdentity;
  readonly #tunnelDrops = new Map<TunnelDropReason, number>();
  readonly #aead: Aead;
  readonly #random: (n: number) => Uint8Array;
  readonly #mtu: number;
  readonly #ids: ConnectionIdAllocator;
  readonly #byCid = new Map<number, Connection>();
  readonly #byKey = new Map<string, Connection>();
  readonly #routes = new AllowedIps<Connection>();
  #cookieTransmits: Transmit[] = [];
  /** Set by encapsulate/decapsulate: the connection the last packet belonged to, and where to send. */
  lastConnection: Connection | undefined;

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
   */
  upsertPeer(spec: PeerSpec): Connection {
    const key = encodeKey(spec.publicKey);
    const existing = this.#byKey.get(key);
    if (existing && samePsk(existing.peer.presharedKey, spec.presharedKey)) {
      this.#routes.removeValue(existing);
      existing.allowedIPs = spec.allowedIPs;
      for (const c of spec.allowedIPs) this.#routes.insert(c, existing);
      if (spec.endpoint) existing.peer.setEndpoint(spec.endpoint);
      existing.peer.setPersistentKeepalive(spec.persistentKeepalive ?? 0);
      return existing;
    }
    if (existing) this.removePeer(spec.publicKey);
    const cid = this.#ids.allocate();
    const peer = new WirePeer({
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
    const conn: Connection = { cid, publicKey: key, peer, allowedIPs: spec.allowedIPs };
    this.#byCid.set(cid, conn);
    this.#byKey.set(key, conn);
    for (const c of spec.allowedIPs) this.#routes.insert(c, conn);
    return conn;
  }

  removePeer(publicKey: Uint8Array): boolean {
    const conn = this.#byKey.get(encodeKey(publicKey));
    if (!conn) return false;
    this.#routes.removeValue(conn);
    this.#byKey.delete(conn.publicKey);
    this.#byCid.delete(conn.cid);
    this.#ids.release(conn.cid);
    conn.peer.zeroize();
    return true;
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
    return Object.fromEntries(this.#tunnelDrops);
  }

  // ───────────────────────────── data path ─────────────────────────────

  /**
   * Routes an inner IP packet to its peer by destination address and encrypts it into `out`.
   * Returns the datagram length (send it to `lastConnection.peer.endpoint`), 0 when the packet
   * waits for a handshake, or DECAP_NONE when no peer owns the destination (`no_route`).
   */
  encapsulate(packet: Uint8Array, out: Uint8Array, now: number): number {
    const version = packet.length > 0 ? packet[0]! >> 4 : 0;
    let conn: Connection | undefined;
    if (version === 4 && packet.length >= 20) conn = this.#routes.lookup(packet, 16, 4);
    else if (version === 6 && packet.length >= 40) conn = this.#routes.lookup(packet, 24, 6);
    this.lastConnection = conn;
    if (!conn) return this.#drop("no_route");
    return conn.peer.encapsulate(packet, out, now);
  }

  /**
   * Consumes one datagram from the UDP socket. Returns the inner packet length written to `out`
   * (write it to the TUN device), or DECAP_NONE. `lastConnection` names the peer it came from.
   */
  decapsulate(datagram: Uint8Array, from: Endpoint, out: Uint8Array, now: number): number {
    this.lastConnection = undefined;
    if (datagram.length > MAX_DATAGRAM_SIZE) return this.#drop("oversized");
    const type = messageType(datagram);
    if (type < 1 || type > 4) return this.#drop(datagram.length < 4 ? "truncated" : "unknown_type");
    if (type === MESSAGE_INITIATION) return this.#handleInitiation(datagram, from, now);
    if (datagram.length < 12) return this.#drop("truncated");
    // Response, cookie reply and transport all carry our index at offset 4 (receiver) — except
    // the response, whose receiver sits at 8 after its own sender index.
    const receiver = readU32(datagram, type === 2 ? 8 : 4);
    const conn = this.#byCid.get(connectionIdOf(receiver));
    if (!conn) return this.#drop("unknown_session");
    this.lastConnection = conn;
    const n = conn.peer.decapsulate(datagram, from, out, now);
    if (n <= 0) return n;
    if (!this.#sourceAllowed(conn, out, n)) return this.#drop("allowed_ips");
    return n;
  }

  #handleInitiation(msg: Uint8Array, from: Endpoint, now: number): number {
    if (msg.length !== INITIATION_SIZE) return this.#drop(msg.length < INITIATION_SIZE ? "truncated" : "wrong_size");
    const screen = screenHandshake(this.identity.cookies, this.#aead, msg, readU32(msg, Initiation.sender), from, now);
    if (!screen.ok) {
      if (screen.reason === "under_load") this.#cookieTransmits.push({ data: screen.cookieReply, to: from });
      return this.#drop(screen.reason);
    }
    const init = consumeInitiation(this.#aead, this.identity, msg);
    if (!init) return this.#drop("handshake_decrypt");
    const conn = this.#byKey.get(encodeKey(init.remoteStatic));
    if (!conn) {
      wipeConsumedInitiation(init);
      return this.#drop("unknown_peer");
    }
    this.lastConnection = conn;
    conn.peer.acceptInitiation(init, from, now);
    return DECAP_NONE;
  }

  /** Cryptokey routing: the inner source must be inside the sending peer's AllowedIPs. */
  #sourceAllowed(conn: Connection, packet: Uint8Array, n: number): boolean {
    const version = packet[0]! >> 4;
    if (version === 4 && n >= 20) return this.#routes.lookup(packet, 12, 4) === conn;
    if (version === 6 && n >= 40) return this.#routes.lookup(packet, 8, 6) === conn;
    return false;
  }

  // ───────────────────────────── control path ─────────────────────────────

  handleTimeout(now: number): void {
    for (const c of this.#byCid.values()) {
      const t = c.peer.pollTimeout();
      if (t !== undefined && t <= now) c.peer.handleTimeout(now);
    }
  }

  pollTimeout(): number | undefined {
    let earliest: number | undefined;
    for (const c of this.#byCid.values()) {
      const t = c.peer.pollTimeout();
      if (t !== undefined && (earliest === undefined || t < earliest)) earliest = t;
    }
    return earliest;
  }

  pollTransmit(): Transmit | undefined {
    const cookie = this.#cookieTransmits.shift();
    if (cookie) return cookie;
    for (const c of this.#byCid.values()) {
      const t = c.peer.pollTransmit();
      if (t) return t;
    }
    return undefined;
  }

  pollEvent(): TunnelEvent | undefined {
    for (const c of this.#byCid.values()) {
      const e = c.peer.pollEvent();
      if (e) return { ...e, cid: c.cid };
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

  /** Tells one peer we are done with it (its last resource went away). False if it has no session. */
  goodbyeTo(cid: number, now: number): boolean {
    const c = this.#byCid.get(cid);
    if (!c?.peer.keypairs.current?.canSend(now)) return false;
    c.peer.send(goodbyePacket(), now);
    return true;
  }

  /** Erases every key: peers' sessions and our static private key. */
  zeroize(): void {
    for (const c of this.#byCid.values()) c.peer.zeroize();
    this.identity.zeroize();
  }

  #drop(reason: TunnelDropReason): number {
    this.#tunnelDrops.set(reason, (this.#tunnelDrops.get(reason) ?? 0) + 1);
    return DECAP_NONE;
  }
}

function samePsk(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
