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
import type { VmxUnit } from "./instructions";
import { loadMsrArea, storeMsrArea } from "./msr-area";
import { le64 } from "./util";

/** CR0 bits a VM exit leaves unmodified (SDM 28.5.1): 63:32, CD, NW, 28:19, 17, 15:6, ET. */
export const CR0_KEEP_ON_EXIT = 0xffffffff00000000n | 0x7ffaffd0n;

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
    Number(v.get64(F.VM_EXIT_MSR_STORE_ADDR)),
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
  v.set64(F.GUEST_CR0, cpu.cr0);
  v.set64(F.GUEST_CR3, cpu.cr3);
  v.set64(F.GUEST_CR4, cpu.cr4);
  if (exit & ExitCtl.SAVE_DEBUG_CONTROLS) {
    v.set64(F.GUEST_DR7, cpu.dr7);
    v.set64(F.GUEST_IA32_DEBUGCTL, cpu.debugctl);
  }
  v.set32(F.GUEST_SYSENTER_CS, cpu.sysenterCs);
  v.set64(F.GUEST_SYSENTER_ESP, cpu.sysenterEsp);
  v.set64(F.GUEST_SYSENTER_EIP, cpu.sysenterEip);
  if (exit & ExitCtl.SAVE_PAT) v.set64(F.GUEST_IA32_PAT, cpu.pat);
  if (exit & ExitCtl.SAVE_EFER) v.set64(F.GUEST_IA32_EFER, cpu.efer);
  // IA32_VMX_MISC[5] = 1: the "IA-32e mode guest" entry control receives EFER.LMA.
  const entry = v.get32(F.VM_ENTRY_CONTROLS);
  v.set32(
    F.VM_ENTRY_CONTROLS,
    cpu.efer & 0x400n ? entry | EntryCtl.IA32E_MODE_GUEST : entry & ~EntryCtl.IA32E_MODE_GUEST,
  );
  for (let s = 0 as Seg; s <= Seg.TR; s++) {
    const f = guestSegFields(s);
    const seg = cpu.getSegment(s);
    v.set32(f.sel, seg.selector);
    v.set64(f.base, seg.base);
    v.set32(f.limit, seg.limit);
    v.set32(f.ar, seg.ar);
  }
  v.set64(F.GUEST_GDTR_BASE, cpu.gdtr.base);
  v.set32(F.GUEST_GDTR_LIMIT, cpu.gdtr.limit);
  v.set64(F.GUEST_IDTR_BASE, cpu.idtr.base);
  v.set32(F.GUEST_IDTR_LIMIT, cpu.idtr.limit);
  v.set64(F.GUEST_RIP, cpu.rip);
  v.set64(F.GUEST_RSP, cpu.rsp);
  v.set64(F.GUEST_RFLAGS, cpu.rflags);
  v.set64(F.GUEST_PENDING_DBG_EXCEPTIONS, cpu.pendingDebugExceptions);
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
  const paePaging = (cpu.cr0 & 0x80000000n) !== 0n && (cpu.cr4 & 0x20n) !== 0n && (cpu.efer & 0x400n) === 0n;
  if (proc2 & Proc2.ENABLE_EPT && paePaging) {
    const p = cpu.pdptes;
    v.set64(F.GUEST_PDPTE0, p[0]);
    v.set64(F.GUEST_PDPTE1, p[1]);
    v.set64(F.GUEST_PDPTE2, p[2]);
    v.set64(F.GUEST_PDPTE3, p[3]);
  }
}

/** The data segments VM exit loads (28.5.2): segment, selector field, base field (-1: base 0). */
const HOST_DATA_SEGMENTS: readonly (readonly [Seg, number, number])[] = [
  [Seg.ES, F.HOST_ES_SELECTOR, -1],
  [Seg.SS, F.HOST_SS_SELECTOR, -1],
  [Seg.DS, F.HOST_DS_SELECTOR, -1],
  [Seg.FS, F.HOST_FS_SELECTOR, F.HOST_FS_BASE],
  [Seg.GS, F.HOST_GS_SELECTOR, F.HOST_GS_BASE],
];

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
  // 28.5.1 Control registers, debug registers, MSRs.
  cpu.cr0 = (v.get64(F.HOST_CR0) & ~CR0_KEEP_ON_EXIT) | (cpu.cr0 & CR0_KEEP_ON_EXIT);
  cpu.cr3 = v.get64(F.HOST_CR3);
  let cr4 = v.get64(F.HOST_CR4);
  if (long) cr4 |= 0x20n;
  else cr4 &= ~0x20000n;
  cpu.cr4 = cr4;
  cpu.dr7 = 0x400n;
  cpu.debugctl = 0n;
  cpu.sysenterCs = v.get32(F.HOST_IA32_SYSENTER_CS);
  cpu.sysenterEsp = v.get64(F.HOST_IA32_SYSENTER_ESP);
  cpu.sysenterEip = v.get64(F.HOST_IA32_SYSENTER_EIP);
  if (exit & ExitCtl.LOAD_PAT) cpu.pat = v.get64(F.HOST_IA32_PAT);
  if (exit & ExitCtl.LOAD_EFER) {
    cpu.efer = v.get64(F.HOST_IA32_EFER);
  } else {
    cpu.efer = long ? cpu.efer | 0x500n : cpu.efer & ~0x500n;
  }
  // 28.5.2 Segment registers: CS is a flat 32/64-bit code segment, the others flat data segments
  // (unusable when their selector is null), TR a busy TSS, LDTR unusable.
  const flat = 0xffffffff;
  const csAr = 0xb | 0x10 | 0x80 | 0x8000 | (long ? 0x2000 : 0x4000);
  cpu.setSegment(Seg.CS, { selector: v.get32(F.HOST_CS_SELECTOR), base: 0n, limit: flat, ar: csAr });
  for (const [s, selField, baseField] of HOST_DATA_SEGMENTS) {
    const sel = v.get32(selField);
    const ar = 0x3 | 0x10 | 0x80 | 0x4000 | 0x8000 | (sel === 0 ? 0x10000 : 0);
    cpu.setSegment(s, { selector: sel, base: baseField < 0 ? 0n : v.get64(baseField), limit: flat, ar });
  }
  cpu.setSegment(Seg.TR, {
    selector: v.get32(F.HOST_TR_SELECTOR),
    base: v.get64(F.HOST_TR_BASE),
    limit: 0x67,
    ar: 0x8b,
  });
  cpu.setSegment(Seg.LDTR, { selector: 0, base: 0n, limit: 0, ar: 0x10000 });
  cpu.gdtr = { base: v.get64(F.HOST_GDTR_BASE), limit: 0xffff };
  cpu.idtr = { base: v.get64(F.HOST_IDTR_BASE), limit: 0xffff };
  // 28.5.3 RIP, RSP, RFLAGS.
  cpu.rip = v.get64(F.HOST_RIP);
  cpu.rsp = v.get64(F.HOST_RSP);
  cpu.rflags = 2n;
  // 28.5.4 Non-register state: no STI/MOV-SS blocking, active, nothing pending.
  cpu.interruptibility = nmiBlocked ? Interruptibility.NMI : 0;
  cpu.activityState = Activity.ACTIVE;
  cpu.pendingDebugExceptions = 0n;
  // 28.5.5 Host PDPTEs for a host with PAE paging outside IA-32e mode.
  if (!long && cpu.cr0 & 0x80000000n && cpu.cr4 & 0x20n) {
    const b = new Uint8Array(32);
    unit.mem.read(Number(cpu.cr3 & 0xffffffe0n), b);
    const p = [0, 8, 16, 24].map((o) => le64(b, o));
    if (p.some((x) => pdpteBad(x, unit.caps.physAddrBits))) return vmxAbort(unit, VmxAbort.HOST_PDPTE);
    cpu.pdptes = [p[0]!, p[1]!, p[2]!, p[3]!];
  }
  // 28.6 Loading MSRs.
  const failed = loadMsrArea(
    unit.mem,
    cpu,
    Number(v.get64(F.VM_EXIT_MSR_LOAD_ADDR)),
    v.get32(F.VM_EXIT_MSR_LOAD_COUNT),
  );
  if (failed !== 0) return vmxAbort(unit, VmxAbort.LOADING_HOST_MSRS);
  return EXITED;
}
