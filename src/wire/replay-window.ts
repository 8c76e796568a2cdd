// Sliding receive window for transport counters (RFC 6479 shape, whitepaper §5.4.6): a ring of
// 32-bit words; advancing clears whole words instead of shifting bits. `check` is the cheap pre-test
// before decryption; `accept` records a counter only after the packet authenticated, so forged
// packets cannot move the window.
import { REJECT_COUNTER, REPLAY_WINDOW_BLOCKS, REPLAY_WINDOW_SIZE } from "./constants.ts";

export class ReplayWindow {
  readonly #blocks = new Uint32Array(REPLAY_WINDOW_BLOCKS);
  #last = 0;

  /** True when `counter` may be new: inside or ahead of the window and not yet seen. */
  check(counter: number): boolean {
    if (counter >= REJECT_COUNTER) return false;
    if (counter > this.#last) return true;
    if (this.#last - counter > REPLAY_WINDOW_SIZE) return false;
    const bit = 1 << (counter & 31);
    return (this.#blocks[Math.floor(counter / 32) % REPLAY_WINDOW_BLOCKS]! & bit) === 0;
  }

  /** Records `counter`; false (and no change) if it is a replay or too old. */
  accept(counter: number): boolean {
    if (counter >= REJECT_COUNTER) return false;
    const block = Math.floor(counter / 32);
    if (counter > this.#last) {
      const current = Math.floor(this.#last / 32);
      const advance = Math.min(block - current, REPLAY_WINDOW_BLOCKS);
      for (let i = 1; i <= advance; i++) this.#blocks[(current + i) % REPLAY_WINDOW_BLOCKS] = 0;
      this.#last = counter;
    } else if (this.#last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    const slot = block % REPLAY_WINDOW_BLOCKS;
    const bit = 1 << (counter & 31);
    const old = this.#blocks[slot]!;
    if ((old & bit) !== 0) return false;
    this.#blocks[slot] = old | bit;
    return true;
  }

  /** The newest counter accepted so far. */
  get last(): number {
    return this.#last;
  }
}
