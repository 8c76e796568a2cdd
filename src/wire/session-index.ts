// Session indices: the 32-bit sender/receiver index of WireGuard messages, split as Firezone's
// snownet does — upper 24 bits name the connection, lower 8 bits the session within it (a wrapping
// counter). Demux is then `index >>> 8` → connection, with no table per session.

export type SessionIndex = number;

export const SLOT_BITS = 8;
export const CONNECTION_ID_BITS = 24;
const CONNECTION_ID_MASK = (1 << CONNECTION_ID_BITS) - 1;

export function makeIndex(connectionId: number, slot: number): SessionIndex {
  return (((connectionId & CONNECTION_ID_MASK) << SLOT_BITS) | (slot & 0xff)) >>> 0;
}

export function connectionIdOf(index: SessionIndex): number {
  return index >>> SLOT_BITS;
}

export function slotOf(index: SessionIndex): number {
  return index & 0xff;
}

/** `(3428714|1)`, the form every log line and UI uses. */
export function formatIndex(index: SessionIndex): string {
  return `(${connectionIdOf(index)}|${slotOf(index)})`;
}

/** The bare `3428714|1` used in structured log fields and JSON (`session`). */
export function sessionField(index: SessionIndex): string {
  return `${connectionIdOf(index)}|${slotOf(index)}`;
}

/**
 * Hands out 24-bit connection ids. A maximal-length Galois LFSR (x^24 + x^23 + x^22 + x^17 + 1,
 * period 2^24 − 1) visits every non-zero id once before repeating, and XOR with a random mask keeps
 * ids unpredictable to an off-path attacker guessing indices. Ids still in use are skipped on wrap.
 */
export class ConnectionIdAllocator {
  #state: number;
  readonly #mask: number;
  readonly #inUse = new Set<number>();

  constructor(random: (n: number) => Uint8Array) {
    const r = random(6);
    this.#state = ((r[0]! << 16) | (r[1]! << 8) | r[2]!) & CONNECTION_ID_MASK || 1;
    this.#mask = ((r[3]! << 16) | (r[4]! << 8) | r[5]!) & CONNECTION_ID_MASK;
  }

  allocate(): number {
    if (this.#inUse.size >= CONNECTION_ID_MASK) throw new Error("connection ids exhausted (2^24 - 1 live connections)");
    for (;;) {
      this.#state = lfsrStep(this.#state);
      const id = this.#state ^ this.#mask;
      if (!this.#inUse.has(id)) {
        this.#inUse.add(id);
        return id;
      }
    }
  }

  release(id: number): void {
    this.#inUse.delete(id);
  }

  get live(): number {
    return this.#inUse.size;
  }
}

export function lfsrStep(state: number): number {
  const lsb = state & 1;
  state >>>= 1;
  return lsb ? state ^ 0xe10000 : state;
}

/** The per-connection session counter: 0..255, wrapping (round-robin slots). */
export class SlotCounter {
  #next = 0;
  constructor(readonly connectionId: number) {}
  next(): SessionIndex {
    const idx = makeIndex(this.connectionId, this.#next);
    this.#next = (this.#next + 1) & 0xff;
    return idx;
  }
}
