// mmu-ept must fit the interfaces @tskvm/cpu-x86 declares (packages/cpu-x86/src/cpu/interfaces.ts)
// without importing them (ARCHITECTURE.md: the consumer declares, the provider fits structurally; kvm-api
// is where the real check happens). The shapes below are transcribed from that file so this package
// notices on its own when it drifts; kvm-api's compile is the authority.
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  Access,
  FlatPhysMem,
  Mmu,
  newTranslateResult,
  RamPagesPhysMem,
  type RamWindow,
  TranslateFault,
} from "../src/index.js";

interface CpuRamView {
  u8: Uint8Array;
  offset: number;
}
interface CpuPhysicalMemory {
  ramPage(pfn: number, out: CpuRamView): boolean;
  mmioRead(gpa: number, size: 1 | 2 | 4): number;
  mmioWrite(gpa: number, size: 1 | 2 | 4, value: number): void;
}
interface CpuTranslateResult {
  paddr: number;
  writable: boolean;
  user: boolean;
  nx: boolean;
  global: boolean;
  pageSize: number;
  fault: number;
  errorCode: number;
}
interface CpuPagingRegs {
  readonly cr0: number;
  readonly cr3Lo: number;
  readonly cr3Hi: number;
  readonly cr4: number;
  readonly efer: number;
}
interface CpuTranslator {
  translate(linLo: number, linHi: number, access: number, out: CpuTranslateResult): boolean;
}
const CpuAccess = { WRITE: 1, USER: 2, FETCH: 4, IMPLICIT_SUPERVISOR: 8, AC: 16 } as const;
const CpuTranslateFault = { NONE: 0, PAGE_FAULT: 14, EXIT: -1 } as const;

// packages/vmx/src/iface.ts and caps.ts (transcribed the same way).
interface VmxTlbHooks {
  invept(eptp: bigint | null): void;
  invvpid(type: number, vpid: number, linear: bigint): void;
}
interface VmxEptCaps {
  executeOnly: boolean;
  pages2M: boolean;
  pages1G: boolean;
  accessDirty: boolean;
}

/** RAM of 1 MiB in 4 KiB windows and no devices: what a CPU-side PhysicalMemory looks like. */
class CpuRam implements CpuPhysicalMemory {
  readonly u8 = new Uint8Array(1 << 20);
  mmio = 0;
  ramPage(pfn: number, out: CpuRamView): boolean {
    if (pfn >= 256) return false;
    out.u8 = this.u8;
    out.offset = pfn * 4096;
    return true;
  }
  mmioRead(): number {
    this.mmio++;
    return -1;
  }
  mmioWrite(): void {
    this.mmio++;
  }
}

describe("fits cpu-x86's translation interfaces", () => {
  it("Mmu is a Translator over a CPU's PagingRegs, RamPagesPhysMem reads a CPU's PhysicalMemory", () => {
    expectTypeOf<Mmu>().toExtend<CpuTranslator>();
    expectTypeOf<CpuPagingRegs>().toExtend<ConstructorParameters<typeof Mmu>[0]>();
    expectTypeOf<CpuPhysicalMemory>().toExtend<ConstructorParameters<typeof RamPagesPhysMem>[0]>();
    expectTypeOf<CpuRamView>().toEqualTypeOf<RamWindow>();
    expect(Access).toEqual(CpuAccess);
    expect(TranslateFault).toEqual(CpuTranslateFault);
  });

  it("fits vmx's VmxTlbHooks and EptCaps; the hooks reach the TLB", () => {
    expectTypeOf<Mmu["vmxHooks"]>().toExtend<VmxTlbHooks>();
    expectTypeOf<Mmu["ept"]["caps"]>().toExtend<VmxEptCaps>();
    const mem = new FlatPhysMem(new ArrayBuffer(1 << 16));
    mem.write64(0x1000, 0x2007, 0);
    mem.write64(0x2000, 0x3007, 0);
    mem.write64(0x3000, 0x4007, 0);
    mem.write64(0x4000, 0x9007, 0);
    const mmu = new Mmu({ cr0: 0x80010001 | 0, cr3Lo: 0x1000, cr3Hi: 0, cr4: 0x20, efer: 0xd00 }, mem);
    mmu.vpid = 4;
    const out = newTranslateResult();
    mmu.translate(0, 0, 0, out);
    expect(mmu.tlb!.count()).toBe(1);
    mmu.vmxHooks.invvpid(0, 4, 0xffff_ffff_0000_0000n); // another address: stays
    expect(mmu.tlb!.count()).toBe(1);
    mmu.vmxHooks.invvpid(1, 4, 0n);
    expect(mmu.tlb!.count()).toBe(0);
    mmu.vmxHooks.invept(null);
  });

  it("walks tables held in a CPU-side PhysicalMemory, MMIO paging structures included", () => {
    const ram = new CpuRam();
    const regs: CpuPagingRegs = { cr0: 0x80010001 | 0, cr3Lo: 0x1000, cr3Hi: 0, cr4: 0x20, efer: 0xd00 };
    const dv = new DataView(ram.u8.buffer);
    dv.setUint32(0x1000, 0x2007, true);
    dv.setUint32(0x2000, 0x3007, true);
    dv.setUint32(0x3000, 0x4007, true);
    dv.setUint32(0x4000 + 5 * 8, 0x9000 | 7, true);
    const translator: CpuTranslator = new Mmu(regs, new RamPagesPhysMem(ram));
    const out: CpuTranslateResult = newTranslateResult();
    expect(translator.translate(0x5abc, 0, CpuAccess.WRITE | CpuAccess.USER, out)).toBe(true);
    expect(out.paddr).toBe(0x9abc);
    expect(dv.getUint32(0x4000 + 5 * 8, true) & 0x60).toBe(0x60);
    // A PML4E pointing outside RAM: the walker reads the entry from MMIO (all ones: reserved bits).
    dv.setUint32(0x1008, 0x20_0000 | 7, true);
    expect(translator.translate(0, 0x80, 0, out)).toBe(false);
    expect(out.fault).toBe(TranslateFault.PAGE_FAULT);
    expect(ram.mmio).toBeGreaterThan(0);
  });

  it("A/D updates on a SharedArrayBuffer go through Atomics", () => {
    const sab = new SharedArrayBuffer(1 << 16);
    const mem = new FlatPhysMem(sab);
    mem.write32(0x1000, 0x2007);
    mem.write32(0x2000, 0x3007);
    mem.write32(0x3000, 0x4007);
    mem.write32(0x4000, 0x9007);
    const mmu = new Mmu({ cr0: 0x80010001 | 0, cr3Lo: 0x1000, cr3Hi: 0, cr4: 0x20, efer: 0xd00 }, mem);
    const out = newTranslateResult();
    expect(mmu.translate(0x10, 0, Access.WRITE, out)).toBe(true);
    expect(Atomics.load(new Int32Array(sab), 0x4000 / 4) & 0x60).toBe(0x60);
  });
});
