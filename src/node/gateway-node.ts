// The gateway's one sans-IO core: the WireGuard tunnel, the access policy and the DNS-resource NAT
// behind one interface the IO loop drives. Two speeds (DESIGN.md §2):
// - data path: handleNetworkInput / handleTunInput take a packet where the shell has it (a buffer
//   and an offset), write what must go out straight into the turn's TunBatch / DatagramBatch, and
//   return what happened as a number — no object per packet, no "last connection" to read back;
// - control path: handleTimeout / pollTimeout / pollTransmit / pollEvent, costing the peers that
//   have work (the tunnel's timer heap and ready queues), not every configured one.
// Deny replies (ICMP) and goodbyes are the node's output like any handshake message: they come out
// of pollTransmit, encrypted, with their endpoint.
import type { Explanation } from "../gateway/policy.ts";
import { GatewayCore, type GatewayEvent } from "../gateway/core.ts";
import type { PacketOwner, Tunnel, TunnelEvent } from "../tunnel/index.ts";
import { MAX_DATAGRAM_SIZE, type Endpoint, type Transmit } from "../wire/index.ts";
import type { TcpSegmenter } from "../ip/tcp-segment.ts";
import type { DatagramBatch, TunBatch } from "./batches.ts";
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

export type NodeEvent = TunnelEvent | GatewayEvent;

export function isGatewayEvent(e: NodeEvent): e is GatewayEvent {
  return e.type === "denied" || e.type === "authorization_expired";
}

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
}

export interface GatewayNodeOptions {
  tunnel: Tunnel;
  /** The policy and NAT; a plain WireGuard server when it has no resources. Made here if absent. */
  gateway?: GatewayCore;
  captures?: CaptureTap;
}

export class GatewayNode {
  readonly tunnel: Tunnel;
  readonly gateway: GatewayCore;
  readonly counters: NodeCounters = { delivered: 0, sent: 0, denied: 0, staged: 0, replies: 0, segmentFailures: 0 };
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
    const tunnel = this.tunnel;
    const n = tunnel.decapsulate(datagram, from, out.data, now, at, this.#owner);
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
    const n = tunnel.encapsulateAt(buf, off, len, out.data, at, now, this.#owner);
    const conn = this.#owner.conn;
    if (conn === undefined) return TUN_DROPPED;
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

  /** The gateway's ICMP denials for `cid`, encrypted toward it (rate limited by the gateway). */
  #encryptReplies(cid: number, now: number): void {
    const gw = this.gateway;
    for (let r = gw.pollReply(); r; r = gw.pollReply()) {
      const caps = this.captures;
      if (caps !== undefined && caps.active.size !== 0) caps.tap(cid, r, r.length, now);
      const m = this.tunnel.encapsulate(r, this.#replyWire, now, this.#owner);
      const to = this.#owner.conn?.peer.endpoint;
      if (m > 0 && to !== undefined) {
        this.#outbox.push({ data: this.#replyWire.slice(0, m), to });
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
  }

  /** When handleTimeout must run next: O(1). */
  pollTimeout(): number | undefined {
    const t = this.tunnel.pollTimeout();
    const g = this.gateway.pollTimeout();
    if (t === undefined) return g;
    return g === undefined || t < g ? t : g;
  }

  pollTransmit(): Transmit | undefined {
    return this.#outbox.shift() ?? this.tunnel.pollTransmit();
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
    return this.tunnel.pollEvent() ?? this.gateway.pollEvent();
  }

  // ───────────────────────────── admin surface ─────────────────────────────

  /** The policy tester: what handleNetworkInput would decide for this packet from `cid` now. */
  explain(cid: number, packet: Uint8Array, now: number): Explanation {
    return this.gateway.explain(cid, packet, now);
  }

  /** Shutdown: a goodbye queued (pollTransmit) to every peer with a live session; how many. */
  goodbye(now: number): number {
    return this.tunnel.goodbye(now);
  }

  goodbyeTo(cid: number, now: number): boolean {
    return this.tunnel.goodbyeTo(cid, now);
  }
}
