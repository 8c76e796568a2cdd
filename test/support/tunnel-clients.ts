// Stock-WireGuard clients (glassgate WirePeers) in front of one gateway Tunnel, on simulated time
// and a lossless simulated link: for unit tests of what the gateway's composition (peer sync,
// resource sync) does to connected clients. Deterministic for a given seed.
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import type { Aead } from "../../src/crypto/aead.ts";
import { generatePrivateKey } from "../../src/crypto/x25519.ts";
import { parseCidr } from "../../src/ip/address.ts";
import type { DatagramBatch, TunBatch } from "../../src/node/batches.ts";
import type { GatewayNode } from "../../src/node/gateway-node.ts";
import { Tunnel, controlEventOf } from "../../src/tunnel/index.ts";
import { LocalIdentity, WirePeer, type Endpoint } from "../../src/wire/index.ts";
import { icmpEcho } from "./icmp.ts";
import { seededRandom } from "./wire-pair.ts";

export const GATEWAY: Endpoint = { address: "192.0.2.1", port: 52625 };

export interface SimClient {
  local: LocalIdentity;
  addr: Endpoint;
  ip: string;
  peer: WirePeer;
  /** Firezone control events (2 = goodbye) this client decrypted. */
  control: number[];
  /** Other inner packets it decrypted. */
  data: Uint8Array[];
}

export class TunnelClients {
  readonly random: (n: number) => Uint8Array;
  readonly gw: Tunnel;
  readonly clients: SimClient[] = [];
  now = 1_760_000_000_000;
  readonly #out = new Uint8Array(70000);

  /** `aead`: the gateway's backend (noble by default; the allocation test needs libsodium, which allocates nothing per call). */
  constructor(seed = 42, aead: Aead = nobleAead) {
    this.random = seededRandom(seed);
    this.gw = new Tunnel({ aead, privateKey: generatePrivateKey(this.random), random: this.random });
  }

  /** A client that knows the gateway (not yet configured on it: that is the test's job). */
  client(): SimClient {
    const i = this.clients.length;
    const local = new LocalIdentity(generatePrivateKey(this.random), this.random);
    const c: SimClient = {
      local,
      addr: { address: `198.51.100.${i + 1}`, port: 40000 + i },
      ip: `10.99.0.${i + 2}`,
      peer: new WirePeer({ aead: nobleAead, local, remoteStatic: this.gw.identity.publicKey, connectionId: 100 + i, endpoint: GATEWAY, random: this.random }),
      control: [],
      data: [],
    };
    this.clients.push(c);
    return c;
  }

  /**
   * Configures `n` peers on the gateway that never handshake (random keys, a /32 each in 10.100.0.0/14
   * counting up): the idle crowd beside a busy client in the "cost does not grow with idle peers" tests.
   */
  idlePeers(n: number): void {
    for (let i = 0; i < n; i++) {
      this.gw.upsertPeer({ publicKey: this.random(32), allowedIPs: [parseCidr(`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`)] });
    }
  }

  /**
   * One turn of the IO loop with `node` (built on this gateway) for client `c`: the client's
   * datagrams in, due timers, the node's datagrams back to the client. The node's events and
   * `tunOut` are left to the caller.
   */
  turn(node: GatewayNode, c: SimClient, tunOut: TunBatch, udpOut: DatagramBatch): void {
    for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) node.handleNetworkInput(t.data, 0, t.data.length, c.addr, this.now, tunOut);
    const due = node.pollTimeout();
    if (due !== undefined && due <= this.now) node.handleTimeout(this.now);
    udpOut.clear();
    node.drainTransmits(udpOut);
    for (let i = 0; i < udpOut.count; i++) c.peer.handleInput(udpOut.data.slice(udpOut.offset(i), udpOut.offset(i) + udpOut.lengths[i]!), GATEWAY, this.now);
  }

  /** The client sends one ping through the gateway (handshaking first if it must). */
  ping(c: SimClient, seq = 1): void {
    c.peer.send(icmpEcho({ src: c.ip, dst: "10.50.0.9", type: 8, id: 1, seq, payload: Uint8Array.of(seq) }), this.now);
    this.settle();
  }

  /** Delivers everything in flight, both ways, until quiet. Returns the datagrams the gateway sent. */
  settle(): number {
    let fromGateway = 0;
    for (let round = 0; round < 20; round++) {
      let moved = false;
      for (const c of this.clients) {
        for (let t = c.peer.pollTransmit(); t; t = c.peer.pollTransmit()) {
          moved = true;
          this.gw.decapsulate(t.data, c.addr, this.#out, this.now);
        }
      }
      for (let t = this.gw.pollTransmit(); t; t = this.gw.pollTransmit()) {
        moved = true;
        fromGateway++;
        const c = this.clients.find((c) => c.addr.address === t.to.address && c.addr.port === t.to.port);
        c?.peer.handleInput(t.data, GATEWAY, this.now);
      }
      for (const c of this.clients) {
        for (let e = c.peer.pollEvent(); e; e = c.peer.pollEvent()) {
          if (e.type !== "data") continue;
          const control = controlEventOf(e.packet);
          if (control !== undefined) c.control.push(control);
          else c.data.push(e.packet);
        }
      }
      if (!moved) break;
    }
    return fromGateway;
  }

  advance(ms: number): void {
    this.now += ms;
    this.gw.handleTimeout(this.now);
    for (const c of this.clients) c.peer.handleTimeout(this.now);
    this.settle();
  }
}
