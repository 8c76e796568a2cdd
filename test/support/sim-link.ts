// The simulated network under the ICE worlds (ice-world.ts: our agent against a controlling double;
// ice-pair-world.ts: two of our agents): loss, duplication, delay and jitter drawn from one seeded
// stream on simulated time, so a world is deterministic for a given seed. Datagrams come out in time
// order, ties in the order they were sent.
import type { Endpoint } from "../../src/wire/cookie.ts";

/** xorshift32 as [0,1) floats. */
export function seededFloats(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

export interface LinkConditions {
  loss?: number;
  duplicate?: number;
  /** Extra random delay up to this many ms: reorders datagrams. */
  jitterMs?: number;
  delayMs?: number;
}

export interface InFlight {
  at: number;
  seq: number;
  to: Endpoint;
  from: Endpoint;
  data: Uint8Array;
}

export const endpointKey = (e: Endpoint) => `${e.address}:${e.port}`;

export class SimulatedLink {
  /** Addresses ("ip" or "ip:port") that swallow everything sent to them. */
  readonly blackholed = new Set<string>();
  #inFlight: InFlight[] = [];
  #seq = 0;
  #random: () => number;

  constructor(readonly conditions: LinkConditions = {}, seed = 1) {
    this.#random = seededFloats(seed);
  }

  send(from: Endpoint, to: Endpoint, data: Uint8Array, now: number): void {
    if (this.blackholed.has(endpointKey(to)) || this.blackholed.has(to.address)) return;
    const c = this.conditions;
    if (c.loss && this.#random() < c.loss) return;
    const copies = c.duplicate && this.#random() < c.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = now + (c.delayMs ?? 5) + (c.jitterMs ? this.#random() * c.jitterMs : 0);
      this.#inFlight.push({ at, seq: this.#seq++, to, from, data });
    }
  }

  /** The next datagram to arrive, still in flight. */
  peek(): InFlight | undefined {
    let next: InFlight | undefined;
    for (const f of this.#inFlight) if (!next || f.at < next.at || (f.at === next.at && f.seq < next.seq)) next = f;
    return next;
  }

  /** Takes `f` (from peek) off the link: it has arrived. */
  arrive(f: InFlight): void {
    this.#inFlight.splice(this.#inFlight.indexOf(f), 1);
  }
}
