// A binary min-heap of (deadline, value), in two parallel arrays so a push allocates nothing once
// the arrays have grown. It knows nothing about staleness: its users (the tunnel's peer timers,
// the policy's expiries) push a new entry when a deadline moves earlier and recognise outdated
// entries when they surface, so a deadline that moves later on every packet costs no heap work.
export class MinHeap<T> {
  readonly #at: number[] = [];
  readonly #values: T[] = [];

  get size(): number {
    return this.#at.length;
  }

  push(at: number, value: T): void {
    const a = this.#at;
    const v = this.#values;
    let i = a.length;
    a.push(at);
    v.push(value);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= at) break;
      a[i] = a[p]!;
      v[i] = v[p]!;
      i = p;
    }
    a[i] = at;
    v[i] = value;
  }

  /** The earliest deadline, or Infinity when empty. */
  peekAt(): number {
    return this.#at.length > 0 ? this.#at[0]! : Infinity;
  }

  peek(): T | undefined {
    return this.#values[0];
  }

  /** Removes the earliest entry and returns its value. */
  pop(): T | undefined {
    const a = this.#at;
    const v = this.#values;
    if (a.length === 0) return undefined;
    const top = v[0];
    const lastAt = a.pop()!;
    const lastV = v.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && a[r]! < a[l]! ? r : l;
        if (a[c]! >= lastAt) break;
        a[i] = a[c]!;
        v[i] = v[c]!;
        i = c;
      }
      a[i] = lastAt;
      v[i] = lastV;
    }
    return top;
  }

  clear(): void {
    this.#at.length = 0;
    this.#values.length = 0;
  }
}
