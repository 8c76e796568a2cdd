// Two of our own IceAgents — one controlling, one controlled (or both claiming one role, for
// conflicts) — over a seeded simulated link on simulated time. Datagrams go to whichever agent has
// a local candidate at the destination; `blackholed` addresses swallow everything.
import type { IceAgent, IceEvent } from "../../src/ice/agent.ts";
import type { Endpoint } from "../../src/wire/cookie.ts";
import { SimulatedLink, type LinkConditions } from "./sim-link.ts";

export class IcePairWorld {
  now = 0;
  readonly events: { at: number; side: "a" | "b"; event: IceEvent }[] = [];
  readonly sends: { at: number; side: "a" | "b"; to: Endpoint; data: Uint8Array }[] = [];
  readonly blackholed: Set<string>;
  readonly #link: SimulatedLink;

  constructor(
    readonly a: IceAgent,
    readonly b: IceAgent,
    link: LinkConditions = {},
    seed = 1,
  ) {
    this.#link = new SimulatedLink(link, seed);
    this.blackholed = this.#link.blackholed;
  }

  #drain(): void {
    for (const [side, agent] of [["a", this.a], ["b", this.b]] as const) {
      for (let t = agent.pollTransmit(); t; t = agent.pollTransmit()) {
        this.sends.push({ at: this.now, side, to: t.to, data: t.data });
        // A blackholed sender is cut off both ways.
        if (!this.blackholed.has(t.from.address)) this.#link.send(t.from, t.to, t.data, this.now);
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
      const next = this.#link.peek();
      const at = Math.min(aAt, bAt, next?.at ?? Infinity);
      if (at > until) break;
      this.now = Math.max(this.now, at);
      if (next && next.at === at) {
        this.#link.arrive(next);
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
