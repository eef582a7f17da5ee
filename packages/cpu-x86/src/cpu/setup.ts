/**
 * State set-up helpers for loaders and tests: put the CPU straight into a flat mode, as a boot loader
 * or a VM-entry would, without running mode-switch code.
 */
import type { Cpu } from "./cpu.js";
import { AR, CR0, CR4, EFER, F, Seg } from "./state.js";

/**
 * Flat 64-bit mode at `cpl` (0 or 3): paging on (CR0.PE|PG, CR4.PAE, EFER.LME|LMA) with whatever
 * translator the CPU has (use `IdentityTranslator` for an identity map without page tables),
 * CS.L = 1, flat data segments.
 */
export function enterFlatLongMode(cpu: Cpu, cpl: 0 | 3 = 0): void {
  const dpl = cpl << AR.DPL_SHIFT;
  cpu.cr0 = CR0.PE | CR0.PG | CR0.ET | CR0.NE | CR0.WP | CR0.MP;
  cpu.cr4 = CR4.PAE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.FSGSBASE;
  cpu.efer = EFER.LME | EFER.LMA | EFER.SCE | EFER.NXE;
  for (let s = 0; s < 6; s++) {
    cpu.segSel[s] = s === Seg.CS ? 0x30 | cpl : 0x28 | cpl;
    cpu.segBaseLo[s] = 0;
    cpu.segBaseHi[s] = 0;
    cpu.segLimit[s] = -1;
    cpu.segAttr[s] =
      s === Seg.CS
        ? AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.L | AR.G | dpl
        : AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G | dpl;
  }
  cpu.setRflags(F.FIXED1 | F.IF);
  cpu.cpl = cpl;
  cpu.segCacheAll();
  cpu.updateMode();
  cpu.updateAccessMasks();
  cpu.tlbFlushAll();
}

/** Flat 32-bit protected mode at CPL 0 without paging. */
export function enterFlatProtectedMode(cpu: Cpu): void {
  cpu.cr0 = CR0.PE | CR0.ET | CR0.NE;
  cpu.efer = 0;
  for (let s = 0; s < 6; s++) {
    cpu.segSel[s] = s === Seg.CS ? 0x08 : 0x10;
    cpu.segBaseLo[s] = 0;
    cpu.segBaseHi[s] = 0;
    cpu.segLimit[s] = -1;
    cpu.segAttr[s] =
      s === Seg.CS
        ? AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G
        : AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G;
  }
  cpu.cpl = 0;
  cpu.segCacheAll();
  cpu.updateMode();
  cpu.updateAccessMasks();
  cpu.tlbFlushAll();
}
