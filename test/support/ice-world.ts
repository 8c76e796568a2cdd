// Our controlled IceAgent against a minimal *controlling* test double, over a seeded simulated link
// on simulated time: deterministic for a given seed, minutes simulated in milliseconds.
// The double does what a Firezone client's str0m does in outline: checks every pair, answers our
// checks, nominates the best pair that works with USE-CANDIDATE and keeps checking it.
import { IceAgent, type IceEvent, type IceTransmit } from "../../src/ice/agent.ts";
import { decodeBinding, encodeBindingRequest, encodeBindingSuccess } from "../../src/ice/agent-messages.ts";
import type { Endpoint } from "../../src/wire/cookie.ts";
import { endpointKey as key, SimulatedLink, seededFloats, type LinkConditions } from "./sim-link.ts";

interface DoublePair {
  local: Endpoint;
  remote: Endpoint;
  succeeded: boolean;
  tx?: string;
  nextAt: number;
  sends: number;
}

export class ControllingDouble {
  readonly out: { from: Endpoint; to: Endpoint; data: Uint8Array }[] = [];
  readonly pairs: DoublePair[] = [];
  nominated: DoublePair | undefined;
  /** Off: the peer is gone (stops answering and checking). */
  alive = true;
  requestsSeen = 0;
  #tx = new Map<string, DoublePair>();
  #random: () => number;

  constructor(
    readonly creds: { ufrag: string; pwd: string },
    readonly remoteCreds: { ufrag: string; pwd: string },
    readonly locals: Endpoint[],
    seed = 1,
  ) {
    this.#random = seededFloats(seed ^ 0x5eed);
  }

  addRemote(e: Endpoint): void {
    for (const l of this.locals) {
      if (l.address.includes(":") !== e.address.includes(":")) continue;
      if (this.pairs.some((p) => key(p.local) === key(l) && key(p.remote) === key(e))) continue;
      this.pairs.push({ local: l, remote: e, succeeded: false, nextAt: 0, sends: 0 });
    }
  }

  handle(data: Uint8Array, from: Endpoint, at: Endpoint, now: number): void {
    this.#now = now;
    if (!this.alive) return;
    const msg = decodeBinding(data);
    if ("drop" in msg) return;
    if (msg.class === "request") {
      if (!msg.verify(this.creds.pwd)) return;
      this.requestsSeen++;
      this.out.push({ from: at, to: from, data: encodeBindingSuccess(msg.transactionId, from, this.creds.pwd) });
      return;
    }
    const tx = Array.from(msg.transactionId, (b) => b.toString(16).padStart(2, "0")).join("");
    const p = this.#tx.get(tx);
    if (!p || msg.class !== "success" || !msg.verify(this.remoteCreds.pwd)) return;
    this.#tx.delete(tx);
    p.succeeded = true;
    p.tx = undefined;
    // Nominate as soon as a pair works (what str0m's controlling side does with one component).
    if (!this.nominated) {
      this.nominated = p;
      this.#send(p, 0, true);
      p.nextAt = this.#now + 1000;
    }
  }

  /** Stops using a local socket (its pairs are forgotten), e.g. an interface that went away. */
  dropLocal(e: Endpoint): void {
    for (let i = this.pairs.length - 1; i >= 0; i--) if (key(this.pairs[i]!.local) === key(e)) this.pairs.splice(i, 1);
    const at = this.locals.findIndex((l) => key(l) === key(e));
    if (at >= 0) this.locals.splice(at, 1);
    if (this.nominated && key(this.nominated.local) === key(e)) {
      this.nominated = undefined;
      for (const p of this.pairs) p.nextAt = 0; // look for the next pair to nominate at once
    }
  }

  #now = 0;

  tick(now: number): void {
    this.#now = now;
    if (!this.alive) return;
    for (const p of this.pairs) {
      if (now < p.nextAt) continue;
      if (p === this.nominated) {
        this.#send(p, now, true);
        p.nextAt = now + 1000;
      } else if (!p.succeeded && p.sends < 40) {
        this.#send(p, now, false);
        p.nextAt = now + 200;
      } else p.nextAt = Infinity;
    }
    // Regular nomination: once a pair works, a check with USE-CANDIDATE on the best working one.
    if (!this.nominated) {
      const best = this.pairs.find((p) => p.succeeded);
      if (best) {
        this.nominated = best;
        this.#send(best, now, true);
        best.nextAt = now + 1000;
      }
    }
  }

  nextTimeout(): number {
    if (!this.alive) return Infinity;
    return Math.min(...this.pairs.map((p) => p.nextAt));
  }

  #send(p: DoublePair, _now: number, useCandidate: boolean): void {
    const id = new Uint8Array(12);
    for (let i = 0; i < 12; i++) id[i] = Math.floor(this.#random() * 256);
    const tx = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
    this.#tx.set(tx, p);
    p.sends++;
    this.out.push({
      from: p.local,
      to: p.remote,
      data: encodeBindingRequest({ transactionId: id, username: `${this.remoteCreds.ufrag}:${this.creds.ufrag}`, password: this.remoteCreds.pwd, priority: 1853824767, iceControlling: 42n, useCandidate }),
    });
  }
}

/**
 * Routes datagrams between the agent's local bases and the double's sockets. `blackholed` addresses
 * swallow everything; `agentSends` records what the agent transmitted, with the time.
 */
export class IceWorld {
  now = 0;
  readonly events: { at: number; event: IceEvent }[] = [];
  readonly agentSends: { at: number; t: IceTransmit }[] = [];
  readonly blackholed: Set<string>;
  readonly #link: SimulatedLink;

  constructor(
    readonly agent: IceAgent,
    readonly peer: ControllingDouble,
    link: LinkConditions = {},
    seed = 1,
  ) {
    this.#link = new SimulatedLink(link, seed);
    this.blackholed = this.#link.blackholed;
  }

  #drain(): void {
    for (let t = this.agent.pollTransmit(); t; t = this.agent.pollTransmit()) {
      this.agentSends.push({ at: this.now, t });
      this.#link.send(t.from, t.to, t.data, this.now);
    }
    for (let e = this.agent.pollEvent(); e; e = this.agent.pollEvent()) this.events.push({ at: this.now, event: e });
    for (const o of this.peer.out.splice(0)) this.#link.send(o.from, o.to, o.data, this.now);
  }

  /** Runs until `until` (absolute ms), processing every timer and datagram in time order. */
  run(until: number): void {
    this.#drain();
    for (;;) {
      const agentAt = this.agent.pollTimeout() ?? Infinity;
      const peerAt = this.peer.nextTimeout();
      const next = this.#link.peek();
      const at = Math.min(agentAt, peerAt, next?.at ?? Infinity);
      if (at > until) break;
      this.now = Math.max(this.now, at);
      if (next && next.at === at) {
        this.#link.arrive(next);
        const local = this.agent.localCandidates().find((c) => c.address === next.to.address && c.port === next.to.port);
        // Relay candidates in this world use the default relay id: their relayed address.
        if (local) this.agent.handleInput(next.data, next.from, next.to, this.now, local.type === "relay" ? key(next.to) : undefined);
        else if (this.peer.locals.some((l) => key(l) === key(next.to))) this.peer.handle(next.data, next.from, next.to, this.now);
      } else if (agentAt === at) {
        this.agent.handleTimeout(this.now);
      } else {
        this.peer.tick(this.now);
      }
      this.#drain();
    }
    this.now = until;
  }

  eventsOf<K extends IceEvent["kind"]>(kind: K): { at: number; event: Extract<IceEvent, { kind: K }> }[] {
    return this.events.filter((e) => e.event.kind === kind) as { at: number; event: Extract<IceEvent, { kind: K }> }[];
  }

  stateChanges(): { at: number; state: string; reason?: string }[] {
    return this.eventsOf("state").map((e) => ({ at: e.at, state: e.event.state, reason: e.event.reason }));
  }
}
