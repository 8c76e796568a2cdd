// AllowedIPs: a binary trie per address family mapping prefixes to a value (a connection id).
// Longest-prefix match routes outgoing packets to a peer; the same table checks that an incoming
// packet's inner source address belongs to the peer it came from (cryptokey routing, whitepaper §2).
import type { Cidr } from "../ip/address.ts";

interface Node<T> {
  zero?: Node<T>;
  one?: Node<T>;
  value?: T;
}

function bit(bytes: Uint8Array, i: number): number {
  return (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
}

export class AllowedIps<T> {
  readonly #roots: { 4: Node<T>; 6: Node<T> } = { 4: {}, 6: {} };

  /** Sets `cidr` → `value`; a prefix belongs to exactly one owner, so a later insert takes it over. */
  insert(cidr: Cidr, value: T): void {
    let node = this.#roots[cidr.family];
    for (let i = 0; i < cidr.prefix; i++) {
      const b = bit(cidr.bytes, i);
      node = b ? (node.one ??= {}) : (node.zero ??= {});
    }
    node.value = value;
  }

  /** The value of the longest prefix containing `addr` (4 or 16 bytes, may be a view into a packet). */
  lookup(addr: Uint8Array, offset = 0, family: 4 | 6 = addr.length - offset === 16 ? 6 : 4): T | undefined {
    let node: Node<T> | undefined = this.#roots[family];
    let best: T | undefined;
    const bits = family === 4 ? 32 : 128;
    for (let i = 0; node !== undefined; i++) {
      if (node.value !== undefined) best = node.value;
      if (i === bits) break;
      node = ((addr[offset + (i >> 3)]! >> (7 - (i & 7))) & 1) ? node.one : node.zero;
    }
    return best;
  }

  /** Removes every prefix owned by `value` (a peer leaving). */
  removeValue(value: T): void {
    const walk = (n: Node<T> | undefined) => {
      if (!n) return;
      if (n.value === value) n.value = undefined;
      walk(n.zero);
      walk(n.one);
    };
    walk(this.#roots[4]);
    walk(this.#roots[6]);
  }
}
