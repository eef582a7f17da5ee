/**
 * VM-entry checks on the VMX controls (SDM Vol. 3C 27.2.1, "Checks on VMX Controls"), in the
 * SDM's order. A failure is VMfailValid(7, "VM entry with invalid control field(s)").
 *
 * Each check returns the name of the SDM rule it enforces, so a test can assert which rule a
 * VMCS breaks; `null` means every check passed.
 */
import { ctlValid, type VmxCaps } from "./caps";
import {
  EntryCtl,
  ExitCtl,
  INTR_INFO_DELIVER_CODE,
  INTR_INFO_VALID,
  IntrType,
  Pin,
  Proc,
  Proc2,
} from "./controls";
import { F } from "./fields";
import type { VmxPhysMemory } from "./iface";
import type { Vmcs } from "./vmcs";

/** Everything the entry checks read besides the VMCS. */
export interface EntryCheckEnv {
  vmcs: Vmcs;
  caps: VmxCaps;
  mem: VmxPhysMemory;
  eptpValid: (eptp: bigint) => boolean;
  /** IA32_EFER.LMA of the processor executing VMLAUNCH/VMRESUME (SDM 27.2.4). */
  hostLma: boolean;
}

/**
 * EPTP validity (SDM 27.2.1.1, "If the enable EPT VM-execution control is 1, the EPTP ..."):
 * memory type (2:0) UC or WB as IA32_VMX_EPT_VPID_CAP allows; bits 5:3 = 3 (page-walk length 4);
 * bit 6 (A/D enable) only if A/D flags are supported; bit 7 (supervisor shadow stacks) 0 without
 * CET; bits 11:8 reserved; no bit at or above MAXPHYADDR.
 */
export function validEptp(caps: VmxCaps, eptp: bigint): boolean {
  const cap = caps.eptVpidCapLo;
  const lo = Number(eptp & 0xfffn);
  const memType = lo & 7;
  if (memType === 0 ? (cap & (1 << 8)) === 0 : memType === 6 ? (cap & (1 << 14)) === 0 : true) return false;
  if (((lo >>> 3) & 7) !== 3) return false;
  if (lo & 0x40 && (cap & (1 << 21)) === 0) return false;
  if (lo & 0xf80) return false;
  return caps.paValid(eptp);
}

function pageAddrBad(caps: VmxCaps, pa: bigint): boolean {
  return (pa & 0xfffn) !== 0n || !caps.paValid(pa);
}

/** MSR-area address checks (27.2.1.2/27.2.1.3): 16-byte aligned, last byte within MAXPHYADDR. */
function msrAreaBad(caps: VmxCaps, addr: bigint, count: number): boolean {
  if (count === 0) return false;
  return (addr & 0xfn) !== 0n || !caps.paValid(addr) || !caps.paValid(addr + BigInt(count) * 16n - 1n);
}

/** 27.2.1.1 Checks on VM-execution control fields. */
export function checkExecutionControls(env: EntryCheckEnv): string | null {
  const { vmcs, caps } = env;
  const pin = vmcs.get32(F.PIN_BASED_VM_EXEC_CONTROL);
  const proc = vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL);
  if (!ctlValid(caps.truePin, pin))
    return "27.2.1.1 pin-based controls reserved bits (IA32_VMX_TRUE_PINBASED_CTLS)";
  if (!ctlValid(caps.trueProc, proc))
    return "27.2.1.1 processor-based controls reserved bits (IA32_VMX_TRUE_PROCBASED_CTLS)";
  // "If the activate secondary controls primary processor-based VM-execution control is 0, no
  // checks are performed on the secondary controls" and they act as 0.
  const proc2 = proc & Proc.ACTIVATE_SECONDARY ? vmcs.get32(F.SECONDARY_VM_EXEC_CONTROL) : 0;
  if (!ctlValid(caps.proc2, proc2))
    return "27.2.1.1 secondary processor-based controls reserved bits (IA32_VMX_PROCBASED_CTLS2)";
  if (vmcs.get32(F.CR3_TARGET_COUNT) >>> 0 > 4) return "27.2.1.1 CR3-target count <= 4";
  if (proc & Proc.USE_IO_BITMAPS) {
    if (pageAddrBad(caps, vmcs.get64(F.IO_BITMAP_A))) return "27.2.1.1 I/O bitmap A address";
    if (pageAddrBad(caps, vmcs.get64(F.IO_BITMAP_B))) return "27.2.1.1 I/O bitmap B address";
  }
  if (proc & Proc.USE_MSR_BITMAPS && pageAddrBad(caps, vmcs.get64(F.MSR_BITMAP)))
    return "27.2.1.1 MSR-bitmap address";
  if (proc & Proc.USE_TPR_SHADOW) {
    const vapic = vmcs.get64(F.VIRTUAL_APIC_PAGE_ADDR);
    if (pageAddrBad(caps, vapic)) return "27.2.1.1 virtual-APIC address";
    // Virtual-interrupt delivery is not implemented (its bit is reserved), so both TPR-threshold
    // rules for "virtual-interrupt delivery = 0" apply; the second one also needs "virtualize APIC
    // accesses" = 0.
    const thr = vmcs.get32(F.TPR_THRESHOLD);
    if (thr >>> 4 !== 0) return "27.2.1.1 TPR threshold bits 31:4";
    if ((proc2 & Proc2.VIRTUALIZE_APIC_ACCESSES) === 0) {
      const vtpr = new Uint8Array(1);
      env.mem.read(Number(vapic) + 0x80, vtpr);
      if ((thr & 0xf) > vtpr[0]! >>> 4) return "27.2.1.1 TPR threshold bits 3:0 <= VTPR bits 7:4";
    }
  }
  // The SDM rules tying virtualize-x2APIC-mode, APIC-register virtualization, virtual-interrupt
  // delivery and posted interrupts to other controls cannot fail here: those controls are not in
  // our allowed-1 settings, so the reserved-bit checks above already reject them.
  if ((pin & Pin.NMI_EXITING) === 0 && pin & Pin.VIRTUAL_NMIS)
    return "27.2.1.1 virtual NMIs need NMI exiting";
  if ((pin & Pin.VIRTUAL_NMIS) === 0 && proc & Proc.NMI_WINDOW_EXITING)
    return "27.2.1.1 NMI-window exiting needs virtual NMIs";
  if (proc2 & Proc2.VIRTUALIZE_APIC_ACCESSES && pageAddrBad(caps, vmcs.get64(F.APIC_ACCESS_ADDR)))
    return "27.2.1.1 APIC-access address";
  if (proc2 & Proc2.ENABLE_VPID && vmcs.get32(F.VIRTUAL_PROCESSOR_ID) === 0) return "27.2.1.1 VPID != 0";
  if (proc2 & Proc2.ENABLE_EPT && !env.eptpValid(vmcs.get64(F.EPT_POINTER))) return "27.2.1.1 EPTP valid";
  if (proc2 & Proc2.UNRESTRICTED_GUEST && (proc2 & Proc2.ENABLE_EPT) === 0)
    return "27.2.1.1 unrestricted guest needs enable EPT";
  if (proc2 & Proc2.ENABLE_VMFUNC) {
    const func = vmcs.get64(F.VM_FUNCTION_CONTROL);
    if ((func & ~BigInt(caps.vmfunc)) !== 0n)
      return "27.2.1.1 VM-function controls reserved bits (IA32_VMX_VMFUNC)";
    if (func & 1n) {
      if ((proc2 & Proc2.ENABLE_EPT) === 0) return "27.2.1.1 EPTP switching needs enable EPT";
      if (pageAddrBad(caps, vmcs.get64(F.EPTP_LIST_ADDRESS))) return "27.2.1.1 EPTP-list address";
    }
  }
  return null;
}

/** 27.2.1.2 Checks on VM-exit control fields. */
export function checkExitControls(env: EntryCheckEnv): string | null {
  const { vmcs, caps } = env;
  const exit = vmcs.get32(F.VM_EXIT_CONTROLS);
  const pin = vmcs.get32(F.PIN_BASED_VM_EXEC_CONTROL);
  if (!ctlValid(caps.trueExit, exit))
    return "27.2.1.2 VM-exit controls reserved bits (IA32_VMX_TRUE_EXIT_CTLS)";
  if ((pin & Pin.PREEMPTION_TIMER) === 0 && exit & ExitCtl.SAVE_PREEMPTION_TIMER)
    return "27.2.1.2 save preemption-timer value needs activate preemption timer";
  if (msrAreaBad(caps, vmcs.get64(F.VM_EXIT_MSR_STORE_ADDR), vmcs.get32(F.VM_EXIT_MSR_STORE_COUNT)))
    return "27.2.1.2 VM-exit MSR-store address";
  if (msrAreaBad(caps, vmcs.get64(F.VM_EXIT_MSR_LOAD_ADDR), vmcs.get32(F.VM_EXIT_MSR_LOAD_COUNT)))
    return "27.2.1.2 VM-exit MSR-load address";
  return null;
}

/** Exceptions that push an error code (SDM 6.15): #DF, #TS, #NP, #SS, #GP, #PF, #AC. */
const ERROR_CODE_VECTORS = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17);

/** 27.2.1.3 Checks on VM-entry control fields, including the event-injection field. */
export function checkEntryControls(env: EntryCheckEnv): string | null {
  const { vmcs, caps } = env;
  const entry = vmcs.get32(F.VM_ENTRY_CONTROLS);
  if (!ctlValid(caps.trueEntry, entry))
    return "27.2.1.3 VM-entry controls reserved bits (IA32_VMX_TRUE_ENTRY_CTLS)";
  const info = vmcs.get32(F.VM_ENTRY_INTR_INFO_FIELD);
  if (info & INTR_INFO_VALID) {
    const type = (info >>> 8) & 7;
    const vector = info & 0xff;
    // Type 1 is reserved; type 7 (other event) exists only where the monitor trap flag does.
    if (type === 1 || (type === IntrType.OTHER && (caps.proc.may1 & Proc.MONITOR_TRAP_FLAG) === 0))
      return "27.2.1.3 event injection: interruption type";
    if (type === IntrType.NMI && vector !== 2) return "27.2.1.3 event injection: NMI vector is 2";
    if (type === IntrType.OTHER && vector !== 0) return "27.2.1.3 event injection: other-event vector is 0";
    if (type === IntrType.HW_EXCEPTION && vector > 31)
      return "27.2.1.3 event injection: exception vector <= 31";
    const proc = vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL);
    const proc2 = proc & Proc.ACTIVATE_SECONDARY ? vmcs.get32(F.SECONDARY_VM_EXEC_CONTROL) : 0;
    const pe = (vmcs.get32(F.GUEST_CR0) & 1) !== 0;
    // IA32_VMX_BASIC[56] = 0: the deliver-error-code bit must match the architecture exactly.
    const needsCode =
      ((proc2 & Proc2.UNRESTRICTED_GUEST) === 0 || pe) &&
      type === IntrType.HW_EXCEPTION &&
      ((ERROR_CODE_VECTORS >>> vector) & 1) === 1;
    const deliver = (info & INTR_INFO_DELIVER_CODE) !== 0;
    if (deliver !== needsCode) return "27.2.1.3 event injection: deliver-error-code bit";
    if ((info & 0x7ffff000) !== 0) return "27.2.1.3 event injection: reserved bits 30:12";
    if (deliver && vmcs.get32(F.VM_ENTRY_EXCEPTION_ERROR_CODE) >>> 16 !== 0)
      return "27.2.1.3 event injection: error code bits 31:16";
    if (
      type === IntrType.SW_INTERRUPT ||
      type === IntrType.PRIV_SW_EXCEPTION ||
      type === IntrType.SW_EXCEPTION
    ) {
      const len = vmcs.get32(F.VM_ENTRY_INSTRUCTION_LEN);
      // IA32_VMX_MISC[30] = 0: a length of 0 is not allowed.
      if (len < 1 || len > 15) return "27.2.1.3 event injection: instruction length 1-15";
    }
  }
  if (msrAreaBad(caps, vmcs.get64(F.VM_ENTRY_MSR_LOAD_ADDR), vmcs.get32(F.VM_ENTRY_MSR_LOAD_COUNT)))
    return "27.2.1.3 VM-entry MSR-load address";
  // Not in SMM: "entry to SMM" and "deactivate dual-monitor treatment" must be 0 (both are also
  // reserved in our allowed-1 settings, so the reserved-bit check above already caught them).
  if (entry & (EntryCtl.ENTRY_TO_SMM | EntryCtl.DEACTIVATE_DUAL_MONITOR))
    return "27.2.1.3 entry to SMM outside SMM";
  return null;
}

/** All of 27.2.1 in order. */
export function checkControls(env: EntryCheckEnv): string | null {
  return checkExecutionControls(env) ?? checkExitControls(env) ?? checkEntryControls(env);
}
