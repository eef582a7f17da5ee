import type { GuestMemory } from "../memory";

/** Largest host bounce buffer a cursor allocates for guest ranges that are not one host view. */
const BOUNCE = 64 * 1024;

/** One guest buffer of a descriptor chain, as the descriptor gave it (read once: no TOCTOU). */
export interface Segment {
  /** Guest-physical address (< 2^53; larger descriptor addresses are parsed as invalid). */
  readonly addr: number;
  readonly len: number;
}

/**
 * A parsed and validated descriptor chain: the device-readable buffers, then the
 * device-writable ones (virtio 1.2 2.7.4.2 orders them so), and the head index to return in
 * the used ring. Addresses are not yet checked against guest RAM: that happens at each access,
 * because memory can change between parse and use (virtio-queue's TOCTOU note).
 */
export class DescriptorChain {
  readonly readable: Segment[] = [];
  readonly writable: Segment[] = [];
  readableBytes = 0;
  writableBytes = 0;
  /** Number of descriptors walked, including an indirect-table descriptor. */
  descriptors = 0;
  /** Ring slots the chain occupies (packed rings advance the used index by this). */
  ringSlots = 1;
  /** Where the queue's avail cursor was before this chain was popped (for undoPop). */
  availPos = 0;
  /** Packed rings: the avail wrap counter before this chain was popped. */
  availWrap = true;

  /** head: the split ring head index, or the packed ring buffer id. */
  constructor(public head: number) {}

  /** A cursor over the device-readable bytes. */
  reader(mem: GuestMemory): ChainReader {
    return new ChainReader(mem, this.readable, this.readableBytes);
  }

  /** A cursor over the device-writable bytes. */
  writer(mem: GuestMemory): ChainWriter {
    return new ChainWriter(mem, this.writable, this.writableBytes);
  }
}

/** Sequential access to a list of guest segments; a failed guest access latches `faulted`. */
class Cursor {
  protected seg = 0;
  protected off = 0;
  /** Bytes consumed so far. */
  position = 0;
  /** True once a guest access failed (address not RAM): the request must answer with an error. */
  faulted = false;

  constructor(
    protected readonly mem: GuestMemory,
    protected readonly segs: readonly Segment[],
    /** Total bytes the segments describe. */
    readonly length: number,
  ) {}

  /** Bytes left. */
  get remaining(): number {
    return this.length - this.position;
  }

  /** Skip n bytes (clamped to what is left). */
  skip(n: number): number {
    return this.walk(Math.min(n, this.remaining), undefined, 0);
  }

  /**
   * Move through n bytes, calling op on each contiguous guest piece. Returns bytes done; stops
   * at the first failed access.
   */
  protected walk(
    n: number,
    op: ((addr: number, len: number, bufOff: number) => boolean) | undefined,
    bufOff: number,
  ): number {
    let done = 0;
    while (done < n && this.seg < this.segs.length) {
      const s = this.segs[this.seg]!;
      const take = Math.min(s.len - this.off, n - done);
      if (take > 0 && op !== undefined && !op(s.addr + this.off, take, bufOff + done)) {
        this.faulted = true;
        return done;
      }
      done += take;
      this.off += take;
      this.position += take;
      if (this.off >= s.len) {
        this.seg++;
        this.off = 0;
      }
    }
    return done;
  }
}

/** Reads the device-readable part of a chain. */
export class ChainReader extends Cursor {
  /** Read up to dst.length bytes; returns how many were read (short at the end or on a fault). */
  read(dst: Uint8Array): number {
    const n = Math.min(dst.length, this.remaining);
    return this.walk(n, (addr, len, o) => this.mem.read(addr, dst.subarray(o, o + len)), 0);
  }

  /**
   * Pass each contiguous guest piece of the next n bytes to fn as a live view (or a copy when
   * the guest range is not contiguous host memory). Returns bytes passed.
   */
  forEachView(n: number, fn: (view: Uint8Array, at: number) => void): number {
    n = Math.min(n, this.remaining);
    return this.walk(
      n,
      (addr, len, o) => {
        const v = this.mem.slice(addr, len);
        if (v !== undefined) {
          fn(v, o);
          return true;
        }
        // Not one contiguous host range (two slots, or not RAM): go piece by piece through a
        // bounded bounce buffer, so a hostile 4 GiB descriptor cannot make the host allocate 4 GiB.
        for (let done = 0; done < len; done += BOUNCE) {
          const n = Math.min(BOUNCE, len - done);
          let piece = this.mem.slice(addr + done, n);
          if (piece === undefined) {
            piece = new Uint8Array(n);
            if (!this.mem.read(addr + done, piece)) return false;
          }
          fn(piece, o + done);
        }
        return true;
      },
      0,
    );
  }
}

/** Writes the device-writable part of a chain. */
export class ChainWriter extends Cursor {
  /** Write up to src.length bytes; returns how many were written (short at the end or on a fault). */
  write(src: Uint8Array): number {
    const n = Math.min(src.length, this.remaining);
    return this.walk(n, (addr, len, o) => this.mem.write(addr, src.subarray(o, o + len)), 0);
  }

  /**
   * Let fill() produce the next n bytes straight into guest memory piece by piece (a live view,
   * or a bounce buffer written back when the range is not contiguous). fill returns false to fail.
   */
  fillViews(n: number, fill: (view: Uint8Array, at: number) => boolean): number {
    n = Math.min(n, this.remaining);
    return this.walk(
      n,
      (addr, len, o) => {
        const v = this.mem.slice(addr, len);
        if (v !== undefined) return fill(v, o);
        // Bounded bounce buffer, as in forEachView; check the range is RAM before filling.
        for (let done = 0; done < len; done += BOUNCE) {
          const n = Math.min(BOUNCE, len - done);
          const piece = this.mem.slice(addr + done, n);
          if (piece !== undefined) {
            if (!fill(piece, o + done)) return false;
            continue;
          }
          const tmp = new Uint8Array(n);
          if (!this.mem.read(addr + done, tmp)) return false;
          if (!fill(tmp, o + done) || !this.mem.write(addr + done, tmp)) return false;
        }
        return true;
      },
      0,
    );
  }
}
