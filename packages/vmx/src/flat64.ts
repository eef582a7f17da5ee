/**
 * A flat 64-bit ring-0 context, the one every software hypervisor here starts from: the processor
 * state of a host in VMX root operation (`FlatCpuState`) and the host-state area that returns to it
 * (`setFlat64Host`, SDM Vol. 3C 25.5 with the checks of 27.2.3). kvm-api's L0 host record and the
 * test doubles of `@tskvm/vmx/testing` are both this context.
 *
 * GDT layout it assumes: 0x08 64-bit code, 0x10 flat data, 0x18 a 64-bit TSS.
 */
import { F, Seg } from "./fields";
import { VMX_REG_COUNT, type VmxCpuState, type VmxDescTable, VmxReg, type VmxSegment } from "./iface";
import { hi64, join64, lo64 } from "./util";
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

/** Bigint property names of `VmxReg` registers, as `FlatCpuState` (and kvm-api's views) spell them. */
export const VMX_REG_PROPERTIES = {
  rip: VmxReg.RIP,
  rsp: VmxReg.RSP,
  rflags: VmxReg.RFLAGS,
  cr0: VmxReg.CR0,
  cr3: VmxReg.CR3,
  cr4: VmxReg.CR4,
  dr7: VmxReg.DR7,
  debugctl: VmxReg.DEBUGCTL,
  sysenterEsp: VmxReg.SYSENTER_ESP,
  sysenterEip: VmxReg.SYSENTER_EIP,
  efer: VmxReg.EFER,
  pat: VmxReg.PAT,
  pendingDebugExceptions: VmxReg.PENDING_DBG,
} as const;

/**
 * A plain `VmxCpuState` holding the flat 64-bit context in typed arrays; subclasses supply the
 * MSRs. Registers also read and write as bigint (`rip`, `cr0`, `getSegment`, ...) for tests and
 * cold paths.
 */
export abstract class FlatCpuState implements VmxCpuState {
  /** `VmxReg` registers: low half at 2 * r, high half at 2 * r + 1. */
  readonly regs = new Uint32Array(2 * VMX_REG_COUNT);
  /** Segment registers: selector, base low, base high, limit, access rights at 5 * s. */
  readonly segWords = new Uint32Array(5 * 8);
  gdtrLimit = 0xffff;
  idtrLimit = 0xffff;
  sysenterCs = 0;
  interruptibility = 0;
  activityState = 0;
  declare rip: bigint;
  declare rsp: bigint;
  declare rflags: bigint;
  declare cr0: bigint;
  declare cr3: bigint;
  declare cr4: bigint;
  declare dr7: bigint;
  declare debugctl: bigint;
  declare sysenterEsp: bigint;
  declare sysenterEip: bigint;
  declare efer: bigint;
  declare pat: bigint;
  declare pendingDebugExceptions: bigint;

  constructor() {
    this.rflags = 2n;
    this.cr0 = FLAT64_CR0;
    this.cr4 = FLAT64_CR4;
    this.dr7 = 0x400n;
    this.efer = FLAT64_EFER;
    this.pat = DEFAULT_PAT;
    for (const [s, seg] of flat64Segments().entries()) this.setSegment(s as Seg, seg);
  }

  lo(r: VmxReg): number {
    return this.regs[2 * r]!;
  }
  hi(r: VmxReg): number {
    return this.regs[2 * r + 1]!;
  }
  set(r: VmxReg, lo: number, hi: number): void {
    this.regs[2 * r] = lo;
    this.regs[2 * r + 1] = hi;
  }
  segSel(s: Seg): number {
    return this.segWords[5 * s]!;
  }
  segBaseLo(s: Seg): number {
    return this.segWords[5 * s + 1]!;
  }
  segBaseHi(s: Seg): number {
    return this.segWords[5 * s + 2]!;
  }
  segLimit(s: Seg): number {
    return this.segWords[5 * s + 3]!;
  }
  segAr(s: Seg): number {
    return this.segWords[5 * s + 4]!;
  }
  setSeg(s: Seg, selector: number, baseLo: number, baseHi: number, limit: number, ar: number): void {
    const w = this.segWords;
    const i = 5 * s;
    w[i] = selector;
    w[i + 1] = baseLo;
    w[i + 2] = baseHi;
    w[i + 3] = limit;
    w[i + 4] = ar;
  }

  /** CPL is SS.DPL (SDM Vol. 3C 25.4.1). */
  get cpl(): number {
    return (this.segAr(Seg.SS) >>> 5) & 3;
  }
  getSegment(s: Seg): VmxSegment {
    return {
      selector: this.segSel(s),
      base: join64(this.segBaseLo(s), this.segBaseHi(s)),
      limit: this.segLimit(s),
      ar: this.segAr(s),
    };
  }
  setSegment(s: Seg, v: VmxSegment): void {
    this.setSeg(s, v.selector, lo64(v.base), hi64(v.base), v.limit, v.ar);
  }
  get gdtr(): VmxDescTable {
    return { base: this.get64(VmxReg.GDTR_BASE), limit: this.gdtrLimit };
  }
  set gdtr(t: VmxDescTable) {
    this.set64(VmxReg.GDTR_BASE, t.base);
    this.gdtrLimit = t.limit;
  }
  get idtr(): VmxDescTable {
    return { base: this.get64(VmxReg.IDTR_BASE), limit: this.idtrLimit };
  }
  set idtr(t: VmxDescTable) {
    this.set64(VmxReg.IDTR_BASE, t.base);
    this.idtrLimit = t.limit;
  }
  get pdptes(): [bigint, bigint, bigint, bigint] {
    const p = (i: number) => this.get64(VmxReg.PDPTE0 + i);
    return [p(0), p(1), p(2), p(3)];
  }
  set pdptes(p: [bigint, bigint, bigint, bigint]) {
    for (let i = 0; i < 4; i++) this.set64(VmxReg.PDPTE0 + i, p[i]!);
  }
  /** A register as an unsigned 64-bit bigint. */
  get64(r: VmxReg): bigint {
    return join64(this.lo(r), this.hi(r));
  }
  set64(r: VmxReg, v: bigint): void {
    this.set(r, lo64(v), hi64(v));
  }
  abstract readMsr(index: number): bigint | undefined;
  abstract writeMsr(index: number, value: bigint): boolean;
}
for (const [name, r] of Object.entries(VMX_REG_PROPERTIES))
  Object.defineProperty(FlatCpuState.prototype, name, {
    get(this: FlatCpuState): bigint {
      return this.get64(r);
    },
    set(this: FlatCpuState, v: bigint) {
      this.set64(r, v);
    },
  });

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
