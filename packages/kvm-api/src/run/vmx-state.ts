/**
 * The processor state the VMX unit loads and stores (`VmxCpuState`, bigint on this cold path) and
 * the copy between it and the cpu-x86 `Cpu` (32-bit halves on the hot path).
 *
 * Why a separate record instead of a view over the Cpu: for our own KVM_RUN the "host" of VMX root
 * operation is this TypeScript kernel, not x86 code. VM exit loads host state into the record and
 * leaves the Cpu holding the guest state it had at the exit (the same values VM exit just stored
 * in the VMCS); VM entry loads guest state into the record and `recordToCpu` moves it into the Cpu.
 * So the Cpu's caches (TLB, decoded code) survive an exit/entry round trip, as a VPID-tagged TLB
 * does on hardware (SDM Vol. 3C 29.4.2), and are dropped only when the paging registers differ.
 */
import { type Cpu, Seg as CSeg, Msr } from "@tskvm/cpu-x86";
import { Activity, FlatCpuState, Interruptibility } from "@tskvm/vmx";

// One bigint conversion per value instead of two or three bigint operations: the values are
// 64-bit registers, nearly always below 2^53 (VM entry and exit move some forty of them).
const SAFE_HI = 0x200000;
const lo32 = (v: bigint): number =>
  v < 0x20000000000000n ? Number(v) | 0 : Number(BigInt.asUintN(32, v)) | 0;
const hi32 = (v: bigint): number =>
  v < 0x20000000000000n ? Math.floor(Number(v) / 4294967296) | 0 : Number(BigInt.asUintN(32, v >> 32n)) | 0;
const join = (lo: number, hi: number): bigint =>
  hi >>> 0 < SAFE_HI
    ? BigInt((hi >>> 0) * 4294967296 + (lo >>> 0))
    : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);

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
  cpu.ripLo = lo32(r.rip);
  cpu.ripHi = hi32(r.rip);
  cpu.r[8] = lo32(r.rsp);
  cpu.r[9] = hi32(r.rsp);
  cpu.cr0 = lo32(r.cr0);
  cpu.cr3Lo = lo32(r.cr3);
  cpu.cr3Hi = hi32(r.cr3);
  cpu.cr4 = lo32(r.cr4);
  cpu.efer = lo32(r.efer);
  cpu.dr7 = lo32(r.dr7);
  for (let s = 0; s < 8; s++) {
    const g = r.segs[s]!;
    cpu.segSel[s] = g.selector & 0xffff;
    cpu.segBaseLo[s] = lo32(g.base);
    cpu.segBaseHi[s] = hi32(g.base);
    cpu.segLimit[s] = g.limit | 0;
    cpu.segAttr[s] = g.ar | 0;
  }
  cpu.gdtrBaseLo = lo32(r.gdtr.base);
  cpu.gdtrBaseHi = hi32(r.gdtr.base);
  cpu.gdtrLimit = r.gdtr.limit & 0xffff;
  cpu.idtrBaseLo = lo32(r.idtr.base);
  cpu.idtrBaseHi = hi32(r.idtr.base);
  cpu.idtrLimit = r.idtr.limit & 0xffff;
  cpu.sysenterCs = r.sysenterCs & 0xffff;
  cpu.writeMsr(Msr.SYSENTER_ESP, lo32(r.sysenterEsp), hi32(r.sysenterEsp));
  cpu.writeMsr(Msr.SYSENTER_EIP, lo32(r.sysenterEip), hi32(r.sysenterEip));
  cpu.writeMsr(Msr.PAT, lo32(r.pat), hi32(r.pat));
  // RFLAGS last: setRflags drops lazy flags, and updateMode reads VM.
  cpu.setRflags(lo32(r.rflags));
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
  r.rip = join(cpu.ripLo, cpu.ripHi);
  r.rsp = join(cpu.r[8]!, cpu.r[9]!);
  r.rflags = BigInt(cpu.getRflags() >>> 0);
  r.cr0 = BigInt(cpu.cr0 >>> 0);
  r.cr3 = join(cpu.cr3Lo, cpu.cr3Hi);
  r.cr4 = BigInt(cpu.cr4 >>> 0);
  r.efer = BigInt(cpu.efer >>> 0);
  r.dr7 = BigInt(cpu.dr7 >>> 0);
  // In place: objects only the record holds (FlatCpuState.setSegment copies, VM exit stores new ones).
  for (let s = 0; s < 8; s++) {
    const g = r.segs[s]!;
    g.selector = cpu.segSel[s]! & 0xffff;
    g.base = join(cpu.segBaseLo[s]!, cpu.segBaseHi[s]!);
    g.limit = cpu.segLimit[s]! >>> 0;
    g.ar = cpu.segAttr[s]! >>> 0;
  }
  r.gdtr.base = join(cpu.gdtrBaseLo, cpu.gdtrBaseHi);
  r.gdtr.limit = cpu.gdtrLimit;
  r.idtr.base = join(cpu.idtrBaseLo, cpu.idtrBaseHi);
  r.idtr.limit = cpu.idtrLimit;
  r.sysenterCs = cpu.sysenterCs;
  cpu.readMsr(Msr.SYSENTER_ESP);
  r.sysenterEsp = join(cpu.msrLo, cpu.msrHi);
  cpu.readMsr(Msr.SYSENTER_EIP);
  r.sysenterEip = join(cpu.msrLo, cpu.msrHi);
  cpu.readMsr(Msr.PAT);
  r.pat = join(cpu.msrLo, cpu.msrHi);
  r.interruptibility =
    (cpu.interruptShadow === 2
      ? Interruptibility.MOV_SS
      : cpu.interruptShadow === 1
        ? Interruptibility.STI
        : 0) | (cpu.nmiBlocked ? Interruptibility.NMI : 0);
  r.activityState = cpu.halted ? Activity.HLT : Activity.ACTIVE;
}
