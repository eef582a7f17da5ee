/**
 * The guest memory a device may touch, declared by the consumer (vm-memory's rule: access,
 * never manage). Every access is checked by the provider: an address range that is not wholly
 * guest RAM fails (returns false / undefined) instead of reaching host memory.
 *
 * Addresses are guest-physical numbers (< 2^53). Providers must compare without overflow:
 * `gpa >= base && len <= end - gpa`, never `gpa + len <= end` on unchecked inputs
 * (Firecracker CVE-2019-18960 was such a bounds check).
 */
export interface GuestMemory {
  /**
   * Copy guest bytes [gpa, gpa + dst.length) into dst. False (dst unspecified) if any byte is not RAM.
   * When guest RAM is shared with vCPU threads (SharedArrayBuffer), an aligned 2-byte access
   * must be single-copy atomic and ordered (Atomics on a Uint16Array): ring indices go through
   * it, and a torn `avail.idx` is a known DoS (rust-vmm vm-memory#93).
   */
  read(gpa: number, dst: Uint8Array): boolean;
  /** Copy src into guest bytes [gpa, gpa + src.length). False (nothing written) if any byte is not RAM. */
  write(gpa: number, src: Uint8Array): boolean;
  /**
   * A live view of guest bytes [gpa, gpa + len) when they are contiguous host memory (one slot),
   * else undefined. Callers fall back to read/write when undefined; a view must not be kept
   * past the current request (the balloon may take the memory away).
   */
  slice(gpa: number, len: number): Uint8Array | undefined;
}

/** Whether gpa and len are non-negative safe integers whose end does not pass 2^53 (no overflow). */
export function isSafeRange(gpa: number, len: number): boolean {
  return (
    Number.isSafeInteger(gpa) &&
    Number.isSafeInteger(len) &&
    gpa >= 0 &&
    len >= 0 &&
    gpa <= Number.MAX_SAFE_INTEGER - len
  );
}

/**
 * Guest RAM as one buffer mapped at a guest-physical base: for tests, fuzzers, benchmarks and
 * simple emulators. The VMM's slot-backed memory satisfies the same interface.
 *
 * @example
 * ```ts
 * import { FlatGuestMemory } from "@tskvm/virtio";
 * const mem = new FlatGuestMemory(1 << 20);
 * mem.write(0x1000, new Uint8Array([1, 2, 3])); // true
 * mem.write(0xfffff, new Uint8Array(2)); // false: the second byte is past the end
 * ```
 */
export class FlatGuestMemory implements GuestMemory {
  readonly bytes: Uint8Array;
  /** Number of accesses refused because they were out of range (fuzzers read it). */
  refused = 0;
  /** Halfword view for atomic ring-index accesses when the buffer is shared. */
  private readonly u16: Uint16Array | undefined;

  constructor(
    sizeOrBuffer: number | ArrayBuffer | SharedArrayBuffer | Uint8Array,
    readonly base = 0,
  ) {
    this.bytes =
      typeof sizeOrBuffer === "number"
        ? new Uint8Array(sizeOrBuffer)
        : sizeOrBuffer instanceof Uint8Array
          ? sizeOrBuffer
          : new Uint8Array(sizeOrBuffer);
    const b = this.bytes;
    this.u16 =
      typeof SharedArrayBuffer !== "undefined" &&
      b.buffer instanceof SharedArrayBuffer &&
      b.byteOffset % 2 === 0
        ? new Uint16Array(b.buffer, b.byteOffset, b.length >>> 1)
        : undefined;
  }

  get size(): number {
    return this.bytes.length;
  }

  /** Offset of [gpa, gpa+len) in bytes, or -1 when any byte is outside. Overflow-safe. */
  private offset(gpa: number, len: number): number {
    if (!isSafeRange(gpa, len)) return -1;
    const off = gpa - this.base;
    if (off < 0 || off > this.bytes.length - len) return -1;
    return off;
  }

  read(gpa: number, dst: Uint8Array): boolean {
    const off = this.offset(gpa, dst.length);
    if (off < 0) {
      this.refused++;
      return false;
    }
    if (this.u16 !== undefined && dst.length === 2 && off % 2 === 0) {
      // Single-copy atomic and sequentially consistent: no torn ring index (see the interface).
      const v = Atomics.load(this.u16, off >>> 1);
      dst[0] = v & 0xff; // little-endian hosts only: the same assumption DataView-free code makes
      dst[1] = v >>> 8;
      return true;
    }
    dst.set(this.bytes.subarray(off, off + dst.length));
    return true;
  }

  write(gpa: number, src: Uint8Array): boolean {
    const off = this.offset(gpa, src.length);
    if (off < 0) {
      this.refused++;
      return false;
    }
    if (this.u16 !== undefined && src.length === 2 && off % 2 === 0) {
      Atomics.store(this.u16, off >>> 1, src[0]! | (src[1]! << 8));
      return true;
    }
    this.bytes.set(src, off);
    return true;
  }

  slice(gpa: number, len: number): Uint8Array | undefined {
    const off = this.offset(gpa, len);
    if (off < 0) {
      this.refused++;
      return undefined;
    }
    return this.bytes.subarray(off, off + len);
  }
}
