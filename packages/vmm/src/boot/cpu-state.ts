/**
 * The vCPU state a loader hands over: the fields of KVM's `kvm_regs` and `kvm_sregs`, named, so
 * the VMM can pass them to KVM_SET_REGS / KVM_SET_SREGS when the layers are wired. Values are
 * plain numbers (every value here is below 2^53).
 */

import { BOOT_GDT_ADDR, BOOT_IDT_ADDR, PD_ADDR, PDPT_ADDR, PML4_ADDR } from "../layout.js";
import type { GuestMemory } from "../memory.js";

/** A segment register with its hidden part, as `struct kvm_segment`. */
export interface SegmentState {
  selector: number;
  base: number;
  limit: number;
  /** Descriptor type field (SDM Vol. 3A 3.4.5.1): 0xb = code execute/read accessed, 0x3 = data read/write accessed. */
  type: number;
  present: boolean;
  dpl: number;
  /** D/B: 32-bit default operand size. */
  db: boolean;
  /** S: code or data (not system). */
  s: boolean;
  /** L: 64-bit code segment. */
  l: boolean;
  /** G: limit in 4 KiB units. */
  g: boolean;
}

/** A descriptor-table register (GDTR/IDTR). */
export interface TableRegister {
  base: number;
  limit: number;
}

/** General-purpose registers, RIP and RFLAGS (`struct kvm_regs`). */
export interface GeneralRegisters {
  rax: number;
  rbx: number;
  rcx: number;
  rdx: number;
  rsi: number;
  rdi: number;
  rsp: number;
  rbp: number;
  r8: number;
  r9: number;
  r10: number;
  r11: number;
  r12: number;
  r13: number;
  r14: number;
  r15: number;
  rip: number;
  rflags: number;
}

/** The boot vCPU's state at the kernel's entry point. */
export interface BootCpuState {
  /** The mode the state describes, for messages and checks. */
  mode: "long" | "protected";
  regs: GeneralRegisters;
  cs: SegmentState;
  ds: SegmentState;
  es: SegmentState;
  fs: SegmentState;
  gs: SegmentState;
  ss: SegmentState;
  tr: SegmentState;
  ldt: SegmentState;
  gdt: TableRegister;
  idt: TableRegister;
  cr0: number;
  cr3: number;
  cr4: number;
  efer: number;
}

/** CR0 bits (SDM Vol. 3A 2.5). */
export const CR0_PE = 1 << 0;
export const CR0_ET = 1 << 4;
export const CR0_PG = 2 ** 31;
/** CR4.PAE (SDM Vol. 3A 2.5). */
export const CR4_PAE = 1 << 5;
/** IA32_EFER bits (SDM Vol. 3A 2.2.1). */
export const EFER_LME = 1 << 8;
export const EFER_LMA = 1 << 10;
/** RFLAGS bit 1 is reserved and always 1 (SDM Vol. 1 3.4.3). */
export const RFLAGS_FIXED = 0x2;

/** GDT selectors: Linux's __BOOT_CS and __BOOT_DS (arch/x86/include/asm/segment.h, boot.rst). */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
/** The task register needs a valid busy-TSS type for VM entry (SDM Vol. 3C 26.3.1.2); selector 0x20. */
export const BOOT_TSS = 0x20;

/** Page-table entry bits (SDM Vol. 3A 4.5). */
const PTE_P = 1 << 0;
const PTE_RW = 1 << 1;
const PTE_PS = 1 << 7;

function zeroRegs(): GeneralRegisters {
  return {
    rax: 0,
    rbx: 0,
    rcx: 0,
    rdx: 0,
    rsi: 0,
    rdi: 0,
    rsp: 0,
    rbp: 0,
    r8: 0,
    r9: 0,
    r10: 0,
    r11: 0,
    r12: 0,
    r13: 0,
    r14: 0,
    r15: 0,
    rip: 0,
    rflags: RFLAGS_FIXED,
  };
}

function flatSegment(selector: number, code: boolean, long: boolean): SegmentState {
  return {
    selector,
    base: 0,
    limit: 0xffff_ffff,
    type: code ? 0xb : 0x3,
    present: true,
    dpl: 0,
    // SDM Vol. 3A 5.2.1: with L=1, D must be 0.
    db: !(code && long),
    s: true,
    l: code && long,
    g: true,
  };
}

/** Encode a segment descriptor (SDM Vol. 3A 3.4.5, Figure 3-8) as 8 bytes. */
export function encodeDescriptor(seg: SegmentState): Uint8Array {
  const out = new Uint8Array(8);
  const limit = seg.g ? Math.floor(seg.limit / 4096) : seg.limit;
  const lo = (limit & 0xffff) | ((seg.base & 0xffff) << 16);
  const hi =
    ((seg.base >>> 16) & 0xff) |
    ((seg.type & 0xf) << 8) |
    ((seg.s ? 1 : 0) << 12) |
    ((seg.dpl & 3) << 13) |
    ((seg.present ? 1 : 0) << 15) |
    (((limit >>> 16) & 0xf) << 16) |
    ((seg.l ? 1 : 0) << 21) |
    ((seg.db ? 1 : 0) << 22) |
    ((seg.g ? 1 : 0) << 23) |
    (((seg.base >>> 24) & 0xff) << 24);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, lo >>> 0, true);
  dv.setUint32(4, hi >>> 0, true);
  return out;
}

/** Where a loader's state write failed: the layout addresses are not RAM (guest memory too small). */
export class BootStateError extends Error {
  constructor(
    readonly what: string,
    readonly gpa: number,
  ) {
    super(`cannot write the ${what} at 0x${gpa.toString(16)}: not guest RAM`);
    this.name = "BootStateError";
  }
}

function put(mem: GuestMemory, gpa: number, bytes: Uint8Array, what: string): void {
  if (!mem.write(gpa, bytes)) throw new BootStateError(what, gpa);
}

/** Write the boot GDT: null, null, __BOOT_CS, __BOOT_DS, TSS (5 entries, selector = index * 8). */
function writeGdt(mem: GuestMemory, cs: SegmentState, ds: SegmentState, tr: SegmentState): TableRegister {
  const gdt = new Uint8Array(5 * 8);
  gdt.set(encodeDescriptor(cs), BOOT_CS);
  gdt.set(encodeDescriptor(ds), BOOT_DS);
  gdt.set(encodeDescriptor(tr), BOOT_TSS);
  put(mem, BOOT_GDT_ADDR, gdt, "boot GDT");
  return { base: BOOT_GDT_ADDR, limit: gdt.length - 1 };
}

/**
 * Identity-map the first 4 GiB with 2 MiB pages: PML4[0] -> PDPT, PDPT[0..3] -> four PDs.
 * Linux's 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol") needs
 * the kernel, zero page and command line identity-mapped; 4 GiB covers all of low RAM.
 */
export function writeIdentityPageTables(mem: GuestMemory): number {
  const pml4 = new Uint8Array(4096);
  const pdpt = new Uint8Array(4096);
  const pds = new Uint8Array(4 * 4096);
  const v = (b: Uint8Array) => new DataView(b.buffer);
  v(pml4).setUint32(0, PDPT_ADDR | PTE_P | PTE_RW, true);
  for (let i = 0; i < 4; i++) v(pdpt).setUint32(i * 8, (PD_ADDR + i * 4096) | PTE_P | PTE_RW, true);
  const pd = v(pds);
  for (let i = 0; i < 2048; i++) {
    const phys = i * 2 * 1024 * 1024; // < 4 GiB: fits the low dword
    pd.setUint32(i * 8, (phys | PTE_P | PTE_RW | PTE_PS) >>> 0, true);
    pd.setUint32(i * 8 + 4, Math.floor(phys / 2 ** 32), true);
  }
  put(mem, PML4_ADDR, pml4, "PML4");
  put(mem, PDPT_ADDR, pdpt, "PDPT");
  put(mem, PD_ADDR, pds, "page directories");
  return PML4_ADDR;
}

function systemSegments(): { tr: SegmentState; ldt: SegmentState } {
  // SDM Vol. 3C 26.3.1.2: TR must be usable with a busy 32/64-bit TSS type (11); LDTR may be unusable.
  const tr: SegmentState = {
    selector: BOOT_TSS,
    base: 0,
    limit: 0x67,
    type: 0xb,
    present: true,
    dpl: 0,
    db: false,
    s: false,
    l: false,
    g: false,
  };
  const ldt: SegmentState = { ...tr, selector: 0, limit: 0xffff, type: 0x2, present: false };
  return { tr, ldt };
}

/**
 * State for Linux's 64-bit entry: long mode, paging on the identity map, CS = __BOOT_CS (64-bit),
 * DS/ES/SS = __BOOT_DS, interrupts off, RSI = the zero page, RIP = the 64-bit entry point.
 */
export function longModeEntry(mem: GuestMemory, rip: number, rsi: number, rsp: number): BootCpuState {
  const cs = flatSegment(BOOT_CS, true, true);
  const ds = flatSegment(BOOT_DS, false, false);
  const { tr, ldt } = systemSegments();
  const gdt = writeGdt(mem, cs, ds, tr);
  const cr3 = writeIdentityPageTables(mem);
  const regs = zeroRegs();
  regs.rip = rip;
  regs.rsi = rsi;
  regs.rsp = rsp;
  regs.rbp = rsp;
  return {
    mode: "long",
    regs,
    cs,
    ds,
    es: { ...ds },
    fs: { ...ds },
    gs: { ...ds },
    ss: { ...ds },
    tr,
    ldt,
    gdt,
    idt: { base: BOOT_IDT_ADDR, limit: 0 },
    cr0: (CR0_PE | CR0_ET | CR0_PG) >>> 0, // bit 31 set: keep it an unsigned 32-bit value
    cr3,
    cr4: CR4_PAE,
    efer: EFER_LME | EFER_LMA,
  };
}

/**
 * State for a 32-bit protected-mode entry without paging (Multiboot 0.6.96 3.2): flat 4 GiB
 * code and data segments, CR0.PE=1, CR0.PG=0, EFLAGS.IF=0 and VM=0, the given EAX/EBX.
 */
export function protectedModeEntry(
  mem: GuestMemory,
  eip: number,
  eax: number,
  ebx: number,
  esp: number,
): BootCpuState {
  const cs = flatSegment(BOOT_CS, true, false);
  const ds = flatSegment(BOOT_DS, false, false);
  const { tr, ldt } = systemSegments();
  const gdt = writeGdt(mem, cs, ds, tr);
  const regs = zeroRegs();
  regs.rip = eip;
  regs.rax = eax;
  regs.rbx = ebx;
  regs.rsp = esp;
  return {
    mode: "protected",
    regs,
    cs,
    ds,
    es: { ...ds },
    fs: { ...ds },
    gs: { ...ds },
    ss: { ...ds },
    tr,
    ldt,
    gdt,
    idt: { base: BOOT_IDT_ADDR, limit: 0 },
    cr0: CR0_PE | CR0_ET,
    cr3: 0,
    cr4: 0,
    efer: 0,
  };
}
