/**
 * VM entry (SDM Vol. 3C chapter 27, "VM Entries"), after VMLAUNCH/VMRESUME's own checks (27.1):
 * 27.2 checks on controls and host state (VMfailValid 7 / 8), 27.3 checking and loading guest
 * state (failure exit 33), 27.4 loading MSRs (failure exit 34), 27.6 event injection, 27.7
 * special features (VMX-preemption timer), 27.8 VM-entry failures.
 */
import {
  Activity,
  EntryCtl,
  EXIT_REASON_ENTRY_FAILURE,
  ExitReason,
  INTR_INFO_VALID,
  Interruptibility,
  IntrType,
  Pin,
  VmError,
} from "./controls";
import type { EntryCheckEnv } from "./entry-checks-controls";
import { loadHostState } from "./exit";
import { F, guestSegFields, Seg } from "./fields";
import { VmxReg } from "./iface";
import type { VmxOutcome, VmxUnit } from "./instructions";
import { loadMsrArea } from "./msr-area";
import { loadReg } from "./reg-copy";
import { hi64, lo64 } from "./util";

/** CR0 bits VM entry leaves unmodified (SDM 27.3.2.1): 63:32, 28:19, 17, 15:6 and ET. */
export const CR0_KEEP_ON_ENTRY = 0xffffffff00000000n | 0x1ffaffd0n;
const CR0_KEEP_ON_ENTRY_LO = 0x1ffaffd0;

/** An event VM entry injects (SDM 27.6): the CPU delivers it through the guest IDT. */
export interface InjectedEvent {
  vector: number;
  /**
   * IntrType: 0 external, 2 NMI, 3 hardware exception, 4 software interrupt, 5 privileged software
   * exception, 6 software exception; 7 = no event to deliver, but an MTF VM exit (reason 37) is
   * pending before the first guest instruction.
   */
  type: number;
  /** The error code to push, or null. */
  errorCode: number | null;
  /** For software interrupts/exceptions: the return RIP is RIP + this length. */
  instructionLength: number;
}

/** Build the check environment for the current VMCS. */
export function entryEnv(unit: VmxUnit): EntryCheckEnv {
  return {
    vmcs: unit.vmcs,
    caps: unit.caps,
    mem: unit.mem,
    eptpValid: unit.eptpValid,
    hostLma: (unit.cpu.lo(VmxReg.EFER) & 0x400) !== 0,
  };
}

/**
 * A VM-entry failure during or after loading guest state (SDM 27.8): record the exit reason
 * (bit 31 set) and qualification, then load host state and the VM-exit MSR-load area as a VM exit
 * does. No guest state is saved.
 */
function entryFailure(unit: VmxUnit, basic: number, qualification: number, nmiBlocked: boolean): VmxOutcome {
  const v = unit.vmcs;
  v.set32(F.VM_EXIT_REASON, (EXIT_REASON_ENTRY_FAILURE | basic) >>> 0);
  v.set64(F.EXIT_QUALIFICATION, BigInt(qualification));
  const r = loadHostState(unit, nmiBlocked);
  if (r.kind === "abort") return r;
  return { kind: "entry-failed" };
}

/** Perform VM entry on the current VMCS. VMLAUNCH/VMRESUME call this after their own checks. */
export function vmEntry(unit: VmxUnit, launch: boolean): VmxOutcome {
  const checks = unit.entryChecks;
  const cpu = unit.cpu;
  checks.begin((cpu.lo(VmxReg.EFER) & 0x400) !== 0);
  if (checks.controls() !== null) return unit.failValid(VmError.ENTRY_INVALID_CONTROL);
  if (checks.host() !== null) return unit.failValid(VmError.ENTRY_INVALID_HOST_STATE);
  const hostNmiBlocked = (cpu.interruptibility & Interruptibility.NMI) !== 0;
  const bad = checks.guest();
  if (bad !== null)
    return entryFailure(unit, ExitReason.ENTRY_FAIL_GUEST_STATE, bad.qualification, hostNmiBlocked);
  const pdptes = checks.pdptes();
  if (pdptes !== null && !Array.isArray(pdptes))
    return entryFailure(unit, ExitReason.ENTRY_FAIL_GUEST_STATE, pdptes.qualification, hostNmiBlocked);

  loadGuestState(unit, pdptes);
  const v = unit.vmcs;
  const failed = loadMsrArea(
    unit.mem,
    cpu,
    v.getNum(F.VM_ENTRY_MSR_LOAD_ADDR),
    v.get32(F.VM_ENTRY_MSR_LOAD_COUNT),
  );
  if (failed !== 0) return entryFailure(unit, ExitReason.ENTRY_FAIL_MSR_LOADING, failed, hostNmiBlocked);

  if (launch) v.launched = true;
  unit.nonRoot = true;
  unit.plePrevious = -1; // the first CPL-0 PAUSE after entry starts a loop (26.1.3)
  unit.hostNmiBlocked = hostNmiBlocked;
  const pin = v.get32(F.PIN_BASED_VM_EXEC_CONTROL);
  if (pin & Pin.PREEMPTION_TIMER) {
    unit.preemptionTimer = v.get32(F.VMX_PREEMPTION_TIMER_VALUE);
    unit.preemptionResidue = 0;
  }
  const inject = injectEvent(unit);
  return inject === null ? ENTERED : { kind: "entered", inject };
}

/** The outcome of nearly every entry, shared: no event to inject. */
const ENTERED: VmxOutcome = { kind: "entered", inject: null };

/** 27.3.2 Loading guest state. */
function loadGuestState(unit: VmxUnit, pdptes: bigint[] | null): void {
  const v = unit.vmcs;
  const cpu = unit.cpu;
  const entry = v.get32(F.VM_ENTRY_CONTROLS);
  const ia32e = (entry & EntryCtl.IA32E_MODE_GUEST) !== 0;
  const cr0 = v.get32(F.GUEST_CR0);
  // Bits 63:32 are among those kept.
  cpu.set(
    VmxReg.CR0,
    ((cr0 & ~CR0_KEEP_ON_ENTRY_LO) | (cpu.lo(VmxReg.CR0) & CR0_KEEP_ON_ENTRY_LO)) >>> 0,
    cpu.hi(VmxReg.CR0),
  );
  loadReg(cpu, v, VmxReg.CR3, F.GUEST_CR3);
  loadReg(cpu, v, VmxReg.CR4, F.GUEST_CR4);
  if (entry & EntryCtl.LOAD_DEBUG_CONTROLS) {
    loadReg(cpu, v, VmxReg.DR7, F.GUEST_DR7);
    loadReg(cpu, v, VmxReg.DEBUGCTL, F.GUEST_IA32_DEBUGCTL);
  }
  cpu.sysenterCs = v.get32(F.GUEST_SYSENTER_CS);
  loadReg(cpu, v, VmxReg.SYSENTER_ESP, F.GUEST_SYSENTER_ESP);
  loadReg(cpu, v, VmxReg.SYSENTER_EIP, F.GUEST_SYSENTER_EIP);
  if (entry & EntryCtl.LOAD_PAT) loadReg(cpu, v, VmxReg.PAT, F.GUEST_IA32_PAT);
  if (entry & EntryCtl.LOAD_EFER) {
    loadReg(cpu, v, VmxReg.EFER, F.GUEST_IA32_EFER);
  } else {
    // LMA follows "IA-32e mode guest"; LME too when the guest has paging on (27.3.2.1).
    let efer = ia32e ? cpu.lo(VmxReg.EFER) | 0x400 : cpu.lo(VmxReg.EFER) & ~0x400;
    if (cr0 & 0x80000000) efer = ia32e ? efer | 0x100 : efer & ~0x100;
    cpu.set(VmxReg.EFER, efer >>> 0, cpu.hi(VmxReg.EFER));
  }
  // 27.3.2.2: every segment field is loaded; for an unusable segment the SDM leaves base, limit
  // and most access rights undefined, and loading the field values is one allowed outcome.
  for (let s = 0 as Seg; s <= Seg.TR; s++) {
    const f = guestSegFields(s);
    cpu.setSeg(s, v.get32(f.sel), v.get32(f.base), v.getHi(f.base), v.get32(f.limit), v.get32(f.ar));
  }
  loadReg(cpu, v, VmxReg.GDTR_BASE, F.GUEST_GDTR_BASE);
  cpu.gdtrLimit = v.get32(F.GUEST_GDTR_LIMIT);
  loadReg(cpu, v, VmxReg.IDTR_BASE, F.GUEST_IDTR_BASE);
  cpu.idtrLimit = v.get32(F.GUEST_IDTR_LIMIT);
  loadReg(cpu, v, VmxReg.RIP, F.GUEST_RIP);
  loadReg(cpu, v, VmxReg.RSP, F.GUEST_RSP);
  loadReg(cpu, v, VmxReg.RFLAGS, F.GUEST_RFLAGS);
  if (pdptes !== null)
    for (let i = 0; i < 4; i++) cpu.set(VmxReg.PDPTE0 + i, lo64(pdptes[i]!), hi64(pdptes[i]!));
  // 27.3.2.5 Non-register state.
  cpu.interruptibility = v.get32(F.GUEST_INTERRUPTIBILITY_INFO);
  cpu.activityState = v.get32(F.GUEST_ACTIVITY_STATE);
  loadReg(cpu, v, VmxReg.PENDING_DBG, F.GUEST_PENDING_DBG_EXCEPTIONS);
}

/**
 * 27.6 Event injection: decode the VM-entry interruption-information field. The event is
 * delivered by the CPU after entry, before any guest instruction. An injected event brings a
 * halted guest back to the active state (27.6.1), and an injected NMI blocks further NMIs
 * (virtual-NMI blocking when "virtual NMIs" is 1, 27.6.1).
 */
function injectEvent(unit: VmxUnit): InjectedEvent | null {
  const v = unit.vmcs;
  const info = v.get32(F.VM_ENTRY_INTR_INFO_FIELD);
  if ((info & INTR_INFO_VALID) === 0) return null;
  const type = (info >>> 8) & 7;
  const cpu = unit.cpu;
  // Type 7 (other event, vector 0) is not vectoring: it makes an MTF VM exit pending on the
  // instruction boundary after entry (27.5.2), even when "monitor trap flag" is 0.
  if (type === IntrType.OTHER) return { vector: 0, type, errorCode: null, instructionLength: 0 };
  // A vectoring entry leaves the processor active, with no blocking by STI or MOV SS (27.6.1-2).
  cpu.activityState = Activity.ACTIVE;
  cpu.interruptibility &= ~(Interruptibility.STI | Interruptibility.MOV_SS);
  if (type === IntrType.NMI) cpu.interruptibility |= Interruptibility.NMI;
  return {
    vector: info & 0xff,
    type,
    errorCode: info & (1 << 11) ? v.get32(F.VM_ENTRY_EXCEPTION_ERROR_CODE) : null,
    instructionLength: v.get32(F.VM_ENTRY_INSTRUCTION_LEN),
  };
}
