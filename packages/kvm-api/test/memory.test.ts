import { describe, expect, it } from "vitest";
import { KvmError } from "../src/errors.js";
import {
  GuestPhysMemory,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_USER_MEM_SLOTS,
  type MemoryChange,
} from "../src/memory.js";

function errOf(f: () => unknown): KvmError {
  try {
    f();
  } catch (e) {
    if (e instanceof KvmError) return e;
    throw e;
  }
  throw new Error("expected a KvmError");
}

const MB = 1 << 20;

describe("KVM_SET_USER_MEMORY_REGION validation (kvm_main.c kvm_set_memory_region)", () => {
  it("rejects unaligned size, address and userspace offset with EINVAL", () => {
    const m = new GuestPhysMemory();
    const buf = new ArrayBuffer(2 * MB);
    const base = { slot: 0, flags: 0, guestPhysAddr: 0, memorySize: MB, memory: buf };
    expect(errOf(() => m.setUserMemoryRegion({ ...base, memorySize: 4097 })).code).toBe("EINVAL");
    expect(errOf(() => m.setUserMemoryRegion({ ...base, guestPhysAddr: 0x800 })).reason).toBe("Unaligned");
    expect(errOf(() => m.setUserMemoryRegion({ ...base, memoryOffset: 16 })).code).toBe("EINVAL");
    expect(m.slots()).toHaveLength(0);
  });
  it("rejects unknown flags, bad slot ids and address space ids", () => {
    const m = new GuestPhysMemory();
    const base = { slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 4096, memory: new ArrayBuffer(4096) };
    expect(errOf(() => m.setUserMemoryRegion({ ...base, flags: 4 })).reason).toBe("UnknownFlags");
    expect(errOf(() => m.setUserMemoryRegion({ ...base, slot: KVM_USER_MEM_SLOTS })).code).toBe("EINVAL");
    expect(errOf(() => m.setUserMemoryRegion({ ...base, slot: 1 << 16 })).reason).toBe("BadAddressSpace");
    m.setUserMemoryRegion({ ...base, slot: KVM_USER_MEM_SLOTS - 1 });
  });
  it("rejects a range outside the buffer (access_ok) with EINVAL", () => {
    const m = new GuestPhysMemory();
    const e = errOf(() =>
      m.setUserMemoryRegion({
        slot: 0,
        flags: 0,
        guestPhysAddr: 0,
        memorySize: 8192,
        memory: new ArrayBuffer(4096),
      }),
    );
    expect(e.reason).toBe("BufferTooSmall");
  });
  it("overlapping slots get EEXIST, adjacent ones are fine", () => {
    const m = new GuestPhysMemory();
    m.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: MB,
      memory: new ArrayBuffer(MB),
    });
    const e = errOf(() =>
      m.setUserMemoryRegion({
        slot: 1,
        flags: 0,
        guestPhysAddr: MB - 4096,
        memorySize: 8192,
        memory: new ArrayBuffer(8192),
      }),
    );
    expect(e.code).toBe("EEXIST");
    expect(e.errno).toBe(17);
    m.setUserMemoryRegion({
      slot: 1,
      flags: 0,
      guestPhysAddr: MB,
      memorySize: 8192,
      memory: new ArrayBuffer(8192),
    });
    expect(m.slots().map((s) => s.id)).toEqual([0, 1]);
  });
  it("size 0 deletes; deleting a missing slot is EINVAL", () => {
    const m = new GuestPhysMemory();
    const buf = new ArrayBuffer(4096);
    m.setUserMemoryRegion({ slot: 3, flags: 0, guestPhysAddr: 0x1000, memorySize: 4096, memory: buf });
    m.setUserMemoryRegion({ slot: 3, flags: 0, guestPhysAddr: 0, memorySize: 0, memory: buf });
    expect(m.slotAt(0x1000)).toBeUndefined();
    expect(
      errOf(() => m.setUserMemoryRegion({ slot: 3, flags: 0, guestPhysAddr: 0, memorySize: 0, memory: buf }))
        .reason,
    ).toBe("DeleteMissingSlot");
  });
  it("an existing slot may move and toggle LOG_DIRTY_PAGES but not resize, rebind or toggle READONLY", () => {
    const m = new GuestPhysMemory();
    const buf = new ArrayBuffer(8192);
    const changes: MemoryChange["kind"][] = [];
    m.onChange((c) => changes.push(c.kind));
    const r = { slot: 0, flags: 0, guestPhysAddr: 0x10000, memorySize: 8192, memory: buf };
    m.setUserMemoryRegion(r);
    m.setUserMemoryRegion({ ...r, guestPhysAddr: 0x20000 });
    expect(m.slotAt(0x10000)).toBeUndefined();
    expect(m.slotAt(0x21fff)?.id).toBe(0);
    m.setUserMemoryRegion({ ...r, guestPhysAddr: 0x20000, flags: KVM_MEM_LOG_DIRTY_PAGES });
    expect(changes).toEqual(["create", "move", "flags"]);
    expect(errOf(() => m.setUserMemoryRegion({ ...r, memorySize: 4096 })).reason).toBe("SlotResize");
    expect(errOf(() => m.setUserMemoryRegion({ ...r, memory: new ArrayBuffer(8192) })).reason).toBe(
      "SlotResize",
    );
    expect(
      errOf(() => m.setUserMemoryRegion({ ...r, guestPhysAddr: 0x20000, flags: KVM_MEM_READONLY })).reason,
    ).toBe("ReadonlyChange");
  });
  it("a move onto another slot is EEXIST and leaves the table unchanged", () => {
    const m = new GuestPhysMemory();
    m.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 4096,
      memory: new ArrayBuffer(4096),
    });
    const b = new ArrayBuffer(4096);
    m.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0x1000, memorySize: 4096, memory: b });
    expect(
      errOf(() => m.setUserMemoryRegion({ slot: 1, flags: 0, guestPhysAddr: 0, memorySize: 4096, memory: b }))
        .code,
    ).toBe("EEXIST");
    expect(m.slotAt(0x1000)?.id).toBe(1);
  });
});

describe("guest-physical view", () => {
  it("finds the slot of an address and views the same bytes as the buffer, SharedArrayBuffer too", () => {
    const m = new GuestPhysMemory();
    const a = new SharedArrayBuffer(2 * 4096);
    const b = new ArrayBuffer(3 * 4096);
    m.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0xa000,
      memorySize: 4096,
      memory: a,
      memoryOffset: 4096,
    });
    m.setUserMemoryRegion({ slot: 5, flags: 0, guestPhysAddr: 0, memorySize: 3 * 4096, memory: b });
    new Uint8Array(a)[4096 + 7] = 0x5a;
    const s = m.slotAt(0xa007)!;
    expect(s.id).toBe(0);
    expect(s.bytes[0xa007 - s.base]).toBe(0x5a);
    expect(m.slotAt(0x3000)).toBeUndefined();
    expect(m.slotAt(0x2fff)?.id).toBe(5);
  });
  it("read/write span adjacent slots and refuse ranges with holes or read-only pages", () => {
    const m = new GuestPhysMemory();
    m.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 4096,
      memory: new ArrayBuffer(4096),
    });
    m.setUserMemoryRegion({
      slot: 1,
      flags: 0,
      guestPhysAddr: 4096,
      memorySize: 4096,
      memory: new ArrayBuffer(4096),
    });
    m.setUserMemoryRegion({
      slot: 2,
      flags: KVM_MEM_READONLY,
      guestPhysAddr: 0x3000,
      memorySize: 4096,
      memory: new ArrayBuffer(4096),
    });
    expect(m.write(4094, Uint8Array.of(1, 2, 3, 4))).toBe(true);
    const out = new Uint8Array(4);
    expect(m.read(4094, out)).toBe(true);
    expect([...out]).toEqual([1, 2, 3, 4]);
    expect(m.read(0x1ffe, out)).toBe(false);
    expect(m.write(0x3000, out)).toBe(false);
    expect(m.read(0x3000, out)).toBe(true);
  });
});

describe("ramPage (the CPU's TLB-fill lookup)", () => {
  it("points at the page's bytes; read-only slots refuse write access; write access marks the page dirty", () => {
    const m = new GuestPhysMemory();
    const buf = new ArrayBuffer(3 * 4096);
    m.setUserMemoryRegion({
      slot: 0,
      flags: KVM_MEM_LOG_DIRTY_PAGES,
      guestPhysAddr: 0x10000,
      memorySize: 8192,
      memory: buf,
    });
    m.setUserMemoryRegion({
      slot: 1,
      flags: KVM_MEM_READONLY,
      guestPhysAddr: 0x20000,
      memorySize: 4096,
      memory: buf,
      memoryOffset: 8192,
    });
    const out = { u8: new Uint8Array(0), offset: 0 };
    expect(m.ramPage(0x11, out)).toBe(true);
    expect(out.u8.buffer).toBe(buf);
    expect(out.offset).toBe(4096);
    expect(m.getDirtyLog(0)[0]).toBe(0); // read access: not dirty
    expect(m.ramPage(0x11, out, true)).toBe(true);
    expect(m.getDirtyLog(0)[0]).toBe(2);
    expect(m.ramPage(0x20, out)).toBe(true);
    expect(m.ramPage(0x20, out, true)).toBe(false);
    expect(m.ramPage(0x30, out)).toBe(false);
  });
});

describe("dirty log (KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG)", () => {
  it("records written pages, returns them once and clears on get", () => {
    const m = new GuestPhysMemory();
    m.setUserMemoryRegion({
      slot: 0,
      flags: KVM_MEM_LOG_DIRTY_PAGES,
      guestPhysAddr: 0,
      memorySize: 100 * 4096,
      memory: new ArrayBuffer(100 * 4096),
    });
    m.write(3 * 4096 + 10, new Uint8Array(4096)); // pages 3 and 4
    m.markDirty(99 * 4096);
    const log = m.getDirtyLog(0);
    expect(log.length).toBe(16); // 100 pages round up to two 64-bit longs
    expect(log[0]).toBe(0b11000);
    expect(log[12]).toBe(1 << 3); // page 99 = byte 12 bit 3
    expect(m.getDirtyLog(0).every((b) => b === 0)).toBe(true);
  });
  it("a slot without LOG_DIRTY_PAGES, or no slot, is ENOENT", () => {
    const m = new GuestPhysMemory();
    m.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: 4096,
      memory: new ArrayBuffer(4096),
    });
    expect(errOf(() => m.getDirtyLog(0)).code).toBe("ENOENT");
    expect(errOf(() => m.getDirtyLog(9)).code).toBe("ENOENT");
  });
  it("manual protect: get keeps the bits, clear drops only the requested ones, 64-page alignment rules", () => {
    const m = new GuestPhysMemory();
    m.setUserMemoryRegion({
      slot: 0,
      flags: KVM_MEM_LOG_DIRTY_PAGES,
      guestPhysAddr: 0,
      memorySize: 130 * 4096,
      memory: new ArrayBuffer(130 * 4096),
    });
    for (const p of [1, 2, 65, 129]) m.markDirty(p * 4096);
    expect(m.getDirtyLog(0, true)[0]).toBe(0b110);
    m.clearDirtyLog(0, 0, 64, Uint8Array.of(0b10, 0, 0, 0, 0, 0, 0, 0));
    const log = m.getDirtyLog(0, true);
    expect(log[0]).toBe(0b100);
    expect(log[8]).toBe(0b10);
    expect(errOf(() => m.clearDirtyLog(0, 1, 64, new Uint8Array(8))).reason).toBe("FirstPageUnaligned");
    expect(errOf(() => m.clearDirtyLog(0, 64, 10, new Uint8Array(8))).reason).toBe("NumPagesUnaligned");
    m.clearDirtyLog(0, 128, 2, Uint8Array.of(0b10)); // ends at the slot's end: any count
    expect(m.getDirtyLog(0, true)[16]).toBe(0);
    expect(errOf(() => m.clearDirtyLog(0, 128, 3, new Uint8Array(1))).reason).toBe("RangeOutsideSlot");
  });
  it("the bitmap survives a move while LOG_DIRTY_PAGES stays on", () => {
    const m = new GuestPhysMemory();
    const buf = new ArrayBuffer(4096);
    m.setUserMemoryRegion({
      slot: 0,
      flags: KVM_MEM_LOG_DIRTY_PAGES,
      guestPhysAddr: 0,
      memorySize: 4096,
      memory: buf,
    });
    m.markDirty(0);
    m.setUserMemoryRegion({
      slot: 0,
      flags: KVM_MEM_LOG_DIRTY_PAGES,
      guestPhysAddr: 0x8000,
      memorySize: 4096,
      memory: buf,
    });
    expect(m.getDirtyLog(0)[0]).toBe(1);
  });
});
