// Views onto datagrams where the batched UDP shell has them (a ring slot, or a segment of a GRO
// slot), for the wire parsers, which read from index 0 and take the length from the view. Making
// one per datagram was the receive path's last allocation per packet; but the places are few (ring
// slots × segment offsets) and a bulk flow's datagrams all have one length, so a direct-mapped
// table of remembered views hits almost always and the path allocates nothing in steady state.

const BITS = 12;
const SIZE = 1 << BITS;

export class DatagramViews {
  readonly #buf: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(SIZE).fill(undefined);
  readonly #off = new Int32Array(SIZE).fill(-1);
  readonly #len = new Int32Array(SIZE);
  readonly #view: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(SIZE).fill(undefined);
  /** Views made (misses); `hits` were served from the table. */
  made = 0;
  hits = 0;

  /** buf[off, off+len) as a view of its own; the same object again for the same place and length. */
  get(buf: Uint8Array, off: number, len: number): Uint8Array {
    const i = (Math.imul(off, 0x9e3779b1) >>> (32 - BITS)) ^ (len & (SIZE - 1) & 0x3f);
    if (this.#off[i] === off && this.#len[i] === len && this.#buf[i] === buf) {
      this.hits++;
      return this.#view[i]!;
    }
    const v = buf.subarray(off, off + len);
    this.#buf[i] = buf;
    this.#off[i] = off;
    this.#len[i] = len;
    this.#view[i] = v;
    this.made++;
    return v;
  }
}
