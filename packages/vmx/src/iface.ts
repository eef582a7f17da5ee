/**
 * The narrow interfaces vmx needs from the layers below (ARCHITECTURE.md: "Layers meet through
 * narrow interfaces declared by the package that needs them"). `@tskvm/cpu-x86` and
 * `@tskvm/mmu-ept` satisfy them structurally; `@tskvm/kvm-api` is where the compiler checks the fit.
 *
 * 64-bit registers are pairs of 32-bit halves (ARCHITECTURE.md "Memory and the hot path"): VM
 * entry and VM exit run on every exit of every guest (tens of thousands while Linux boots), and a
 * bigint per register would allocate on each. MSR values stay bigint (MSR areas are rare).
 */
import type { Seg } from "./fields";

/**
 * A segment register as the VMCS holds it (SDM Vol. 3C 25.4.1): `ar` is in the VMCS access-rights
 * format: type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15, unusable 16.
 */
export interface VmxSegment {
  selector: number;
  base: bigint;
  /** Byte-granular limit (already scaled by G), 32 bits. */
  limit: number;
  ar: number;
}

/** GDTR or IDTR. */
export interface VmxDescTable {
  base: bigint;
  limit: number;
}

/** The 64-bit registers of `VmxCpuState`, by number. */
export const VmxReg = {
  RIP: 0,
  RSP: 1,
  RFLAGS: 2,
  CR0: 3,
  CR3: 4,
  CR4: 5,
  DR7: 6,
  /** IA32_DEBUGCTL (MSR 0x1D9). */
  DEBUGCTL: 7,
  /** IA32_SYSENTER_ESP (0x175), IA32_SYSENTER_EIP (0x176). */
  SYSENTER_ESP: 8,
  SYSENTER_EIP: 9,
  /** IA32_EFER (0xC0000080). */
  EFER: 10,
  /** IA32_PAT (0x277). */
  PAT: 11,
  /** Pending debug exceptions in the VMCS format (SDM Table 25-4). */
  PENDING_DBG: 12,
  GDTR_BASE: 13,
  IDTR_BASE: 14,
  /**
   * The four PAE PDPTEs the processor uses for translation (PDPTE0 + i). VM entry sets them for a
   * guest that uses PAE paging (SDM 27.3.2.4); VM exit reads them back when EPT is on (28.3.4).
   */
  PDPTE0: 15,
} as const;
/** A `VmxReg` value; a number, since the PDPTEs are `VmxReg.PDPTE0 + i`. */
export type VmxReg = number;
/** Number of `VmxReg` registers (PDPTE0-3 included). */
export const VMX_REG_COUNT = 19;

/**
 * The processor state VM entry loads and VM exit stores (SDM 25.4 "Guest-State Area", 25.5
 * "Host-State Area"), plus what the VMX instructions check (CPL, mode). General-purpose registers
 * other than RSP are not part of the VMCS and do not appear. Halves are unsigned 32-bit values.
 */
export interface VmxCpuState {
  /** Bits 31:0 of a `VmxReg` register. */
  lo(r: VmxReg): number;
  /** Bits 63:32 of a `VmxReg` register. */
  hi(r: VmxReg): number;
  /** Write a `VmxReg` register from its halves. */
  set(r: VmxReg, lo: number, hi: number): void;
  /** Current privilege level (0-3). */
  readonly cpl: number;
  /** The parts of segment register `s` (VmxSegment, base in halves). */
  segSel(s: Seg): number;
  segBaseLo(s: Seg): number;
  segBaseHi(s: Seg): number;
  segLimit(s: Seg): number;
  segAr(s: Seg): number;
  setSeg(s: Seg, selector: number, baseLo: number, baseHi: number, limit: number, ar: number): void;
  gdtrLimit: number;
  idtrLimit: number;
  /** IA32_SYSENTER_CS (0x174). */
  sysenterCs: number;
  /** Blocking state in the VMCS interruptibility-state format (SDM Table 25-3). */
  interruptibility: number;
  /** 0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI (SDM 25.4.2). */
  activityState: number;
  /** RDMSR for the MSR-store area and IA32_FEATURE_CONTROL; undefined where RDMSR would #GP. */
  readMsr(index: number): bigint | undefined;
  /** WRMSR for the MSR-load areas; false where WRMSR would #GP (SDM 27.4, 28.6). */
  writeMsr(index: number, value: bigint): boolean;
}

/** Physical memory holding VMCS regions, MSR areas, bitmaps, the virtual-APIC and EPTP-list pages. */
export interface VmxPhysMemory {
  /** Fill `dst` from physical address `pa` (a number: physical addresses are below 2^52). */
  read(pa: number, dst: Uint8Array): void;
  write(pa: number, src: Uint8Array): void;
}

/** INVEPT / INVVPID effects on the translation caches (mmu-ept's TLB). */
export interface VmxTlbHooks {
  /** Single-context (`eptp` given) or all-context (`eptp` null) INVEPT (SDM 30.4.3.1). */
  invept(eptp: bigint | null): void;
  /**
   * INVVPID (SDM 30.4.3.3): type 0 individual address, 1 single context, 2 all contexts except
   * VPID 0, 3 single context retaining globals.
   */
  invvpid(type: number, vpid: number, linear: bigint): void;
}

/** A TLB that caches nothing: every invalidation is trivially complete. */
export const NO_TLB: VmxTlbHooks = {
  invept: () => {},
  invvpid: () => {},
};
