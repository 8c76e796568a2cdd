// Two of our own IceAgents — one controlling, one controlled (or both claiming one role, for
// conflicts) — over a seeded simulated link on simulated time. Datagrams go to whichever agent has
// a local candidate at the destination; `blackholed` addresses swallow everything.
import type { IceAgent, IceEvent } from "../../src/ice/agent.ts";
import type { Endpoint } from "../../src/wire/cookie.ts";
import { seededFloats, type LinkConditions } from "./ice-world.ts";

const key = (e: Endpoint) => `${e.address}:${e.port}`;

interface InFlight {
  at: number;
  seq: number;
  to: Endpoint;
  from: Endpoint;
  data: Uint8Array;
}

export class IcePairWorld {
  now = 0;
  readonly events: { at: number; side: "a" | "b"; event: IceEvent }[] = [];
  readonly sends: { at: number; side: "a" | "b"; to: Endpoint; data: Uint8Array }[] = [];
  readonly blackholed = new Set<string>();
  #inFlight: InFlight[] = [];
  #seq = 0;
  #random: () => number;

  constructor(
    readonly a: IceAgent,
    readonly b: IceAgent,
    readonly link: LinkConditions = {},
    seed = 1,
  ) {
    this.#random = seededFloats(seed);
  }

  #deliverLater(from: Endpoint, to: Endpoint, data: Uint8Array): void {
    if (this.blackholed.has(key(to)) || this.blackholed.has(to.address) || this.blackholed.has(from.address)) return;
    if (this.link.loss && this.#random() < this.link.loss) return;
    const copies = this.link.duplicate && this.#random() < this.link.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.now + (this.link.delayMs ?? 5) + (this.link.jitterMs ? this.#random() * this.link.jitterMs : 0);
      this.#inFlight.push({ at, seq: this.#seq++, to, from, data });
    }
  }

  #drain(): void {
    for (const [side, agent] of [["a", this.a], ["b", this.b]] as const) {
      for (let t = agent.pollTransmit(); t; t = agent.pollTransmit()) {
        this.sends.push({ at: this.now, side, to: t.to, data: t.data });
        this.#deliverLater(t.from, t.to, t.data);
      }
      for (let e = agent.pollEvent(); e; e = agent.pollEvent()) this.events.push({ at: this.now, side, event: e });
    }
  }

  #owner(to: Endpoint): IceAgent | undefined {
    for (const agent of [this.a, this.b]) if (agent.localCandidates().some((c) => c.type === "host" && c.address === to.address && c.port === to.port)) return agent;
    return undefined;
  }

  /** Runs until `until` (absolute ms), processing every timer and datagram in time order. */
  run(until: number): void {
    this.#drain();
    for (;;) {
      const aAt = this.a.pollTimeout() ?? Infinity;
      const bAt = this.b.pollTimeout() ?? Infinity;
      let next: InFlight | undefined;
      for (const f of this.#inFlight) if (!next || f.at < next.at || (f.at === next.at && f.seq < next.seq)) next = f;
      const at = Math.min(aAt, bAt, next?.at ?? Infinity);
      if (at > until) break;
      this.now = Math.max(this.now, at);
      if (next && next.at === at) {
        this.#inFlight.splice(this.#inFlight.indexOf(next), 1);
        this.#owner(next.to)?.handleInput(next.data, next.from, next.to, this.now);
      } else if (aAt === at) this.a.handleTimeout(this.now);
      else this.b.handleTimeout(this.now);
      this.#drain();
    }
    this.now = until;
  }

  eventsOf<K extends IceEvent["kind"]>(side: "a" | "b", kind: K): { at: number; event: Extract<IceEvent, { kind: K }> }[] {
    return this.events.filter((e) => e.side === side && e.event.kind === kind) as unknown as { at: number; event: Extract<IceEvent, { kind: K }> }[];
  }

  states(side: "a" | "b"): string[] {
    return this.eventsOf(side, "state").map((e) => e.event.state);
  }
}
