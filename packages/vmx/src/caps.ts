/**
 * The VMX capability MSRs (SDM Vol. 3D Appendix A, "VMX Capability Reporting Facility"), built
 * from what this package implements. Nothing is claimed that is not implemented: every control
 * bit set in an allowed-1 half below has behaviour in entry.ts, exit.ts or intercepts.ts (the
 * test `caps.test.ts` enumerates them).
 *
 * Control MSRs (A.3-A.5): bits 31:0 are the allowed-0 settings (a 1 there means the control must
 * be 1), bits 63:32 the allowed-1 settings (a 0 there means the control must be 0).
 */
import { EntryCtl, ExitCtl, Pin, Proc, Proc2 } from "./controls";
import { encIndex, type FieldFeature, VMCS_FIELDS } from "./fields";
import { VMCS_REGION_SIZE } from "./vmcs";

/** MSR indices 0x480-0x491 (SDM Vol. 4 Table 2-2). */
export const VmxMsr = {
  BASIC: 0x480,
  PINBASED_CTLS: 0x481,
  PROCBASED_CTLS: 0x482,
  EXIT_CTLS: 0x483,
  ENTRY_CTLS: 0x484,
  MISC: 0x485,
  CR0_FIXED0: 0x486,
  CR0_FIXED1: 0x487,
  CR4_FIXED0: 0x488,
  CR4_FIXED1: 0x489,
  VMCS_ENUM: 0x48a,
  PROCBASED_CTLS2: 0x48b,
  EPT_VPID_CAP: 0x48c,
  TRUE_PINBASED_CTLS: 0x48d,
  TRUE_PROCBASED_CTLS: 0x48e,
  TRUE_EXIT_CTLS: 0x48f,
  TRUE_ENTRY_CTLS: 0x490,
  VMFUNC: 0x491,
} as const;

/** IA32_FEATURE_CONTROL (MSR 0x3A) bits VMXON checks (SDM 24.7). */
export const FeatureControl = { LOCK: 1, VMX_INSIDE_SMX: 2, VMX_OUTSIDE_SMX: 4 } as const;

/** "Default1" control bits (SDM A.2): reserved bits that read as 1 in the non-TRUE MSRs. */
const PIN_DEFAULT1 = 0x16;
const PROC_DEFAULT1 = 0x0401e172;
const EXIT_DEFAULT1 = 0x00036dff;
const ENTRY_DEFAULT1 = 0x000011ff;
/** The TRUE MSRs let these default1 bits be 0 (SDM A.3.2, A.4, A.5). */
const PROC_TRUE_DEFAULT1 = PROC_DEFAULT1 & ~(Proc.CR3_LOAD_EXITING | Proc.CR3_STORE_EXITING);
const EXIT_TRUE_DEFAULT1 = EXIT_DEFAULT1 & ~ExitCtl.SAVE_DEBUG_CONTROLS;
const ENTRY_TRUE_DEFAULT1 = ENTRY_DEFAULT1 & ~EntryCtl.LOAD_DEBUG_CONTROLS;

/** EPT capabilities of the EPT walker this VMX is paired with (mmu-ept answers these). */
export interface EptCaps {
  /** EPT entries with R=0, W=0, X=1 are allowed (IA32_VMX_EPT_VPID_CAP bit 0). */
  executeOnly: boolean;
  /** 2-MByte EPT pages (bit 16). */
  pages2M: boolean;
  /** 1-GByte EPT pages (bit 17). */
  pages1G: boolean;
  /** Accessed and dirty flags for EPT (bit 21). */
  accessDirty: boolean;
}

/** The model a VMX unit implements. */
export interface VmxConfig {
  /** VMCS revision identifier (IA32_VMX_BASIC bits 30:0). */
  revisionId: number;
  /** MAXPHYADDR: physical-address width (CPUID.80000008H:EAX[7:0]). */
  physAddrBits: number;
  /** CR4 bits the CPU lets software set: IA32_VMX_CR4_FIXED1. */
  cr4Fixed1: number;
  /** VMX-preemption timer rate: it counts down by 1 every 2^rate TSC ticks (MISC bits 4:0). */
  preemptionTimerRate: number;
  ept: EptCaps;
  /** Secondary processor-based controls left out of this model (cleared from the allowed-1 bits). */
  disabledProc2: number;
  /**
   * Pin-based, primary processor-based, VM-exit and VM-entry controls left out (cleared from the
   * allowed-1 bits): a nested hypervisor offers its guest only what it can virtualize.
   */
  disabledPin: number;
  disabledProc: number;
  disabledExit: number;
  disabledEntry: number;
  /** The wait-for-SIPI activity state is supported (IA32_VMX_MISC bit 8). */
  waitForSipi: boolean;
}

/** Our VMCS revision id: an arbitrary 31-bit value that no Intel part uses ("tsk"). */
export const TSKVM_VMCS_REVISION = 0x0074736b;

/** CR4 bits of a CPU with VME..OSXMMEXCPT, VMXE, FSGSBASE, PCIDE, OSXSAVE, SMEP and SMAP. */
export const DEFAULT_CR4_FIXED1 = 0x7ff | 0x2000 | 0x10000 | 0x20000 | 0x40000 | 0x100000 | 0x200000;

export const DEFAULT_VMX_CONFIG: VmxConfig = {
  revisionId: TSKVM_VMCS_REVISION,
  physAddrBits: 39,
  cr4Fixed1: DEFAULT_CR4_FIXED1,
  preemptionTimerRate: 5,
  ept: { executeOnly: true, pages2M: true, pages1G: true, accessDirty: false },
  disabledProc2: 0,
  disabledPin: 0,
  disabledProc: 0,
  disabledExit: 0,
  disabledEntry: 0,
  waitForSipi: true,
};

/** Every pin-based control implemented here. */
export const IMPLEMENTED_PIN =
  Pin.EXT_INTR_EXITING | Pin.NMI_EXITING | Pin.VIRTUAL_NMIS | Pin.PREEMPTION_TIMER;
/** Every primary processor-based control implemented here. */
export const IMPLEMENTED_PROC =
  Proc.INTR_WINDOW_EXITING |
  Proc.USE_TSC_OFFSETTING |
  Proc.HLT_EXITING |
  Proc.INVLPG_EXITING |
  Proc.MWAIT_EXITING |
  Proc.RDPMC_EXITING |
  Proc.RDTSC_EXITING |
  Proc.CR3_LOAD_EXITING |
  Proc.CR3_STORE_EXITING |
  Proc.CR8_LOAD_EXITING |
  Proc.CR8_STORE_EXITING |
  Proc.USE_TPR_SHADOW |
  Proc.NMI_WINDOW_EXITING |
  Proc.MOV_DR_EXITING |
  Proc.UNCOND_IO_EXITING |
  Proc.USE_IO_BITMAPS |
  Proc.MONITOR_TRAP_FLAG |
  Proc.USE_MSR_BITMAPS |
  Proc.MONITOR_EXITING |
  Proc.PAUSE_EXITING |
  Proc.ACTIVATE_SECONDARY;
/** Every secondary processor-based control implemented here. */
export const IMPLEMENTED_PROC2 =
  Proc2.VIRTUALIZE_APIC_ACCESSES |
  Proc2.ENABLE_EPT |
  Proc2.DESC_TABLE_EXITING |
  Proc2.ENABLE_RDTSCP |
  Proc2.ENABLE_VPID |
  Proc2.WBINVD_EXITING |
  Proc2.UNRESTRICTED_GUEST |
  Proc2.PAUSE_LOOP_EXITING |
  Proc2.RDRAND_EXITING |
  Proc2.ENABLE_INVPCID |
  Proc2.ENABLE_VMFUNC |
  Proc2.RDSEED_EXITING |
  Proc2.ENABLE_XSAVES |
  Proc2.TSC_SCALING;
/** Every VM-exit control implemented here. */
export const IMPLEMENTED_EXIT =
  ExitCtl.SAVE_DEBUG_CONTROLS |
  ExitCtl.HOST_ADDR_SPACE_SIZE |
  ExitCtl.ACK_INTR_ON_EXIT |
  ExitCtl.SAVE_PAT |
  ExitCtl.LOAD_PAT |
  ExitCtl.SAVE_EFER |
  ExitCtl.LOAD_EFER |
  ExitCtl.SAVE_PREEMPTION_TIMER;
/** Every VM-entry control implemented here. */
export const IMPLEMENTED_ENTRY =
  EntryCtl.LOAD_DEBUG_CONTROLS | EntryCtl.IA32E_MODE_GUEST | EntryCtl.LOAD_PAT | EntryCtl.LOAD_EFER;

/** An allowed-0/allowed-1 pair (SDM A.3). */
export interface CtlCap {
  /** Bits that must be 1. */
  readonly must1: number;
  /** Bits that may be 1. */
  readonly may1: number;
}

/** True when `value` respects the allowed-0 and allowed-1 settings. */
export function ctlValid(cap: CtlCap, value: number): boolean {
  return (value & cap.must1) === cap.must1 && (value & ~cap.may1) === 0;
}

function ctlMsr(cap: CtlCap): bigint {
  return (BigInt(cap.may1 >>> 0) << 32n) | BigInt(cap.must1 >>> 0);
}

/** The capabilities of one VMX implementation and its MSR values. */
export class VmxCaps {
  readonly config: VmxConfig;
  readonly pin: CtlCap;
  readonly proc: CtlCap;
  readonly proc2: CtlCap;
  readonly exit: CtlCap;
  readonly entry: CtlCap;
  /** The TRUE forms: VM entry checks against these because IA32_VMX_BASIC[55] = 1 (SDM A.2). */
  readonly truePin: CtlCap;
  readonly trueProc: CtlCap;
  readonly trueExit: CtlCap;
  readonly trueEntry: CtlCap;
  /** VM-function controls that may be 1: bit 0 EPTP switching. */
  readonly vmfunc: number;
  /** Features whose VMCS fields exist. */
  readonly fieldFeatures: ReadonlySet<FieldFeature>;
  /** Encoding (bits 14:0) -> 1 where the field exists here: VM exits ask on every exit. */
  private readonly supportedFields = new Uint8Array(1 << 15);
  readonly cr0Fixed0 = 0x80000021;
  readonly cr0Fixed1 = 0xffffffff;
  readonly cr4Fixed0 = 0x2000;
  readonly cr4Fixed1: number;
  /** Mask of physical-address bits above MAXPHYADDR, high half (addresses are < 2^52). */
  readonly physAddrBits: number;
  private readonly msrs = new Map<number, bigint>();

  constructor(config: Partial<VmxConfig> = {}) {
    const c: VmxConfig = { ...DEFAULT_VMX_CONFIG, ...config };
    this.config = c;
    this.physAddrBits = c.physAddrBits;
    this.cr4Fixed1 = c.cr4Fixed1 | this.cr4Fixed0;
    this.pin = { must1: PIN_DEFAULT1, may1: PIN_DEFAULT1 | (IMPLEMENTED_PIN & ~c.disabledPin) };
    this.truePin = this.pin;
    this.proc = { must1: PROC_DEFAULT1, may1: PROC_DEFAULT1 | (IMPLEMENTED_PROC & ~c.disabledProc) };
    this.trueProc = { must1: PROC_TRUE_DEFAULT1, may1: this.proc.may1 };
    const proc2 = IMPLEMENTED_PROC2 & ~c.disabledProc2;
    this.proc2 = { must1: 0, may1: proc2 };
    this.exit = { must1: EXIT_DEFAULT1, may1: EXIT_DEFAULT1 | (IMPLEMENTED_EXIT & ~c.disabledExit) };
    this.trueExit = { must1: EXIT_TRUE_DEFAULT1, may1: this.exit.may1 };
    this.entry = { must1: ENTRY_DEFAULT1, may1: ENTRY_DEFAULT1 | (IMPLEMENTED_ENTRY & ~c.disabledEntry) };
    this.trueEntry = { must1: ENTRY_TRUE_DEFAULT1, may1: this.entry.may1 };
    this.vmfunc = proc2 & Proc2.ENABLE_VMFUNC && proc2 & Proc2.ENABLE_EPT ? 1 : 0;

    const f = new Set<FieldFeature>(["base", "tprShadow", "preemptionTimer"]);
    if (proc2 & Proc2.ENABLE_VPID) f.add("vpid");
    if (proc2 & Proc2.ENABLE_EPT) f.add("ept");
    if (proc2 & Proc2.VIRTUALIZE_APIC_ACCESSES) f.add("apicAccess");
    if (proc2 & Proc2.ENABLE_VMFUNC) f.add("vmfunc");
    if (this.vmfunc & 1) f.add("eptpSwitching");
    if (proc2 & Proc2.TSC_SCALING) f.add("tscScaling");
    if (proc2 & Proc2.PAUSE_LOOP_EXITING) f.add("pauseLoop");
    if (proc2 & Proc2.ENABLE_XSAVES) f.add("xsaves");
    this.fieldFeatures = f;
    for (const d of VMCS_FIELDS) if (f.has(d.feature)) this.supportedFields[d.enc] = 1;

    const M = VmxMsr;
    // A.1 IA32_VMX_BASIC: revision id; region size (44:32); bit 48 = 0 (no 32-bit address limit);
    // memory type WB = 6 (53:50); bit 54: INS/OUTS exits report instruction information;
    // bit 55: TRUE control MSRs exist. Bit 49 (dual-monitor SMM) and bit 56 (inject hardware
    // exceptions regardless of error-code consistency) are 0.
    this.msrs.set(
      M.BASIC,
      BigInt(c.revisionId & 0x7fffffff) |
        (BigInt(VMCS_REGION_SIZE) << 32n) |
        (6n << 50n) |
        (1n << 54n) |
        (1n << 55n),
    );
    this.msrs.set(M.PINBASED_CTLS, ctlMsr(this.pin));
    this.msrs.set(M.PROCBASED_CTLS, ctlMsr(this.proc));
    this.msrs.set(M.EXIT_CTLS, ctlMsr(this.exit));
    this.msrs.set(M.ENTRY_CTLS, ctlMsr(this.entry));
    // A.6 IA32_VMX_MISC: preemption-timer rate (4:0); bit 5 stores EFER.LMA into the "IA-32e mode
    // guest" entry control on exit; activity states HLT (bit 6) and wait-for-SIPI (bit 8); 4 CR3
    // targets (24:16); max MSR-list size 512 (27:25 = 0). Bit 29 = 0: VMWRITE to read-only
    // exit-information fields fails; bit 30 = 0: software events need instruction length >= 1.
    this.msrs.set(
      M.MISC,
      BigInt((c.preemptionTimerRate & 0x1f) | (1 << 5) | (1 << 6) | (c.waitForSipi ? 1 << 8 : 0) | (4 << 16)),
    );
    this.msrs.set(M.CR0_FIXED0, BigInt(this.cr0Fixed0));
    this.msrs.set(M.CR0_FIXED1, BigInt(this.cr0Fixed1));
    this.msrs.set(M.CR4_FIXED0, BigInt(this.cr4Fixed0));
    this.msrs.set(M.CR4_FIXED1, BigInt(this.cr4Fixed1 >>> 0));
    // A.9 IA32_VMX_VMCS_ENUM bits 9:1: highest index of any supported field.
    let maxIndex = 0;
    for (const d of VMCS_FIELDS)
      if (this.fieldSupported(d.enc)) maxIndex = Math.max(maxIndex, encIndex(d.enc));
    this.msrs.set(M.VMCS_ENUM, BigInt(maxIndex << 1));
    this.msrs.set(M.PROCBASED_CTLS2, ctlMsr(this.proc2));
    this.msrs.set(M.EPT_VPID_CAP, this.eptVpidCap());
    this.msrs.set(M.TRUE_PINBASED_CTLS, ctlMsr(this.truePin));
    this.msrs.set(M.TRUE_PROCBASED_CTLS, ctlMsr(this.trueProc));
    this.msrs.set(M.TRUE_EXIT_CTLS, ctlMsr(this.trueExit));
    this.msrs.set(M.TRUE_ENTRY_CTLS, ctlMsr(this.trueEntry));
    if (this.proc2.may1 & Proc2.ENABLE_VMFUNC) this.msrs.set(M.VMFUNC, BigInt(this.vmfunc));
  }

  /**
   * A.10 IA32_VMX_EPT_VPID_CAP. INVEPT and INVVPID are reported (with all their types) only when
   * EPT and VPID are; the EPT page-structure features come from the paired EPT walker.
   */
  private eptVpidCap(): bigint {
    let lo = 0;
    let hi = 0;
    if (this.proc2.may1 & Proc2.ENABLE_EPT) {
      const e = this.config.ept;
      if (e.executeOnly) lo |= 1 << 0;
      lo |= 1 << 6; // page-walk length 4
      lo |= 1 << 8; // EPT paging-structure memory type UC
      lo |= 1 << 14; // ... and WB
      if (e.pages2M) lo |= 1 << 16;
      if (e.pages1G) lo |= 1 << 17;
      lo |= 1 << 20; // INVEPT
      if (e.accessDirty) lo |= 1 << 21;
      lo |= (1 << 25) | (1 << 26); // single-context and all-context INVEPT
    }
    if (this.proc2.may1 & Proc2.ENABLE_VPID) {
      // INVVPID (32), individual-address (40), single-context (41), all-context (42),
      // single-context-retaining-globals (43).
      hi |= 1 | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11);
    }
    return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  }

  /** The value of a VMX capability MSR, or undefined if it does not exist here (RDMSR -> #GP). */
  readMsr(index: number): bigint | undefined {
    return this.msrs.get(index);
  }

  /** Indices of every VMX capability MSR this model has. */
  msrIndices(): number[] {
    return [...this.msrs.keys()];
  }

  /** Does the VMCS of this model have the field (SDM 25.11.2: VMREAD/VMWRITE error 12 if not)? */
  fieldSupported(enc: number): boolean {
    return (enc & ~0x7fff) === 0 && this.supportedFields[enc] === 1;
  }

  /** The EPT_VPID_CAP MSR as halves, for hot checks. */
  get eptVpidCapLo(): number {
    return Number(this.msrs.get(VmxMsr.EPT_VPID_CAP)! & 0xffffffffn);
  }
  get eptVpidCapHi(): number {
    return Number(this.msrs.get(VmxMsr.EPT_VPID_CAP)! >> 32n);
  }

  /** True when physical address `pa` has no bit set at or above MAXPHYADDR. */
  paValid(pa: bigint): boolean {
    return pa >= 0n && pa >> BigInt(this.physAddrBits) === 0n;
  }
}
