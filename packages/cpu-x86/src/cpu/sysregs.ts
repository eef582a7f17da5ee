/**
 * Control registers, MSRs, the TSC and the I/O permission check (SDM Vol. 3 2.5, 2.2.1, 17.17,
 * Vol. 1 19.5): the writes that change the paging mode or the operating mode, with their #GP rules.
 */
import {
  CPUID_1_ECX_XSAVE,
  CPUID_7_ECX_PKU,
  CPUID_D1_EAX_XSAVES,
  CpuidModel,
  type CpuidResult,
  XSS_SUPPORTED,
} from "./cpuid.js";
import { Vec } from "./memory.js";
import { OpCpu } from "./operands.js";
import { AR, CR0, CR4, EFER, F, M64, MSR_IA32_XSS, Msr, Seg } from "./state.js";

/** CR4 bits this CPU accepts (others are reserved: #GP). */
const CR4_VALID =
  CR4.VME |
  CR4.PVI |
  CR4.TSD |
  CR4.DE |
  CR4.PSE |
  CR4.PAE |
  CR4.MCE |
  CR4.PGE |
  CR4.PCE |
  CR4.OSFXSR |
  CR4.OSXMMEXCPT |
  CR4.UMIP |
  CR4.VMXE |
  CR4.FSGSBASE |
  CR4.PCIDE |
  CR4.OSXSAVE |
  CR4.SMEP |
  CR4.SMAP;

export class SysCpu extends OpCpu {
  cpuidModel = new CpuidModel();
  readonly cpuidOut: CpuidResult = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  /** Result of `readMsr`. */
  msrLo = 0;
  msrHi = 0;
  /** Returns the VM clock (TSC ticks); Cpu overrides with its clock. */
  clockNow(): number {
    return 0;
  }

  readTsc(): number {
    return this.clockNow() + this.tscOffset;
  }

  /**
   * Writes CR0/CR3/CR4/CR8 with the checks of SDM Vol. 2 "MOV—Move to/from Control Registers" and the
   * IA-32e activation rules of Vol. 3 10.8.5. Flushes the TLB when translations may change.
   */
  writeCr(cr: number, lo: number, hi: number): void {
    switch (cr) {
      case 0: {
        if (hi !== 0) this.raise(Vec.GP, 0);
        let v = (lo | CR0.ET) & 0xe005003f;
        if (v & CR0.PG && (v & CR0.PE) === 0) this.raise(Vec.GP, 0);
        if (v & CR0.NW && (v & CR0.CD) === 0) this.raise(Vec.GP, 0);
        const old = this.cr0;
        if ((v & CR0.PG) !== 0 && (old & CR0.PG) === 0 && this.efer & EFER.LME) {
          // Enabling IA-32e mode needs PAE and a CS that is not 64-bit.
          if ((this.cr4 & CR4.PAE) === 0 || this.segAttr[Seg.CS]! & AR.L) this.raise(Vec.GP, 0);
          this.efer |= EFER.LMA;
        }
        if ((v & CR0.PG) === 0 && (old & CR0.PG) !== 0 && this.efer & EFER.LMA) {
          if (this.codeMode === 64) this.raise(Vec.GP, 0);
          this.efer &= ~EFER.LMA;
        }
        if ((v & CR0.PE) === 0 && this.efer & EFER.LMA) this.raise(Vec.GP, 0);
        v |= 0;
        this.cr0 = v;
        if (((old ^ v) & (CR0.PG | CR0.WP | CR0.PE)) !== 0) this.tlbFlushAll();
        this.segCacheAll();
        this.updateMode();
        this.updateAccessMasks();
        return;
      }
      case 2:
        this.cr2Lo = lo;
        this.cr2Hi = hi;
        return;
      case 3:
        if (this.efer & EFER.LMA) {
          // With CR4.PCIDE = 1, bit 63 of the source only asks not to flush; CR3 bit 63 stays 0. Bits
          // 62:MAXPHYADDR are reserved (SDM Vol. 2 MOV CR, Vol. 3 4.10.4.1).
          if (this.cr4 & CR4.PCIDE) hi &= 0x7fffffff;
          if (hi >>> 0 >= 1 << (this.cpuidModel.physBits - 32)) this.raise(Vec.GP, 0);
        } else hi = 0;
        this.cr3Lo = lo;
        this.cr3Hi = hi;
        // Global translations survive (SDM Vol. 3 4.10.4.1); see tlbFlushNonGlobal for PCIDs.
        this.tlbFlushNonGlobal();
        return;
      case 4: {
        // CR4.PKE and CR4.OSXSAVE are reserved unless CPUID reports PKU / XSAVE.
        const m = this.cpuidModel;
        const valid =
          (CR4_VALID & ~(m.features1Ecx & CPUID_1_ECX_XSAVE ? 0 : CR4.OSXSAVE)) |
          (m.features7Ecx & CPUID_7_ECX_PKU ? CR4.PKE : 0);
        if (hi !== 0 || (lo & ~valid) !== 0) this.raise(Vec.GP, 0);
        if (this.efer & EFER.LMA && (lo & CR4.PAE) === 0) this.raise(Vec.GP, 0);
        if (lo & CR4.PCIDE && (this.cr3Lo & 0xfff) !== 0) this.raise(Vec.GP, 0);
        const old = this.cr4;
        this.cr4 = lo;
        // SDM Vol. 3 4.10.4.1 names PGE, PCIDE 1 -> 0 and SMEP 0 -> 1; the TLB entries also hold the
        // rights SMAP, SMEP and PKE give, so any change of those drops everything.
        if ((old ^ lo) & (CR4.PAE | CR4.PSE | CR4.PGE | CR4.PCIDE | CR4.SMEP | CR4.SMAP | CR4.PKE))
          this.tlbFlushAll();
        this.updateAccessMasks();
        return;
      }
      default:
        if (hi !== 0 || (lo & ~15) !== 0) this.raise(Vec.GP, 0);
        this.cr8 = lo & 15;
    }
  }

  /** RDMSR: returns false for an MSR this CPU does not implement (the caller raises #GP(0)). */
  readMsr(idx: number): boolean {
    let lo = 0;
    let hi = 0;
    // An MSR kept as plain 64-bit storage in `msr64` (no closure: kvm-api reads MSRs on every VM exit).
    let slot = -1;
    switch (idx) {
      case Msr.TSC: {
        const t = this.readTsc();
        lo = (t % 4294967296) | 0;
        hi = Math.floor(t / 4294967296) | 0;
        break;
      }
      case Msr.EFER:
        lo = this.efer;
        break;
      case Msr.STAR:
        slot = M64.star;
        break;
      case Msr.LSTAR:
        slot = M64.lstar;
        break;
      case Msr.CSTAR:
        slot = M64.cstar;
        break;
      case Msr.FMASK:
        slot = M64.fmask;
        break;
      case Msr.FS_BASE:
        lo = this.segBaseLo[Seg.FS]!;
        hi = this.segBaseHi[Seg.FS]!;
        break;
      case Msr.GS_BASE:
        lo = this.segBaseLo[Seg.GS]!;
        hi = this.segBaseHi[Seg.GS]!;
        break;
      case Msr.KERNEL_GS_BASE:
        slot = M64.kernelGsBase;
        break;
      case Msr.TSC_AUX:
        slot = M64.tscAux;
        break;
      case Msr.SYSENTER_CS:
        lo = this.sysenterCs;
        break;
      case Msr.SYSENTER_ESP:
        slot = M64.sysenterEsp;
        break;
      case Msr.SYSENTER_EIP:
        slot = M64.sysenterEip;
        break;
      case Msr.PAT:
        slot = M64.pat;
        break;
      case Msr.APIC_BASE:
        slot = M64.apicBase;
        break;
      case Msr.MISC_ENABLE:
        slot = M64.miscEnable;
        break;
      case Msr.FEATURE_CONTROL:
        slot = M64.featureControl;
        break;
      case Msr.MTRR_DEF_TYPE:
        slot = M64.mtrrDefType;
        break;
      case Msr.MTRRCAP:
        lo = 0; // no variable or fixed MTRRs
        break;
      case Msr.SPEC_CTRL:
        slot = M64.specCtrl;
        break;
      case Msr.TSC_ADJUST:
        slot = M64.tscAdjust;
        break;
      case MSR_IA32_XSS:
        if (!this.hasXsaves()) return false;
        lo = this.xssLo;
        break;
      default:
        return false;
    }
    if (slot >= 0) {
      lo = this.msr64[slot * 2]!;
      hi = this.msr64[slot * 2 + 1]!;
    }
    this.msrLo = lo;
    this.msrHi = hi;
    return true;
  }

  /** WRMSR: returns false for unknown MSRs or reserved bits (the caller raises #GP(0)). */
  writeMsr(idx: number, lo: number, hi: number): boolean {
    const canonical = ((hi >> 15) + 1) >>> 1 === 0;
    switch (idx) {
      case Msr.TSC:
        this.tscOffset = (hi >>> 0) * 4294967296 + (lo >>> 0) - this.clockNow();
        return true;
      case Msr.EFER: {
        if (hi !== 0 || (lo & ~(EFER.SCE | EFER.LME | EFER.LMA | EFER.NXE)) !== 0) return false;
        // LME cannot change while paging is on; LMA is read-only (SDM Vol. 3 10.8.5).
        if (this.cr0 & CR0.PG && ((lo ^ this.efer) & EFER.LME) !== 0) return false;
        const old = this.efer;
        this.efer = (lo & ~EFER.LMA) | (old & EFER.LMA);
        if ((old ^ this.efer) & EFER.NXE) this.tlbFlushAll();
        return true;
      }
      case Msr.STAR:
        this.setMsr64(M64.star, lo, hi);
        return true;
      case Msr.LSTAR:
        if (!canonical) return false;
        this.setMsr64(M64.lstar, lo, hi);
        return true;
      case Msr.CSTAR:
        if (!canonical) return false;
        this.setMsr64(M64.cstar, lo, hi);
        return true;
      case Msr.FMASK:
        lo &= 0x3f7fd5;
        hi = 0;
        this.setMsr64(M64.fmask, lo, hi);
        return true;
      case Msr.FS_BASE:
      case Msr.GS_BASE: {
        if (!canonical) return false;
        const s = idx === Msr.FS_BASE ? Seg.FS : Seg.GS;
        this.segBaseLo[s] = lo;
        this.segBaseHi[s] = hi;
        return true;
      }
      case Msr.KERNEL_GS_BASE:
        if (!canonical) return false;
        this.setMsr64(M64.kernelGsBase, lo, hi);
        return true;
      case Msr.TSC_AUX:
        hi = 0;
        this.setMsr64(M64.tscAux, lo, hi);
        return true;
      case Msr.SYSENTER_CS:
        this.sysenterCs = lo & 0xffff;
        return true;
      case Msr.SYSENTER_ESP:
        if (!canonical) return false;
        this.setMsr64(M64.sysenterEsp, lo, hi);
        return true;
      case Msr.SYSENTER_EIP:
        if (!canonical) return false;
        this.setMsr64(M64.sysenterEip, lo, hi);
        return true;
      case Msr.PAT:
        this.setMsr64(M64.pat, lo, hi);
        return true;
      case Msr.APIC_BASE:
        this.setMsr64(M64.apicBase, lo, hi);
        return true;
      case Msr.MISC_ENABLE:
        this.setMsr64(M64.miscEnable, lo, hi);
        return true;
      case Msr.FEATURE_CONTROL:
        this.setMsr64(M64.featureControl, lo, hi);
        return true;
      case Msr.MTRR_DEF_TYPE:
        this.setMsr64(M64.mtrrDefType, lo, hi);
        return true;
      case Msr.SPEC_CTRL:
        this.setMsr64(M64.specCtrl, lo, hi);
        return true;
      case Msr.TSC_ADJUST:
        this.setMsr64(M64.tscAdjust, lo, hi);
        return true;
      case MSR_IA32_XSS:
        // SDM Vol. 1 13.3: #GP for a bit CPUID.(0DH,1):ECX/EDX does not report.
        if (!this.hasXsaves() || hi !== 0 || (lo & ~XSS_SUPPORTED) !== 0) return false;
        this.xssLo = lo;
        return true;
      default:
        return false;
    }
  }

  /** CPUID.(0DH,1):EAX[3]: XSAVES/XRSTORS and IA32_XSS exist. */
  hasXsaves(): boolean {
    const m = this.cpuidModel;
    return (m.features1Ecx & CPUID_1_ECX_XSAVE) !== 0 && (m.xsaveExtensions & CPUID_D1_EAX_XSAVES) !== 0;
  }

  /** Writes an MSR kept as plain 64-bit storage in `msr64`. */
  private setMsr64(n: number, lo: number, hi: number): void {
    this.msr64[n * 2] = lo;
    this.msr64[n * 2 + 1] = hi;
  }

  /**
   * The I/O permission check (SDM Vol. 1 19.5): when CPL > IOPL or in virtual-8086 mode, every byte's
   * bit in the TSS I/O bitmap must be clear, else #GP(0). Returns true or raises.
   */
  ioAllowed(port: number, size: number): boolean {
    if ((this.cr0 & CR0.PE) === 0) return true;
    if ((this.flags & F.VM) === 0 && this.cpl <= ((this.flags >> 12) & 3)) return true;
    // Only a 32/64-bit TSS has a bitmap.
    if ((this.segAttr[Seg.TR]! & 0xf) !== 0xb && (this.segAttr[Seg.TR]! & 0xf) !== 9) this.raise(Vec.GP, 0);
    const limit = this.segLimit[Seg.TR]! >>> 0;
    if (limit < 0x67) this.raise(Vec.GP, 0);
    this.beginSupervisor();
    const baseLo = this.segBaseLo[Seg.TR]!;
    const baseHi = this.segBaseHi[Seg.TR]!;
    const mapOff = this.rd16((baseLo + 0x66) | 0, baseHi);
    const byte = mapOff + (port >> 3);
    if (byte + 1 > limit) {
      this.endSupervisor();
      this.raise(Vec.GP, 0);
    }
    const bits = this.rd16((baseLo + byte) | 0, baseHi);
    this.endSupervisor();
    const maskBits = ((1 << size) - 1) << (port & 7);
    if ((bits & maskBits) !== 0) this.raise(Vec.GP, 0);
    return true;
  }
}
