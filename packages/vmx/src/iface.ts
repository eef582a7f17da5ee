/**
 * The narrow interfaces vmx needs from the layers below (ARCHITECTURE.md: "Layers meet through
 * narrow interfaces declared by the package that needs them"). `@tskvm/cpu-x86` and
 * `@tskvm/mmu-ept` satisfy them structurally; `@tskvm/kvm-api` is where the compiler checks the fit.
 *
 * 64-bit register values are bigint here: VM entry, VM exit and the VMX instructions are cold
 * paths (thousands per second at most), and bigint keeps full 64-bit values without precision
 * loss. The hot-path intercept decisions (intercepts.ts) take plain numbers.
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

/**
 * The processor state VM entry loads and VM exit stores (SDM 25.4 "Guest-State Area", 25.5
 * "Host-State Area"), plus what the VMX instructions check (CPL, mode). General-purpose registers
 * other than RSP are not part of the VMCS and do not appear.
 */
export interface VmxCpuState {
  rsp: bigint;
  rip: bigint;
  rflags: bigint;
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  dr7: bigint;
  /** Current privilege level (0-3). */
  readonly cpl: number;
  getSegment(s: Seg): VmxSegment;
  setSegment(s: Seg, v: VmxSegment): void;
  gdtr: VmxDescTable;
  idtr: VmxDescTable;
  /** IA32_DEBUGCTL (MSR 0x1D9). */
  debugctl: bigint;
  /** IA32_SYSENTER_CS (0x174), ESP (0x175), EIP (0x176). */
  sysenterCs: number;
  sysenterEsp: bigint;
  sysenterEip: bigint;
  /** IA32_EFER (0xC0000080). */
  efer: bigint;
  /** IA32_PAT (0x277). */
  pat: bigint;
  /** Blocking state in the VMCS interruptibility-state format (SDM Table 25-3). */
  interruptibility: number;
  /** 0 active, 1 HLT, 2 shutdown, 3 wait-for-SIPI (SDM 25.4.2). */
  activityState: number;
  /** Pending debug exceptions in the VMCS format (SDM Table 25-4). */
  pendingDebugExceptions: bigint;
  /**
   * The four PAE PDPTEs the processor uses for translation. VM entry sets them for a guest that
   * uses PAE paging (SDM 27.3.2.4); VM exit reads them back when EPT is on (28.3.4).
   */
  pdptes: [bigint, bigint, bigint, bigint];
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
