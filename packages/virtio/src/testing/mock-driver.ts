import { DescFlag, Feature, Status, VIRTQ_USED_F_NO_NOTIFY } from "../constants";
import { andFeatures, type Features, hasFeature } from "../features";
import type { GuestMemory } from "../memory";
import type { DriverTransport } from "./driver-transport";
import { MockPackedQueue } from "./mock-packed";

/** A completed buffer as the driver sees it. */
export interface UsedBuffer {
  /** The token given to add(). */
  token: number;
  /** used.len as the device wrote it. */
  len: number;
  /** The device-writable buffers, read back from guest memory (their full lengths). */
  in: Uint8Array[];
}

/** Options for MockQueue.add. */
export interface AddOptions {
  /** Put the chain in an indirect table (needs INDIRECT_DESC). */
  indirect?: boolean;
  /** Do not notify the device (the caller will call kick()). */
  noKick?: boolean;
}

const TWO_32 = 0x1_0000_0000;

/** A bump allocator over a guest range; `reset` frees everything. */
export class Arena {
  private next: number;
  constructor(
    readonly base: number,
    readonly end: number,
  ) {
    this.next = base;
  }
  alloc(len: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + len > this.end) throw new Error(`MockDriver arena exhausted (${len} bytes)`);
    this.next = at + len;
    return at;
  }
  get mark(): number {
    return this.next;
  }
  rewind(to: number): void {
    this.next = to;
  }
}

/**
 * The driver side of one split virtqueue, laid out in guest memory as Linux's virtio_ring.c
 * lays it out (descriptor table, avail ring with used_event, used ring with avail_event).
 */
export class MockQueue {
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  private readonly free: number[] = [];
  private availIdx = 0;
  private lastUsed = 0;
  private kickedAvail = 0;
  private readonly inflight = new Map<number, { token: number; ins: { addr: number; len: number }[] }>();
  /** Notifications sent to the device. */
  kicks = 0;

  constructor(
    readonly driver: MockDriver,
    readonly index: number,
    readonly size: number,
  ) {
    const a = driver.arena;
    this.descAddr = a.alloc(16 * size, 16);
    this.availAddr = a.alloc(6 + 2 * size, 2);
    this.usedAddr = a.alloc(6 + 8 * size, 4);
    driver.fill(this.descAddr, 16 * size + 0);
    driver.fill(this.availAddr, 6 + 2 * size);
    driver.fill(this.usedAddr, 6 + 8 * size);
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
  }

  get numFree(): number {
    return this.free.length;
  }

  get inFlight(): number {
    return this.inflight.size;
  }

  private get mem(): GuestMemory {
    return this.driver.mem;
  }

  private writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const b = new Uint8Array(16);
    const d = new DataView(b.buffer);
    d.setUint32(0, addr % TWO_32, true);
    d.setUint32(4, Math.floor(addr / TWO_32), true);
    d.setUint32(8, len, true);
    d.setUint16(12, flags, true);
    d.setUint16(14, next, true);
    this.mem.write(table + 16 * i, b);
  }

  /**
   * Make a buffer available: out buffers (device-readable, contents copied into guest memory)
   * then in buffers of the given lengths (device-writable), like virtqueue_add_sgs. Returns
   * false when the ring has no room (the caller must reap used buffers first).
   */
  add(out: Uint8Array[], inLens: number[], token: number, opts: AddOptions = {}): boolean {
    const n = out.length + inLens.length;
    if (n === 0) throw new Error("MockQueue.add: empty chain");
    const indirect = opts.indirect === true;
    if (this.free.length < (indirect ? 1 : n)) return false;
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
    if (segs.length === 0) throw new Error("MockQueue.addSegments: empty chain");
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
    if (this.free.length < (indirect ? 1 : n)) return false;
    let head: number;
    if (indirect) {
      const table = this.driver.arena.alloc(16 * n, 16);
      segs.forEach((s, i) => {
        const flags = (s.write ? DescFlag.WRITE : 0) | (i + 1 < n ? DescFlag.NEXT : 0);
        this.writeDesc(table, i, s.addr, s.len, flags, i + 1 < n ? i + 1 : 0);
      });
      head = this.free.pop()!;
      this.writeDesc(this.descAddr, head, table, 16 * n, DescFlag.INDIRECT, 0);
    } else {
      const ids = segs.map(() => this.free.pop()!);
      head = ids[0]!;
      segs.forEach((s, i) => {
        const flags = (s.write ? DescFlag.WRITE : 0) | (i + 1 < n ? DescFlag.NEXT : 0);
        this.writeDesc(this.descAddr, ids[i]!, s.addr, s.len, flags, i + 1 < n ? ids[i + 1]! : 0);
      });
    }
    this.inflight.set(head, { token, ins });
    // Ring entry first, then idx: the device must see the entry when it sees the index.
    this.driver.writeU16(this.availAddr + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.driver.writeU16(this.availAddr + 2, this.availIdx);
    if (!opts.noKick) this.kick();
    return true;
  }

  /** virtqueue_kick_prepare + notify: respects EVENT_IDX avail_event and used.flags NO_NOTIFY. */
  kick(): boolean {
    const newIdx = this.availIdx;
    const oldIdx = this.kickedAvail;
    this.kickedAvail = newIdx;
    let needed: boolean;
    if (this.driver.eventIdx) {
      const ev = this.driver.readU16(this.usedAddr + 4 + 8 * this.size);
      needed = ((newIdx - ev - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    } else {
      needed = (this.driver.readU16(this.usedAddr) & VIRTQ_USED_F_NO_NOTIFY) === 0;
    }
    if (needed) {
      this.kicks++;
      this.driver.transport.notify(this.index);
    }
    return needed;
  }

  /** Reap used buffers (virtqueue_get_buf), freeing their descriptors. */
  used(): UsedBuffer[] {
    const out: UsedBuffer[] = [];
    const usedIdx = this.driver.readU16(this.usedAddr + 2);
    while (this.lastUsed !== usedIdx) {
      const at = this.usedAddr + 4 + 8 * (this.lastUsed % this.size);
      const b = new Uint8Array(8);
      this.mem.read(at, b);
      const d = new DataView(b.buffer);
      const id = d.getUint32(0, true);
      const len = d.getUint32(4, true);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      const f = this.inflight.get(id);
      if (f === undefined) throw new Error(`device returned unknown head ${id}`);
      this.inflight.delete(id);
      this.freeChain(id);
      const ins = f.ins.map((s) => {
        const v = new Uint8Array(s.len);
        this.mem.read(s.addr, v);
        return v;
      });
      out.push({ token: f.token, len, in: ins });
    }
    // With EVENT_IDX, ask for an interrupt at the next used entry (virtqueue_enable_cb).
    if (this.driver.eventIdx) this.driver.writeU16(this.availAddr + 4 + 2 * this.size, this.lastUsed);
    return out;
  }

  private freeChain(head: number): void {
    let i = head;
    for (let n = 0; n < this.size; n++) {
      this.free.push(i);
      const b = new Uint8Array(16);
      this.mem.read(this.descAddr + 16 * i, b);
      const d = new DataView(b.buffer);
      if ((d.getUint16(12, true) & DescFlag.NEXT) === 0) return;
      i = d.getUint16(14, true);
    }
  }

  /** Set avail.flags (VIRTQ_AVAIL_F_NO_INTERRUPT = 1) as virtqueue_disable_cb does without EVENT_IDX. */
  setAvailFlags(flags: number): void {
    this.driver.writeU16(this.availAddr, flags);
  }

  /** Set used_event (2.7.10): interrupt me when used.idx passes this value. */
  setUsedEvent(v: number): void {
    this.driver.writeU16(this.availAddr + 4 + 2 * this.size, v);
  }
}

/** Options for MockDriver.init. */
export interface InitOptions {
  /** Features the driver understands; the acked set is these & offered. Default: everything offered. */
  want?: Features;
  /** Number of queues to set up (default: all the device offers, stopping at the first size 0). */
  queues?: number;
  /** Cap each queue's size (default: the device maximum, at most 256). */
  queueSize?: number;
  /**
   * Runs after the queues are set up and before DRIVER_OK, e.g. to prime a queue and kick it
   * as Linux's virtio_balloon does with its stats buffer in probe.
   */
  beforeDriverOk?: (drv: MockDriver) => void;
}

/**
 * A virtio driver that writes real descriptor tables and rings into guest memory and drives a
 * device through its transport registers as Linux does: reset, ACKNOWLEDGE, DRIVER, feature
 * negotiation, FEATURES_OK (re-read), queue setup, DRIVER_OK (virtio 1.2 3.1.1).
 *
 * @example
 * ```ts
 * import { FlatGuestMemory, MmioTransport, VirtioRng } from "@tskvm/virtio";
 * import { MmioDriverTransport, MockDriver } from "@tskvm/virtio/testing";
 * const mem = new FlatGuestMemory(1 << 20);
 * const drv = new MockDriver(mem, new MmioDriverTransport(new MmioTransport(new VirtioRng(), mem)));
 * drv.init();
 * drv.queue(0).add([], [16], 1);
 * drv.queue(0).used()[0]?.len; // 16
 * ```
 */
/** A driver-side queue, split or packed. */
export type DriverQueue = MockQueue | MockPackedQueue;

export class MockDriver {
  readonly arena: Arena;
  readonly queues: DriverQueue[] = [];
  features: Features = { lo: 0, hi: 0 };
  private ringMark = 0;

  constructor(
    readonly mem: GuestMemory,
    readonly transport: DriverTransport,
    arenaBase = 0x1000,
    arenaSize = 0xf_f000,
  ) {
    this.arena = new Arena(arenaBase, arenaBase + arenaSize);
  }

  get eventIdx(): boolean {
    return hasFeature(this.features, Feature.EVENT_IDX);
  }

  get packed(): boolean {
    return hasFeature(this.features, Feature.RING_PACKED);
  }

  queue(i: number): DriverQueue {
    const q = this.queues[i];
    if (q === undefined) throw new Error(`queue ${i} not set up`);
    return q;
  }

  writeU16(gpa: number, v: number): void {
    this.mem.write(gpa, new Uint8Array([v & 0xff, (v >>> 8) & 0xff]));
  }

  readU16(gpa: number): number {
    const b = new Uint8Array(2);
    this.mem.read(gpa, b);
    return b[0]! | (b[1]! << 8);
  }

  fill(gpa: number, len: number): void {
    this.mem.write(gpa, new Uint8Array(len));
  }

  /** Steps 1-6 of 3.1.1; returns false if the device refused FEATURES_OK. */
  negotiate(want?: Features): boolean {
    const t = this.transport;
    t.reset();
    t.setStatus(Status.ACKNOWLEDGE);
    t.setStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    const offered = t.getFeatures();
    this.features = want === undefined ? offered : andFeatures(offered, want);
    t.setFeatures(this.features);
    t.setStatus(t.getStatus() | Status.FEATURES_OK);
    return (t.getStatus() & Status.FEATURES_OK) !== 0;
  }

  /** The whole 3.1.1 sequence; returns false if any step failed. */
  init(opts: InitOptions = {}): boolean {
    this.queues.length = 0;
    this.arena.rewind(this.arena.base);
    if (!this.negotiate(opts.want)) return false;
    const t = this.transport;
    const limit = opts.queues ?? 64;
    for (let i = 0; i < limit; i++) {
      const max = t.queueMax(i);
      if (max === 0) break;
      const size = Math.min(max, opts.queueSize ?? 256);
      const q = this.packed ? new MockPackedQueue(this, i, size) : new MockQueue(this, i, size);
      t.setupQueue(i, size, q.descAddr, q.availAddr, q.usedAddr);
      this.queues.push(q);
    }
    this.ringMark = this.arena.mark;
    opts.beforeDriverOk?.(this);
    t.setStatus(t.getStatus() | Status.DRIVER_OK);
    return (t.getStatus() & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) === Status.DRIVER_OK;
  }

  /**
   * RING_RESET (2.6.1): reset queue i, check it reads back as reset, and set it up afresh (new
   * rings, indices from 0) as virtio_ring's virtqueue_reset does. Returns false if the device refused.
   */
  resetQueue(i: number): boolean {
    const old = this.queue(i);
    if (this.transport.resetQueue(i) !== 1 || this.transport.queueEnabled(i)) return false;
    const q = this.packed ? new MockPackedQueue(this, i, old.size) : new MockQueue(this, i, old.size);
    this.transport.setupQueue(i, q.size, q.descAddr, q.availAddr, q.usedAddr);
    this.queues[i] = q;
    this.ringMark = this.arena.mark;
    return this.transport.queueEnabled(i);
  }

  /** Free all buffer memory (only when no buffer is in flight). */
  recycle(): void {
    if (this.queues.some((q) => q.inFlight > 0)) throw new Error("MockDriver.recycle with buffers in flight");
    this.arena.rewind(this.ringMark);
  }

  /** Recycle buffer memory if nothing is in flight; returns whether it did. */
  tryRecycle(): boolean {
    if (this.queues.some((q) => q.inFlight > 0)) return false;
    this.arena.rewind(this.ringMark);
    return true;
  }

  /** Whether DEVICE_NEEDS_RESET is set. */
  get needsReset(): boolean {
    return (this.transport.getStatus() & Status.DEVICE_NEEDS_RESET) !== 0;
  }

  /**
   * Read a device config field consistently (2.5.1): retry while config_generation changes.
   */
  readConfigStable(offset: number, size: number): number {
    for (;;) {
      const g = this.transport.configGeneration();
      const v = this.transport.configRead(offset, size);
      if (this.transport.configGeneration() === g) return v;
    }
  }
}
