// Two glassgate WirePeers wired to each other over a simulated link, on simulated time. Used by
// the wire unit tests and the long simulation: deterministic for a given seed.
import { nobleAead } from "../../src/crypto/aead-noble.ts";
import type { Aead } from "../../src/crypto/aead.ts";
import { generatePrivateKey } from "../../src/crypto/x25519.ts";
import { LocalIdentity, WirePeer, type Endpoint, type WireEvent } from "../../src/wire/index.ts";

/** Deterministic byte source (xorshift32): fine for simulations, never for real keys. */
export function seededRandom(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      out[i] = s & 0xff;
    }
    return out;
  };
}

export const A_ADDR: Endpoint = { address: "10.0.0.1", port: 51820 };
export const B_ADDR: Endpoint = { address: "10.0.0.2", port: 51820 };

export interface Side {
  name: "a" | "b";
  peer: WirePeer;
  identity: LocalIdentity;
  addr: Endpoint;
  events: WireEvent[];
  received: Uint8Array[];
}

export interface LinkFaults {
  loss?: number;
  duplicate?: number;
  /** Probability a datagram is delayed by an extra random amount (reordering). */
  reorder?: number;
  latencyMs?: number;
}

interface InFlight {
  at: number;
  seq: number;
  to: "a" | "b";
  data: Uint8Array;
  from: Endpoint;
}

export class WirePair {
  now: number;
  readonly a: Side;
  readonly b: Side;
  readonly random: (n: number) => Uint8Array;
  faults: LinkFaults;
  /** Every datagram that crossed the link (after faults), for replay tests. */
  readonly delivered: { to: "a" | "b"; data: Uint8Array }[] = [];
  #flight: InFlight[] = [];
  #seq = 0;
  #rng: () => number;

  constructor(opts: { seed?: number; faults?: LinkFaults; psk?: boolean; aead?: Aead; /** a's only */ persistentKeepalive?: number; startAt?: number } = {}) {
    const random = seededRandom(opts.seed ?? 1);
    this.random = random;
    this.now = opts.startAt ?? 1_750_000_000_000;
    this.faults = opts.faults ?? {};
    this.#rng = () => {
      const b = random(4);
      return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) / 2 ** 32;
    };
    const aead = opts.aead ?? nobleAead;
    const ida = new LocalIdentity(generatePrivateKey(random), random);
    const idb = new LocalIdentity(generatePrivateKey(random), random);
    const psk = opts.psk ? random(32) : undefined;
    const mk = (local: LocalIdentity, remote: LocalIdentity, cid: number, endpoint: Endpoint, persistentKeepalive?: number) =>
      new WirePeer({ aead, local, remoteStatic: remote.publicKey, presharedKey: psk, connectionId: cid, endpoint, random, persistentKeepalive });
    this.a = { name: "a", identity: ida, peer: mk(ida, idb, 0x123456, B_ADDR, opts.persistentKeepalive), addr: A_ADDR, events: [], received: [] };
    this.b = { name: "b", identity: idb, peer: mk(idb, ida, 0x654321, A_ADDR), addr: B_ADDR, events: [], received: [] };
  }

  side(name: "a" | "b"): Side {
    return name === "a" ? this.a : this.b;
  }

  /** Moves every queued transmit onto the link (applying faults) and drains events. */
  pump(): void {
    for (const s of [this.a, this.b]) {
      for (let t = s.peer.pollTransmit(); t; t = s.peer.pollTransmit()) this.#enqueue(s, t.data);
      for (let e = s.peer.pollEvent(); e; e = s.peer.pollEvent()) {
        if (e.type === "data") s.received.push(e.packet);
        else s.events.push(e);
      }
    }
  }

  #enqueue(from: Side, data: Uint8Array): void {
    const f = this.faults;
    if (f.loss && this.#rng() < f.loss) return;
    const to = from.name === "a" ? "b" : "a";
    const copies = f.duplicate && this.#rng() < f.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let delay = f.latencyMs ?? 10;
      if (f.reorder && this.#rng() < f.reorder) delay += Math.floor(this.#rng() * 50);
      this.#flight.push({ at: this.now + delay, seq: this.#seq++, to, data: data.slice(), from: from.addr });
    }
  }

  /** Advances simulated time to `until`, delivering datagrams and firing timers in order. */
  runUntil(until: number): void {
    this.pump();
    for (;;) {
      const nextFlight = this.#flight.reduce((m, p) => Math.min(m, p.at), Infinity);
      const ta = this.a.peer.pollTimeout() ?? Infinity;
      const tb = this.b.peer.pollTimeout() ?? Infinity;
      const next = Math.min(nextFlight, ta, tb);
      if (next > until) break;
      this.now = Math.max(this.now, next);
      if (nextFlight <= this.now) {
        const due = this.#flight.filter((p) => p.at <= this.now).sort((x, y) => x.at - y.at || x.seq - y.seq);
        this.#flight = this.#flight.filter((p) => p.at > this.now);
        for (const p of due) {
          this.delivered.push({ to: p.to, data: p.data });
          this.side(p.to).peer.handleInput(p.data, p.from, this.now);
        }
      }
      for (const s of [this.a, this.b]) {
        const t = s.peer.pollTimeout();
        if (t !== undefined && t <= this.now) s.peer.handleTimeout(this.now);
      }
      this.pump();
    }
    this.now = until;
  }

  advance(ms: number): void {
    this.runUntil(this.now + ms);
  }

  /** Injects a datagram as if it arrived from `from` (attack and bad-input tests). */
  inject(to: "a" | "b", data: Uint8Array, from: Endpoint = this.side(to === "a" ? "b" : "a").addr): void {
    this.side(to).peer.handleInput(data, from, this.now);
    this.pump();
  }
}

/** A minimal valid IPv4 packet carrying `payload` (protocol 253, experimental), for transport tests. */
export function ipv4Packet(payload: Uint8Array, id = 0): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[4] = id >> 8;
  p[5] = id & 0xff;
  p[8] = 64;
  p[9] = 253;
  p.set([10, 9, 0, 1], 12);
  p.set([10, 9, 0, 2], 16);
  p.set(payload, 20);
  return p;
}
