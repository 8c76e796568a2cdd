// Exact-length views of one caller-owned buffer, each made once. Bun's `socket.send` takes no
// length and the core's WireGuard/STUN parsers read a datagram as a whole Uint8Array, so the shell
// needs a view as long as the packet: a fresh `subarray` per packet is an allocation per packet,
// while packet lengths repeat (MTU-sized data, a few control sizes), so a view per length is reused.
export class ByteViews {
  readonly #views: (Uint8Array | undefined)[] = [];

  constructor(readonly buffer: Uint8Array) {}

  /** `buffer[0, length)`, the same object every time for the same length. */
  of(length: number): Uint8Array {
    if (length < 0 || length > this.buffer.length) throw new RangeError(`view of ${length} bytes over a ${this.buffer.length}-byte buffer`);
    return (this.#views[length] ??= this.buffer.subarray(0, length));
  }
}
