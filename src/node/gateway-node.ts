// The gateway's one sans-IO core: the WireGuard tunnel, the access policy and the DNS-resource NAT
// behind one interface the IO loop drives. Two speeds (DESIGN.md §2):
// - data path: handleNetworkInput / handleTunInput take a packet where the shell has it (a buffer
//   and an offset), write what must go out straight into the turn's TunBatch / DatagramBatch, and
//   return what happened as a number — no object per packet, no "last connection" to read back;
// - control path: handleTimeout / pollTimeout / pollTransmit / pollEvent, costing the peers that
//   have work (the tunnel's timer heap and ready queues), not every configured one.
// Deny replies (ICMP) and goodbyes are the node's output like any handshake message: they come out
// of pollTransmit, encrypted, with their endpoint.
// Portal mode (ice-connections.ts, relays.ts): the same socket carries STUN and TURN, demuxed in
// handleNetworkInput once a client or relay exists; transport data (type 4) skips the demux, and a
// standalone node pays one boolean check per datagram for it.
import type { Explanation } from "../gateway/policy.ts";
import { GatewayCore, type GatewayEvent } from "../gateway/core.ts";
import type { PacketOwner, Tunnel, TunnelEvent } from "../tunnel/index.ts";
import { MAX_DATAGRAM_SIZE, type Endpoint, type ReachOutResult, type Transmit } from "../wire/index.ts";
import type { TcpSegmenter } from "../ip/tcp-segment.ts";
import type { DatagramBatch, TunBatch } from "./batches.ts";
import { bindingRoute } from "../ice/agent.ts";
import { decodeBinding } from "../ice/agent-messages.ts";
import { CHANNEL_DATA_HEADER } from "../ice/channel-data.ts";
import { channelDataLength } from "../ice/turn-client.ts";
import { looksLikeStun } from "../ice/stun.ts";
import type { TargetLogger } from "../telemetry/log.ts";
import { IceConnections, type ClientSpec, type IceConnection, type IceNodeEvent } from "./ice-connections.ts";
import { relayKey, type RelaySpec, type RelayView } from "./relays.ts";
import { DatagramViews } from "./datagram-views.ts";

/** What handleNetworkInput did with a datagram. */
export const NET_DELIVERED = 1; // an inner packet was committed to the TunBatch (its last slot)
/** Nothing for the TUN: protocol traffic (handshake, keepalive, cookie, goodbye — outputs via pollTransmit/pollEvent) or a drop counted by reason. */
export const NET_NONE = 0;
export const NET_DENIED = -1; // decrypted, refused by the gateway (counted; an ICMP reply may be queued)

/** What handleTunInput did with an inner packet. */
export const TUN_SENT = 1; // encrypted datagram(s) committed to the DatagramBatch
export const TUN_STAGED = 0; // waits for a handshake (the initiation comes out of pollTransmit)
export const TUN_DROPPED = -1; // counted (no_route, …)

export type NodeEvent = TunnelEvent | GatewayEvent | IceNodeEvent;

export function isGatewayEvent(e: NodeEvent): e is GatewayEvent {
  return e.type === "denied" || e.type === "authorization_expired";
}

export { isIceEvent, type ClientSpec, type IceNodeEvent } from "./ice-connections.ts";

/** Taps inner traffic per connection (io/capture.ts's Captures): called only while `active.size !== 0`. */
export interface CaptureTap {
  readonly active: { readonly size: number };
  tap(cid: number, packet: Uint8Array, length: number, now: number): void;
}

export interface NodeCounters {
  delivered: number;
  sent: number;
  denied: number;
  staged: number;
  /** Replies (ICMP denials) encrypted into the transmit queue. */
  replies: number;
  /** Super-packets that could not be segmented. */
  segmentFailures: number;
  /** Datagrams the demux handed to ICE agents / TURN allocations, and ones nobody took. */
  stun: number;
  stunUnclaimed: number;
}

export interface GatewayNodeOptions {
  tunnel: Tunnel;
  /** The policy and NAT; a plain WireGuard server when it has no resources. Made here if absent. */
  gateway?: GatewayCore;
  captures?: CaptureTap;
  /** Logs of the ICE agents (target `ice`) and the TURN allocations (target `turn`). */
  iceLog?: TargetLogger;
  turnLog?: TargetLogger;
}

export class GatewayNode {
  readonly tunnel: Tunnel;
  readonly gateway: GatewayCore;
  readonly counters: NodeCounters = { delivered: 0, sent: 0, denied: 0, staged: 0, replies: 0, segmentFailures: 0, stun: 0, stunUnclaimed: 0 };
  /** Clients reached through ICE, the TURN relays, the candidates: empty in standalone mode. */
  readonly ice: IceConnections;
  /**
   * Whether anything but WireGuard can arrive (ICE clients or relays exist): standalone mode pays
   * one boolean check per datagram for the demux, nothing more.
   */
  #demuxing = false;
  /** The socket's port: the `at` of a datagram for the agents (the socket is bound to the wildcard). */
  #at = { address: "0.0.0.0", port: 0 };
  #at6 = { address: "::", port: 0 };
  captures: CaptureTap | undefined;
  /**
   * Cuts what a TUN with offloads reads (vnet header + up to 64 KB, ip/tcp-segment.ts) into the
   * MSS-sized packets a peer expects; set by the shell when the device took offloads.
   */
  segmenter: TcpSegmenter | undefined;
  /** Whose packet the tunnel just handled (its explicit output, reused). */
  readonly #owner: PacketOwner = { conn: undefined };
  /** Control-path datagrams the node made itself (ICMP denials), before the tunnel's own. */
  #outbox: Transmit[] = [];
  readonly #replyWire = new Uint8Array(MAX_DATAGRAM_SIZE + 64);
  /** Datagram views for the wire parsers, remembered per place in the shell's ring. */
  readonly datagramViews = new DatagramViews();
  // Segments of a super-packet are built here one at a time, then encrypted like a plain packet.
  readonly #segmentScratch = new Uint8Array(65536 + 128);
  /** The read being segmented (beginTunRead .. encryptSegments): the shell's buffer, not a copy. */
  #segBuf: Uint8Array = this.#segmentScratch;

  constructor(opts: GatewayNodeOptions) {
    this.tunnel = opts.tunnel;
    this.gateway = opts.gateway ?? new GatewayCore();
    this.captures = opts.captures;
    this.ice = new IceConnections(this.tunnel, opts.iceLog, opts.turnLog);
  }

  // ───────────────────────────── data path ─────────────────────────────

  /**
   * One datagram from the UDP socket, `buf[off, off+len)`, from `from`. A decrypted, allowed packet
   * is written into `out`'s next slot and committed (NET_DELIVERED). `out` must have a free slot.
   */
  handleNetworkInput(buf: Uint8Array, off: number, len: number, from: Endpoint, now: number, out: TunBatch): number {
    const at = out.next();
    if (at < 0) throw new RangeError("handleNetworkInput: the TunBatch is full (flush it first)");
    // The wire parsers read from index 0: a view when the shell's datagram is not a buffer of its
    // own (the batched UDP shell hands ring slots), remembered so steady traffic makes none.
    const datagram = off === 0 && len === buf.length ? buf : this.datagramViews.get(buf, off, len);
    // The demux (snownet's order): transport data (type 4, the hot case) goes straight on; the
    // rest may be STUN, TURN or ChannelData once ICE is in use.
    if (this.#demuxing && buf[off] !== 4) {
      const handled = this.#demux(datagram, len, from, now, out, at);
      if (handled !== undefined) return handled;
    }
    return this.#wireguardIn(datagram, from, now, out, at);
  }

  #wireguardIn(datagram: Uint8Array, from: Endpoint, now: number, out: TunBatch, at: number): number {
    const tunnel = this.tunnel;
    const n = tunnel.decapsulate(datagram, from, out.data, now, at, this.#owner);
    if (this.#demuxing) {
      // ICE's consent: traffic either way keeps the connection out of idle.
      const conn = this.#owner.conn;
      if (conn !== undefined) this.ice.byCid(conn.cid)?.agent.noteTraffic(now);
    }
    if (n <= 0) return NET_NONE;
    const cid = this.#owner.conn!.cid;
    const packet = out.view(out.count);
    // Capture tap, client → gateway after decryption (before the policy: denied packets too).
    const caps = this.captures;
    if (caps !== undefined && caps.active.size !== 0) caps.tap(cid, packet, n, now);
    const gw = this.gateway;
    if (gw.policy.enforcing && !gw.fromClient(cid, packet, n, now)) {
      this.counters.denied++;
      this.#encryptReplies(cid, now);
      return NET_DENIED;
    }
    out.commit(n);
    this.counters.delivered++;
    return NET_DELIVERED;
  }

  /**
   * Not transport data while ICE is in use: STUN from a relay → its allocation; ChannelData from a
   * relay → unwrapped, then STUN → the agents, else WireGuard; STUN from anyone else → the agent
   * its USERNAME (request) or transaction (response) names. undefined: WireGuard, for the tunnel.
   */
  #demux(datagram: Uint8Array, len: number, from: Endpoint, now: number, out: TunBatch, at: number): number | undefined {
    const b0 = datagram[0]!;
    const ice = this.ice;
    if (ice.relays.size !== 0 && (b0 < 4 || (b0 >= 0x40 && b0 <= 0x4f))) {
      const relay = ice.relays.byServer(from);
      if (relay !== undefined) {
        if (b0 >= 0x40) {
          const ch = relay.turn.decapsulate(datagram, len, from, now);
          if (ch === undefined) return NET_NONE;
          const inner = channelDataLength(datagram);
          // The relayed path pays one view per datagram: the tunnel and STUN parsers read from 0.
          const payload = datagram.subarray(CHANNEL_DATA_HEADER, CHANNEL_DATA_HEADER + inner);
          if (looksLikeStun(payload)) {
            this.#toAgents(payload, ch.peer, ch.peer, now, relayKey(relay.id, ch.peer));
            return NET_NONE;
          }
          return this.#wireguardIn(payload, ch.peer, now, out, at);
        }
        if (looksLikeStun(datagram, len) && relay.turn.handleInput(datagram, len, from, now, from.address.includes(":") ? this.#at6 : this.#at)) {
          this.counters.stun++;
          ice.afterRelayInput(now);
          return NET_NONE;
        }
      }
    }
    if (b0 < 4 && looksLikeStun(datagram, len)) {
      this.#toAgents(datagram, from, from.address.includes(":") ? this.#at6 : this.#at, now, undefined);
      return NET_NONE;
    }
    return undefined;
  }

  /** A Binding message for one of the agents; `at` is where it arrived, `relay` the allocation it came through. */
  #toAgents(data: Uint8Array, from: Endpoint, at: Endpoint, now: number, relay: string | undefined): void {
    const msg = decodeBinding(data);
    if ("drop" in msg) {
      this.counters.stunUnclaimed++;
      return;
    }
    const route = bindingRoute(msg);
    let target = undefined;
    if (route !== undefined && "ufrag" in route) target = this.ice.byUfrag(route.ufrag);
    else if (route !== undefined) for (const ic of this.ice.all()) if (ic.agent.ownsTransaction(route.transaction)) target = ic;
    if (target === undefined) {
      this.counters.stunUnclaimed++;
      return;
    }
    this.counters.stun++;
    target.agent.handleBinding(msg, from, at, now, relay);
    this.ice.afterInput(target, now);
  }

  /**
   * One inner packet read from the TUN, `buf[off, off+len)`: reverse NAT, then encrypted into
   * `out`'s next slot for its peer's endpoint. With `gso` (a super-packet), the segmenter cuts it
   * first and each segment takes a slot; `out` must have room for them (64 KB / MSS slots).
   */
  handleTunInput(buf: Uint8Array, off: number, len: number, now: number, out: DatagramBatch): number {
    return this.#encryptOne(buf, off, len, out, now);
  }

  /**
   * A read from a TUN with offloads: buf[off, off+len) is a virtio_net_hdr and one IP packet, maybe
   * a TCP/UDP super-packet. Checks it once and returns how many segments it makes, or -1 (refused:
   * counted by reason in the segmenter and as `segmentFailures`). Then call encryptSegments until
   * it returns that count; `buf` must stay untouched until then.
   */
  beginTunRead(buf: Uint8Array, off: number, len: number): number {
    const seg = this.segmenter;
    if (seg === undefined) throw new Error("beginTunRead: the TUN has offloads but the node has no segmenter");
    const count = seg.begin(buf, off, len);
    if (count < 0) {
      this.counters.segmentFailures++;
      return -1;
    }
    this.#segBuf = buf;
    return count;
  }

  /**
   * Encrypts segments `from`.. of the read given to beginTunRead into `out` until it is full or all
   * are done; returns the index to continue from (the shell flushes `out` in between). A lone packet
   * is encrypted in place; a segment is built in scratch memory first (reverse NAT and captures see
   * a complete packet).
   */
  encryptSegments(now: number, out: DatagramBatch, from: number): number {
    const seg = this.segmenter!;
    const count = seg.count;
    if (seg.single) {
      if (from === 0 && !out.full) {
        this.#encryptOne(this.#segBuf, seg.packetOffset, seg.packetLength, out, now);
        return 1;
      }
      return from;
    }
    const scratch = this.#segmentScratch;
    let i = from;
    for (; i < count && !out.full; i++) {
      const n = seg.writeSegment(i, scratch, 0);
      this.#encryptOne(scratch, 0, n, out, now);
    }
    return i;
  }

  #encryptOne(buf: Uint8Array, off: number, len: number, out: DatagramBatch, now: number): number {
    const at = out.next();
    if (at < 0) throw new RangeError("handleTunInput: the DatagramBatch is full (flush it first)");
    const gw = this.gateway;
    // Reverse NAT parses from index 0: a view only while DNS-resource NAT has sessions at all.
    if (gw.nat.sessions !== 0) gw.toClient(off === 0 ? buf : buf.subarray(off, off + len), len, now);
    const tunnel = this.tunnel;
    if (this.ice.relayed.length !== 0) {
      const r = tunnel.routeAt(buf, off, len);
      const ic = r !== undefined ? this.ice.byCid(r.cid) : undefined;
      if (ic !== undefined && ic.channel !== undefined) return this.#encryptRelayed(buf, off, len, out, at, now, ic);
    }
    const n = tunnel.encapsulateAt(buf, off, len, out.data, at, now, this.#owner);
    const conn = this.#owner.conn;
    if (conn === undefined) return TUN_DROPPED;
    if (this.#demuxing) this.ice.byCid(conn.cid)?.agent.noteTraffic(now);
    // Capture tap, gateway → client before encryption (after reverse NAT: what the client gets).
    const caps = this.captures;
    if (caps !== undefined && caps.active.size !== 0) caps.tap(conn.cid, buf.subarray(off, off + len), len, now);
    if (n <= 0) {
      this.counters.staged++;
      return TUN_STAGED;
    }
    out.commit(n, conn.peer.endpoint!);
    this.counters.sent++;
    return TUN_SENT;
  }

  /**
   * A packet for a connection whose selected pair is relayed: encrypted 4 bytes into the slot,
   * the ChannelData header written in front, sent to the relay. Nothing allocated.
   */
  #encryptRelayed(buf: Uint8Array, off: number, len: number, out: DatagramBatch, at: number, now: number, ic: IceConnection): number {
    const n = this.tunnel.encapsulateAt(buf, off, len, out.data, at + CHANNEL_DATA_HEADER, now, this.#owner);
    const caps = this.captures;
    if (caps !== undefined && caps.active.size !== 0) caps.tap(ic.cid, buf.subarray(off, off + len), len, now);
    if (n <= 0) {
      this.counters.staged++;
      return TUN_STAGED;
    }
    ic.agent.noteTraffic(now);
    const turn = ic.relay!.turn;
    const server = turn.server;
    const m = server !== undefined ? turn.encapsulate(out.view(out.count), n, ic.channel!, now) : -1;
    if (m < 0) return TUN_DROPPED;
    out.commit(m, server!);
    this.counters.sent++;
    return TUN_SENT;
  }

  /** The gateway's ICMP denials for `cid`, encrypted toward it (rate limited by the gateway). */
  #encryptReplies(cid: number, now: number): void {
    const gw = this.gateway;
    for (let r = gw.pollReply(); r; r = gw.pollReply()) {
      const caps = this.captures;
      if (caps !== undefined && caps.active.size !== 0) caps.tap(cid, r, r.length, now);
      const m = this.tunnel.encapsulate(r, this.#replyWire, now, this.#owner);
      const to = this.#owner.conn?.peer.endpoint;
      if (m > 0 && to !== undefined) {
        const t = { data: this.#replyWire.slice(0, m), to };
        this.#outbox.push(this.#demuxing ? this.ice.frame(t, now) : t);
        this.counters.replies++;
      }
    }
  }

  // ───────────────────────────── control path ─────────────────────────────

  /** Due tunnel timers (only the due peers), authorization expiry and the NAT sweep. */
  handleTimeout(now: number): void {
    const t = this.tunnel.pollTimeout();
    if (t !== undefined && t <= now) this.tunnel.handleTimeout(now);
    const g = this.gateway.pollTimeout();
    if (g !== undefined && g <= now) this.gateway.handleTimeout(now);
    if (this.#demuxing) {
      const i = this.ice.pollTimeout();
      if (i !== undefined && i <= now) this.ice.handleTimeout(now);
    }
  }

  /** When handleTimeout must run next: O(1). */
  pollTimeout(): number | undefined {
    const t = this.tunnel.pollTimeout();
    const g = this.gateway.pollTimeout();
    let m = t === undefined ? g : g === undefined || t < g ? t : g;
    if (this.#demuxing) {
      const i = this.ice.pollTimeout();
      if (i !== undefined && (m === undefined || i < m)) m = i;
    }
    return m;
  }

  pollTransmit(): Transmit | undefined {
    const own = this.#outbox.shift() ?? this.ice.pollTransmit();
    if (own !== undefined) return own;
    const t = this.tunnel.pollTransmit();
    // Toward a relayed connection, the tunnel's handshakes and keepalives go inside ChannelData.
    return t !== undefined && this.ice.relayed.length !== 0 ? this.ice.frame(t, this.ice.now) : t;
  }

  /**
   * Moves queued control datagrams into `out` (as many as fit), so the shell sends them with the
   * turn's data in one batch. Returns how many moved.
   */
  drainTransmits(out: DatagramBatch): number {
    let moved = 0;
    while (!out.full) {
      const t = this.pollTransmit();
      if (t === undefined) break;
      if (t.data.length > out.room) continue; // cannot happen for WireGuard messages; never wedge on it
      out.data.set(t.data, out.next());
      out.commit(t.data.length, t.to);
      moved++;
    }
    return moved;
  }

  pollEvent(): NodeEvent | undefined {
    return this.tunnel.pollEvent() ?? this.gateway.pollEvent() ?? this.ice.pollEvent();
  }

  // ───────────────────────────── ICE (portal mode) ─────────────────────────────

  /**
   * The socket's addresses (host candidates) and port, as the shell finds them. Call before the
   * first client; again when they change.
   */
  setHostAddresses(hosts: Endpoint[], now: number): void {
    const port = hosts[0]?.port ?? 0;
    this.#at = { address: "0.0.0.0", port };
    this.#at6 = { address: "::", port };
    this.ice.setHostAddresses(hosts, now);
  }

  /** Adds or updates a client reached through ICE (ice-connections.ts: when it is kept, when replaced). */
  upsertClient(spec: ClientSpec, now: number): { cid: number; replaced: boolean } {
    this.#demuxing = true;
    return this.ice.upsert(spec, now);
  }

  addRemoteCandidates(clientId: string, sdps: string[], now: number): void {
    this.ice.addRemoteCandidates(clientId, sdps, now);
  }

  removeRemoteCandidates(clientId: string, sdps: string[], now: number): void {
    this.ice.removeRemoteCandidates(clientId, sdps, now);
  }

  /** Goodbye first (queued, framed for the client's path), then gone. */
  removeClient(clientId: string, now: number): void {
    this.ice.remove(clientId, now);
  }

  setRelays(relays: RelaySpec[], now: number): void {
    this.#demuxing = true;
    this.ice.setRelays(relays, now);
  }

  removeRelays(ids: string[], now: number): void {
    this.ice.removeRelays(ids, now);
  }

  /** What the metrics export for ICE and TURN (telemetry/metrics.ts `ice`). */
  iceMetrics(): { pairs: Record<string, number>; relayBytes: { sent: number; received: number }; allocationFailures: Partial<Record<string, number>> } {
    return { pairs: this.ice.pairsByState(), relayBytes: this.ice.relays.bytes(), allocationFailures: this.ice.relays.failures() };
  }

  /** The admin's Relays view: allocations, channels, lifetimes (a snapshot). */
  relayViews(now: number): RelayView[] {
    return this.ice.relays.views(now);
  }

  /** The admin's path for a connection: `direct host`, `srflx`, `relay via …`; undefined if not ICE or no pair yet. */
  pathOf(cid: number): string | undefined {
    const ic = this.ice.byCid(cid);
    return ic ? this.ice.pathOf(ic) : undefined;
  }

  // ───────────────────────────── admin surface ─────────────────────────────

  /** The policy tester: what handleNetworkInput would decide for this packet from `cid` now. */
  explain(cid: number, packet: Uint8Array, now: number): Explanation {
    return this.gateway.explain(cid, packet, now);
  }

  /**
   * A takeover (admin POST /api/takeover): start a handshake with a configured peer at the
   * endpoint another gateway last saw it at, for this attempt only (Tunnel.reachOut). The
   * initiation comes out of pollTransmit like any other.
   */
  reachOut(publicKey: string, to: Endpoint, now: number): ReachOutResult | "unknown_peer" {
    return this.tunnel.reachOut(publicKey, to, now);
  }

  /** Shutdown: a goodbye queued (pollTransmit) to every peer with a live session; how many. */
  goodbye(now: number): number {
    return this.tunnel.goodbye(now);
  }

  goodbyeTo(cid: number, now: number): boolean {
    return this.tunnel.goodbyeTo(cid, now);
  }
}
