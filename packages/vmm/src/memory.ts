/**
 * Guest memory as the loaders and devices see it. Declared here, consumer-side (vm-memory's
 * rule: access, never manage), with the same shape as `@tskvm/virtio`'s `GuestMemory`, so the
 * kvm-api slot-backed memory can stand in for it structurally when the layers are wired.
 */

/** Guest-physical memory access. Every range is checked: false means nothing was read/written. */
export interface GuestMemory {
  /** Copy guest bytes [gpa, gpa + dst.length) into dst. False if any byte is not RAM. */
  read(gpa: number, dst: Uint8Array): boolean;
  /** Copy src into guest bytes [gpa, gpa + src.length). False (nothing written) if any byte is not RAM. */
  write(gpa: number, src: Uint8Array): boolean;
}

/** One RAM range of the guest-physical address space. */
export interface RamRange {
  base: number;
  size: number;
}

/** Whether gpa and len are non-negative safe integers whose end does not pass 2^53. */
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
 * Guest RAM as one host buffer per RAM range (the ranges come from the machine layout: RAM below
 * the 32-bit MMIO hole, and the rest above 4 GiB). Used by the loaders' tests and by
 * `createVm` until kvm-api memory slots take its place; each range becomes one slot then.
 *
 * @example
 * ```ts
 * const ram = new GuestRam([{ base: 0, size: 1 << 20 }]);
 * ram.write(0x1000, new Uint8Array([1, 2])); // true
 * ram.write(0xfffff, new Uint8Array(2)); // false: the second byte is not RAM
 * ```
 */
export class GuestRam implements GuestMemory {
  readonly ranges: readonly RamRange[];
  readonly buffers: readonly Uint8Array[];

  constructor(ranges: readonly RamRange[]) {
    this.ranges = ranges.map((r) => ({ base: r.base, size: r.size }));
    this.buffers = this.ranges.map((r) => new Uint8Array(r.size));
  }

  /** Total bytes of RAM. */
  get size(): number {
    return this.ranges.reduce((n, r) => n + r.size, 0);
  }

  /** The buffer and offset holding [gpa, gpa + len) when it lies within one range. */
  locate(gpa: number, len: number): { buf: Uint8Array; off: number } | undefined {
    if (!isSafeRange(gpa, len)) return undefined;
    for (let i = 0; i < this.ranges.length; i++) {
      const r = this.ranges[i]!;
      // Overflow-safe containment: gpa >= base && len <= end - gpa.
      if (gpa >= r.base && gpa <= r.base + r.size && len <= r.base + r.size - gpa) {
        return { buf: this.buffers[i]!, off: gpa - r.base };
      }
    }
    return undefined;
  }

  /**
   * A live view of [gpa, gpa + len) when it lies in one RAM range, else undefined (the
   * `slice` of `@tskvm/virtio`'s GuestMemory: devices fall back to read/write).
   */
  slice(gpa: number, len: number): Uint8Array | undefined {
    const at = this.locate(gpa, len);
    return at ? at.buf.subarray(at.off, at.off + len) : undefined;
  }

  read(gpa: number, dst: Uint8Array): boolean {
    const at = this.locate(gpa, dst.length);
    if (!at) return false;
    dst.set(at.buf.subarray(at.off, at.off + dst.length));
    return true;
  }

  write(gpa: number, src: Uint8Array): boolean {
    const at = this.locate(gpa, src.length);
    if (!at) return false;
    at.buf.set(src, at.off);
    return true;
  }
}
