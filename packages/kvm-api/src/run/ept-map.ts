/**
 * The EPT KVM builds for a VM (arch/x86/kvm/mmu, TDP MMU): an identity map guest-physical ->
 * host-physical over the memory slots, 4-level, write-back memory type (SDM Vol. 3C 29.3.2 Table
 * 29-x EPT entry formats, 29.3.7 memory type). Slots are mapped eagerly with 2 MiB pages where a
 * whole aligned 2 MiB range lies in one slot and 4 KiB pages elsewhere; read-only slots lose the
 * write permission (a guest write is then an EPT violation, KVM_EXIT_MMIO, api.rst 4.35).
 * Addresses outside every slot stay not-present: the first access is an EPT violation that the
 * run loop answers by mapping the page as MMIO (uncacheable) and retrying, as KVM installs an MMIO
 * SPTE on the first fault; the CPU then reaches the page through its MMIO callbacks.
 */
import { EPT_BASE, HostMemory } from "./host-memory.js";

/** EPT permission bits (SDM 29.3.2): read, write, execute (supervisor). */
export const EPT_R = 1;
export const EPT_W = 2;
export const EPT_X = 4;
export const EPT_RWX = 7;
/** Memory types in EPT leaf bits 5:3 (SDM 11.11 Table 11-x). */
const MT_WB = 6 << 3;
const MT_UC = 0;
/** Bit 7 of a PDE: a 2 MiB page. */
const LARGE = 1 << 7;

const TWO32 = 2 ** 32;
const M2 = 2 ** 21;

/** The slot geometry EptMap needs (MemorySlot satisfies it). */
export interface SlotRange {
  base: number;
  size: number;
  readonly: boolean;
}

export class EptMap {
  readonly mem = new HostMemory(EPT_BASE);
  /** Host-physical address of the PML4. */
  root = 0;
  /** Pages mapped as MMIO after a violation (dropped with the map on slot changes). */
  mmioPages = 0;

  constructor() {
    this.root = this.mem.alloc();
  }

  /** The EPTP: root | walk length 4 (3 in bits 5:3) | WB paging-structure memory type (6). */
  eptp(): bigint {
    return BigInt(this.root) | (3n << 3n) | 6n;
  }

  /** Throws away every mapping (a new root; INVEPT semantics are the caller's). */
  reset(): void {
    this.mem.reset();
    this.root = this.mem.alloc();
    this.mmioPages = 0;
  }

  /** Maps every slot: 2 MiB pages where possible, 4 KiB pages at the unaligned edges. */
  populate(slots: readonly SlotRange[]): void {
    for (const s of slots) {
      const perms = s.readonly ? EPT_R | EPT_X : EPT_RWX;
      let a = s.base;
      const end = s.base + s.size;
      while (a < end) {
        if (a % M2 === 0 && a + M2 <= end) {
          this.map(a, perms | MT_WB, 2);
          a += M2;
        } else {
          this.map(a, perms | MT_WB, 1);
          a += 4096;
        }
      }
    }
  }

  /** Maps one 4 KiB RAM page (a violation on RAM that the eager map did not cover). */
  mapRam(gpa: number, readonly: boolean): void {
    this.map(gpa - (gpa % 4096), (readonly ? EPT_R | EPT_X : EPT_RWX) | MT_WB, 1);
  }

  /** Maps one 4 KiB page of MMIO: identity, RWX, uncacheable. */
  mapMmio(gpa: number): void {
    this.map(gpa - (gpa % 4096), EPT_RWX | MT_UC, 1);
    this.mmioPages++;
  }

  /** Reads the leaf entry's low half for `gpa` (0 when not present); for tests. */
  leaf(gpa: number): number {
    let table = this.root;
    for (let level = 4; level >= 1; level--) {
      const e = table + this.index(gpa, level) * 8;
      const lo = this.mem.read32(e);
      if ((lo & 7) === 0) return 0;
      if (level === 1 || (level === 2 && lo & LARGE)) return lo;
      table = (lo & ~0xfff) + this.mem.read32(e + 4) * TWO32;
    }
    return 0;
  }

  private index(gpa: number, level: number): number {
    return Math.floor(gpa / 2 ** (12 + 9 * (level - 1))) % 512;
  }

  /** Installs a leaf at `leafLevel` (1 = 4 KiB PTE, 2 = 2 MiB PDE), creating tables on the way. */
  private map(gpa: number, bits: number, leafLevel: 1 | 2): void {
    const mem = this.mem;
    let table = this.root;
    for (let level = 4; level > leafLevel; level--) {
      const e = table + this.index(gpa, level) * 8;
      let lo = mem.read32(e);
      let hi = mem.read32(e + 4);
      if ((lo & 7) === 0 || (level === 2 && lo & LARGE)) {
        // A 2 MiB leaf being split (slot edges never overlap one, but be safe): a fresh table.
        const t = this.mem.alloc();
        lo = (t % TWO32) | EPT_RWX;
        hi = Math.floor(t / TWO32);
        mem.write32(e, lo);
        mem.write32(e + 4, hi);
      }
      table = ((lo & ~0xfff) >>> 0) + (hi >>> 0) * TWO32;
    }
    const e = table + this.index(gpa, leafLevel) * 8;
    const lo = (gpa % TWO32) - (gpa % 4096) + (bits | (leafLevel === 2 ? LARGE : 0));
    mem.write32(e, lo | 0);
    mem.write32(e + 4, Math.floor(gpa / TWO32));
  }
}
