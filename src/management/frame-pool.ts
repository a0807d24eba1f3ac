/**
 * Reusable memory for Sync frames. A policy change at 5,000 peers builds ~100 MiB of frames that live
 * only until HTTP/2 has written them; fresh allocations for each made V8 count that much new external
 * memory per change, which forces extra scavenges and full collections of the whole heap. Frames
 * taken here go back to the pool once their transport no longer references them, so steady fan-out
 * reuses the same warm memory.
 *
 * Capacities come in classes of 1/8 of a power of two (at most 12.5% unused); frames below
 * MIN_POOLED_BYTES come from Node's own buffer pool, which is already cheap for them.
 */
export const MIN_POOLED_BYTES = 4096;

export interface FramePoolStats {
  /** Bytes of free frames waiting for reuse. */
  freeBytes: number;
  /** Frames served from the pool, and frames that needed a new allocation. */
  reused: number;
  allocated: number;
}

function capacityClass(size: number): number {
  const step = 2 ** Math.floor(Math.log2(size)) / 8;
  // `| 0` keeps the result a small integer for V8 (frames stay far below 2 GiB), so the pool's byte
  // counters keep their integer representation.
  return (Math.ceil(size / step) * step) | 0;
}

export class FramePool {
  private readonly free = new Map<number, ArrayBufferLike[]>();
  readonly stats: FramePoolStats = { freeBytes: 0, reused: 0, allocated: 0 };

  /**
   * `maxFreeBytes` bounds the memory kept for reuse; past it, returned frames are left to the GC.
   * `shared` frames live in SharedArrayBuffers, so a seal worker can encrypt them where they are
   * (seal-worker.ts).
   */
  constructor(
    private readonly maxFreeBytes: number,
    private readonly shared = false,
  ) {}

  /** An uninitialised buffer of exactly `size` bytes. */
  take(size: number): Buffer {
    if (size < MIN_POOLED_BYTES) return Buffer.allocUnsafe(size);
    const cap = capacityClass(size);
    const ab = this.free.get(cap)?.pop();
    if (ab) {
      this.stats.freeBytes -= cap;
      this.stats.reused++;
      return Buffer.from(ab, 0, size);
    }
    this.stats.allocated++;
    return Buffer.from(this.shared ? new SharedArrayBuffer(cap) : new ArrayBuffer(cap), 0, size);
  }

  /**
   * Returns a frame from `take` for reuse. Only call this when nothing else references the frame's
   * memory any more (its transport's write completed); other buffers are ignored.
   */
  give(frame: Uint8Array): void {
    const ab = frame.buffer;
    if (!(this.shared ? ab instanceof SharedArrayBuffer : ab instanceof ArrayBuffer) || frame.byteOffset !== 0) return;
    const cap = ab.byteLength;
    if (cap < MIN_POOLED_BYTES || cap !== capacityClass(frame.length) || this.stats.freeBytes + cap > this.maxFreeBytes) return;
    let list = this.free.get(cap);
    if (!list) this.free.set(cap, (list = []));
    list.push(ab);
    this.stats.freeBytes += cap;
  }
}
