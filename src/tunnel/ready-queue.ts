// Connections with output waiting (datagrams or events), in the order they produced it. A
// connection enqueues itself once (its `queued` flag) and leaves when drained, so polling outputs
// costs the connections that have some, not every configured peer. An array with a moving head:
// no shift() per poll, reset when it empties.
export class ReadyQueue<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest queued item, without removing it. */
  peek(): T | undefined {
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined as T;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    }
    return item;
  }
}
