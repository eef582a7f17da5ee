import type { BalloonMemory } from "./devices/balloon";
import { type GuestMemory, isSafeRange } from "./memory";

const PAGE = 4096;

/** Options for ChunkedGuestMemory. */
export interface ChunkedGuestMemoryOptions {
  /** Guest-physical address of the first byte. */
  base?: number;
  /** Bytes per chunk: a multiple of 4 KiB (default 2 MiB). */
  chunkSize?: number;
}

/**
 * Guest RAM in fixed-size chunks, each its own ArrayBuffer, so that memory the guest gives up
 * through the balloon is really returned to the host: a chunk whose every page is ballooned
 * (or reported free) is dropped, and comes back zero-filled when the guest deflates or touches
 * it again (as an anonymous mapping after MADV_DONTNEED does).
 *
 * It is both the devices' GuestMemory and the balloon's BalloonMemory; a VMM with its own
 * memory slots implements the same two interfaces the same way.
 *
 * @example
 * ```ts
 * import { ChunkedGuestMemory, VirtioBalloon } from "@tskvm/virtio";
 * const ram = new ChunkedGuestMemory(256 << 20);
 * const balloon = new VirtioBalloon(ram);
 * ram.residentBytes; // 268435456 until the guest inflates
 * ```
 */
export class ChunkedGuestMemory implements GuestMemory, BalloonMemory {
  readonly base: number;
  readonly size: number;
  readonly chunkSize: number;
  private readonly chunks: (Uint8Array | undefined)[];
  /** Ballooned pages per chunk, and one bit per page. */
  private readonly ballooned: Uint32Array;
  private readonly pageBits: Uint8Array;
  private readonly pagesPerChunk: number;

  constructor(size: number, opts: ChunkedGuestMemoryOptions = {}) {
    this.base = opts.base ?? 0;
    this.chunkSize = opts.chunkSize ?? 2 << 20;
    if (this.chunkSize <= 0 || this.chunkSize % PAGE !== 0)
      throw new RangeError("chunkSize must be a multiple of 4 KiB");
    if (size <= 0 || size % PAGE !== 0) throw new RangeError("size must be a positive multiple of 4 KiB");
    this.size = size;
    const n = Math.ceil(size / this.chunkSize);
    this.chunks = Array.from({ length: n }, (_, i) => new Uint8Array(this.chunkLen(i)));
    this.ballooned = new Uint32Array(n);
    this.pageBits = new Uint8Array(Math.ceil(size / PAGE / 8));
    this.pagesPerChunk = this.chunkSize / PAGE;
  }

  private chunkLen(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }

  /** Host bytes currently allocated for guest RAM. */
  get residentBytes(): number {
    let n = 0;
    for (let i = 0; i < this.chunks.length; i++) if (this.chunks[i] !== undefined) n += this.chunkLen(i);
    return n;
  }

  /** The chunk holding offset `off`, allocated (zeroed) if it had been dropped. */
  private chunk(i: number): Uint8Array {
    let c = this.chunks[i];
    if (c === undefined) {
      c = new Uint8Array(this.chunkLen(i));
      this.chunks[i] = c;
    }
    return c;
  }

  /** Offset of [gpa, gpa+len) from base, or -1 when outside (overflow-safe). */
  private offset(gpa: number, len: number): number {
    if (!isSafeRange(gpa, len)) return -1;
    const off = gpa - this.base;
    return off < 0 || off > this.size - len ? -1 : off;
  }

  private copy(gpa: number, buf: Uint8Array, toGuest: boolean): boolean {
    const off = this.offset(gpa, buf.length);
    if (off < 0) return false;
    let done = 0;
    while (done < buf.length) {
      const at = off + done;
      const i = Math.floor(at / this.chunkSize);
      const inChunk = at - i * this.chunkSize;
      const n = Math.min(buf.length - done, this.chunkLen(i) - inChunk);
      const c = this.chunk(i);
      if (toGuest) c.set(buf.subarray(done, done + n), inChunk);
      else buf.set(c.subarray(inChunk, inChunk + n), done);
      done += n;
    }
    return true;
  }

  read(gpa: number, dst: Uint8Array): boolean {
    return this.copy(gpa, dst, false);
  }

  write(gpa: number, src: Uint8Array): boolean {
    return this.copy(gpa, src, true);
  }

  slice(gpa: number, len: number): Uint8Array | undefined {
    const off = this.offset(gpa, len);
    if (off < 0) return undefined;
    const i = Math.floor(off / this.chunkSize);
    const inChunk = off - i * this.chunkSize;
    if (inChunk + len > this.chunkLen(i)) return undefined;
    return this.chunk(i).subarray(inChunk, inChunk + len);
  }

  /** Whole pages of [gpa, gpa+len) as page indexes, or undefined when not page-aligned RAM. */
  private pages(gpa: number, len: number): [number, number] | undefined {
    const off = this.offset(gpa, len);
    if (off < 0 || off % PAGE !== 0 || len % PAGE !== 0 || len === 0) return undefined;
    return [off / PAGE, (off + len) / PAGE];
  }

  reclaim(gpa: number, len: number): boolean {
    const r = this.pages(gpa, len);
    if (r === undefined) return false;
    for (let p = r[0]; p < r[1]; p++) {
      const bit = 1 << (p & 7);
      if ((this.pageBits[p >>> 3]! & bit) !== 0) continue;
      this.pageBits[p >>> 3]! |= bit;
      const i = Math.floor(p / this.pagesPerChunk);
      this.ballooned[i]!++;
      // The guest gave the page up: its old contents must not come back on deflate.
      const c = this.chunks[i];
      if (c !== undefined)
        c.fill(0, (p - i * this.pagesPerChunk) * PAGE, (p - i * this.pagesPerChunk + 1) * PAGE);
      if (this.ballooned[i] === this.chunkLen(i) / PAGE) this.chunks[i] = undefined;
    }
    return true;
  }

  restore(gpa: number, len: number): void {
    const r = this.pages(gpa, len);
    if (r === undefined) return;
    for (let p = r[0]; p < r[1]; p++) {
      const bit = 1 << (p & 7);
      if ((this.pageBits[p >>> 3]! & bit) === 0) continue;
      this.pageBits[p >>> 3]! &= ~bit;
      const i = Math.floor(p / this.pagesPerChunk);
      this.ballooned[i]!--;
      this.chunk(i);
    }
  }

  discard(gpa: number, len: number): boolean {
    const r = this.pages(gpa, len);
    if (r === undefined) return false;
    // Free page reporting: drop whole chunks the range covers, zero the rest.
    for (let p = r[0]; p < r[1]; ) {
      const i = Math.floor(p / this.pagesPerChunk);
      const first = i * this.pagesPerChunk;
      const last = first + this.chunkLen(i) / PAGE;
      const end = Math.min(r[1], last);
      if (p === first && end === last) this.chunks[i] = undefined;
      else this.chunks[i]?.fill(0, (p - first) * PAGE, (end - first) * PAGE);
      p = end;
    }
    return true;
  }
}
