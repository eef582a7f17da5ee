/**
 * VM exit (SDM Vol. 3C chapter 28, "VM Exits"): 28.2 recording exit information, 28.3 saving
 * guest state, 28.4 the MSR-store area, 28.5 loading host state, 28.6 the VM-exit MSR-load area,
 * 28.7 VMX aborts.
 */
import {
  Activity,
  EntryCtl,
  ExitCtl,
  ExitReason,
  INTR_INFO_VALID,
  Interruptibility,
  IntrType,
  Proc2,
} from "./controls";
import { pdpteBad } from "./entry-checks-guest";
import { F, guestSegFields, Seg } from "./fields";
import { VmxReg } from "./iface";
import type { VmxUnit } from "./instructions";
import { loadMsrArea, storeMsrArea } from "./msr-area";
import { loadReg, storeReg } from "./reg-copy";
import { hi64, le64, lo64 } from "./util";

/** CR0 bits a VM exit leaves unmodified (SDM 28.5.1): 63:32, CD, NW, 28:19, 17, 15:6, ET. */
export const CR0_KEEP_ON_EXIT = 0xffffffff00000000n | 0x7ffaffd0n;
const CR0_KEEP_ON_EXIT_LO = 0x7ffaffd0;

/** VMX-abort indicators (SDM 28.7). */
export const VmxAbort = {
  SAVING_GUEST_MSRS: 1,
  HOST_PDPTE: 2,
  VMCS_CORRUPTED: 3,
  LOADING_HOST_MSRS: 4,
  MACHINE_CHECK: 5,
  LONG_MODE_TO_LEGACY: 6,
} as const;

/** Everything the CPU knows about why it is leaving the guest (SDM 28.2.1-28.2.5). */
export interface ExitInfo {
  /** Basic exit reason (bits 15:0 of the exit-reason field). */
  reason: number;
  qualification?: bigint;
  /** Guest-linear address field (EPT violations and some instruction exits). */
  guestLinear?: bigint;
  /** Guest-physical address field (EPT violations and misconfigurations). */
  guestPhysical?: bigint;
  /** VM-exit interruption information (exception/NMI exits, acknowledged external interrupts). */
  intrInfo?: number;
  intrErrorCode?: number;
  /** IDT-vectoring information: the event whose delivery the exit interrupted (28.2.4). */
  idtVectoringInfo?: number;
  idtVectoringErrorCode?: number;
  /** VM-exit instruction length (instruction exits, software-event delivery). */
  instructionLength?: number;
  /** VM-exit instruction information (SDM 28.2.5). */
  instructionInfo?: number;
}

/** The result of a VM exit: host state loaded, or a VMX abort. */
export type VmExitResult = { kind: "exited" } | { kind: "abort"; indicator: number };

const EXITED: VmExitResult = { kind: "exited" };

/** A VMX abort (28.7): the indicator goes to bytes 4-7 of the VMCS region; the processor shuts down. */
export function vmxAbort(unit: VmxUnit, indicator: number): VmExitResult {
  unit.vmcs.abortIndicator = indicator;
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, indicator, true);
  if (unit.currentPointer >= 0) unit.mem.write(unit.currentPointer + 4, b);
  unit.aborted = true;
  unit.nonRoot = false;
  unit.cpu.activityState = Activity.SHUTDOWN;
  return { kind: "abort", indicator };
}

/** Perform a VM exit from VMX non-root operation. The CPU's state is the guest's at the exit point. */
export function vmExit(unit: VmxUnit, info: ExitInfo): VmExitResult {
  const v = unit.vmcs;
  // 28.2 Recording VM-exit information.
  v.set32(F.VM_EXIT_REASON, info.reason & 0xffff);
  v.set64(F.EXIT_QUALIFICATION, info.qualification ?? 0n);
  if (info.guestLinear !== undefined) v.set64(F.GUEST_LINEAR_ADDRESS, info.guestLinear);
  if (info.guestPhysical !== undefined && unit.caps.fieldSupported(F.GUEST_PHYSICAL_ADDRESS))
    v.set64(F.GUEST_PHYSICAL_ADDRESS, info.guestPhysical);
  v.set32(F.VM_EXIT_INTR_INFO, info.intrInfo ?? 0);
  if (info.intrErrorCode !== undefined) v.set32(F.VM_EXIT_INTR_ERROR_CODE, info.intrErrorCode);
  v.set32(F.IDT_VECTORING_INFO_FIELD, info.idtVectoringInfo ?? 0);
  if (info.idtVectoringErrorCode !== undefined)
    v.set32(F.IDT_VECTORING_ERROR_CODE, info.idtVectoringErrorCode);
  if (info.instructionLength !== undefined) v.set32(F.VM_EXIT_INSTRUCTION_LEN, info.instructionLength);
  if (info.instructionInfo !== undefined) v.set32(F.VMX_INSTRUCTION_INFO, info.instructionInfo);
  // "VM exits clear the valid bit of the VM-entry interruption-information field" (28.2.?/27.6).
  v.set32(F.VM_ENTRY_INTR_INFO_FIELD, v.get32(F.VM_ENTRY_INTR_INFO_FIELD) & ~INTR_INFO_VALID);

  saveGuestState(unit, info);
  // 28.4 Saving MSRs.
  const store = storeMsrArea(
    unit.mem,
    unit.cpu,
    v.getNum(F.VM_EXIT_MSR_STORE_ADDR),
    v.get32(F.VM_EXIT_MSR_STORE_COUNT),
  );
  if (store !== 0) return vmxAbort(unit, VmxAbort.SAVING_GUEST_MSRS);
  // An NMI that caused the exit stays blocked in the host (28.5.4 "blocking by NMI").
  const nmiExit =
    info.reason === ExitReason.EXCEPTION_NMI &&
    ((info.intrInfo ?? 0) & INTR_INFO_VALID) !== 0 &&
    (((info.intrInfo ?? 0) >>> 8) & 7) === IntrType.NMI;
  return loadHostState(unit, unit.hostNmiBlocked || nmiExit);
}

/** 28.3 Saving guest state. */
function saveGuestState(unit: VmxUnit, info: ExitInfo): void {
  const v = unit.vmcs;
  const cpu = unit.cpu;
  const exit = v.get32(F.VM_EXIT_CONTROLS);
  storeReg(v, F.GUEST_CR0, cpu, VmxReg.CR0);
  storeReg(v, F.GUEST_CR3, cpu, VmxReg.CR3);
  storeReg(v, F.GUEST_CR4, cpu, VmxReg.CR4);
  if (exit & ExitCtl.SAVE_DEBUG_CONTROLS) {
    storeReg(v, F.GUEST_DR7, cpu, VmxReg.DR7);
    storeReg(v, F.GUEST_IA32_DEBUGCTL, cpu, VmxReg.DEBUGCTL);
  }
  v.set32(F.GUEST_SYSENTER_CS, cpu.sysenterCs);
  storeReg(v, F.GUEST_SYSENTER_ESP, cpu, VmxReg.SYSENTER_ESP);
  storeReg(v, F.GUEST_SYSENTER_EIP, cpu, VmxReg.SYSENTER_EIP);
  if (exit & ExitCtl.SAVE_PAT) storeReg(v, F.GUEST_IA32_PAT, cpu, VmxReg.PAT);
  if (exit & ExitCtl.SAVE_EFER) storeReg(v, F.GUEST_IA32_EFER, cpu, VmxReg.EFER);
  // IA32_VMX_MISC[5] = 1: the "IA-32e mode guest" entry control receives EFER.LMA.
  const entry = v.get32(F.VM_ENTRY_CONTROLS);
  const lma = (cpu.lo(VmxReg.EFER) & 0x400) !== 0;
  v.set32(F.VM_ENTRY_CONTROLS, lma ? entry | EntryCtl.IA32E_MODE_GUEST : entry & ~EntryCtl.IA32E_MODE_GUEST);
  for (let s = 0 as Seg; s <= Seg.TR; s++) {
    const f = guestSegFields(s);
    v.set32(f.sel, cpu.segSel(s));
    v.setHalves(f.base, cpu.segBaseLo(s), cpu.segBaseHi(s));
    v.set32(f.limit, cpu.segLimit(s));
    v.set32(f.ar, cpu.segAr(s));
  }
  storeReg(v, F.GUEST_GDTR_BASE, cpu, VmxReg.GDTR_BASE);
  v.set32(F.GUEST_GDTR_LIMIT, cpu.gdtrLimit);
  storeReg(v, F.GUEST_IDTR_BASE, cpu, VmxReg.IDTR_BASE);
  v.set32(F.GUEST_IDTR_LIMIT, cpu.idtrLimit);
  storeReg(v, F.GUEST_RIP, cpu, VmxReg.RIP);
  storeReg(v, F.GUEST_RSP, cpu, VmxReg.RSP);
  storeReg(v, F.GUEST_RFLAGS, cpu, VmxReg.RFLAGS);
  storeReg(v, F.GUEST_PENDING_DBG_EXCEPTIONS, cpu, VmxReg.PENDING_DBG);
  // An NMI that caused the exit was not delivered to the guest, so the guest's NMI blocking is
  // saved as it was (28.3.4): the CPU's view already holds exactly that.
  // Exits that end outside SMM save blocking by SMI (bit 2) as 0 (28.3.4).
  v.set32(F.GUEST_INTERRUPTIBILITY_INFO, cpu.interruptibility & ~Interruptibility.SMI);
  // 28.3.4: HLT, shutdown and wait-for-SIPI are saved as they are; an exit for a triple fault
  // leaves the activity state as it was.
  v.set32(F.GUEST_ACTIVITY_STATE, cpu.activityState);
  if (exit & ExitCtl.SAVE_PREEMPTION_TIMER) {
    // An exit caused by timer expiry saves 0 (28.3.4).
    v.set32(
      F.VMX_PREEMPTION_TIMER_VALUE,
      info.reason === ExitReason.PREEMPTION_TIMER ? 0 : unit.preemptionTimer,
    );
  }
  // PDPTEs are saved when EPT is on and the guest uses PAE paging (28.3.4).
  const proc2 = unit.secondaryControls();
  const paePaging = (cpu.lo(VmxReg.CR0) & 0x80000000) !== 0 && (cpu.lo(VmxReg.CR4) & 0x20) !== 0 && !lma;
  if (proc2 & Proc2.ENABLE_EPT && paePaging)
    for (let i = 0; i < 4; i++) storeReg(v, F.GUEST_PDPTE0 + 2 * i, cpu, VmxReg.PDPTE0 + i);
}

/**
 * The data segments VM exit loads (28.5.2): segment, selector field, base field (-1: base 0), as
 * parallel arrays walked by index (a destructuring for-of allocates an iterator per exit).
 */
const HOST_DATA_SEGS: readonly Seg[] = [Seg.ES, Seg.SS, Seg.DS, Seg.FS, Seg.GS];
const HOST_DATA_SELECTORS: readonly number[] = [
  F.HOST_ES_SELECTOR,
  F.HOST_SS_SELECTOR,
  F.HOST_DS_SELECTOR,
  F.HOST_FS_SELECTOR,
  F.HOST_GS_SELECTOR,
];
const HOST_DATA_BASES: readonly number[] = [-1, -1, -1, F.HOST_FS_BASE, F.HOST_GS_BASE];

/**
 * 28.5 Loading host state and 28.6 the VM-exit MSR-load area. Also used by VM-entry failures
 * (27.8). Leaves the unit in VMX root operation.
 */
export function loadHostState(unit: VmxUnit, nmiBlocked: boolean): VmExitResult {
  const v = unit.vmcs;
  const cpu = unit.cpu;
  const exit = v.get32(F.VM_EXIT_CONTROLS);
  const long = (exit & ExitCtl.HOST_ADDR_SPACE_SIZE) !== 0;
  unit.nonRoot = false;
  // 28.5.1 Control registers, debug registers, MSRs. Bits 63:32 of CR0 are among those kept.
  const cr0 = (v.get32(F.HOST_CR0) & ~CR0_KEEP_ON_EXIT_LO) | (cpu.lo(VmxReg.CR0) & CR0_KEEP_ON_EXIT_LO);
  cpu.set(VmxReg.CR0, cr0 >>> 0, cpu.hi(VmxReg.CR0));
  loadReg(cpu, v, VmxReg.CR3, F.HOST_CR3);
  const cr4 = v.get32(F.HOST_CR4);
  cpu.set(VmxReg.CR4, (long ? cr4 | 0x20 : cr4 & ~0x20000) >>> 0, v.getHi(F.HOST_CR4));
  cpu.set(VmxReg.DR7, 0x400, 0);
  cpu.set(VmxReg.DEBUGCTL, 0, 0);
  cpu.sysenterCs = v.get32(F.HOST_IA32_SYSENTER_CS);
  loadReg(cpu, v, VmxReg.SYSENTER_ESP, F.HOST_IA32_SYSENTER_ESP);
  loadReg(cpu, v, VmxReg.SYSENTER_EIP, F.HOST_IA32_SYSENTER_EIP);
  if (exit & ExitCtl.LOAD_PAT) loadReg(cpu, v, VmxReg.PAT, F.HOST_IA32_PAT);
  if (exit & ExitCtl.LOAD_EFER) {
    loadReg(cpu, v, VmxReg.EFER, F.HOST_IA32_EFER);
  } else {
    const efer = cpu.lo(VmxReg.EFER);
    cpu.set(VmxReg.EFER, (long ? efer | 0x500 : efer & ~0x500) >>> 0, cpu.hi(VmxReg.EFER));
  }
  // 28.5.2 Segment registers: CS is a flat 32/64-bit code segment, the others flat data segments
  // (unusable when their selector is null), TR a busy TSS, LDTR unusable.
  const flat = 0xffffffff;
  const csAr = 0xb | 0x10 | 0x80 | 0x8000 | (long ? 0x2000 : 0x4000);
  cpu.setSeg(Seg.CS, v.get32(F.HOST_CS_SELECTOR), 0, 0, flat, csAr);
  for (let i = 0; i < HOST_DATA_SEGS.length; i++) {
    const s = HOST_DATA_SEGS[i]!;
    const baseField = HOST_DATA_BASES[i]!;
    const sel = v.get32(HOST_DATA_SELECTORS[i]!);
    const ar = 0x3 | 0x10 | 0x80 | 0x4000 | 0x8000 | (sel === 0 ? 0x10000 : 0);
    if (baseField < 0) cpu.setSeg(s, sel, 0, 0, flat, ar);
    else cpu.setSeg(s, sel, v.get32(baseField), v.getHi(baseField), flat, ar);
  }
  cpu.setSeg(
    Seg.TR,
    v.get32(F.HOST_TR_SELECTOR),
    v.get32(F.HOST_TR_BASE),
    v.getHi(F.HOST_TR_BASE),
    0x67,
    0x8b,
  );
  cpu.setSeg(Seg.LDTR, 0, 0, 0, 0, 0x10000);
  loadReg(cpu, v, VmxReg.GDTR_BASE, F.HOST_GDTR_BASE);
  cpu.gdtrLimit = 0xffff;
  loadReg(cpu, v, VmxReg.IDTR_BASE, F.HOST_IDTR_BASE);
  cpu.idtrLimit = 0xffff;
  // 28.5.3 RIP, RSP, RFLAGS.
  loadReg(cpu, v, VmxReg.RIP, F.HOST_RIP);
  loadReg(cpu, v, VmxReg.RSP, F.HOST_RSP);
  cpu.set(VmxReg.RFLAGS, 2, 0);
  // 28.5.4 Non-register state: no STI/MOV-SS blocking, active, nothing pending.
  cpu.interruptibility = nmiBlocked ? Interruptibility.NMI : 0;
  cpu.activityState = Activity.ACTIVE;
  cpu.set(VmxReg.PENDING_DBG, 0, 0);
  // 28.5.5 Host PDPTEs for a host with PAE paging outside IA-32e mode.
  if (!long && cpu.lo(VmxReg.CR0) & 0x80000000 && cpu.lo(VmxReg.CR4) & 0x20) {
    const b = new Uint8Array(32);
    unit.mem.read(cpu.lo(VmxReg.CR3) & 0xffffffe0, b);
    const p = [0, 8, 16, 24].map((o) => le64(b, o));
    if (p.some((x) => pdpteBad(x, unit.caps.physAddrBits))) return vmxAbort(unit, VmxAbort.HOST_PDPTE);
    for (let i = 0; i < 4; i++) cpu.set(VmxReg.PDPTE0 + i, lo64(p[i]!), hi64(p[i]!));
  }
  // 28.6 Loading MSRs.
  const failed = loadMsrArea(
    unit.mem,
    cpu,
    v.getNum(F.VM_EXIT_MSR_LOAD_ADDR),
    v.get32(F.VM_EXIT_MSR_LOAD_COUNT),
  );
  if (failed !== 0) return vmxAbort(unit, VmxAbort.LOADING_HOST_MSRS);
  return EXITED;
}
