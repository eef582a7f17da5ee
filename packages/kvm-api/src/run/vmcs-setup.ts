/**
 * Programming a vCPU's VMCS the way arch/x86/kvm/vmx/vmx.c does (init_vmcs(), setup of the
 * execution controls, vmx_set_cr0/cr4/efer/segment, vmx_get_*): the controls KVM asks for, a 64-bit
 * host state, and the conversions between `kvm_regs`/`kvm_sregs` and the VMCS guest-state area
 * (SDM Vol. 3C 25.4 "Guest-State Area", 25.5 "Host-State Area", 25.6 "VM-Execution Control Fields").
 */
import type { Cpu } from "@tskvm/cpu-x86";
import {
  DEFAULT_PAT,
  EntryCtl,
  ExitCtl,
  F,
  FLAT64_EFER,
  guestSegFields,
  Pin,
  Proc,
  Proc2,
  Seg,
  setFlat64Host,
  type Vmcs,
  type VmxCaps,
} from "@tskvm/vmx";
import type { KvmSegment, KvmSregs } from "../vcpu-state.js";

/** CR0 bits the kernel owns (guest reads see the read shadow): NE, forced to 1 in VMX operation. */
export const CR0_HOST_OWNED = 0x20n;
/** CR4 bits the kernel owns: VMXE, 1 in VMX operation and 0 for the guest unless nested VMX is on. */
export const CR4_HOST_OWNED = 0x2000n;
/** CR4.PKE (SDM Vol. 3 2.5): allowed in VMX operation (IA32_VMX_CR4_FIXED1) as the CPU has PKU. */
export const CR4_PKE = 1 << 22;
/** Exception bitmap: #MC always (KVM intercepts machine checks); #DB/#BP with guest debugging. */
export const EXCEPTION_BITMAP_BASE = 1 << 18;

/** MSRs the guest reads and writes without an exit (clear in the MSR bitmap): the CPU keeps them. */
export const PASSTHROUGH_MSRS = [
  0x174, // SYSENTER_CS
  0x175, // SYSENTER_ESP
  0x176, // SYSENTER_EIP
  0x277, // PAT
  0x48, // SPEC_CTRL
  0xc0000080, // EFER
  0xc0000081, // STAR
  0xc0000082, // LSTAR
  0xc0000083, // CSTAR
  0xc0000084, // FMASK
  0xc0000100, // FS_BASE
  0xc0000101, // GS_BASE
  0xc0000102, // KERNEL_GS_BASE
  0xc0000103, // TSC_AUX
];

/** Where the kernel's own (never executed) host context lives in the private window. */
export interface HostPages {
  msrBitmap: number;
  hostCr3: number;
}

/** Fills an MSR bitmap page (SDM 25.6.9): every access exits except PASSTHROUGH_MSRS. */
export function msrBitmap(): Uint8Array {
  const b = new Uint8Array(4096).fill(0xff);
  for (const m of PASSTHROUGH_MSRS) {
    const bit = m & 0x1fff;
    const base = m >= 0xc0000000 ? 1024 : 0;
    for (const quarter of [0, 2048]) b[base + quarter + (bit >>> 3)]! &= ~(1 << (bit & 7));
  }
  return b;
}

/** The execution, exit and entry controls and the host-state area of a fresh vCPU VMCS. */
export function programControls(v: Vmcs, caps: VmxCaps, pages: HostPages, eptp: bigint): void {
  v.set32(
    F.PIN_BASED_VM_EXEC_CONTROL,
    caps.truePin.must1 | Pin.EXT_INTR_EXITING | Pin.NMI_EXITING | Pin.VIRTUAL_NMIS,
  );
  // KVM: HLT, MWAIT/MONITOR, RDPMC exiting; all port I/O exits (UNCOND_IO_EXITING, no bitmaps for
  // L0); MSR bitmaps; CR8 load/store exiting (no TPR shadow here); secondary controls.
  v.set32(
    F.CPU_BASED_VM_EXEC_CONTROL,
    caps.trueProc.must1 |
      Proc.HLT_EXITING |
      Proc.MWAIT_EXITING |
      Proc.MONITOR_EXITING |
      Proc.RDPMC_EXITING |
      Proc.UNCOND_IO_EXITING |
      Proc.USE_MSR_BITMAPS |
      Proc.CR8_LOAD_EXITING |
      Proc.CR8_STORE_EXITING |
      Proc.ACTIVATE_SECONDARY,
  );
  v.set32(
    F.SECONDARY_VM_EXEC_CONTROL,
    Proc2.ENABLE_EPT |
      Proc2.UNRESTRICTED_GUEST |
      Proc2.ENABLE_VPID |
      Proc2.ENABLE_RDTSCP |
      Proc2.ENABLE_INVPCID |
      Proc2.WBINVD_EXITING,
  );
  v.set32(
    F.VM_EXIT_CONTROLS,
    caps.trueExit.must1 |
      ExitCtl.HOST_ADDR_SPACE_SIZE |
      ExitCtl.ACK_INTR_ON_EXIT |
      ExitCtl.SAVE_DEBUG_CONTROLS |
      ExitCtl.SAVE_EFER |
      ExitCtl.LOAD_EFER |
      ExitCtl.SAVE_PAT |
      ExitCtl.LOAD_PAT,
  );
  v.set32(
    F.VM_ENTRY_CONTROLS,
    caps.trueEntry.must1 | EntryCtl.LOAD_DEBUG_CONTROLS | EntryCtl.LOAD_EFER | EntryCtl.LOAD_PAT,
  );
  v.set32(F.EXCEPTION_BITMAP, EXCEPTION_BITMAP_BASE);
  v.set64(F.MSR_BITMAP, BigInt(pages.msrBitmap));
  v.set64(F.EPT_POINTER, eptp);
  v.set32(F.VIRTUAL_PROCESSOR_ID, 1);
  v.set64(F.CR0_GUEST_HOST_MASK, CR0_HOST_OWNED);
  v.set64(F.CR4_GUEST_HOST_MASK, CR4_HOST_OWNED);
  v.set64(F.VMCS_LINK_POINTER, 0xffffffffffffffffn);
  // Host state: the 64-bit kernel context VM exits return to (never executed as x86 code here).
  setFlat64Host(v, { cr3: BigInt(pages.hostCr3), rip: 0xffffffff81000000n, rsp: 0xffffffff81800000n });
  v.set64(F.HOST_IA32_EFER, FLAT64_EFER);
  v.set64(F.HOST_IA32_PAT, DEFAULT_PAT);
  v.set64(F.GUEST_IA32_PAT, DEFAULT_PAT);
}

/** `kvm_segment` -> VMX access rights (vmx_segment_access_rights()). */
export function segmentAr(s: KvmSegment): number {
  if (s.unusable || !s.present) return 0x10000;
  return (
    (s.type & 15) |
    ((s.s & 1) << 4) |
    ((s.dpl & 3) << 5) |
    ((s.present & 1) << 7) |
    ((s.avl & 1) << 12) |
    ((s.l & 1) << 13) |
    ((s.db & 1) << 14) |
    ((s.g & 1) << 15)
  );
}

/** VMX access rights -> `kvm_segment` (vmx_get_segment()). */
export function kvmSegment(selector: number, base: bigint, limit: number, ar: number): KvmSegment {
  const unusable = (ar >>> 16) & 1;
  return {
    base,
    limit: limit >>> 0,
    selector: selector & 0xffff,
    type: ar & 15,
    s: (ar >>> 4) & 1,
    dpl: (ar >>> 5) & 3,
    // KVM reports an unusable segment as not present.
    present: unusable ? 0 : (ar >>> 7) & 1,
    avl: (ar >>> 12) & 1,
    l: (ar >>> 13) & 1,
    db: (ar >>> 14) & 1,
    g: (ar >>> 15) & 1,
    unusable,
  };
}

const KVM_SEGS: [keyof KvmSregs, Seg][] = [
  ["es", Seg.ES],
  ["cs", Seg.CS],
  ["ss", Seg.SS],
  ["ds", Seg.DS],
  ["fs", Seg.FS],
  ["gs", Seg.GS],
  ["ldt", Seg.LDTR],
  ["tr", Seg.TR],
];

/**
 * KVM_SET_SREGS into the guest-state area (vmx_set_sregs path): segments, descriptor tables,
 * CR0/CR4 with the host-owned bits forced and the guest's view in the read shadows, CR3, EFER and
 * the "IA-32e mode guest" entry control, PAE PDPTEs from guest memory (SDM 27.3.1.6 with EPT).
 */
export function sregsToVmcs(v: Vmcs, s: KvmSregs, cpu: Cpu, readPdptes: (cr3: bigint) => bigint[]): void {
  for (const [name, seg] of KVM_SEGS) {
    const k = s[name] as KvmSegment;
    const f = guestSegFields(seg);
    v.set32(f.sel, k.selector & 0xffff);
    v.set64(f.base, k.base);
    v.set32(f.limit, k.limit >>> 0);
    v.set32(f.ar, segmentAr(k));
  }
  v.set64(F.GUEST_GDTR_BASE, s.gdt.base);
  v.set32(F.GUEST_GDTR_LIMIT, s.gdt.limit & 0xffff);
  v.set64(F.GUEST_IDTR_BASE, s.idt.base);
  v.set32(F.GUEST_IDTR_LIMIT, s.idt.limit & 0xffff);
  v.set64(F.CR0_READ_SHADOW, s.cr0);
  v.set64(F.GUEST_CR0, s.cr0 | CR0_HOST_OWNED);
  v.set64(F.CR4_READ_SHADOW, s.cr4);
  v.set64(F.GUEST_CR4, s.cr4 | CR4_HOST_OWNED);
  v.set64(F.GUEST_CR3, s.cr3);
  v.set64(F.GUEST_IA32_EFER, s.efer);
  setIa32eEntry(v, (s.efer & 0x400n) !== 0n);
  const pae = (s.cr0 & 0x80000000n) !== 0n && (s.cr4 & 0x20n) !== 0n && (s.efer & 0x400n) === 0n;
  if (pae) {
    const p = readPdptes(s.cr3);
    v.set64(F.GUEST_PDPTE0, p[0] ?? 0n);
    v.set64(F.GUEST_PDPTE1, p[1] ?? 0n);
    v.set64(F.GUEST_PDPTE2, p[2] ?? 0n);
    v.set64(F.GUEST_PDPTE3, p[3] ?? 0n);
  }
  cpu.cr2Lo = Number(s.cr2 & 0xffffffffn) | 0;
  cpu.cr2Hi = Number((s.cr2 >> 32n) & 0xffffffffn) | 0;
}

/** The "IA-32e mode guest" VM-entry control follows EFER.LMA (vmx_set_efer()). */
export function setIa32eEntry(v: Vmcs, lma: boolean): void {
  const e = v.get32(F.VM_ENTRY_CONTROLS);
  v.set32(F.VM_ENTRY_CONTROLS, lma ? e | EntryCtl.IA32E_MODE_GUEST : e & ~EntryCtl.IA32E_MODE_GUEST);
}

/** The guest's view of CR0/CR4: host-owned bits from the read shadow (vmx_get_cr0/cr4 / SDM 26.3). */
export function guestCr(v: Vmcs, cr: 0 | 4): bigint {
  const [actual, mask, shadow] =
    cr === 0
      ? [F.GUEST_CR0, F.CR0_GUEST_HOST_MASK, F.CR0_READ_SHADOW]
      : [F.GUEST_CR4, F.CR4_GUEST_HOST_MASK, F.CR4_READ_SHADOW];
  const m = v.get64(mask);
  return (v.get64(actual) & ~m) | (v.get64(shadow) & m);
}

/** The guest-state area back into `kvm_sregs` (vmx_get_sregs path); apicBase/cr8/bitmap are the caller's. */
export function vmcsToSregs(v: Vmcs, cpu: Cpu, base: KvmSregs): KvmSregs {
  const out = { ...base };
  for (const [name, seg] of KVM_SEGS) {
    const f = guestSegFields(seg);
    (out as unknown as Record<string, KvmSegment>)[name] = kvmSegment(
      v.get32(f.sel),
      v.get64(f.base),
      v.get32(f.limit),
      v.get32(f.ar),
    );
  }
  out.gdt = { base: v.get64(F.GUEST_GDTR_BASE), limit: v.get32(F.GUEST_GDTR_LIMIT) };
  out.idt = { base: v.get64(F.GUEST_IDTR_BASE), limit: v.get32(F.GUEST_IDTR_LIMIT) };
  out.cr0 = guestCr(v, 0);
  out.cr4 = guestCr(v, 4);
  out.cr3 = v.get64(F.GUEST_CR3);
  out.efer = v.get64(F.GUEST_IA32_EFER);
  out.cr2 = (BigInt(cpu.cr2Hi >>> 0) << 32n) | BigInt(cpu.cr2Lo >>> 0);
  return out;
}
