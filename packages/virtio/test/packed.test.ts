import { describe, expect, it } from "vitest";
import {
  DescFlag,
  Feature,
  FlatGuestMemory,
  hasFeature,
  MmioTransport,
  PACKED_DESC_F_AVAIL,
  PACKED_DESC_F_USED,
  PackedQueue,
  RingEventFlags,
  VirtioRng,
} from "../src/index";
import { MmioDriverTransport, MockDriver, type MockPackedQueue, RecordingIrq } from "../src/testing/index";

const { NEXT, WRITE, INDIRECT } = DescFlag;
const AVAIL = PACKED_DESC_F_AVAIL;
const USED = PACKED_DESC_F_USED;

class RawPacked {
  readonly mem = new FlatGuestMemory(0x10_0000);
  readonly q: PackedQueue;
  readonly ring = 0x1000;
  readonly drv = 0x2000;
  readonly dev = 0x2100;
  constructor(readonly size = 4) {
    this.q = new PackedQueue(size, this.mem);
    this.q.descAddr = this.ring;
    this.q.availAddr = this.drv;
    this.q.usedAddr = this.dev;
    this.q.ready = true;
  }
  desc(i: number, addr: number, len: number, id: number, flags: number, table = this.ring): void {
    const d = new DataView(this.mem.bytes.buffer);
    const at = table + 16 * i;
    d.setUint32(at, addr, true);
    d.setUint32(at + 8, len, true);
    d.setUint16(at + 12, id, true);
    d.setUint16(at + 14, flags, true);
  }
  flags(i: number): number {
    return new DataView(this.mem.bytes.buffer).getUint16(this.ring + 16 * i + 14, true);
  }
  id(i: number): number {
    return new DataView(this.mem.bytes.buffer).getUint16(this.ring + 16 * i + 12, true);
  }
  event(flags: number, offWrap = 0): void {
    const d = new DataView(this.mem.bytes.buffer);
    d.setUint16(this.drv, offWrap, true);
    d.setUint16(this.drv + 2, flags, true);
  }
}

describe("packed virtqueue (virtio 1.2 2.8)", () => {
  it("2.8.1 a descriptor is available when AVAIL matches the wrap counter and USED does not", () => {
    const r = new RawPacked();
    r.desc(0, 0x8000, 8, 5, WRITE | USED); // wrong bits for wrap counter 1
    expect(r.q.pop()).toBeUndefined();
    r.desc(0, 0x8000, 8, 5, WRITE | AVAIL);
    const c = r.q.pop()!;
    expect(c.head).toBe(5);
    expect(c.writable).toEqual([{ addr: 0x8000, len: 8 }]);
  });

  it("2.8.6 a chain is consecutive descriptors; the buffer id comes from the last one", () => {
    const r = new RawPacked();
    r.desc(0, 0x8000, 16, 0, NEXT | AVAIL);
    r.desc(1, 0x9000, 4, 9, WRITE | AVAIL);
    const c = r.q.pop()!;
    expect(c.head).toBe(9);
    expect(c.ringSlots).toBe(2);
    expect(r.q.pushUsed(c, 4)).toBe(true);
    // 2.8.9? the used descriptor goes at the next used slot with both bits = the wrap counter.
    expect(r.flags(0)).toBe(AVAIL | USED | WRITE);
    expect(r.id(0)).toBe(9);
    expect(r.q.nextUsed).toBe(2);
  });

  it("2.8.1 wrap counters toggle when the ring wraps", () => {
    const r = new RawPacked(2);
    for (let round = 0; round < 3; round++) {
      const wrap = round % 2 === 0;
      for (let i = 0; i < 2; i++) r.desc(i, 0x8000, 8, i, WRITE | (wrap ? AVAIL : USED));
      for (let i = 0; i < 2; i++) {
        const c = r.q.pop()!;
        expect(c.head).toBe(i);
        r.q.pushUsed(c, 8);
        expect(r.flags(i) & (AVAIL | USED)).toBe(wrap ? AVAIL | USED : 0);
      }
      expect(r.q.pop()).toBeUndefined();
    }
  });

  it("2.8.4 a chain longer than the ring ends with ChainTooLong", () => {
    const r = new RawPacked(4);
    for (let i = 0; i < 4; i++) r.desc(i, 0x8000, 1, 0, NEXT | AVAIL);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error).toEqual({ kind: "ChainTooLong", limit: 4 });
  });

  it("2.8.7 indirect: a lone INDIRECT descriptor's table is used in order", () => {
    const r = new RawPacked();
    r.q.indirect = true;
    r.desc(0, 0x8000, 16, 0, 0, 0x6000);
    r.desc(1, 0x9000, 32, 0, WRITE, 0x6000);
    r.desc(0, 0x6000, 32, 3, INDIRECT | AVAIL);
    const c = r.q.pop()!;
    expect(c.head).toBe(3);
    expect(c.ringSlots).toBe(1);
    expect(c.readable).toEqual([{ addr: 0x8000, len: 16 }]);
    expect(c.writable).toEqual([{ addr: 0x9000, len: 32 }]);
  });

  it("2.8.7 INDIRECT with NEXT, or nested, is rejected", () => {
    const a = new RawPacked();
    a.q.indirect = true;
    a.desc(0, 0x6000, 16, 0, INDIRECT | NEXT | AVAIL);
    expect(a.q.pop()).toBeUndefined();
    expect(a.q.error?.kind).toBe("IndirectWithNext");
    const b = new RawPacked();
    b.q.indirect = true;
    b.desc(0, 0x6000, 16, 0, INDIRECT, 0x6000);
    b.desc(0, 0x6000, 16, 0, INDIRECT | AVAIL);
    expect(b.q.pop()).toBeUndefined();
    expect(b.q.error?.kind).toBe("NestedIndirect");
  });

  it("2.8.10 driver event suppression: DISABLE suppresses, ENABLE notifies", () => {
    const r = new RawPacked();
    r.desc(0, 0x8000, 8, 0, WRITE | AVAIL);
    r.desc(1, 0x8000, 8, 1, WRITE | AVAIL);
    r.event(RingEventFlags.DISABLE);
    r.q.pushUsed(r.q.pop()!, 0);
    expect(r.q.needsNotification()).toBe(false);
    r.event(RingEventFlags.ENABLE);
    r.q.pushUsed(r.q.pop()!, 0);
    expect(r.q.needsNotification()).toBe(true);
  });

  it("2.8.10 EVENT_IDX: DESC notifies when the used index passes desc_event_off", () => {
    const r = new RawPacked(8);
    r.q.eventIdx = true;
    for (let i = 0; i < 8; i++) r.desc(i, 0x8000, 8, i, WRITE | AVAIL);
    r.event(RingEventFlags.DESC, (1 << 15) | 3); // wrap 1, offset 3
    const step = () => {
      r.q.pushUsed(r.q.pop()!, 0);
      return r.q.needsNotification();
    };
    expect(step()).toBe(true); // first decision
    expect(step()).toBe(false); // used slot 1
    expect(step()).toBe(false); // slot 2
    expect(step()).toBe(true); // slot 3 written: the event offset
    expect(step()).toBe(false);
  });

  it("RING_PACKED is offered only when the transport enables it, and then the driver uses it", () => {
    const mem = new FlatGuestMemory(1 << 20);
    const plain = new MockDriver(mem, new MmioDriverTransport(new MmioTransport(new VirtioRng(), mem)));
    plain.init();
    expect(hasFeature(plain.features, Feature.RING_PACKED)).toBe(false);
    const irq = new RecordingIrq();
    const mmio = new MmioTransport(new VirtioRng(), mem, irq, { packedRings: true });
    const drv = new MockDriver(mem, new MmioDriverTransport(mmio, irq));
    expect(drv.init({ queueSize: 4 })).toBe(true);
    expect(drv.packed).toBe(true);
    const q = drv.queue(0) as MockPackedQueue;
    // Ten requests through a 4-entry ring: wraps twice, with and without indirect tables.
    for (let i = 0; i < 10; i++) {
      expect(q.add([], [8, 8], i, { indirect: i % 2 === 0 })).toBe(true);
      expect(q.used()).toMatchObject([{ token: i, len: 16 }]);
      drv.tryRecycle();
    }
    expect(mmio.core.queues[0]).toBeInstanceOf(PackedQueue);
    // A reset goes back to split rings.
    drv.transport.reset();
    expect(mmio.core.queues[0]).not.toBeInstanceOf(PackedQueue);
  });
});
