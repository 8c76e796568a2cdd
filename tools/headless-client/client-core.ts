// The headless client's core, sans-IO: one client of the portal reaching one resource through one
// gateway, as a Firezone client does it in outline. The shell (main.ts) owns the WebSocket, the
// UDP socket, the TUN and the clock; this decides everything:
//
//   portal init          → interface addresses; routes for the resource; TURN allocations on the relays
//   create_flow          → flow_created: WireGuard keys, both ICE credentials → a controlling IceAgent
//   candidates both ways → broadcast_ice_candidates out, ice_candidates in (and invalidations)
//   ICE nominated        → the WireGuard handshake (we initiate) and packets over the nominated pair,
//                          in ChannelData through the TURN relay when the pair is relayed
//   p2p control          → goodbye tears the connection down; AssignedIps adds the proxy addresses'
//                          routes; DomainStatus is reported
//
// One UDP socket carries everything, demultiplexed by source and first bytes: the relays' STUN and
// ChannelData, ICE checks (STUN) from the gateway, WireGuard from the gateway.
import type { Aead } from "../../src/crypto/aead.ts";
import { decodeKey } from "../../src/crypto/x25519.ts";
import { IceAgent, type IceEvent, type IceRoute } from "../../src/ice/agent.ts";
import { formatCandidate, localCandidate } from "../../src/ice/candidate.ts";
import { CHANNEL_DATA_HEADER, looksLikeChannelData } from "../../src/ice/channel-data.ts";
import { looksLikeStun } from "../../src/ice/stun.ts";
import { TurnClient } from "../../src/ice/turn-client.ts";
import { formatCidr } from "../../src/ip/address.ts";
import { PROXY_V4, PROXY_V6 } from "../../src/gateway/index.ts";
import type { ClientEgress, ClientIngress } from "../../src/portal/index.ts";
import type { TargetLogger } from "../../src/telemetry/log.ts";
import { LocalIdentity, WirePeer, sameEndpoint, type Endpoint } from "../../src/wire/index.ts";
import { isControlPacket, readControl, type AssignedIps, type DomainStatus } from "./p2p-control.ts";

export interface HeadlessClientOptions {
  privateKey: Uint8Array;
  aead: Aead;
  random: (n: number) => Uint8Array;
  /** The UDP socket's addresses: our host candidates (and the base of srflx ones). */
  hosts: Endpoint[];
  /** The resource to ask for once the portal's init arrived. */
  resourceId: string;
  now: number;
  log?: TargetLogger;
}

export type ClientPhase = "waiting_for_init" | "requesting_flow" | "connecting" | "connected" | "closed";

export type ClientEvent =
  | { type: "interface"; ipv4: string; ipv6: string }
  /** The full set of routes the TUN should have now (replaces the previous set). */
  | { type: "routes"; cidrs: string[] }
  | { type: "flow_created"; gatewayId: string; resourceId: string }
  | { type: "flow_failed"; resourceId: string; reason: string }
  /** `relayed`: either end of the nominated pair is a TURN allocation (ours or the gateway's). */
  | { type: "connected"; gatewayId: string; pair: string; relayed: boolean }
  | { type: "handshake_completed"; gatewayId: string }
  /** The gateway said goodbye: the connection is gone, and said so here. */
  | { type: "goodbye"; gatewayId: string }
  /** ICE gave up on every path. */
  | { type: "disconnected"; gatewayId: string; reason: string }
  | { type: "resource_deleted"; resourceId: string }
  | { type: "assigned_ips"; body: AssignedIps }
  | { type: "domain_status"; body: DomainStatus }
  | { type: "ice"; event: IceEvent };

/** A datagram for the UDP socket. */
export interface ClientTransmit {
  to: Endpoint;
  data: Uint8Array;
}

/** Why the data path dropped something: counted, never thrown. */
export type ClientDrop = "no_connection" | "no_route" | "relay_unusable" | "unknown_control" | "not_for_us" | "stun_unclaimed";

interface Relay {
  id: string;
  turn: TurnClient;
}

interface Connection {
  gatewayId: string;
  agent: IceAgent;
  peer: WirePeer;
  /** Candidate lines already signalled, so a re-announcement sends only what is new. */
  signalled: Set<string>;
}


export class HeadlessClient {
  readonly drops: Record<ClientDrop, number> = { no_connection: 0, no_route: 0, relay_unusable: 0, unknown_control: 0, not_for_us: 0, stun_unclaimed: 0 };
  readonly identity: LocalIdentity;
  /** Where fromTun's datagram goes (valid when it returned > 0). Reused, not allocated per packet. */
  sendTo: Endpoint = { address: "", port: 0 };

  #phase: ClientPhase = "waiting_for_init";
  readonly #opts: HeadlessClientOptions;
  readonly #log: TargetLogger | undefined;
  #relays = new Map<string, Relay>();
  #conn: Connection | undefined;
  /** Candidates the portal relayed before flow_created made the agent (Firezone allows it). */
  #earlyCandidates: string[] = [];
  #resourceRoutes: string[] = [];
  #extraRoutes = new Set<string>();
  #portalOut: ClientEgress[] = [];
  #transmits: ClientTransmit[] = [];
  #events: ClientEvent[] = [];
  /** Scratch for control-path WireGuard and relayed sends (handshakes, keepalives, STUN via TURN). */
  readonly #scratch = new Uint8Array(65536);

  constructor(opts: HeadlessClientOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.identity = new LocalIdentity(opts.privateKey, opts.random);
  }

  get phase(): ClientPhase {
    return this.#phase;
  }

  /** The pair WireGuard goes over, when connected. */
  get route(): IceRoute | undefined {
    return this.#conn?.agent.route;
  }

  get gatewayId(): string | undefined {
    return this.#conn?.gatewayId;
  }

  // ───────────────────────────── portal ─────────────────────────────

  handlePortal(msg: ClientIngress, now: number): void {
    switch (msg.event) {
      case "init": {
        const p = msg.payload;
        this.#emit({ type: "interface", ipv4: p.interface.ipv4, ipv6: p.interface.ipv6 });
        this.#setRelays(p.relays, [], now);
        const resource = p.resources.find((r) => r.id === this.#opts.resourceId);
        if (!resource) {
          this.#emit({ type: "flow_failed", resourceId: this.#opts.resourceId, reason: "not_in_init" });
          this.#phase = "closed";
          break;
        }
        this.#resourceRoutes = resource.type === "cidr" && resource.address ? [resource.address] : resource.type === "dns" ? [formatCidr(PROXY_V4), formatCidr(PROXY_V6)] : ["0.0.0.0/0", "::/0"];
        this.#emitRoutes();
        // A reconnect to the portal sends init again: the connection we have stays up.
        if (this.#phase === "waiting_for_init") this.#requestFlow();
        break;
      }
      case "flow_created":
        this.#onFlowCreated(msg.payload, now);
        break;
      case "flow_creation_failed":
        if (msg.payload.resource_id !== this.#opts.resourceId) break;
        this.#phase = "closed";
        this.#emit({ type: "flow_failed", resourceId: msg.payload.resource_id, reason: msg.payload.reason });
        break;
      case "ice_candidates": {
        const c = this.#conn;
        if (!c) this.#earlyCandidates.push(...msg.payload.candidates);
        else if (c.gatewayId === msg.payload.gateway_id) for (const text of msg.payload.candidates) c.agent.addRemoteCandidateText(text, now);
        break;
      }
      case "invalidate_ice_candidates": {
        const c = this.#conn;
        if (c && c.gatewayId === msg.payload.gateway_id) for (const text of msg.payload.candidates) c.agent.invalidateRemoteCandidateText(text, now);
        break;
      }
      case "relays_presence":
        this.#setRelays(msg.payload.connected, msg.payload.disconnected_ids, now);
        break;
      case "resource_deleted":
        if (msg.payload !== this.#opts.resourceId) break;
        this.#emit({ type: "resource_deleted", resourceId: msg.payload });
        this.#resourceRoutes = [];
        this.#emitRoutes();
        this.#teardown();
        this.#phase = "closed";
        break;
    }
    this.#drain(now);
  }

  #requestFlow(): void {
    this.#phase = "requesting_flow";
    this.#portalOut.push({ event: "create_flow", payload: { resource_id: this.#opts.resourceId, connected_gateway_ids: [] } });
  }

  #onFlowCreated(p: Extract<ClientIngress, { event: "flow_created" }>["payload"], now: number): void {
    if (p.resource_id !== this.#opts.resourceId) return;
    this.#teardown();
    const agent = new IceAgent({
      local: { ufrag: p.client_ice_credentials.username, pwd: p.client_ice_credentials.password },
      remote: { ufrag: p.gateway_ice_credentials.username, pwd: p.gateway_ice_credentials.password },
      now,
      role: "controlling",
      cid: p.gateway_id,
      ...(this.#log ? { log: this.#log } : {}),
    });
    const peer = new WirePeer({
      aead: this.#opts.aead,
      local: this.identity,
      remoteStatic: decodeKey(p.gateway_public_key),
      presharedKey: decodeKey(p.preshared_key),
      connectionId: 1,
      random: this.#opts.random,
    });
    this.#conn = { gatewayId: p.gateway_id, agent, peer, signalled: new Set() };
    this.#phase = "connecting";
    for (const h of this.#opts.hosts) agent.addLocalCandidate(localCandidate("host", h.address, h.port), now);
    for (const r of this.#relays.values()) this.#offerRelayCandidates(r, now);
    for (const text of this.#earlyCandidates.splice(0)) agent.addRemoteCandidateText(text, now);
    // The gateway's tunnel addresses (its DNS answers for DNS resources) go through the tunnel too.
    this.#extraRoutes.add(`${p.gateway_ipv4}/32`);
    this.#extraRoutes.add(`${p.gateway_ipv6}/128`);
    this.#emitRoutes();
    this.#emit({ type: "flow_created", gatewayId: p.gateway_id, resourceId: p.resource_id });
    this.#signalCandidates();
  }

  /** Sends the local candidates the gateway has not heard of yet. */
  #signalCandidates(): void {
    const c = this.#conn;
    if (!c) return;
    const fresh = c.agent.signalledCandidates().filter((t) => !c.signalled.has(t));
    if (!fresh.length) return;
    for (const t of fresh) c.signalled.add(t);
    this.#portalOut.push({ event: "broadcast_ice_candidates", payload: { gateway_ids: [c.gatewayId], candidates: fresh } });
  }

  #setRelays(connected: { type: string; id: string; addr: string; username?: string; password?: string }[], gone: string[], now: number): void {
    for (const id of gone) {
      const r = this.#relays.get(id);
      if (!r) continue;
      this.#relays.delete(id);
      this.#invalidateRelayCandidates(r, now);
      r.turn.free(now);
    }
    for (const relay of connected) {
      if (relay.type !== "turn" || relay.username === undefined || relay.password === undefined) continue;
      const known = this.#relays.get(relay.id);
      if (known) {
        known.turn.setCredentials(relay.username, relay.password);
        continue;
      }
      const turn = new TurnClient({ servers: [parseSocketAddr(relay.addr)], username: relay.username, password: relay.password, random: (b) => b.set(this.#opts.random(b.length)) }, now);
      this.#relays.set(relay.id, { id: relay.id, turn });
    }
  }

  #offerRelayCandidates(r: Relay, now: number): void {
    const c = this.#conn;
    if (!c || r.turn.state !== "allocated") return;
    for (const addr of r.turn.relays) c.agent.addLocalCandidate(localCandidate("relay", addr.address, addr.port), now, r.id);
    const srflx = r.turn.srflx;
    const base = this.#opts.hosts.find((h) => srflx && h.address.includes(":") === srflx.address.includes(":"));
    if (srflx && base && !this.#opts.hosts.some((h) => sameEndpoint(h, srflx))) c.agent.addLocalCandidate(localCandidate("srflx", srflx.address, srflx.port, base), now);
  }

  #invalidateRelayCandidates(r: Relay, now: number): void {
    const c = this.#conn;
    if (!c) return;
    const gone: string[] = [];
    for (const cand of c.agent.localCandidates()) {
      if (cand.type !== "relay" || !r.turn.relays.some((a) => a.address === cand.address && a.port === cand.port)) continue;
      c.agent.invalidateLocalCandidate(cand, now);
      gone.push(formatCandidate(cand));
    }
    if (gone.length) this.#portalOut.push({ event: "broadcast_invalidated_ice_candidates", payload: { gateway_ids: [c.gatewayId], candidates: gone } });
  }

  // ───────────────────────────── data path ─────────────────────────────

  /**
   * One packet read from the TUN, `buf[off, off+len)`. Returns the length of a datagram written to
   * `out` (send it to `sendTo`), or 0: staged for a handshake, or dropped (counted).
   * `out` needs CHANNEL_DATA_HEADER + len + 32 bytes.
   */
  fromTun(buf: Uint8Array, off: number, len: number, out: Uint8Array, now: number): number {
    const c = this.#conn;
    if (!c) {
      this.drops.no_connection++;
      return 0;
    }
    const route = c.agent.route;
    if (!route) {
      // Not connected yet (or between paths): WireGuard stages it until a handshake can go out.
      c.peer.encapsulateAt(buf, off, len, out, CHANNEL_DATA_HEADER, now);
      this.#drain(now);
      return 0;
    }
    const n = c.peer.encapsulateAt(buf, off, len, out, CHANNEL_DATA_HEADER, now);
    c.agent.noteTraffic(now);
    if (n <= 0) {
      this.#drain(now);
      return 0;
    }
    if (route.relay === undefined) {
      // Direct: the datagram is out[4, 4+n); moving it to the front is one copy within the buffer.
      out.copyWithin(0, CHANNEL_DATA_HEADER, CHANNEL_DATA_HEADER + n);
      this.sendTo = route.to;
      return n;
    }
    return this.#frameForRelay(route, out, n, now);
  }

  /** out[4, 4+n) holds the payload: frame it as ChannelData for the relay; 0 when it cannot go. */
  #frameForRelay(route: IceRoute, out: Uint8Array, n: number, now: number): number {
    const r = this.#relays.get(route.relay!);
    const channel = r?.turn.bindChannel(route.to, now);
    const server = r?.turn.server;
    if (!r || !channel || !server) {
      this.drops.relay_unusable++;
      return 0;
    }
    const total = r.turn.encapsulate(out, n, channel, now);
    if (total < 0) {
      this.drops.relay_unusable++;
      return 0;
    }
    this.sendTo = server;
    this.#drainRelay(r, now); // a channel binding may have been started
    return total;
  }

  /**
   * One datagram from the UDP socket, `buf[0, len)`, from `from`. Returns the length of an inner
   * packet written to `out` (write it to the TUN), or 0: consumed by ICE/TURN/WireGuard's control
   * path, a control event, or dropped (counted).
   */
  fromNetwork(buf: Uint8Array, len: number, from: Endpoint, out: Uint8Array, now: number): number {
    let n = 0;
    const relay = this.#relayAt(from);
    if (relay) {
      if (looksLikeChannelData(buf, len)) {
        const channel = relay.turn.decapsulate(buf, len, from, now);
        if (channel) {
          const payloadLen = (buf[2]! << 8) | buf[3]!;
          const payload = buf.subarray(CHANNEL_DATA_HEADER, CHANNEL_DATA_HEADER + payloadLen);
          n = this.#fromPeer(payload, payloadLen, channel.peer, relay, out, now);
        }
      } else relay.turn.handleInput(buf, len, from, now);
      this.#drain(now);
      return n;
    }
    n = this.#fromPeer(len === buf.length ? buf : buf.subarray(0, len), len, from, undefined, out, now);
    this.#drain(now);
    return n;
  }

  #fromPeer(data: Uint8Array, len: number, from: Endpoint, relay: Relay | undefined, out: Uint8Array, now: number): number {
    const c = this.#conn;
    if (!c) {
      this.drops.not_for_us++; // e.g. the gateway's checks still coming after a goodbye
      return 0;
    }
    if (looksLikeStun(data, len)) {
      const at = relay ? (relay.turn.relays[0] ?? from) : (this.#opts.hosts[0] ?? from);
      if (c.agent.handleInput(data, from, at, now, relay?.id) === "not_mine") this.drops.stun_unclaimed++;
      return 0;
    }
    const n = c.peer.decapsulate(data, from, out, now);
    if (n <= 0) return 0;
    c.agent.noteTraffic(now);
    if (out[0] === 0x60 && out[6] === 0xff && isControlPacket(out, 0, n)) {
      this.#onControl(out, n, now);
      return 0;
    }
    return n;
  }

  #onControl(p: Uint8Array, n: number, now: number): void {
    const ev = readControl(p, 0, n);
    const c = this.#conn!;
    switch (ev.type) {
      case "goodbye":
        this.#log?.info("gateway said goodbye: connection closed", { gid: c.gatewayId });
        this.#emit({ type: "goodbye", gatewayId: c.gatewayId });
        this.#teardown();
        this.#phase = "closed";
        break;
      case "assigned_ips":
        for (const ip of ev.body.proxy_ips) this.#extraRoutes.add(ip.includes(":") ? `${ip}/128` : `${ip}/32`);
        this.#emit({ type: "assigned_ips", body: ev.body });
        this.#emitRoutes();
        break;
      case "domain_status":
        this.#emit({ type: "domain_status", body: ev.body });
        break;
      case "unknown":
        this.drops.unknown_control++;
        this.#log?.debug("p2p control packet ignored", { event: ev.event, reason: ev.reason });
        break;
    }
    void now;
  }

  #relayAt(from: Endpoint): Relay | undefined {
    for (const r of this.#relays.values()) {
      const s = r.turn.server;
      if (s ? sameEndpoint(s, from) : r.turn.servers.some((e) => sameEndpoint(e, from))) return r;
    }
    return undefined;
  }

  // ───────────────────────────── timers and outputs ─────────────────────────────

  handleTimeout(now: number): void {
    for (const r of this.#relays.values()) {
      const t = r.turn.pollTimeout();
      if (t !== undefined && t <= now) r.turn.handleTimeout(now);
    }
    const c = this.#conn;
    if (c) {
      const a = c.agent.pollTimeout();
      if (a !== undefined && a <= now) c.agent.handleTimeout(now);
      const p = c.peer.pollTimeout();
      if (p !== undefined && p <= now) c.peer.handleTimeout(now);
    }
    this.#drain(now);
  }

  pollTimeout(): number | undefined {
    let t = Infinity;
    for (const r of this.#relays.values()) t = Math.min(t, r.turn.pollTimeout() ?? Infinity);
    const c = this.#conn;
    if (c) t = Math.min(t, c.agent.pollTimeout() ?? Infinity, c.peer.pollTimeout() ?? Infinity);
    return Number.isFinite(t) ? t : undefined;
  }

  pollTransmit(): ClientTransmit | undefined {
    return this.#transmits.shift();
  }

  pollPortal(): ClientEgress | undefined {
    return this.#portalOut.shift();
  }

  pollEvent(): ClientEvent | undefined {
    return this.#events.shift();
  }

  /** Ends everything: the relays' allocations are deleted (their answers may still come in). */
  close(now: number): void {
    this.#teardown();
    for (const r of this.#relays.values()) r.turn.free(now);
    this.#phase = "closed";
    this.#drain(now);
  }

  #teardown(): void {
    const c = this.#conn;
    if (!c) return;
    c.peer.endSessions();
    this.#conn = undefined;
  }

  #emit(e: ClientEvent): void {
    this.#events.push(e);
  }

  #emitRoutes(): void {
    this.#emit({ type: "routes", cidrs: [...this.#resourceRoutes, ...this.#extraRoutes] });
  }

  /** Moves every core's output along: TURN, ICE (and what its events mean), WireGuard. */
  #drain(now: number): void {
    for (let round = 0; round < 8; round++) {
      let moved = false;
      for (const r of this.#relays.values()) moved = this.#drainRelay(r, now) || moved;
      const c = this.#conn;
      if (c) {
        for (let t = c.agent.pollTransmit(); t; t = c.agent.pollTransmit()) {
          moved = true;
          this.#send(t.relay === undefined ? { to: t.to } : { to: t.to, relay: t.relay }, t.data, now);
        }
        for (let e = c.agent.pollEvent(); e; e = c.agent.pollEvent()) {
          moved = true;
          this.#onIceEvent(c, e, now);
        }
        if (this.#conn === c) {
          const route = c.agent.route;
          for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) {
            moved = true;
            if (route) this.#send(route, t.data, now);
            else this.drops.no_route++;
          }
          for (let e = c.peer.pollEvent(); e; e = c.peer.pollEvent()) {
            moved = true;
            if (e.type === "handshake_completed") this.#emit({ type: "handshake_completed", gatewayId: c.gatewayId });
          }
        }
      }
      if (!moved) break;
    }
    this.#signalCandidates();
  }

  #drainRelay(r: Relay, now: number): boolean {
    let moved = false;
    for (let t = r.turn.pollTransmit(); t; t = r.turn.pollTransmit()) {
      moved = true;
      this.#transmits.push({ to: t.to, data: t.data });
    }
    for (let e = r.turn.pollEvent(); e; e = r.turn.pollEvent()) {
      moved = true;
      if (e.type === "allocated" || e.type === "srflx_candidate") this.#offerRelayCandidates(r, now);
      else if (e.type === "candidates_invalidated") this.#invalidateRelayCandidates(r, now);
      else if (e.type === "data" && this.#conn) {
        // A Data indication (no channel yet): the same as ChannelData from that peer.
        if (looksLikeStun(e.data)) this.#conn.agent.handleInput(e.data, e.peer, r.turn.relays[0] ?? e.peer, now, r.id);
      } else if (e.type === "failed") this.#log?.warn("relay allocation failed", { relay: r.id, reason: e.reason, detail: e.detail });
    }
    return moved;
  }

  #onIceEvent(c: Connection, e: IceEvent, now: number): void {
    this.#emit({ type: "ice", event: e });
    if (e.kind === "nominated") {
      const route = c.agent.route!;
      c.peer.setEndpoint(route.to);
      const pair = `${e.pair.local.type} ${e.pair.local.address}:${e.pair.local.port} -> ${e.pair.remote.type} ${e.pair.remote.address}:${e.pair.remote.port}`;
      this.#phase = "connected";
      // Relayed when either end of the pair is a TURN allocation: ours (we send in ChannelData) or
      // the gateway's (we send plain UDP to its relayed address, the relay forwards it).
      this.#emit({ type: "connected", gatewayId: c.gatewayId, pair, relayed: route.relay !== undefined || e.pair.remote.type === "relay" });
      // We are the initiator: a handshake now (WirePeer skips it if one went out < 5 s ago).
      c.peer.connect(now);
    } else if (e.kind === "state" && e.state === "failed") {
      this.#emit({ type: "disconnected", gatewayId: c.gatewayId, reason: e.reason ?? "ice failed" });
      this.#teardown();
      this.#phase = "closed";
    }
  }

  /** A control-path datagram to the peer over `route` (directly, or via the relay it names). */
  #send(route: { to: Endpoint; relay?: string }, data: Uint8Array, now: number): void {
    if (route.relay === undefined) {
      this.#transmits.push({ to: route.to, data });
      return;
    }
    const buf = this.#scratch;
    buf.set(data, CHANNEL_DATA_HEADER);
    const n = this.#frameForRelay(route as IceRoute, buf, data.length, now);
    if (n > 0) this.#transmits.push({ to: this.sendTo, data: buf.slice(0, n) });
  }
}

/** "ip:port" / "[ipv6]:port" (the portal's SocketAddr, already validated) as an Endpoint. */
export function parseSocketAddr(text: string): Endpoint {
  const colon = text.lastIndexOf(":");
  const host = text.slice(0, colon).replace(/^\[|\]$/g, "");
  return { address: host, port: Number(text.slice(colon + 1)) };
}

