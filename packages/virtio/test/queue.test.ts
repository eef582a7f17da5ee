import { describe, expect, it } from "vitest";
import { DescFlag } from "../src/index";
import { RawRing } from "./helpers";

const { NEXT, WRITE, INDIRECT } = DescFlag;

describe("split virtqueue (virtio 1.2 2.7)", () => {
  it("2.7.5 a chain is read as readable then writable segments", () => {
    const r = new RawRing();
    r.setDesc(0, 0x8000, 16, NEXT, 3);
    r.setDesc(3, 0x9000, 100, NEXT | WRITE, 5);
    r.setDesc(5, 0xa000, 1, WRITE);
    r.publish(0);
    const c = r.q.pop()!;
    expect(c.head).toBe(0);
    expect(c.readable).toEqual([{ addr: 0x8000, len: 16 }]);
    expect(c.writable).toEqual([
      { addr: 0x9000, len: 100 },
      { addr: 0xa000, len: 1 },
    ]);
    expect(c.writableBytes).toBe(101);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error).toBeUndefined();
  });

  it("2.7.5.2 a chain longer than the queue size (a loop) ends with ChainTooLong", () => {
    const r = new RawRing(4);
    r.setDesc(0, 0x8000, 1, NEXT, 1);
    r.setDesc(1, 0x8000, 1, NEXT, 0);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error).toEqual({ kind: "ChainTooLong", limit: 4 });
  });

  it("2.7.5.2 a chain of exactly queue-size descriptors is accepted", () => {
    const r = new RawRing(4);
    for (let i = 0; i < 4; i++) r.setDesc(i, 0x8000 + i, 1, i < 3 ? NEXT : 0, i + 1);
    r.publish(0);
    expect(r.q.pop()?.readable.length).toBe(4);
  });

  it("2.7.5.2 next beyond the table ends with NextOutOfRange", () => {
    const r = new RawRing(4);
    r.setDesc(0, 0x8000, 1, NEXT, 4);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error?.kind).toBe("NextOutOfRange");
  });

  it("2.7.6 a head index beyond the queue size is an error", () => {
    const r = new RawRing(4);
    r.publish(9);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error?.kind).toBe("HeadOutOfRange");
  });

  it("2.7.6 avail.idx more than queue size ahead of the device is AvailIdxTooFar", () => {
    const r = new RawRing(4);
    r.u16(r.avail + 2, 5);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error).toMatchObject({ kind: "AvailIdxTooFar", availIdx: 5, size: 4 });
  });

  it("2.7.6 avail.idx wraps at 2^16", () => {
    const r = new RawRing(4);
    r.q.lastAvail = 0xffff;
    r.availIdx = 0xffff;
    r.setDesc(2, 0x8000, 8, 0);
    r.publish(2);
    expect(r.availIdx).toBe(0);
    expect(r.q.pop()?.head).toBe(2);
    expect(r.q.lastAvail).toBe(0);
  });

  it("2.7.4.2 a readable descriptor after a writable one is rejected", () => {
    const r = new RawRing();
    r.setDesc(0, 0x8000, 1, NEXT | WRITE, 1);
    r.setDesc(1, 0x8000, 1, 0);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error?.kind).toBe("ReadableAfterWritable");
  });

  it("2.7.4 a chain over 2^32 bytes in total is rejected", () => {
    const r = new RawRing();
    r.setDesc(0, 0x8000, 0xffff_ffff, NEXT, 1);
    r.setDesc(1, 0x8000, 1, 0);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error?.kind).toBe("ChainTooBig");
  });

  it("2.7.5.3.2 indirect: normal descriptors followed by one INDIRECT descriptor", () => {
    const r = new RawRing();
    r.q.indirect = true;
    const table = 0x6000;
    r.setDesc(0, 0x8000, 16, NEXT, 1);
    r.setDesc(1, table, 32, INDIRECT | WRITE); // the WRITE flag on it is ignored
    r.setDesc(0, 0x9000, 8, NEXT, 1, table);
    r.setDesc(1, 0xa000, 4, WRITE, 0, table);
    r.publish(0);
    const c = r.q.pop()!;
    expect(c.readable).toEqual([
      { addr: 0x8000, len: 16 },
      { addr: 0x9000, len: 8 },
    ]);
    expect(c.writable).toEqual([{ addr: 0xa000, len: 4 }]);
  });

  it("2.7.5.3.1 INDIRECT without the feature negotiated is rejected", () => {
    const r = new RawRing();
    r.setDesc(0, 0x6000, 16, INDIRECT);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error?.kind).toBe("IndirectNotNegotiated");
  });

  it("2.7.5.3.1 nested indirect tables are rejected", () => {
    const r = new RawRing();
    r.q.indirect = true;
    r.setDesc(0, 0x6000, 16, INDIRECT);
    r.setDesc(0, 0x6000, 16, INDIRECT, 0, 0x6000);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error?.kind).toBe("NestedIndirect");
  });

  it("2.7.5.3.1 INDIRECT together with NEXT is rejected", () => {
    const r = new RawRing();
    r.q.indirect = true;
    r.setDesc(0, 0x6000, 16, INDIRECT | NEXT, 1);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error?.kind).toBe("IndirectWithNext");
  });

  it("2.7.5.3.1 an indirect table length that is not whole descriptors is rejected", () => {
    const r = new RawRing();
    r.q.indirect = true;
    r.setDesc(0, 0x6000, 24, INDIRECT);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error).toEqual({ kind: "BadIndirectLength", len: 24 });
  });

  it("2.7.5.3 a loop inside an indirect table ends after the table's length", () => {
    const r = new RawRing();
    r.q.indirect = true;
    r.setDesc(0, 0x6000, 32, INDIRECT);
    r.setDesc(0, 0x9000, 8, NEXT, 1, 0x6000);
    r.setDesc(1, 0x9000, 8, NEXT, 0, 0x6000);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error).toEqual({ kind: "ChainTooLong", limit: 2 });
  });

  it("2.7.5 a descriptor table outside guest memory stops the queue, never throws", () => {
    const r = new RawRing(8, 0x5000);
    r.q.descAddr = 0x4ff0; // entry 1 lies beyond the end
    r.setDesc(0, 0x100, 1, NEXT, 1, 0x4ff0);
    r.publish(0);
    expect(r.q.pop()).toBeUndefined();
    expect(r.q.error).toEqual({ kind: "RingUnreadable", gpa: 0x5000 });
  });

  it("2.7.5 descriptor addresses >= 2^53 parse to an address no memory has", () => {
    const r = new RawRing();
    r.setDesc(0, 0xffff_ffff_0000 * 0x10000, 4, WRITE);
    r.publish(0);
    const c = r.q.pop()!;
    const w = c.writer(r.mem);
    expect(w.write(new Uint8Array(4))).toBe(0);
    expect(w.faulted).toBe(true);
  });

  it("2.7.8.2 the device sets len before updating used.idx", () => {
    const r = new RawRing();
    r.setDesc(0, 0x8000, 8, WRITE);
    r.publish(0);
    const c = r.q.pop()!;
    expect(r.q.pushUsed(c, 5)).toBe(true);
    expect(r.usedIdx()).toBe(1);
    expect(r.r32(r.used + 4)).toBe(0);
    expect(r.r32(r.used + 8)).toBe(5);
  });

  it("2.7.7.2 without EVENT_IDX: avail.flags NO_INTERRUPT suppresses, 0 notifies", () => {
    const r = new RawRing();
    r.setDesc(0, 0x8000, 8, WRITE);
    r.publish(0);
    r.q.pushUsed(r.q.pop()!, 0);
    expect(r.q.needsNotification()).toBe(true);
    r.u16(r.avail, 1);
    r.publish(0);
    r.q.pushUsed(r.q.pop()!, 0);
    expect(r.q.needsNotification()).toBe(false);
  });

  it("2.7.7.2 used_event: notify exactly when used.idx passes used_event", () => {
    const r = new RawRing();
    r.q.eventIdx = true;
    r.setDesc(0, 0x8000, 8, WRITE);
    r.u16(r.avail, 1); // the lower bit of flags is ignored with EVENT_IDX
    const step = () => {
      r.publish(0);
      r.q.pushUsed(r.q.pop()!, 0);
      return r.q.needsNotification();
    };
    r.setUsedEvent(0);
    expect(step()).toBe(true); // first notification (used.idx 0 -> 1 passes used_event 0)
    r.setUsedEvent(3);
    expect(step()).toBe(false); // used.idx 2
    expect(step()).toBe(false); // used.idx 3
    expect(step()).toBe(true); // used.idx 4: the entry at index 3 == used_event was written
    expect(step()).toBe(false);
  });

  it("2.7.10 avail_event: the device asks for a kick at the next avail index when idle", () => {
    const r = new RawRing();
    r.q.eventIdx = true;
    r.setDesc(0, 0x8000, 8, WRITE);
    r.publish(0);
    r.publish(0);
    expect(r.q.pop()).toBeDefined();
    expect(r.q.pop()).toBeDefined();
    expect(r.q.pop()).toBeUndefined();
    expect(r.availEvent()).toBe(2);
  });

  it("2.7 queue validity: size must be a power of two and rings aligned", () => {
    const r = new RawRing(8);
    expect(r.q.isValid()).toBe(true);
    r.q.size = 6;
    expect(r.q.isValid()).toBe(false);
    r.q.size = 8;
    r.q.usedAddr = 0x4002;
    expect(r.q.isValid()).toBe(false);
    r.q.usedAddr = 0x4000;
    r.q.descAddr = 0xffff0;
    expect(r.q.isValid()).toBe(false);
  });

  it("save -> load -> save round-trips and load rejects garbage", () => {
    const r = new RawRing();
    r.setDesc(0, 0x8000, 8, WRITE);
    r.publish(0);
    r.q.pushUsed(r.q.pop()!, 3);
    const s = r.q.save();
    const r2 = new RawRing();
    expect(r2.q.load(s)).toBe(true);
    expect(r2.q.save()).toEqual(s);
    expect(r2.q.load({ ...s, size: -1 })).toBe(false);
  });
});

describe("guest memory", () => {
  it("aligned 2-byte accesses on shared memory go through Atomics and round-trip", async () => {
    const { FlatGuestMemory } = await import("../src/index");
    const mem = new FlatGuestMemory(new SharedArrayBuffer(64));
    expect(mem.write(6, new Uint8Array([0x34, 0x12]))).toBe(true);
    expect(new Uint16Array(mem.bytes.buffer)[3]).toBe(0x1234);
    const b = new Uint8Array(2);
    expect(mem.read(6, b)).toBe(true);
    expect([...b]).toEqual([0x34, 0x12]);
    expect(mem.read(63, b)).toBe(false);
    expect(mem.read(2 ** 53, b)).toBe(false);
  });
});

describe("chain cursors", () => {
  it("a huge descriptor that is not RAM fails at the first bounded piece (no 4 GiB bounce buffer)", async () => {
    const { DescriptorChain } = await import("../src/index");
    const { FlatGuestMemory } = await import("../src/index");
    const mem = new FlatGuestMemory(1 << 20);
    const c = new DescriptorChain(0);
    c.writable.push({ addr: 2 ** 40, len: 0xffff_ffff });
    c.writableBytes = 0xffff_ffff;
    let calls = 0;
    const w = c.writer(mem);
    expect(
      w.fillViews(0xffff_ffff, () => {
        calls++;
        return true;
      }),
    ).toBe(0);
    expect(calls).toBe(0);
    expect(w.faulted).toBe(true);
    c.readable.push({ addr: 2 ** 40, len: 0xffff_fff0 });
    c.readableBytes = 0xffff_fff0;
    const r = c.reader(mem);
    expect(r.forEachView(0xffff_fff0, () => calls++)).toBe(0);
    expect(r.faulted).toBe(true);
  });

  it("a range spanning two memory pieces is served through views of each piece", async () => {
    const { DescriptorChain } = await import("../src/index");
    const { ChunkedGuestMemory } = await import("../src/index");
    const mem = new ChunkedGuestMemory(256 * 1024, { chunkSize: 64 * 1024 });
    const c = new DescriptorChain(0);
    c.writable.push({ addr: 60 * 1024, len: 190 * 1024 });
    c.writableBytes = 190 * 1024;
    const w = c.writer(mem);
    const starts: number[] = [];
    const filled = w.fillViews(190 * 1024, (v, at) => {
      starts.push(at);
      v.fill((at >>> 10) & 0xff);
      return true;
    });
    expect(filled).toBe(190 * 1024);
    expect(starts).toEqual([0, 64 * 1024, 128 * 1024]);
    const b = new Uint8Array(1);
    mem.read(60 * 1024 + 189 * 1024, b);
    expect(b[0]).toBe(128);
  });
});
