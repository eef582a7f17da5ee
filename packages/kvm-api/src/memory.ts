/**
 * Guest-physical memory as KVM memory slots (KVM_SET_USER_MEMORY_REGION, api.rst 4.35): each
 * slot maps [guestPhysAddr, guestPhysAddr + memorySize) onto bytes of an ArrayBuffer or
 * SharedArrayBuffer given by userspace. Addresses outside every slot are MMIO.
 *
 * The validation follows virt/kvm/kvm_main.c kvm_set_memory_region(): page-aligned size, address
 * and userspace offset; known flags only; slot id below KVM_USER_MEM_SLOTS; size 0 deletes;
 * changing an existing slot may only move it or toggle LOG_DIRTY_PAGES; a new or moved slot
 * must not overlap another (EEXIST).
 */
import { fail } from "./errors.js";

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Slot flag: keep a dirty bitmap for KVM_GET_DIRTY_LOG. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
/** Slot flag: guest writes exit to userspace as KVM_EXIT_MMIO. */
export const KVM_MEM_READONLY = 1 << 1;
/** Slots userspace may use on x86 (arch/x86/include/asm/kvm_host.h KVM_USER_MEM_SLOTS). */
export const KVM_USER_MEM_SLOTS = 32764;
/** KVM_MEM_MAX_NR_PAGES: a slot holds fewer than 2^31 pages. */
export const KVM_MEM_MAX_NR_PAGES = 2 ** 31 - 1;
/** Guest-physical addresses are kept below 2^52 (the architectural MAXPHYADDR limit). */
export const GPA_LIMIT = 2 ** 52;

const STEP = "KVM_SET_USER_MEMORY_REGION";

/** Argument of {@link GuestPhysMemory.setUserMemoryRegion}, as `struct kvm_userspace_memory_region`. */
export interface UserMemoryRegion {
  /** Slot id; bits 16+ would be the address-space id, and only address space 0 exists here (no SMM). */
  slot: number;
  flags: number;
  guestPhysAddr: number;
  /** 0 deletes the slot. */
  memorySize: number;
  /** The backing store; stands for `userspace_addr`. */
  memory: ArrayBuffer | SharedArrayBuffer;
  /** Byte offset of the slot in `memory` (page aligned); 0 if omitted. */
  memoryOffset?: number;
}

/** One memory slot. `bytes` views exactly the slot; guest page `n` of the slot is `bytes[n*4096..]`. */
export class MemorySlot {
  /** First guest-physical address after the slot. */
  readonly end: number;
  readonly npages: number;
  /** Dirty bitmap, one bit per page, LSB first, sized to a multiple of 64 bits like KVM's. */
  dirty: Uint8Array | null;
  constructor(
    readonly id: number,
    readonly base: number,
    readonly size: number,
    readonly flags: number,
    readonly memory: ArrayBuffer | SharedArrayBuffer,
    readonly memoryOffset: number,
    readonly bytes: Uint8Array,
    dirty: Uint8Array | null,
  ) {
    this.end = base + size;
    this.npages = size / PAGE_SIZE;
    this.dirty = dirty;
  }
  get readonly(): boolean {
    return (this.flags & KVM_MEM_READONLY) !== 0;
  }
  /** Marks the page holding slot offset `offset` dirty (no-op without LOG_DIRTY_PAGES). */
  markDirtyOffset(offset: number): void {
    const d = this.dirty;
    if (d === null) return;
    const page = offset >>> PAGE_SHIFT;
    d[page >>> 3]! |= 1 << (page & 7);
  }
}

/** Bytes of a dirty bitmap for `npages` pages: KVM rounds up to whole 64-bit longs. */
export function dirtyBitmapBytes(npages: number): number {
  return Math.ceil(npages / 64) * 8;
}

/** What changed in the slot table; the CPU flushes its TLB and decoded-code cache on these. */
export type MemoryChange =
  | { kind: "create" | "delete" | "move" | "flags"; slot: MemorySlot }
  | { kind: "dirty-log-reset"; slot: MemorySlot };

/**
 * The VM's guest-physical address space. `slotAt()` is the fast lookup the CPU's TLB fill uses;
 * `read`/`write` serve in-kernel devices (kvmclock) and satisfy the consumer-side
 * `GuestMemory` interfaces of other layers.
 */
export class GuestPhysMemory {
  /** Slots sorted by base address. */
  private sorted: MemorySlot[] = [];
  private readonly byId = new Map<number, MemorySlot>();
  private lastHit: MemorySlot | undefined;
  private readonly listeners: ((c: MemoryChange) => void)[] = [];
  /** Incremented on every change of the slot table (not on dirty bits). */
  generation = 0;

  /** Registers a listener for slot-table changes. */
  onChange(listener: (c: MemoryChange) => void): void {
    this.listeners.push(listener);
  }

  /** All slots, by base address. */
  slots(): readonly MemorySlot[] {
    return this.sorted;
  }

  slotById(id: number): MemorySlot | undefined {
    return this.byId.get(id);
  }

  /** KVM_SET_USER_MEMORY_REGION: create, delete (size 0), move, or change the flags of a slot. */
  setUserMemoryRegion(r: UserMemoryRegion): void {
    const offset = r.memoryOffset ?? 0;
    if (!Number.isInteger(r.slot) || r.slot < 0) fail("EINVAL", STEP, "BadSlotId", `slot ${r.slot}`);
    // kvm_main.c: as_id = slot >> 16 must be below KVM_ADDRESS_SPACE_NUM (1 without SMM).
    if (r.slot >>> 16 !== 0) fail("EINVAL", STEP, "BadAddressSpace", `as_id ${r.slot >>> 16}`);
    if ((r.slot & 0xffff) >= KVM_USER_MEM_SLOTS) fail("EINVAL", STEP, "BadSlotId", `slot ${r.slot}`);
    if (r.flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) {
      fail("EINVAL", STEP, "UnknownFlags", `flags ${r.flags.toString(16)}`);
    }
    for (const [name, v] of [
      ["memorySize", r.memorySize],
      ["guestPhysAddr", r.guestPhysAddr],
      ["memoryOffset", offset],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0) fail("EINVAL", STEP, "BadNumber", `${name} ${v}`);
      if (v % PAGE_SIZE !== 0) fail("EINVAL", STEP, "Unaligned", `${name} 0x${v.toString(16)}`);
    }
    // The access_ok() check on userspace_addr: the range must lie inside the buffer.
    if (offset + r.memorySize > r.memory.byteLength) {
      fail("EINVAL", STEP, "BufferTooSmall", `need ${offset + r.memorySize}, have ${r.memory.byteLength}`);
    }
    if (r.guestPhysAddr + r.memorySize > GPA_LIMIT) fail("EINVAL", STEP, "AddressWraps");
    if (r.memorySize / PAGE_SIZE > KVM_MEM_MAX_NR_PAGES) fail("EINVAL", STEP, "TooManyPages");

    const old = this.byId.get(r.slot);
    if (r.memorySize === 0) {
      if (!old) fail("EINVAL", STEP, "DeleteMissingSlot", `slot ${r.slot}`);
      this.remove(old);
      this.emit({ kind: "delete", slot: old });
      return;
    }
    if (!old) {
      this.checkOverlap(r.guestPhysAddr, r.memorySize, undefined);
      const slot = this.makeSlot(r, offset, null);
      this.insert(slot);
      this.emit({ kind: "create", slot });
      return;
    }
    // An existing slot keeps its backing, its size and READONLY; only base and LOG_DIRTY change.
    if (old.memory !== r.memory || old.memoryOffset !== offset || old.size !== r.memorySize) {
      fail("EINVAL", STEP, "SlotResize", "an existing slot may only move or change LOG_DIRTY_PAGES");
    }
    if ((old.flags ^ r.flags) & KVM_MEM_READONLY) fail("EINVAL", STEP, "ReadonlyChange");
    if (old.base !== r.guestPhysAddr) {
      this.checkOverlap(r.guestPhysAddr, r.memorySize, old);
      const slot = this.makeSlot(r, offset, old.dirty);
      this.remove(old);
      this.insert(slot);
      this.emit({ kind: "move", slot });
    } else if (old.flags !== r.flags) {
      const slot = this.makeSlot(r, offset, old.dirty);
      this.remove(old);
      this.insert(slot);
      this.emit({ kind: "flags", slot });
    }
    // Same base and flags: KVM returns 0 without doing anything.
  }

  /**
   * The slot containing `gpa`, or undefined (MMIO). Hot: a last-hit check, then binary search.
   */
  slotAt(gpa: number): MemorySlot | undefined {
    const h = this.lastHit;
    if (h !== undefined && gpa >= h.base && gpa < h.end) return h;
    const s = this.sorted;
    let lo = 0;
    let hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = s[mid]!;
      if (gpa < m.base) hi = mid - 1;
      else if (gpa >= m.end) lo = mid + 1;
      else {
        this.lastHit = m;
        return m;
      }
    }
    return undefined;
  }

  /**
   * The CPU's page lookup (the `PhysicalMemory.ramPage` shape @tskvm/cpu-x86 declares): points
   * `out` at the RAM of guest page `pfn`. With `forWrite`, a READONLY slot answers false (the
   * write becomes MMIO, KVM_EXIT_MMIO, as api.rst 4.35 says) and the page is marked dirty: the
   * CPU asks for write access once per TLB fill, and a dirty-log reset emits "dirty-log-reset"
   * so it drops write entries and asks again (KVM's write-protect-and-fault scheme).
   */
  ramPage(pfn: number, out: { u8: Uint8Array; offset: number }, forWrite = false): boolean {
    const gpa = pfn * PAGE_SIZE;
    const slot = this.slotAt(gpa);
    if (slot === undefined) return false;
    if (forWrite) {
      if (slot.flags & KVM_MEM_READONLY) return false;
      slot.markDirtyOffset(gpa - slot.base);
    }
    out.u8 = slot.bytes;
    out.offset = gpa - slot.base;
    return true;
  }

  /**
   * Copies guest memory at `gpa` into `dst`. Returns false (and copies nothing) unless the whole
   * range is RAM; a range may span adjacent slots.
   */
  read(gpa: number, dst: Uint8Array): boolean {
    if (!this.covered(gpa, dst.length, false)) return false;
    let done = 0;
    while (done < dst.length) {
      const slot = this.slotAt(gpa + done)!;
      const off = gpa + done - slot.base;
      const n = Math.min(dst.length - done, slot.size - off);
      dst.set(slot.bytes.subarray(off, off + n), done);
      done += n;
    }
    return true;
  }

  /**
   * Copies `src` into guest memory at `gpa`, marking pages dirty. Returns false (and writes
   * nothing) unless the whole range is writable RAM, as kvm_write_guest() fails on read-only slots.
   */
  write(gpa: number, src: Uint8Array): boolean {
    if (!this.covered(gpa, src.length, true)) return false;
    let done = 0;
    while (done < src.length) {
      const slot = this.slotAt(gpa + done)!;
      const off = gpa + done - slot.base;
      const n = Math.min(src.length - done, slot.size - off);
      slot.bytes.set(src.subarray(done, done + n), off);
      for (let p = off & ~(PAGE_SIZE - 1); p < off + n; p += PAGE_SIZE) slot.markDirtyOffset(p);
      done += n;
    }
    return true;
  }

  /** Marks the page holding `gpa` dirty (for writes the CPU makes directly into slot bytes). */
  markDirty(gpa: number): void {
    const slot = this.slotAt(gpa);
    if (slot) slot.markDirtyOffset(gpa - slot.base);
  }

  /**
   * KVM_GET_DIRTY_LOG: returns the slot's bitmap and, unless `manualProtect`
   * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled), clears it.
   */
  getDirtyLog(slotId: number, manualProtect = false): Uint8Array {
    const slot = this.dirtySlot(slotId, "KVM_GET_DIRTY_LOG");
    const copy = slot.dirty!.slice();
    if (!manualProtect) {
      slot.dirty!.fill(0);
      this.emit({ kind: "dirty-log-reset", slot });
    }
    return copy;
  }

  /**
   * KVM_CLEAR_DIRTY_LOG: clears the bits set in `bitmap` (bit 0 = `firstPage`) for
   * `numPages` pages. kvm_main.c kvm_clear_dirty_log_protect(): `firstPage` must be a multiple of
   * 64, and so must `numPages` unless the range ends at the end of the slot.
   */
  clearDirtyLog(slotId: number, firstPage: number, numPages: number, bitmap: Uint8Array): void {
    const step = "KVM_CLEAR_DIRTY_LOG";
    const slot = this.dirtySlot(slotId, step);
    if (firstPage % 64 !== 0) fail("EINVAL", step, "FirstPageUnaligned");
    if (firstPage > slot.npages || numPages > slot.npages - firstPage)
      fail("EINVAL", step, "RangeOutsideSlot");
    if (numPages < slot.npages - firstPage && numPages % 64 !== 0) fail("EINVAL", step, "NumPagesUnaligned");
    if (bitmap.length * 8 < numPages) fail("EFAULT", step, "BitmapTooShort");
    const d = slot.dirty!;
    for (let i = 0; i < numPages; i++) {
      if (bitmap[i >>> 3]! & (1 << (i & 7))) {
        const p = firstPage + i;
        d[p >>> 3]! &= ~(1 << (p & 7));
      }
    }
    this.emit({ kind: "dirty-log-reset", slot });
  }

  private dirtySlot(slotId: number, step: string): MemorySlot {
    if (slotId >>> 16 !== 0 || (slotId & 0xffff) >= KVM_USER_MEM_SLOTS) fail("EINVAL", step, "BadSlotId");
    const slot = this.byId.get(slotId);
    // kvm_get_dirty_log_protect(): no slot, or no LOG_DIRTY_PAGES, is ENOENT.
    if (!slot || slot.dirty === null) fail("ENOENT", step, "NoDirtyLog", `slot ${slotId}`);
    return slot;
  }

  private covered(gpa: number, len: number, forWrite: boolean): boolean {
    let at = gpa;
    const end = gpa + len;
    while (at < end) {
      const slot = this.slotAt(at);
      if (!slot || (forWrite && slot.readonly)) return false;
      at = slot.end;
    }
    return true;
  }

  private makeSlot(r: UserMemoryRegion, offset: number, oldDirty: Uint8Array | null): MemorySlot {
    const npages = r.memorySize / PAGE_SIZE;
    let dirty: Uint8Array | null = null;
    if (r.flags & KVM_MEM_LOG_DIRTY_PAGES) dirty = oldDirty ?? new Uint8Array(dirtyBitmapBytes(npages));
    const bytes = new Uint8Array(r.memory, offset, r.memorySize);
    return new MemorySlot(r.slot, r.guestPhysAddr, r.memorySize, r.flags, r.memory, offset, bytes, dirty);
  }

  private checkOverlap(base: number, size: number, except: MemorySlot | undefined): void {
    for (const s of this.sorted) {
      if (s !== except && base < s.end && s.base < base + size) {
        fail("EEXIST", STEP, "SlotOverlap", `overlaps slot ${s.id} at 0x${s.base.toString(16)}`);
      }
    }
  }

  private insert(slot: MemorySlot): void {
    this.byId.set(slot.id, slot);
    this.sorted.push(slot);
    this.sorted.sort((a, b) => a.base - b.base);
    this.generation++;
  }

  private remove(slot: MemorySlot): void {
    this.byId.delete(slot.id);
    this.sorted = this.sorted.filter((s) => s !== slot);
    if (this.lastHit === slot) this.lastHit = undefined;
    this.generation++;
  }

  private emit(c: MemoryChange): void {
    for (const l of this.listeners) l(c);
  }
}
