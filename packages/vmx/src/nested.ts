/**
 * Nested VMX: the decisions a hypervisor (L0) makes when it runs the guest of a guest hypervisor
 * (L1's guest, L2) on its own VMCS (vmcs02) and a VM exit from L2 arrives. Did L1 ask for that exit
 * in the VMCS it wrote (vmcs12)? If so L0 reflects it to L1 as a VM exit; if not, L0 handles it and
 * resumes L2 (KVM: nested_vmx_l1_wants_exit()). The answer is the intercept decision of intercepts.ts
 * asked again against vmcs12, so L1 sees exactly the exits the SDM promises for its controls.
 *
 * Also here: moving the guest-state area between two VMCSs (the guest of vmcs01 becomes the guest of
 * vmcs02 and back), and merging the CR0/CR4 read shadows.
 */
import { ExitReason, IntrType, Proc, Proc2 } from "./controls";
import { F, FieldType, VMCS_FIELDS } from "./fields";
import type { VmxPhysMemory } from "./iface";
import {
  cltsExit,
  descriptorTableExit,
  exceptionExits,
  hltExit,
  interruptWindowExit,
  invlpgExit,
  invpcidExit,
  ioExit,
  lmswExit,
  monitorExit,
  movDrExit,
  movFromCr3Exit,
  movFromCr8Exit,
  movToCr3Exit,
  movToCr8Exit,
  movToCrExit,
  msrExit,
  mwaitExit,
  NO_EXIT,
  nmiExits,
  pauseExit,
  proc2Of,
  rdpmcExit,
  rdrandExit,
  rdseedExit,
  rdtscExit,
  wbinvdExit,
} from "./intercepts";
import type { Vmcs } from "./vmcs";

/** An exit from L2 as L0 saw it (the exit-information fields of vmcs02). */
export interface L2Exit {
  /** Basic exit reason. */
  reason: number;
  qualification: bigint;
  /** VM-exit interruption information and error code (exception exits). */
  intrInfo: number;
  intrErrorCode: number;
  /** General-purpose register `n` of L2 (SDM numbering), for CR and MSR exits. */
  gpr(n: number): bigint;
}

/** Exit reasons that are unconditional in VMX non-root operation (SDM 26.1.2, 26.2). */
const ALWAYS = new Set<number>([
  ExitReason.TRIPLE_FAULT,
  ExitReason.INIT_SIGNAL,
  ExitReason.SIPI,
  ExitReason.TASK_SWITCH,
  ExitReason.CPUID,
  ExitReason.GETSEC,
  ExitReason.INVD,
  ExitReason.XSETBV,
  ExitReason.VMCALL,
  ExitReason.VMCLEAR,
  ExitReason.VMLAUNCH,
  ExitReason.VMPTRLD,
  ExitReason.VMPTRST,
  ExitReason.VMREAD,
  ExitReason.VMRESUME,
  ExitReason.VMWRITE,
  ExitReason.VMXOFF,
  ExitReason.VMXON,
  ExitReason.INVEPT,
  ExitReason.INVVPID,
]);

/** Decisions that need nothing but vmcs12's controls: exit reason -> decision. */
const BY_CONTROL = new Map<number, (v: Vmcs) => number>([
  [ExitReason.HLT, hltExit],
  [ExitReason.INVLPG, invlpgExit],
  [ExitReason.RDPMC, rdpmcExit],
  [ExitReason.RDTSC, rdtscExit],
  // RDTSCP exits with "RDTSC exiting"; vmcs02 enables RDTSCP only where vmcs12 does (26.3).
  [ExitReason.RDTSCP, rdtscExit],
  [ExitReason.MWAIT, mwaitExit],
  [ExitReason.MONITOR, monitorExit],
  [ExitReason.PAUSE, pauseExit],
  [ExitReason.WBINVD, wbinvdExit],
  [ExitReason.RDRAND, rdrandExit],
  [ExitReason.RDSEED, rdseedExit],
  [ExitReason.INVPCID, invpcidExit],
  [ExitReason.DR_ACCESS, movDrExit],
  [ExitReason.GDTR_IDTR_ACCESS, (v) => descriptorTableExit(v, false)],
  [ExitReason.LDTR_TR_ACCESS, (v) => descriptorTableExit(v, true)],
]);

/**
 * Does L1 want this L2 exit (SDM chapter 26 asked against vmcs12)? `mem` is L1's guest-physical
 * memory, where vmcs12's I/O and MSR bitmaps live. EPT exits are L1's when vmcs12 enables EPT (L0
 * then walks L1's EPT for L2). Exit reasons L1 cannot have enabled (APIC access, preemption timer,
 * MTF: not offered to L1) and external interrupts (L0's own) are L0's.
 */
export function l1WantsExit(v12: Vmcs, mem: VmxPhysMemory, e: L2Exit): boolean {
  const r = e.reason;
  if (ALWAYS.has(r)) return true;
  const byControl = BY_CONTROL.get(r);
  if (byControl !== undefined) return byControl(v12) >= 0;
  switch (r) {
    case ExitReason.EXCEPTION_NMI: {
      const type = (e.intrInfo >>> 8) & 7;
      if (type === IntrType.NMI) return nmiExits(v12);
      return exceptionExits(v12, e.intrInfo & 0xff, e.intrErrorCode);
    }
    case ExitReason.INTERRUPT_WINDOW:
      // vmcs02 arms the window for L1 (its bit set in vmcs12) or for L0's own injection.
      return interruptWindowExit(v12, true, 0) !== NO_EXIT;
    case ExitReason.NMI_WINDOW:
      return (v12.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.NMI_WINDOW_EXITING) !== 0;
    case ExitReason.CR_ACCESS:
      return crWanted(v12, e);
    case ExitReason.IO_INSTRUCTION: {
      const q = Number(e.qualification & 0xffffffffn);
      return ioExit(v12, mem, q >>> 16, (q & 7) + 1) !== NO_EXIT;
    }
    case ExitReason.RDMSR:
    case ExitReason.WRMSR:
      return msrExit(v12, mem, Number(e.gpr(1) & 0xffffffffn), r === ExitReason.WRMSR) !== NO_EXIT;
    case ExitReason.EPT_VIOLATION:
    case ExitReason.EPT_MISCONFIG:
      // With EPT in vmcs12, L2's guest-physical addresses go through L1's EPT first: a violation or
      // misconfiguration there is L1's (L0's own mappings of L1's memory never fault for RAM).
      return (proc2Of(v12) & Proc2.ENABLE_EPT) !== 0;
    case ExitReason.EXTERNAL_INTERRUPT:
    case ExitReason.VMFUNC:
    case ExitReason.APIC_ACCESS:
    case ExitReason.TPR_BELOW_THRESHOLD:
    case ExitReason.PREEMPTION_TIMER:
    case ExitReason.MONITOR_TRAP_FLAG:
      return false;
    default:
      // An exit L0 does not know how to handle for L2 goes to L1 (KVM does the same).
      return true;
  }
}

/** CR-access exits (SDM 26.1.3, qualification per Table 28-3). */
function crWanted(v12: Vmcs, e: L2Exit): boolean {
  const q = Number(e.qualification & 0xffffffffn);
  const cr = q & 15;
  const type = (q >>> 4) & 3;
  const gpr = (q >>> 8) & 15;
  if (type === 2) return cltsExit(v12) !== NO_EXIT;
  if (type === 3) return lmswExit(v12, q >>> 16) !== NO_EXIT;
  const write = type === 0;
  switch (cr) {
    case 0:
    case 4:
      // MOV from CR0/CR4 never exits (26.3: it reads the shadows).
      return write && movToCrExit(v12, cr, e.gpr(gpr)) !== NO_EXIT;
    case 3:
      return (write ? movToCr3Exit(v12, e.gpr(gpr)) : movFromCr3Exit(v12)) !== NO_EXIT;
    case 8:
      return (write ? movToCr8Exit(v12) : movFromCr8Exit(v12)) !== NO_EXIT;
    default:
      return true;
  }
}

/** Full-access encodings of every guest-state field (SDM 25.4). */
const GUEST_FIELDS: readonly number[] = VMCS_FIELDS.filter((d) => !d.high && d.type === FieldType.Guest).map(
  (d) => d.enc,
);

/** Copies the whole guest-state area (SDM 25.4) from one VMCS to another. */
export function copyGuestState(from: Vmcs, to: Vmcs): void {
  for (const enc of GUEST_FIELDS) to.set64(enc, from.get64(enc));
}

/**
 * The read shadow vmcs02 needs for CR0/CR4 (KVM nested_read_cr0/cr4): for bits L1 owns (its
 * guest/host mask) L2 must read L1's shadow; for the rest, L2's own view `l2View` (which L0 keeps
 * for the bits it owns itself).
 */
export function mergedReadShadow(l2View: bigint, mask12: bigint, shadow12: bigint): bigint {
  return (l2View & ~mask12) | (shadow12 & mask12);
}
