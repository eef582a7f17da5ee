/**
 * A flat 64-bit ring-0 context, the one every software hypervisor here starts from: the processor
 * state of a host in VMX root operation (`FlatCpuState`) and the host-state area that returns to it
 * (`setFlat64Host`, SDM Vol. 3C 25.5 with the checks of 27.2.3). kvm-api's L0 host record and the
 * test doubles of `@tskvm/vmx/testing` are both this context.
 *
 * GDT layout it assumes: 0x08 64-bit code, 0x10 flat data, 0x18 a 64-bit TSS.
 */
import { F, Seg } from "./fields";
import type { VmxCpuState, VmxDescTable, VmxSegment } from "./iface";
import type { Vmcs } from "./vmcs";

/** CR0 = PG | NE | ET | PE, CR4 = VMXE | PAE, EFER = LMA | LME | SCE, PAT = the power-up value. */
export const FLAT64_CR0 = 0x80000031n;
export const FLAT64_CR4 = 0x2020n;
export const FLAT64_EFER = 0xd01n;
export const DEFAULT_PAT = 0x0007040600070406n;
export const FLAT64_CS = 0x08;
export const FLAT64_DS = 0x10;
export const FLAT64_TR = 0x18;

/** ES, CS, SS, DS, FS, GS, LDTR, TR of the flat 64-bit context (VMX access-rights format). */
export function flat64Segments(): VmxSegment[] {
  const data = (): VmxSegment => ({ selector: FLAT64_DS, base: 0n, limit: 0xffffffff, ar: 0xc093 });
  return [
    data(),
    { selector: FLAT64_CS, base: 0n, limit: 0xffffffff, ar: 0xa09b },
    data(),
    data(),
    data(),
    data(),
    { selector: 0, base: 0n, limit: 0, ar: 0x10000 },
    { selector: FLAT64_TR, base: 0n, limit: 0x67, ar: 0x8b },
  ];
}

/** A plain `VmxCpuState` holding the flat 64-bit context; subclasses supply the MSRs. */
export abstract class FlatCpuState implements VmxCpuState {
  rsp = 0n;
  rip = 0n;
  rflags = 2n;
  cr0 = FLAT64_CR0;
  cr3 = 0n;
  cr4 = FLAT64_CR4;
  dr7 = 0x400n;
  segs: VmxSegment[] = flat64Segments();
  gdtr: VmxDescTable = { base: 0n, limit: 0xffff };
  idtr: VmxDescTable = { base: 0n, limit: 0xffff };
  debugctl = 0n;
  sysenterCs = 0;
  sysenterEsp = 0n;
  sysenterEip = 0n;
  efer = FLAT64_EFER;
  pat = DEFAULT_PAT;
  interruptibility = 0;
  activityState = 0;
  pendingDebugExceptions = 0n;
  pdptes: [bigint, bigint, bigint, bigint] = [0n, 0n, 0n, 0n];

  /** CPL is SS.DPL (SDM Vol. 3C 25.4.1). */
  get cpl(): number {
    return (this.segs[Seg.SS]!.ar >>> 5) & 3;
  }
  getSegment(s: Seg): VmxSegment {
    return { ...this.segs[s]! };
  }
  setSegment(s: Seg, v: VmxSegment): void {
    this.segs[s] = { ...v };
  }
  abstract readMsr(index: number): bigint | undefined;
  abstract writeMsr(index: number, value: bigint): boolean;
}

/** The host-state area of the flat 64-bit context (control registers, selectors, RIP, RSP). */
export function setFlat64Host(v: Vmcs, h: { cr3: bigint; rip: bigint; rsp: bigint }): void {
  v.set64(F.HOST_CR0, FLAT64_CR0);
  v.set64(F.HOST_CR3, h.cr3);
  v.set64(F.HOST_CR4, FLAT64_CR4);
  v.set32(F.HOST_CS_SELECTOR, FLAT64_CS);
  for (const f of [
    F.HOST_SS_SELECTOR,
    F.HOST_DS_SELECTOR,
    F.HOST_ES_SELECTOR,
    F.HOST_FS_SELECTOR,
    F.HOST_GS_SELECTOR,
  ])
    v.set32(f, FLAT64_DS);
  v.set32(F.HOST_TR_SELECTOR, FLAT64_TR);
  v.set64(F.HOST_RIP, h.rip);
  v.set64(F.HOST_RSP, h.rsp);
}
