import { DescFlag } from "../constants";
import type { GuestMemory } from "../memory";
import { PACKED_DESC_F_AVAIL, PACKED_DESC_F_USED, RingEventFlags } from "../queue/packed";
import type { AddOptions, MockDriver, UsedBuffer } from "./mock-driver";

const TWO_32 = 0x1_0000_0000;

/**
 * The driver side of one packed virtqueue (virtio 1.2 2.8), as virtio_ring.c's packed path
 * does it: descriptors written in ring order with the avail/used bits of the current wrap
 * counter, the head's flags written last, buffer ids from a free pool.
 */
export class MockPackedQueue {
  readonly descAddr: number;
  /** Driver event suppression area. */
  readonly availAddr: number;
  /** Device event suppression area. */
  readonly usedAddr: number;
  private nextAvail = 0;
  private availWrap = true;
  private lastUsed = 0;
  private usedWrap = true;
  private freeDescs: number;
  private readonly freeIds: number[] = [];
  private readonly inflight = new Map<
    number,
    { token: number; ins: { addr: number; len: number }[]; slots: number }
  >();
  kicks = 0;

  constructor(
    readonly driver: MockDriver,
    readonly index: number,
    readonly size: number,
  ) {
    const a = driver.arena;
    this.descAddr = a.alloc(16 * size, 16);
    this.availAddr = a.alloc(4, 4);
    this.usedAddr = a.alloc(4, 4);
    driver.fill(this.descAddr, 16 * size);
    driver.fill(this.availAddr, 4);
    driver.fill(this.usedAddr, 4);
    this.freeDescs = size;
    for (let i = size - 1; i >= 0; i--) this.freeIds.push(i);
  }

  get numFree(): number {
    return this.freeDescs;
  }

  get inFlight(): number {
    return this.inflight.size;
  }

  private get mem(): GuestMemory {
    return this.driver.mem;
  }

  private writeDesc(
    table: number,
    i: number,
    addr: number,
    len: number,
    id: number,
    flags: number,
    withFlags = true,
  ): void {
    const b = new Uint8Array(16);
    const d = new DataView(b.buffer);
    d.setUint32(0, addr % TWO_32, true);
    d.setUint32(4, Math.floor(addr / TWO_32), true);
    d.setUint32(8, len, true);
    d.setUint16(12, id, true);
    d.setUint16(14, flags, true);
    this.mem.write(table + 16 * i, withFlags ? b : b.subarray(0, 14));
  }

  private wrapBits(wrap: boolean): number {
    // 2.8.1: available when AVAIL == wrap counter and USED != it.
    return wrap ? PACKED_DESC_F_AVAIL : PACKED_DESC_F_USED;
  }

  add(out: Uint8Array[], inLens: number[], token: number, opts: AddOptions = {}): boolean {
    const n = out.length + inLens.length;
    if (n === 0) throw new Error("MockPackedQueue.add: empty chain");
    const indirect = opts.indirect === true;
    const slots = indirect ? 1 : n;
    if (this.freeDescs < slots || this.freeIds.length === 0) return false;
    const segs: { addr: number; len: number; write: boolean }[] = [];
    for (const o of out) {
      const addr = this.driver.arena.alloc(Math.max(o.length, 1), 8);
      this.mem.write(addr, o);
      segs.push({ addr, len: o.length, write: false });
    }
    const ins: { addr: number; len: number }[] = [];
    for (const len of inLens) {
      const addr = this.driver.arena.alloc(Math.max(len, 1), 8);
      this.driver.fill(addr, len);
      segs.push({ addr, len, write: true });
      ins.push({ addr, len });
    }
    return this.place(segs, ins, token, opts);
  }

  /**
   * Make a buffer of the given guest ranges available as they are (no copy, no allocation),
   * as Linux does when it posts pages it owns (free page reporting, hinting). Device-writable
   * ranges are not read back in used().
   */
  addSegments(
    segs: { addr: number; len: number; write: boolean }[],
    token: number,
    opts: AddOptions = {},
  ): boolean {
    if (segs.length === 0) throw new Error("MockPackedQueue.addSegments: empty chain");
    return this.place(segs, [], token, opts);
  }

  private place(
    segs: { addr: number; len: number; write: boolean }[],
    ins: { addr: number; len: number }[],
    token: number,
    opts: AddOptions,
  ): boolean {
    const n = segs.length;
    const indirect = opts.indirect === true;
    const slots = indirect ? 1 : n;
    if (this.freeDescs < slots || this.freeIds.length === 0) return false;
    const id = this.freeIds.pop()!;
    const headIdx = this.nextAvail;
    const headWrap = this.availWrap;
    let headFlags = 0;
    const put = (addr: number, len: number, flags: number) => {
      const f = flags | this.wrapBits(this.availWrap);
      const isHead = this.nextAvail === headIdx && this.availWrap === headWrap;
      if (isHead) headFlags = f;
      this.writeDesc(this.descAddr, this.nextAvail, addr, len, id, f, !isHead);
      this.nextAvail++;
      if (this.nextAvail >= this.size) {
        this.nextAvail = 0;
        this.availWrap = !this.availWrap;
      }
    };
    if (indirect) {
      const table = this.driver.arena.alloc(16 * n, 16);
      segs.forEach((s, i) => {
        this.writeDesc(table, i, s.addr, s.len, 0, s.write ? DescFlag.WRITE : 0);
      });
      put(table, 16 * n, DescFlag.INDIRECT);
    } else {
      segs.forEach((s, i) => {
        put(s.addr, s.len, (s.write ? DescFlag.WRITE : 0) | (i + 1 < n ? DescFlag.NEXT : 0));
      });
    }
    // The head's flags last: that write makes the whole chain available.
    const hb = new Uint8Array([headFlags & 0xff, headFlags >>> 8]);
    this.mem.write(this.descAddr + 16 * headIdx + 14, hb);
    this.freeDescs -= slots;
    this.inflight.set(id, { token, ins, slots });
    if (!opts.noKick) this.kick();
    return true;
  }

  /** Notify unless the device disabled notifications in its event suppression area. */
  kick(): boolean {
    const flags = this.driver.readU16(this.usedAddr + 2) & 3;
    if (flags === RingEventFlags.DISABLE) return false;
    this.kicks++;
    this.driver.transport.notify(this.index);
    return true;
  }

  used(): UsedBuffer[] {
    const out: UsedBuffer[] = [];
    for (let guard = 0; guard < this.size; guard++) {
      const at = this.descAddr + 16 * this.lastUsed;
      const b = new Uint8Array(16);
      this.mem.read(at, b);
      const d = new DataView(b.buffer);
      const flags = d.getUint16(14, true);
      const avail = (flags & PACKED_DESC_F_AVAIL) !== 0;
      const used = (flags & PACKED_DESC_F_USED) !== 0;
      if (avail !== this.usedWrap || used !== this.usedWrap) break;
      const id = d.getUint16(12, true);
      const len = d.getUint32(8, true);
      const f = this.inflight.get(id);
      if (f === undefined) throw new Error(`device returned unknown buffer id ${id}`);
      this.inflight.delete(id);
      this.freeIds.push(id);
      this.freeDescs += f.slots;
      this.lastUsed += f.slots;
      if (this.lastUsed >= this.size) {
        this.lastUsed -= this.size;
        this.usedWrap = !this.usedWrap;
      }
      const ins = f.ins.map((s) => {
        const v = new Uint8Array(s.len);
        this.mem.read(s.addr, v);
        return v;
      });
      out.push({ token: f.token, len, in: ins });
    }
    return out;
  }

  /** The driver's event suppression (2.8.10): ENABLE 0, DISABLE 1, DESC 2 with off_wrap. */
  setEventSuppression(flags: number, offWrap = 0): void {
    this.driver.writeU16(this.availAddr, offWrap);
    this.driver.writeU16(this.availAddr + 2, flags);
  }
}
