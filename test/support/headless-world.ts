// The headless client's core against a faithful gateway double on simulated time: the gateway is
// our GatewayNode (WireGuard, policy-free) with a controlled IceAgent in front (what h-icenode puts
// inside the node), the portal is the test calling handlePortal with what the dev portal would
// send, and an optional TURN relay (test/support/turn-relay.ts answering, this world forwarding
// ChannelData both ways). Lossless, deterministic for a given seed.
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/crypto/x25519.ts";
import { IceAgent } from "../../src/ice/agent.ts";
import { localCandidate } from "../../src/ice/candidate.ts";
import { looksLikeChannelData } from "../../src/ice/channel-data.ts";
import { looksLikeStun } from "../../src/ice/stun.ts";
import { parseCidr } from "../../src/ip/address.ts";
import { DatagramBatch, GatewayNode, TunBatch } from "../../src/node/index.ts";
import type { ClientEgress, ClientIngress } from "../../src/portal/index.ts";
import { Tunnel } from "../../src/tunnel/index.ts";
import type { Endpoint } from "../../src/wire/index.ts";
import { HeadlessClient, type ClientEvent } from "../../tools/headless-client/client-core.ts";
import { TestRelay } from "./turn-relay.ts";
import { seededRandom } from "./wire-pair.ts";

export const CLIENT_HOST: Endpoint = { address: "192.168.1.10", port: 40000 };
export const GATEWAY_HOST: Endpoint = { address: "198.51.100.1", port: 52625 };
export const RELAY: Endpoint = { address: "203.0.113.5", port: 3478 };
export const RELAYED: Endpoint = { address: "203.0.113.5", port: 50000 };
export const CLIENT_IP = "100.64.0.9";
export const RESOURCE = "res-lab";

const key = (e: Endpoint) => `${e.address}:${e.port}`;

interface InFlight {
  at: number;
  seq: number;
  from: Endpoint;
  to: Endpoint;
  data: Uint8Array;
}

export class HeadlessWorld {
  now = 1_000;
  readonly random = seededRandom(7);
  readonly client: HeadlessClient;
  readonly tunnel: Tunnel;
  readonly node: GatewayNode;
  readonly gatewayIce: IceAgent;
  readonly relay: TestRelay | undefined;
  /** Everything the client asked the portal for, and everything it reported. */
  readonly portalOut: ClientEgress[] = [];
  readonly events: { at: number; event: ClientEvent }[] = [];
  /** Inner packets the gateway delivered to its TUN, and the client to its own. */
  readonly gatewayTun: Uint8Array[] = [];
  readonly clientTun: Uint8Array[] = [];
  /** Direct datagrams between client and gateway hosts are dropped (only the relay gets through). */
  directBlocked = false;
  gatewayCid: number | undefined;
  #inFlight: InFlight[] = [];
  #seq = 0;
  readonly #tunBatch = new TunBatch(64);
  readonly #udpBatch = new DatagramBatch(64);
  readonly #out = new Uint8Array(4096);

  constructor(opts: { relay?: boolean } = {}) {
    const gwKey = generatePrivateKey(this.random);
    this.tunnel = new Tunnel({ aead: nobleAead, privateKey: gwKey, random: this.random });
    this.node = new GatewayNode({ tunnel: this.tunnel });
    this.gatewayIce = new IceAgent({ local: { ufrag: "gwuf", pwd: "gateway-ice-password-0123" }, remote: { ufrag: "cluf", pwd: "client-ice-password-0123" }, now: this.now, random: (b) => b.set(this.random(b.length)), cid: "gw" });
    this.gatewayIce.addLocalCandidate(localCandidate("host", GATEWAY_HOST.address, GATEWAY_HOST.port), this.now);
    this.client = new HeadlessClient({ privateKey: generatePrivateKey(this.random), aead: nobleAead, random: this.random, hosts: [CLIENT_HOST], resourceId: RESOURCE, now: this.now });
    if (opts.relay) this.relay = new TestRelay({ address: RELAY, username: "u", password: "p", relayV4: RELAYED });
    this.gatewayPublicKey = encodeKey(publicKeyOf(gwKey));
  }

  readonly gatewayPublicKey: string;

  /** What the dev portal sends a client after its join. */
  init(): void {
    this.portal({
      event: "init",
      payload: {
        interface: { ipv4: CLIENT_IP, ipv6: "fd00:2021:1111::9", upstream_dns: [] },
        resources: [{ type: "cidr", id: RESOURCE, name: "lab", address: "10.77.0.0/24", gateway_groups: [] }],
        relays: this.relay ? [{ type: "turn", id: "relay-1", addr: key(RELAY), username: "u", password: "p", expires_at: 2_000_000_000 }] : [],
      },
    });
  }

  /** The gateway authorized the flow (the portal's authorize_flow → flow_authorized, done here). */
  flowCreated(): void {
    const psk = generatePrivateKey(this.random);
    const conn = this.tunnel.upsertPeer({ publicKey: this.client.identity.publicKey, presharedKey: psk, allowedIPs: [parseCidr(`${CLIENT_IP}/32`)] });
    this.gatewayCid = conn.cid;
    this.portal({
      event: "flow_created",
      payload: {
        resource_id: RESOURCE,
        gateway_id: "gw-1",
        gateway_group_id: "site-1",
        gateway_public_key: this.gatewayPublicKey,
        gateway_ipv4: "100.64.0.1",
        gateway_ipv6: "fd00:2021:1111::1",
        preshared_key: encodeKey(psk),
        client_ice_credentials: { username: "cluf", password: "client-ice-password-0123" },
        gateway_ice_credentials: { username: "gwuf", password: "gateway-ice-password-0123" },
      },
    });
    // The gateway's candidates, as its ice_candidates would arrive.
    this.portal({ event: "ice_candidates", payload: { gateway_id: "gw-1", candidates: this.gatewayIce.signalledCandidates() } });
  }

  portal(msg: ClientIngress): void {
    this.client.handlePortal(msg, this.now);
    this.#drain();
  }

  #deliverLater(from: Endpoint, to: Endpoint, data: Uint8Array): void {
    this.#inFlight.push({ at: this.now + 5, seq: this.#seq++, from, to, data: data.slice() });
  }

  #drain(): void {
    for (let m = this.client.pollPortal(); m; m = this.client.pollPortal()) {
      this.portalOut.push(m);
      // The portal relays the client's candidates to the gateway.
      if (m.event === "broadcast_ice_candidates") for (const c of m.payload.candidates) this.gatewayIce.addRemoteCandidateText(c, this.now);
      if (m.event === "broadcast_invalidated_ice_candidates") for (const c of m.payload.candidates) this.gatewayIce.invalidateRemoteCandidateText(c, this.now);
    }
    for (let e = this.client.pollEvent(); e; e = this.client.pollEvent()) this.events.push({ at: this.now, event: e });
    for (let t = this.client.pollTransmit(); t; t = this.client.pollTransmit()) this.#deliverLater(CLIENT_HOST, t.to, t.data);
    for (let t = this.gatewayIce.pollTransmit(); t; t = this.gatewayIce.pollTransmit()) this.#deliverLater(GATEWAY_HOST, t.to, t.data);
    for (let e = this.gatewayIce.pollEvent(); e; e = this.gatewayIce.pollEvent()) void e;
    this.#udpBatch.clear();
    this.node.drainTransmits(this.#udpBatch);
    for (let i = 0; i < this.#udpBatch.count; i++) {
      const off = this.#udpBatch.offset(i);
      this.#deliverLater(GATEWAY_HOST, this.#udpBatch.to[i]!, this.#udpBatch.data.slice(off, off + this.#udpBatch.lengths[i]!));
    }
  }

  /** A packet the client's TUN read (a process on the client sent it). */
  clientSends(packet: Uint8Array): void {
    const n = this.client.fromTun(packet, 0, packet.length, this.#out, this.now);
    if (n > 0) this.#deliverLater(CLIENT_HOST, this.client.sendTo, this.#out.subarray(0, n));
    this.#drain();
  }

  /** A packet the gateway's TUN read (the resource answering). */
  gatewaySends(packet: Uint8Array): void {
    this.#udpBatch.clear();
    this.node.handleTunInput(packet, 0, packet.length, this.now, this.#udpBatch);
    for (let i = 0; i < this.#udpBatch.count; i++) {
      const off = this.#udpBatch.offset(i);
      this.#deliverLater(GATEWAY_HOST, this.#udpBatch.to[i]!, this.#udpBatch.data.slice(off, off + this.#udpBatch.lengths[i]!));
    }
    this.#drain();
  }

  /**
   * A p2p control packet from the gateway (AssignedIps, DomainStatus): encrypted on the client's
   * connection directly, as the tunnel sends its goodbye — a destination of `::` has no route.
   */
  gatewayControl(packet: Uint8Array): void {
    const peer = this.tunnel.connection(this.gatewayCid!)!.peer;
    const n = peer.encapsulate(packet, this.#out, this.now);
    if (n > 0) this.#deliverLater(GATEWAY_HOST, peer.endpoint!, this.#out.subarray(0, n));
    this.#drain();
  }

  goodbye(): void {
    this.node.goodbyeTo(this.gatewayCid!, this.now);
    this.#drain();
  }

  #toGateway(data: Uint8Array, from: Endpoint): void {
    if (looksLikeStun(data)) {
      this.gatewayIce.handleInput(data, from, GATEWAY_HOST, this.now);
      return;
    }
    this.#tunBatch.clear();
    this.node.handleNetworkInput(data, 0, data.length, from, this.now, this.#tunBatch);
    for (let i = 0; i < this.#tunBatch.count; i++) {
      const off = this.#tunBatch.offset(i);
      this.gatewayTun.push(this.#tunBatch.data.slice(off, off + this.#tunBatch.lengths[i]!));
    }
    this.gatewayIce.noteTraffic(this.now);
  }

  #toClient(data: Uint8Array, from: Endpoint): void {
    const n = this.client.fromNetwork(data, data.length, from, this.#out, this.now);
    if (n > 0) this.clientTun.push(this.#out.slice(0, n));
  }

  #deliver(f: InFlight): void {
    const direct = (key(f.from) === key(CLIENT_HOST) && key(f.to) === key(GATEWAY_HOST)) || (key(f.from) === key(GATEWAY_HOST) && key(f.to) === key(CLIENT_HOST));
    if (direct && this.directBlocked) return;
    if (key(f.to) === key(GATEWAY_HOST)) this.#toGateway(f.data, f.from);
    else if (key(f.to) === key(CLIENT_HOST)) this.#toClient(f.data, f.from);
    else if (this.relay && key(f.to) === key(RELAY)) {
      if (looksLikeChannelData(f.data)) {
        // Forwarded from the relayed address to the channel's peer.
        const peer = this.relay.channels.get((f.data[0]! << 8) | f.data[1]!);
        const len = (f.data[2]! << 8) | f.data[3]!;
        if (peer) this.#deliverLater(RELAYED, peer, f.data.subarray(4, 4 + len));
        return;
      }
      const answer = this.relay.answer(f.data, f.from);
      if (answer) this.#deliverLater(RELAY, f.from, answer);
    } else if (this.relay && key(f.to) === key(RELAYED)) {
      // From a peer to the relayed address: as ChannelData on its channel, to the client.
      for (const [num, peer] of this.relay.channels) {
        if (key(peer) !== key(f.from)) continue;
        const framed = new Uint8Array(4 + f.data.length + ((4 - (f.data.length % 4)) % 4));
        framed[0] = num >> 8;
        framed[1] = num & 0xff;
        framed[2] = f.data.length >> 8;
        framed[3] = f.data.length & 0xff;
        framed.set(f.data, 4);
        this.#deliverLater(RELAY, CLIENT_HOST, framed);
      }
    }
  }

  run(until: number): void {
    this.#drain();
    for (;;) {
      const ct = this.client.pollTimeout() ?? Infinity;
      const gt = this.gatewayIce.pollTimeout() ?? Infinity;
      const nt = this.node.pollTimeout() ?? Infinity;
      let next: InFlight | undefined;
      for (const f of this.#inFlight) if (!next || f.at < next.at || (f.at === next.at && f.seq < next.seq)) next = f;
      const at = Math.min(ct, gt, nt, next?.at ?? Infinity);
      if (at > until) break;
      this.now = Math.max(this.now, at);
      if (next && next.at === at) {
        this.#inFlight.splice(this.#inFlight.indexOf(next), 1);
        this.#deliver(next);
      } else if (ct === at) this.client.handleTimeout(this.now);
      else if (gt === at) this.gatewayIce.handleTimeout(this.now);
      else this.node.handleTimeout(this.now);
      this.#drain();
    }
    this.now = until;
  }

  eventsOf<K extends ClientEvent["type"]>(type: K): Extract<ClientEvent, { type: K }>[] {
    return this.events.map((e) => e.event).filter((e) => e.type === type) as unknown as Extract<ClientEvent, { type: K }>[];
  }
}
