/**
 * Sliding-window replay filter for transport counters (RFC 6479 layout: a
 * ring of bit blocks; moving the window forward clears whole blocks instead
 * of shifting bits). Counters are JS numbers; the caller refuses counters at
 * or above 2^53, which no honest peer can reach.
 */
const BLOCK_BITS = 32;
const RING_BLOCKS = 256; // power of two
const RING_MASK = RING_BLOCKS - 1;
/** Counters older than last - WINDOW_SIZE are refused (8160, like wireguard-go's 8128 or more). */
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS;

export class ReplayFilter {
  private readonly ring = new Uint32Array(RING_BLOCKS);
  private last = 0;

  reset(): void {
    this.ring.fill(0);
    this.last = 0;
  }

  /**
   * Marks `counter` as seen. Returns false if it was already seen, is too old
   * for the window, or is >= limit. Call only after the packet authenticated.
   */
  validate(counter: number, limit: number): boolean {
    if (!(counter < limit) || counter < 0 || counter > Number.MAX_SAFE_INTEGER) return false;
    let block = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const current = Math.floor(this.last / BLOCK_BITS);
      let diff = block - current;
      if (diff > RING_BLOCKS) diff = RING_BLOCKS;
      for (let i = current + 1; i <= current + diff; i++) this.ring[i & RING_MASK] = 0;
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    block &= RING_MASK;
    const bit = 1 << (counter % BLOCK_BITS);
    const old = this.ring[block]!;
    if ((old & bit) !== 0) return false;
    this.ring[block] = old | bit;
    return true;
  }
}
