/**
 * The processor state of L1 (and, while it runs, of L2) as the guest hypervisor's virtual VMX unit
 * sees it: a `VmxCpuState` over the guest-state area of the VMCS L0 currently runs (vmcs01 for L1,
 * vmcs02 for L2). When L1 exits to L0 for a VMX instruction, its state is exactly that guest-state
 * area (the VM exit stored it there, SDM 28.3), so L1's VMLAUNCH loads L2's state into it and a VM
 * exit from L2 to L1 stores L2's state from it and loads L1's host state into it: the vmx package's
 * entry and exit code runs unchanged on behalf of L1 (as Bochs runs the same code for every level).
 *
 * CR0/CR4: L0 owns CR0.NE and CR4.VMXE (forced to 1 in VMX operation, vmcs-setup.ts). The value the
 * guest believes in is the read shadow for L1; for L2 the read shadow also carries L1's shadows for
 * the bits L1 owns, so L2's own value of L0's bits is kept here (`l2Cr0`/`l2Cr4`).
 */
import {
  F,
  guestSegFields,
  hi64,
  join64,
  lo64,
  mergedReadShadow,
  type Seg,
  VMX_REG_PROPERTIES,
  type Vmcs,
  type VmxCpuState,
  type VmxDescTable,
  VmxReg,
  type VmxSegment,
} from "@tskvm/vmx";
import { CR0_HOST_OWNED, CR4_HOST_OWNED, setIa32eEntry } from "./vmcs-setup.js";

/** The MSR access the view needs for VMX MSR-load/store areas and IA32_FEATURE_CONTROL. */
export interface ViewMsrs {
  read(index: number): bigint | undefined;
  write(index: number, value: bigint): boolean;
}

/** Which guest the current L0 VMCS runs. */
export type Level = "l1" | "l2";

/** Guest-state fields the view exposes as plain properties: name -> (encoding, 64-bit). */
const FIELDS = {
  rsp: F.GUEST_RSP,
  rip: F.GUEST_RIP,
  rflags: F.GUEST_RFLAGS,
  cr3: F.GUEST_CR3,
  dr7: F.GUEST_DR7,
  debugctl: F.GUEST_IA32_DEBUGCTL,
  sysenterEsp: F.GUEST_SYSENTER_ESP,
  sysenterEip: F.GUEST_SYSENTER_EIP,
  pat: F.GUEST_IA32_PAT,
  pendingDebugExceptions: F.GUEST_PENDING_DBG_EXCEPTIONS,
} as const;
const FIELDS32 = {
  sysenterCs: F.GUEST_SYSENTER_CS,
  interruptibility: F.GUEST_INTERRUPTIBILITY_INFO,
  activityState: F.GUEST_ACTIVITY_STATE,
} as const;

export class NestedCpuView implements VmxCpuState {
  level: Level = "l1";
  /** L2's own CR0/CR4 (its view of the bits L0 owns) while level is "l2". */
  l2Cr0 = 0n;
  l2Cr4 = 0n;
  // Plain guest-state fields: accessors defined below from FIELDS / FIELDS32.
  declare rsp: bigint;
  declare rip: bigint;
  declare rflags: bigint;
  declare cr3: bigint;
  declare dr7: bigint;
  declare debugctl: bigint;
  declare sysenterEsp: bigint;
  declare sysenterEip: bigint;
  declare pat: bigint;
  declare pendingDebugExceptions: bigint;
  declare sysenterCs: number;
  declare interruptibility: number;
  declare activityState: number;

  constructor(
    readonly vmcs: Vmcs,
    /** vmcs12 (L1's current VMCS): its guest/host masks and read shadows for L2. */
    private readonly vmcs12: () => Vmcs,
    private readonly msrs: ViewMsrs,
  ) {}

  private getCr(cr: 0 | 4): bigint {
    const v = this.vmcs;
    const owned = cr === 0 ? CR0_HOST_OWNED : CR4_HOST_OWNED;
    const actual = v.get64(cr === 0 ? F.GUEST_CR0 : F.GUEST_CR4);
    const own = this.level === "l2" ? (cr === 0 ? this.l2Cr0 : this.l2Cr4) : v.get64(shadowOf(cr));
    return (actual & ~owned) | (own & owned);
  }
  private setCr(cr: 0 | 4, value: bigint): void {
    const v = this.vmcs;
    const owned = cr === 0 ? CR0_HOST_OWNED : CR4_HOST_OWNED;
    v.set64(cr === 0 ? F.GUEST_CR0 : F.GUEST_CR4, value | owned);
    if (this.level === "l1") {
      v.set64(shadowOf(cr), value);
      return;
    }
    if (cr === 0) this.l2Cr0 = value;
    else this.l2Cr4 = value;
    this.mergeShadow(cr);
  }
  /** vmcs02's read shadow: L1's shadow for L1-owned bits, L2's own value elsewhere. */
  mergeShadow(cr: 0 | 4): void {
    const v12 = this.vmcs12();
    const mask = cr === 0 ? F.CR0_GUEST_HOST_MASK : F.CR4_GUEST_HOST_MASK;
    const own = cr === 0 ? this.l2Cr0 : this.l2Cr4;
    this.vmcs.set64(shadowOf(cr), mergedReadShadow(own, v12.get64(mask), v12.get64(shadowOf(cr))));
  }

  get cr0(): bigint {
    return this.getCr(0);
  }
  set cr0(v: bigint) {
    this.setCr(0, v);
  }
  get cr4(): bigint {
    return this.getCr(4);
  }
  set cr4(v: bigint) {
    this.setCr(4, v);
  }
  // VmxCpuState in 32-bit halves: the same guest-state fields (CR0/CR4 and EFER as above).
  lo(r: VmxReg): number {
    if (r === VmxReg.CR0 || r === VmxReg.CR4) return lo64(this.getCr(r === VmxReg.CR0 ? 0 : 4));
    return this.vmcs.get32(REG_FIELDS[r]!);
  }
  hi(r: VmxReg): number {
    if (r === VmxReg.CR0 || r === VmxReg.CR4) return hi64(this.getCr(r === VmxReg.CR0 ? 0 : 4));
    return this.vmcs.getHi(REG_FIELDS[r]!);
  }
  set(r: VmxReg, lo: number, hi: number): void {
    if (r === VmxReg.CR0 || r === VmxReg.CR4) this.setCr(r === VmxReg.CR0 ? 0 : 4, join64(lo, hi));
    else if (r === VmxReg.EFER) this.efer = join64(lo, hi);
    else this.vmcs.setHalves(REG_FIELDS[r]!, lo, hi);
  }
  segSel(s: Seg): number {
    return this.vmcs.get32(guestSegFields(s).sel);
  }
  segBaseLo(s: Seg): number {
    return this.vmcs.get32(guestSegFields(s).base);
  }
  segBaseHi(s: Seg): number {
    return this.vmcs.getHi(guestSegFields(s).base);
  }
  segLimit(s: Seg): number {
    return this.vmcs.get32(guestSegFields(s).limit);
  }
  segAr(s: Seg): number {
    return this.vmcs.get32(guestSegFields(s).ar);
  }
  setSeg(s: Seg, selector: number, baseLo: number, baseHi: number, limit: number, ar: number): void {
    const f = guestSegFields(s);
    const v = this.vmcs;
    v.set32(f.sel, selector);
    v.setHalves(f.base, baseLo, baseHi);
    v.set32(f.limit, limit);
    v.set32(f.ar, ar);
  }
  get gdtrLimit(): number {
    return this.vmcs.get32(F.GUEST_GDTR_LIMIT);
  }
  set gdtrLimit(limit: number) {
    this.vmcs.set32(F.GUEST_GDTR_LIMIT, limit);
  }
  get idtrLimit(): number {
    return this.vmcs.get32(F.GUEST_IDTR_LIMIT);
  }
  set idtrLimit(limit: number) {
    this.vmcs.set32(F.GUEST_IDTR_LIMIT, limit);
  }

  /** CPL is SS.DPL (SDM 25.4.1). */
  get cpl(): number {
    return (this.vmcs.get32(F.GUEST_SS_AR_BYTES) >>> 5) & 3;
  }
  getSegment(s: Seg): VmxSegment {
    const f = guestSegFields(s);
    const v = this.vmcs;
    return { selector: v.get32(f.sel), base: v.get64(f.base), limit: v.get32(f.limit), ar: v.get32(f.ar) };
  }
  setSegment(s: Seg, seg: VmxSegment): void {
    const f = guestSegFields(s);
    const v = this.vmcs;
    v.set32(f.sel, seg.selector);
    v.set64(f.base, seg.base);
    v.set32(f.limit, seg.limit);
    v.set32(f.ar, seg.ar);
  }
  get gdtr(): VmxDescTable {
    return { base: this.vmcs.get64(F.GUEST_GDTR_BASE), limit: this.vmcs.get32(F.GUEST_GDTR_LIMIT) };
  }
  set gdtr(t: VmxDescTable) {
    this.vmcs.set64(F.GUEST_GDTR_BASE, t.base);
    this.vmcs.set32(F.GUEST_GDTR_LIMIT, t.limit);
  }
  get idtr(): VmxDescTable {
    return { base: this.vmcs.get64(F.GUEST_IDTR_BASE), limit: this.vmcs.get32(F.GUEST_IDTR_LIMIT) };
  }
  set idtr(t: VmxDescTable) {
    this.vmcs.set64(F.GUEST_IDTR_BASE, t.base);
    this.vmcs.set32(F.GUEST_IDTR_LIMIT, t.limit);
  }
  /** L0 always loads and saves EFER (vmcs-setup.ts); "IA-32e mode guest" follows LMA. */
  get efer(): bigint {
    return this.vmcs.get64(F.GUEST_IA32_EFER);
  }
  set efer(v: bigint) {
    this.vmcs.set64(F.GUEST_IA32_EFER, v);
    setIa32eEntry(this.vmcs, (v & 0x400n) !== 0n);
  }
  get pdptes(): [bigint, bigint, bigint, bigint] {
    const v = this.vmcs;
    return [
      v.get64(F.GUEST_PDPTE0),
      v.get64(F.GUEST_PDPTE1),
      v.get64(F.GUEST_PDPTE2),
      v.get64(F.GUEST_PDPTE3),
    ];
  }
  set pdptes(p: [bigint, bigint, bigint, bigint]) {
    for (let i = 0; i < 4; i++) this.vmcs.set64(F.GUEST_PDPTE0 + 2 * i, p[i]!);
  }

  readMsr(index: number): bigint | undefined {
    const p = VMCS_MSRS.get(index);
    if (p === undefined) return this.msrs.read(index);
    return p === "sysenterCs" ? BigInt(this.sysenterCs) : this[p];
  }
  /** MSR-load areas: MSRs that live in the guest-state area go there, the rest to the vCPU. */
  writeMsr(index: number, value: bigint): boolean {
    const p = VMCS_MSRS.get(index);
    if (p === undefined) return this.msrs.write(index, value);
    // WRMSR's #GP conditions (SDM 27.4): EFER reserved bits, PAT memory types 2, 3 and > 7.
    if (p === "efer" && (value & ~0xd01n) !== 0n) return false;
    if (
      p === "pat" &&
      [0, 1, 2, 3, 4, 5, 6, 7].some((i) => !PAT_TYPES.has(Number((value >> BigInt(8 * i)) & 0xffn)))
    )
      return false;
    if (p === "sysenterCs") this.sysenterCs = Number(value & 0xffffffffn);
    else this[p] = value;
    return true;
  }
}

/** The guest-state field of each VmxReg register but CR0 and CR4 (EFER: its setter adds a side effect). */
const REG_FIELDS: number[] = [];
for (const [name, enc] of Object.entries(FIELDS))
  REG_FIELDS[VMX_REG_PROPERTIES[name as keyof typeof FIELDS]] = enc;
REG_FIELDS[VmxReg.EFER] = F.GUEST_IA32_EFER;
REG_FIELDS[VmxReg.GDTR_BASE] = F.GUEST_GDTR_BASE;
REG_FIELDS[VmxReg.IDTR_BASE] = F.GUEST_IDTR_BASE;
for (let i = 0; i < 4; i++) REG_FIELDS[VmxReg.PDPTE0 + i] = F.GUEST_PDPTE0 + 2 * i;

const ACCESSORS: [string, number, boolean][] = [
  ...Object.entries(FIELDS).map(([n, e]): [string, number, boolean] => [n, e, true]),
  ...Object.entries(FIELDS32).map(([n, e]): [string, number, boolean] => [n, e, false]),
];
for (const [name, enc, wide] of ACCESSORS)
  Object.defineProperty(NestedCpuView.prototype, name, {
    get(this: NestedCpuView): bigint | number {
      return wide ? this.vmcs.get64(enc) : this.vmcs.get32(enc);
    },
    set(this: NestedCpuView, v: bigint | number) {
      if (typeof v === "bigint") this.vmcs.set64(enc, v);
      else this.vmcs.set32(enc, v);
    },
  });

/** MSRs whose current value is part of the guest-state area while a guest runs (SDM 25.4.1). */
const VMCS_MSRS = new Map<number, "sysenterCs" | "sysenterEsp" | "sysenterEip" | "debugctl" | "pat" | "efer">(
  [
    [0x174, "sysenterCs"],
    [0x175, "sysenterEsp"],
    [0x176, "sysenterEip"],
    [0x1d9, "debugctl"],
    [0x277, "pat"],
    [0xc0000080, "efer"],
  ],
);

const PAT_TYPES = new Set([0, 1, 4, 5, 6, 7]);

function shadowOf(cr: 0 | 4): number {
  return cr === 0 ? F.CR0_READ_SHADOW : F.CR4_READ_SHADOW;
}
