/**
 * Test doubles for this package's tests and for other layers' (exported as `@tskvm/vmx/testing`):
 * a flat physical memory, a CPU-state record satisfying `VmxCpuState` (64-bit mode, ring 0, VMX
 * enabled in IA32_FEATURE_CONTROL), a unit in VMX root operation with a current VMCS, and a VMCS
 * that passes every VM-entry check (64-bit host, 64-bit flat ring-0 guest).
 */
import { VmxCaps } from "./caps";
import { EntryCtl, ExitCtl } from "./controls";
import { F, Seg } from "./fields";
import { FlatCpuState, setFlat64Host } from "./flat64";
import type { VmxPhysMemory } from "./iface";
import { VmxUnit } from "./instructions";

/** Physical memory as one Uint8Array; reads past the end return 0xFF (an open bus). */
export class FlatMemory implements VmxPhysMemory {
  readonly bytes: Uint8Array;
  constructor(size = 1 << 20) {
    this.bytes = new Uint8Array(size);
  }
  read(pa: number, dst: Uint8Array): void {
    for (let i = 0; i < dst.length; i++) dst[i] = this.bytes[pa + i] ?? 0xff;
  }
  write(pa: number, src: Uint8Array): void {
    for (let i = 0; i < src.length; i++) if (pa + i < this.bytes.length) this.bytes[pa + i] = src[i]!;
  }
  u32(pa: number): number {
    return new DataView(this.bytes.buffer).getUint32(pa, true);
  }
  setU32(pa: number, v: number): void {
    new DataView(this.bytes.buffer).setUint32(pa, v >>> 0, true);
  }
  u64(pa: number): bigint {
    return new DataView(this.bytes.buffer).getBigUint64(pa, true);
  }
  setU64(pa: number, v: bigint): void {
    new DataView(this.bytes.buffer).setBigUint64(pa, v, true);
  }
}

/** A 64-bit-mode ring-0 CPU with VMX enabled; MSRs in a map (undefined index -> #GP). */
export class TestCpu extends FlatCpuState {
  constructor() {
    super();
    this.rsp = 0x7000n;
    this.rip = 0x100000n;
    this.cr3 = 0x3000n;
    this.gdtrLimit = 0x27;
    this.idtrLimit = 0xfff;
  }
  msrs = new Map<number, bigint>([
    [0x3a, 5n],
    [0x10, 0n],
    [0x174, 0n],
    [0xc0000102, 0n],
  ]);
  /** CS.RPL here, so tests can drop to CPL 3 with one selector. */
  override get cpl(): number {
    return this.segSel(Seg.CS) & 3;
  }
  readMsr(index: number): bigint | undefined {
    return this.msrs.get(index);
  }
  writeMsr(index: number, value: bigint): boolean {
    if (!this.msrs.has(index)) return false;
    this.msrs.set(index, value);
    return true;
  }
}

/** Where `rig` puts the VMXON region and the VMCS. */
export const VMXON_PA = 0x1000;
export const VMCS_PA = 0x2000;

/** A VMX unit with its caps, memory and CPU. */
export interface Rig {
  caps: VmxCaps;
  mem: FlatMemory;
  cpu: TestCpu;
  unit: VmxUnit;
}

/** A unit in VMX root operation with a clear, current VMCS at VMCS_PA. */
export function rig(caps = new VmxCaps()): Rig {
  const mem = new FlatMemory();
  const cpu = new TestCpu();
  const unit = new VmxUnit({ caps, cpu, mem });
  mem.setU32(VMXON_PA, caps.config.revisionId);
  mem.setU32(VMCS_PA, caps.config.revisionId);
  if (unit.vmxon(() => BigInt(VMXON_PA)).kind !== "done" || (cpu.rflags & 0x41n) !== 0n)
    throw new Error("vmxon");
  unit.vmclear(() => BigInt(VMCS_PA));
  unit.vmptrld(() => BigInt(VMCS_PA));
  return { caps, mem, cpu, unit };
}

/** Fill the current VMCS with a 64-bit host and a 64-bit guest that pass every VM-entry check. */
export function validVmcs(r: Rig): void {
  const v = r.unit.vmcs;
  const c = r.caps;
  v.set32(F.PIN_BASED_VM_EXEC_CONTROL, c.truePin.must1);
  v.set32(F.CPU_BASED_VM_EXEC_CONTROL, c.trueProc.must1);
  v.set32(F.VM_EXIT_CONTROLS, c.trueExit.must1 | ExitCtl.HOST_ADDR_SPACE_SIZE);
  v.set32(F.VM_ENTRY_CONTROLS, c.trueEntry.must1 | EntryCtl.IA32E_MODE_GUEST);
  setFlat64Host(v, { cr3: 0x3000n, rip: 0x200000n, rsp: 0x8000n });
  // Guest state: flat 64-bit ring 0.
  v.set64(F.GUEST_CR0, 0x80000031n);
  v.set64(F.GUEST_CR3, 0x5000n);
  v.set64(F.GUEST_CR4, 0x2020n);
  v.set64(F.GUEST_DR7, 0x400n);
  v.set32(F.GUEST_CS_SELECTOR, 0x08);
  v.set32(F.GUEST_CS_AR_BYTES, 0xa09b);
  v.set32(F.GUEST_CS_LIMIT, 0xffffffff);
  for (const [sel, ar, lim] of [
    [F.GUEST_SS_SELECTOR, F.GUEST_SS_AR_BYTES, F.GUEST_SS_LIMIT],
    [F.GUEST_DS_SELECTOR, F.GUEST_DS_AR_BYTES, F.GUEST_DS_LIMIT],
    [F.GUEST_ES_SELECTOR, F.GUEST_ES_AR_BYTES, F.GUEST_ES_LIMIT],
    [F.GUEST_FS_SELECTOR, F.GUEST_FS_AR_BYTES, F.GUEST_FS_LIMIT],
    [F.GUEST_GS_SELECTOR, F.GUEST_GS_AR_BYTES, F.GUEST_GS_LIMIT],
  ] as const) {
    v.set32(sel, 0x10);
    v.set32(ar, 0xc093);
    v.set32(lim, 0xffffffff);
  }
  v.set32(F.GUEST_LDTR_AR_BYTES, 0x10000);
  v.set32(F.GUEST_TR_SELECTOR, 0x18);
  v.set32(F.GUEST_TR_AR_BYTES, 0x8b);
  v.set32(F.GUEST_TR_LIMIT, 0x67);
  v.set32(F.GUEST_GDTR_LIMIT, 0x27);
  v.set32(F.GUEST_IDTR_LIMIT, 0xfff);
  v.set64(F.GUEST_RIP, 0x1000n);
  v.set64(F.GUEST_RSP, 0x2000n);
  v.set64(F.GUEST_RFLAGS, 2n);
  v.set64(F.VMCS_LINK_POINTER, 0xffffffffffffffffn);
}
