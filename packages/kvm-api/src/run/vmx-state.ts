/**
 * The processor state the VMX unit loads and stores (`VmxCpuState`) and the copy between it and the
 * cpu-x86 `Cpu`, both in 32-bit halves: this runs on every VM exit and entry.
 *
 * Why a separate record instead of a view over the Cpu: for our own KVM_RUN the "host" of VMX root
 * operation is this TypeScript kernel, not x86 code. VM exit loads host state into the record and
 * leaves the Cpu holding the guest state it had at the exit (the same values VM exit just stored
 * in the VMCS); VM entry loads guest state into the record and `recordToCpu` moves it into the Cpu.
 * So the Cpu's caches (TLB, decoded code) survive an exit/entry round trip, as a VPID-tagged TLB
 * does on hardware (SDM Vol. 3C 29.4.2), and are dropped only when the paging registers differ.
 */
import { type Cpu, Seg as CSeg, Msr } from "@tskvm/cpu-x86";
import { Activity, FlatCpuState, Interruptibility, type Seg, VmxReg } from "@tskvm/vmx";

/** IA32_FEATURE_CONTROL of the L0 host: locked, VMX outside SMX enabled (SDM Vol. 3C 24.7). */
const HOST_FEATURE_CONTROL = 5n;

/** A plain VmxCpuState. Starts as the 64-bit ring-0 host the kernel's VMCS host area describes. */
export class VmxStateRecord extends FlatCpuState {
  readMsr(index: number): bigint | undefined {
    if (index === 0x3a) return HOST_FEATURE_CONTROL;
    return undefined;
  }
  writeMsr(_index: number, _value: bigint): boolean {
    // The kernel's VMCS uses no MSR-load areas: any entry would be a bug, and fails the entry.
    return false;
  }
}

/**
 * VM entry's guest-state load, second half: the record (just loaded from the VMCS guest area) into
 * the Cpu. Drops the Cpu's TLB only when the paging registers changed.
 */
export function recordToCpu(r: VmxStateRecord, cpu: Cpu): void {
  // The paging-relevant registers the TLB was filled under: CR0.PG/WP/PE, CR3, CR4, EFER.
  const pg = cpu.cr0 & 0x80010001;
  const cr3Lo = cpu.cr3Lo;
  const cr3Hi = cpu.cr3Hi;
  const cr4 = cpu.cr4;
  const efer = cpu.efer;
  cpu.ripLo = r.lo(VmxReg.RIP) | 0;
  cpu.ripHi = r.hi(VmxReg.RIP) | 0;
  cpu.r[8] = r.lo(VmxReg.RSP) | 0;
  cpu.r[9] = r.hi(VmxReg.RSP) | 0;
  cpu.cr0 = r.lo(VmxReg.CR0) | 0;
  cpu.cr3Lo = r.lo(VmxReg.CR3) | 0;
  cpu.cr3Hi = r.hi(VmxReg.CR3) | 0;
  cpu.cr4 = r.lo(VmxReg.CR4) | 0;
  cpu.efer = r.lo(VmxReg.EFER) | 0;
  cpu.dr7 = r.lo(VmxReg.DR7) | 0;
  for (let s = 0 as Seg; s < 8; s++) {
    cpu.segSel[s] = r.segSel(s) & 0xffff;
    cpu.segBaseLo[s] = r.segBaseLo(s) | 0;
    cpu.segBaseHi[s] = r.segBaseHi(s) | 0;
    cpu.segLimit[s] = r.segLimit(s) | 0;
    cpu.segAttr[s] = r.segAr(s) | 0;
  }
  cpu.gdtrBaseLo = r.lo(VmxReg.GDTR_BASE) | 0;
  cpu.gdtrBaseHi = r.hi(VmxReg.GDTR_BASE) | 0;
  cpu.gdtrLimit = r.gdtrLimit & 0xffff;
  cpu.idtrBaseLo = r.lo(VmxReg.IDTR_BASE) | 0;
  cpu.idtrBaseHi = r.hi(VmxReg.IDTR_BASE) | 0;
  cpu.idtrLimit = r.idtrLimit & 0xffff;
  cpu.sysenterCs = r.sysenterCs & 0xffff;
  cpu.writeMsr(Msr.SYSENTER_ESP, r.lo(VmxReg.SYSENTER_ESP) | 0, r.hi(VmxReg.SYSENTER_ESP) | 0);
  cpu.writeMsr(Msr.SYSENTER_EIP, r.lo(VmxReg.SYSENTER_EIP) | 0, r.hi(VmxReg.SYSENTER_EIP) | 0);
  cpu.writeMsr(Msr.PAT, r.lo(VmxReg.PAT) | 0, r.hi(VmxReg.PAT) | 0);
  // RFLAGS last: setRflags drops lazy flags, and updateMode reads VM.
  cpu.setRflags(r.lo(VmxReg.RFLAGS) | 0);
  const ib = r.interruptibility;
  cpu.interruptShadow = ib & Interruptibility.MOV_SS ? 2 : ib & Interruptibility.STI ? 1 : 0;
  cpu.nmiBlocked = (ib & Interruptibility.NMI) !== 0;
  cpu.halted = r.activityState === Activity.HLT;
  cpu.shutdown = false;
  cpu.cpl = (cpu.segAttr[CSeg.SS]! >>> 5) & 3;
  cpu.updateMode();
  cpu.segCacheAll();
  cpu.updateAccessMasks();
  if (
    (cpu.cr0 & 0x80010001) !== pg ||
    cpu.cr3Lo !== cr3Lo ||
    cpu.cr3Hi !== cr3Hi ||
    cpu.cr4 !== cr4 ||
    cpu.efer !== efer
  )
    cpu.tlbFlushAll();
}

/** VM exit's guest-state save, first half: the Cpu into the record the VMX unit stores from. */
export function cpuToRecord(cpu: Cpu, r: VmxStateRecord): void {
  r.set(VmxReg.RIP, cpu.ripLo, cpu.ripHi);
  r.set(VmxReg.RSP, cpu.r[8]!, cpu.r[9]!);
  r.set(VmxReg.RFLAGS, cpu.getRflags(), 0);
  r.set(VmxReg.CR0, cpu.cr0, 0);
  r.set(VmxReg.CR3, cpu.cr3Lo, cpu.cr3Hi);
  r.set(VmxReg.CR4, cpu.cr4, 0);
  r.set(VmxReg.EFER, cpu.efer, 0);
  r.set(VmxReg.DR7, cpu.dr7, 0);
  for (let s = 0 as Seg; s < 8; s++)
    r.setSeg(
      s,
      cpu.segSel[s]! & 0xffff,
      cpu.segBaseLo[s]!,
      cpu.segBaseHi[s]!,
      cpu.segLimit[s]!,
      cpu.segAttr[s]!,
    );
  r.set(VmxReg.GDTR_BASE, cpu.gdtrBaseLo, cpu.gdtrBaseHi);
  r.gdtrLimit = cpu.gdtrLimit;
  r.set(VmxReg.IDTR_BASE, cpu.idtrBaseLo, cpu.idtrBaseHi);
  r.idtrLimit = cpu.idtrLimit;
  r.sysenterCs = cpu.sysenterCs;
  cpu.readMsr(Msr.SYSENTER_ESP);
  r.set(VmxReg.SYSENTER_ESP, cpu.msrLo, cpu.msrHi);
  cpu.readMsr(Msr.SYSENTER_EIP);
  r.set(VmxReg.SYSENTER_EIP, cpu.msrLo, cpu.msrHi);
  cpu.readMsr(Msr.PAT);
  r.set(VmxReg.PAT, cpu.msrLo, cpu.msrHi);
  r.interruptibility =
    (cpu.interruptShadow === 2
      ? Interruptibility.MOV_SS
      : cpu.interruptShadow === 1
        ? Interruptibility.STI
        : 0) | (cpu.nmiBlocked ? Interruptibility.NMI : 0);
  r.activityState = cpu.halted ? Activity.HLT : Activity.ACTIVE;
}
