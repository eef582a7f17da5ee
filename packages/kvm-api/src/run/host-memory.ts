/**
 * Host-physical memory of the software "kernel": the pages KVM allocates for itself and never maps
 * into the guest (VMXON region, VMCS region, I/O and MSR bitmaps, EPT paging structures), and the
 * composite physical view the EPT walker reads (guest RAM below {@link HOST_BASE}, these private
 * pages above it).
 *
 * Guest-physical = host-physical for RAM here: the EPT built in `ept-map.ts` is an identity map over
 * the memory slots (the slot's ArrayBuffer *is* the host page), so a guest can never reach the
 * private window (no EPT entry points there; with paging off the CPU asks `ramPage`, which only
 * knows slots).
 */
import type { PhysMem } from "@tskvm/mmu-ept";
import type { VmxPhysMemory } from "@tskvm/vmx";

/** MAXPHYADDR of the host and of the EPT/VMX models (SDM Vol. 3C A.1: VMX addresses fit in it). */
export const HOST_PHYS_BITS = 46;
/** Start of the host-private window: the last TiB below 2^46. */
export const HOST_BASE = 2 ** HOST_PHYS_BITS - 2 ** 40;

/** Where the EPT structures live inside the private window (the VMX pages sit at HOST_BASE). */
export const EPT_BASE = HOST_BASE + 2 ** 39;

/** Page-granular private memory from `base` up, grown one zeroed 4 KiB page at a time. */
export class HostMemory implements VmxPhysMemory, PhysMem {
  private readonly pages: Uint8Array[] = [];
  private readonly views: DataView[] = [];

  constructor(readonly base = HOST_BASE) {}

  /** Allocates a zeroed page and returns its host-physical address. */
  alloc(): number {
    const p = new Uint8Array(4096);
    this.pages.push(p);
    this.views.push(new DataView(p.buffer));
    return this.base + (this.pages.length - 1) * 4096;
  }

  /** Number of pages allocated so far. */
  get pageCount(): number {
    return this.pages.length;
  }

  /** Drops every page (a VM's EPT is rebuilt from scratch on slot changes). */
  reset(): void {
    this.pages.length = 0;
    this.views.length = 0;
  }

  /** True when `pa` is inside an allocated private page. */
  owns(pa: number): boolean {
    return pa >= this.base && pa < this.base + this.pages.length * 4096;
  }

  read(pa: number, dst: Uint8Array): void {
    for (let i = 0; i < dst.length; i++) {
      const a = pa + i;
      const page = this.pages[Math.floor((a - this.base) / 4096)];
      dst[i] = page === undefined || a < this.base ? 0xff : page[(a - this.base) & 0xfff]!;
    }
  }

  write(pa: number, src: Uint8Array): void {
    for (let i = 0; i < src.length; i++) {
      const a = pa + i;
      const page = this.pages[Math.floor((a - this.base) / 4096)];
      if (page !== undefined && a >= this.base) page[(a - this.base) & 0xfff] = src[i]!;
    }
  }

  read32(pa: number): number {
    const v = this.views[Math.floor((pa - this.base) / 4096)];
    if (v === undefined || pa < this.base) return -1;
    return v.getInt32((pa - this.base) & 0xffc, true);
  }

  write32(pa: number, value: number): void {
    const v = this.views[Math.floor((pa - this.base) / 4096)];
    if (v === undefined || pa < this.base) return;
    v.setInt32((pa - this.base) & 0xffc, value | 0, true);
  }
}

/** Something that hands out RAM pages (GuestPhysMemory's `ramPage`). */
export interface RamSource {
  ramPage(pfn: number, out: { u8: Uint8Array; offset: number }): boolean;
}

/**
 * The physical address space the MMU walks: guest paging structures in RAM (identity through EPT),
 * EPT structures in the private window. Paging structures outside RAM read as all ones and ignore
 * writes (KVM cannot walk tables in MMIO either; the guest gets the reserved-bit #PF that follows).
 */
export class WalkMemory implements PhysMem {
  private readonly win = { u8: new Uint8Array(0), offset: 0 };

  constructor(
    private readonly ram: RamSource,
    private readonly host: HostMemory,
  ) {}

  read32(pa: number): number {
    if (pa >= HOST_BASE) return this.host.read32(pa);
    const w = this.win;
    if (!this.ram.ramPage(Math.floor(pa / 4096), w)) return -1;
    const u = w.u8;
    const o = w.offset + (pa & 0xfff);
    return u[o]! | (u[o + 1]! << 8) | (u[o + 2]! << 16) | (u[o + 3]! << 24);
  }

  write32(pa: number, value: number): void {
    if (pa >= HOST_BASE) {
      this.host.write32(pa, value);
      return;
    }
    const w = this.win;
    if (!this.ram.ramPage(Math.floor(pa / 4096), w)) return;
    const u = w.u8;
    const o = w.offset + (pa & 0xfff);
    u[o] = value;
    u[o + 1] = value >>> 8;
    u[o + 2] = value >>> 16;
    u[o + 3] = value >>> 24;
  }
}
