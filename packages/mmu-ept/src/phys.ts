/**
 * The physical-memory reader the walkers use, and two implementations: a flat buffer (tests, simple
 * emulators) and an adapter over page-granular RAM views with MMIO (the shape `@tskvm/cpu-x86` declares
 * as `PhysicalMemory`). Paging-structure entries are always naturally aligned, so 32-bit accesses at
 * 4-aligned addresses are all the walkers need: 64-bit entries are read as two halves.
 */

/** Physical memory as the walkers see it. Values are 32-bit, returned as signed int32 (`| 0`). */
export interface PhysMem {
  /** Reads the little-endian 32-bit word at `pa` (4-aligned). */
  read32(pa: number): number;
  /** Writes the little-endian 32-bit word at `pa` (4-aligned). */
  write32(pa: number, value: number): void;
  /**
   * Atomically replaces the word at `pa` with `replacement` if it equals `expected`; returns the word
   * found. Used for A/D updates so another vCPU's concurrent change of the entry is never lost
   * (SDM Vol. 3A 4.8: the processor sets A/D with locked operations). Optional: without it the walker
   * reads and writes.
   */
  cmpxchg32?(pa: number, expected: number, replacement: number): number;
}

/**
 * Physical memory as one buffer starting at physical address 0. Reads beyond it return all ones (no
 * device answers there); writes beyond it are dropped. With a SharedArrayBuffer, `cmpxchg32` uses
 * `Atomics.compareExchange`.
 *
 * @example
 * const mem = new FlatPhysMem(new ArrayBuffer(1 << 20));
 * mem.write32(0x1000, 0x2003);
 * mem.read32(0x1000); // 0x2003
 */
export class FlatPhysMem implements PhysMem {
  readonly i32: Int32Array;
  private readonly shared: boolean;
  private readonly limit: number;

  constructor(buffer: ArrayBuffer | SharedArrayBuffer) {
    this.i32 = new Int32Array(buffer, 0, buffer.byteLength >>> 2);
    this.shared = typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
    this.limit = this.i32.length * 4;
  }

  read32(pa: number): number {
    if (pa < 0 || pa >= this.limit) return -1;
    return this.i32[pa >>> 2]! | 0;
  }

  write32(pa: number, value: number): void {
    if (pa < 0 || pa >= this.limit) return;
    this.i32[pa >>> 2] = value;
  }

  cmpxchg32(pa: number, expected: number, replacement: number): number {
    if (pa < 0 || pa >= this.limit) return -1;
    const i = pa >>> 2;
    if (this.shared) return Atomics.compareExchange(this.i32, i, expected | 0, replacement | 0);
    const old = this.i32[i]! | 0;
    if (old === (expected | 0)) this.i32[i] = replacement;
    return old;
  }

  /** Writes a 64-bit entry given as halves (test and setup helper). */
  write64(pa: number, lo: number, hi: number): void {
    this.write32(pa, lo);
    this.write32(pa + 4, hi);
  }
}

/** A 4 KiB window of RAM: `u8[offset .. offset + 4095]` is the page (cpu-x86's `RamView`). */
export interface RamWindow {
  u8: Uint8Array;
  offset: number;
}

/** Page-granular RAM plus MMIO: the shape of cpu-x86's `PhysicalMemory`. */
export interface RamPages {
  ramPage(pfn: number, out: RamWindow): boolean;
  mmioRead(pa: number, size: 1 | 2 | 4): number;
  mmioWrite(pa: number, size: 1 | 2 | 4, value: number): void;
}

/**
 * Adapts page-granular RAM views (cpu-x86's `PhysicalMemory`) to `PhysMem`. Paging-structure reads
 * that land outside RAM go to MMIO, as on hardware. When the RAM buffer is a SharedArrayBuffer and the
 * word is aligned in it, A/D updates are atomic.
 */
export class RamPagesPhysMem implements PhysMem {
  private readonly win: RamWindow = { u8: new Uint8Array(0), offset: 0 };
  /** The Int32Array over the last shared buffer seen, so atomics allocate once per buffer. */
  private lastBuf: ArrayBufferLike | null = null;
  private lastI32: Int32Array = new Int32Array(0);

  constructor(private readonly mem: RamPages) {}

  read32(pa: number): number {
    const w = this.win;
    if (this.mem.ramPage(Math.floor(pa / 4096), w)) {
      const o = w.offset + (pa & 0xfff);
      const u = w.u8;
      return u[o]! | (u[o + 1]! << 8) | (u[o + 2]! << 16) | (u[o + 3]! << 24);
    }
    return this.mem.mmioRead(pa, 4) | 0;
  }

  write32(pa: number, value: number): void {
    const w = this.win;
    if (this.mem.ramPage(Math.floor(pa / 4096), w)) {
      const o = w.offset + (pa & 0xfff);
      const u = w.u8;
      u[o] = value;
      u[o + 1] = value >>> 8;
      u[o + 2] = value >>> 16;
      u[o + 3] = value >>> 24;
    } else {
      this.mem.mmioWrite(pa, 4, value);
    }
  }

  cmpxchg32(pa: number, expected: number, replacement: number): number {
    const w = this.win;
    if (!this.mem.ramPage(Math.floor(pa / 4096), w)) {
      // A paging structure in MMIO: no atomicity exists to give; read-compare-write.
      const old = this.mem.mmioRead(pa, 4) | 0;
      if (old === (expected | 0)) this.mem.mmioWrite(pa, 4, replacement);
      return old;
    }
    const u = w.u8;
    const byteOff = u.byteOffset + w.offset + (pa & 0xfff);
    const buf = u.buffer;
    if (typeof SharedArrayBuffer !== "undefined" && buf instanceof SharedArrayBuffer && (byteOff & 3) === 0) {
      if (this.lastBuf !== buf) {
        this.lastBuf = buf;
        this.lastI32 = new Int32Array(buf, 0, buf.byteLength >>> 2);
      }
      return Atomics.compareExchange(this.lastI32, byteOff >>> 2, expected | 0, replacement | 0);
    }
    const o = w.offset + (pa & 0xfff);
    const old = u[o]! | (u[o + 1]! << 8) | (u[o + 2]! << 16) | (u[o + 3]! << 24);
    if (old === (expected | 0)) {
      u[o] = replacement;
      u[o + 1] = replacement >>> 8;
      u[o + 2] = replacement >>> 16;
      u[o + 3] = replacement >>> 24;
    }
    return old;
  }
}
