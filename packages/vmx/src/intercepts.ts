/**
 * Intercept decisions in VMX non-root operation (SDM Vol. 3C chapter 26, "VMX Non-Root Operation"):
 * pure functions the CPU's hooks call with the current VMCS. Each answers whether an event causes a
 * VM exit and with what exit reason and qualification, or how the instruction behaves instead
 * (CR read shadows, TSC offsetting, TPR shadow). They read the VMCS and, for bitmaps, physical memory;
 * they change nothing.
 *
 * Return convention for the instruction decisions: an exit reason (>= 0), `NO_EXIT` (-1: execute
 * normally) or `RAISE_UD` (-2: the instruction is disabled by a control and raises #UD).
 */
import {
  Activity,
  ExitReason,
  INTR_INFO_DELIVER_CODE,
  INTR_INFO_VALID,
  IntrType,
  Pin,
  Proc,
  Proc2,
} from "./controls";
import { F } from "./fields";
import type { VmxPhysMemory } from "./iface";
import type { Vmcs } from "./vmcs";

export const NO_EXIT = -1;

/**
 * Scratch for one-byte bitmap reads, so the decisions allocate nothing per call. It is not state:
 * every use writes it and reads it back within one synchronous call.
 */
const byte = new Uint8Array(1);
export const RAISE_UD = -2;

/** Secondary controls in effect (0 unless "activate secondary controls", SDM 25.6.2). */
export function proc2Of(v: Vmcs): number {
  const proc = v.get32(F.CPU_BASED_VM_EXEC_CONTROL);
  return proc & Proc.ACTIVATE_SECONDARY ? v.get32(F.SECONDARY_VM_EXEC_CONTROL) : 0;
}

function procBit(v: Vmcs, bit: number, reason: number): number {
  return v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & bit ? reason : NO_EXIT;
}

// ---- 26.1.2 Instructions that cause VM exits unconditionally --------------------------------

/** CPUID, GETSEC, INVD, XSETBV (and the VMX instructions, see VmxUnit) always exit (26.1.2). */
export const UNCONDITIONAL = {
  CPUID: ExitReason.CPUID,
  GETSEC: ExitReason.GETSEC,
  INVD: ExitReason.INVD,
  XSETBV: ExitReason.XSETBV,
} as const;

// ---- 26.1.3 Instructions that cause VM exits conditionally ----------------------------------

export function hltExit(v: Vmcs): number {
  return procBit(v, Proc.HLT_EXITING, ExitReason.HLT);
}
/** INVLPG: qualification is the linear-address operand. */
export function invlpgExit(v: Vmcs): number {
  return procBit(v, Proc.INVLPG_EXITING, ExitReason.INVLPG);
}
export function rdpmcExit(v: Vmcs): number {
  return procBit(v, Proc.RDPMC_EXITING, ExitReason.RDPMC);
}
export function rdtscExit(v: Vmcs): number {
  return procBit(v, Proc.RDTSC_EXITING, ExitReason.RDTSC);
}
/** RDTSCP: #UD unless "enable RDTSCP" (26.3); exits with "RDTSC exiting". */
export function rdtscpExit(v: Vmcs): number {
  if ((proc2Of(v) & Proc2.ENABLE_RDTSCP) === 0) return RAISE_UD;
  return procBit(v, Proc.RDTSC_EXITING, ExitReason.RDTSCP);
}
export function mwaitExit(v: Vmcs): number {
  return procBit(v, Proc.MWAIT_EXITING, ExitReason.MWAIT);
}
export function monitorExit(v: Vmcs): number {
  return procBit(v, Proc.MONITOR_EXITING, ExitReason.MONITOR);
}
/** PAUSE exits with "PAUSE exiting" (PAUSE-loop exiting needs timing state: `VmxUnit.pause`). */
export function pauseExit(v: Vmcs): number {
  return procBit(v, Proc.PAUSE_EXITING, ExitReason.PAUSE);
}
export function wbinvdExit(v: Vmcs): number {
  return proc2Of(v) & Proc2.WBINVD_EXITING ? ExitReason.WBINVD : NO_EXIT;
}
export function rdrandExit(v: Vmcs): number {
  return proc2Of(v) & Proc2.RDRAND_EXITING ? ExitReason.RDRAND : NO_EXIT;
}
export function rdseedExit(v: Vmcs): number {
  return proc2Of(v) & Proc2.RDSEED_EXITING ? ExitReason.RDSEED : NO_EXIT;
}
/** INVPCID: #UD unless "enable INVPCID"; exits when "INVLPG exiting" is also 1 (26.1.3, 26.3). */
export function invpcidExit(v: Vmcs): number {
  if ((proc2Of(v) & Proc2.ENABLE_INVPCID) === 0) return RAISE_UD;
  return procBit(v, Proc.INVLPG_EXITING, ExitReason.INVPCID);
}
/**
 * XSAVES (`restore` false, exit reason 63) and XRSTORS (true, 64): #UD unless "enable XSAVES/XRSTORS"
 * (26.3); with it, a VM exit when a bit set in IA32_XSS & EDX:EAX is also set in the XSS-exiting
 * bitmap (26.1.3). `xssRequested` is that AND's low half (cpu-x86's InterceptKind.XSAVES `b`): no
 * IA32_XSS bit above 31 exists, so only the bitmap's low half can match.
 */
export function xsavesExit(v: Vmcs, xssRequested: number, restore: boolean): number {
  if ((proc2Of(v) & Proc2.ENABLE_XSAVES) === 0) return RAISE_UD;
  if ((xssRequested & v.get32(F.XSS_EXIT_BITMAP)) === 0) return NO_EXIT;
  return restore ? ExitReason.XRSTORS : ExitReason.XSAVES;
}
/** LGDT, LIDT, SGDT, SIDT (reason 46) and LLDT, LTR, SLDT, STR (47) with "descriptor-table exiting". */
export function descriptorTableExit(v: Vmcs, ldtrTr: boolean): number {
  if ((proc2Of(v) & Proc2.DESC_TABLE_EXITING) === 0) return NO_EXIT;
  return ldtrTr ? ExitReason.LDTR_TR_ACCESS : ExitReason.GDTR_IDTR_ACCESS;
}
/** MOV to/from DR0-DR7 with "MOV-DR exiting". */
export function movDrExit(v: Vmcs): number {
  return procBit(v, Proc.MOV_DR_EXITING, ExitReason.DR_ACCESS);
}

/** MOV DR exit qualification (SDM Table 28-4): DR number, direction (1 = MOV from DR), GPR. */
export function drQualification(dr: number, fromDr: boolean, gpr: number): number {
  return (dr & 7) | (fromDr ? 0x10 : 0) | ((gpr & 0xf) << 8);
}

// ---- Control registers (26.1.3, 26.3) --------------------------------------------------------

/** CR-access qualification access types (SDM Table 28-3, bits 5:4). */
export const CrAccess = { MOV_TO_CR: 0, MOV_FROM_CR: 1, CLTS: 2, LMSW: 3 } as const;

/** CR-access exit qualification (SDM Table 28-3). */
export function crQualification(
  cr: number,
  access: number,
  gpr: number,
  lmswMem = false,
  lmswData = 0,
): number {
  return (
    ((cr & 0xf) |
      ((access & 3) << 4) |
      (lmswMem ? 0x40 : 0) |
      ((gpr & 0xf) << 8) |
      ((lmswData & 0xffff) << 16)) >>>
    0
  );
}

function maskAndShadow(v: Vmcs, cr: 0 | 4): [bigint, bigint] {
  return cr === 0
    ? [v.get64(F.CR0_GUEST_HOST_MASK), v.get64(F.CR0_READ_SHADOW)]
    : [v.get64(F.CR4_GUEST_HOST_MASK), v.get64(F.CR4_READ_SHADOW)];
}

/** MOV to CR0/CR4 exits if it would change a host-owned bit away from its read shadow (26.1.3). */
export function movToCrExit(v: Vmcs, cr: 0 | 4, value: bigint): number {
  const [mask, shadow] = maskAndShadow(v, cr);
  return ((value ^ shadow) & mask) !== 0n ? ExitReason.CR_ACCESS : NO_EXIT;
}
/** The value a non-exiting MOV to CR0/CR4 writes: host-owned bits keep their current value (26.3). */
export function movToCrValue(v: Vmcs, cr: 0 | 4, value: bigint, current: bigint): bigint {
  const [mask] = maskAndShadow(v, cr);
  return (value & ~mask) | (current & mask);
}
/** MOV from CR0/CR4 (and SMSW): host-owned bits read from the read shadow (26.3). */
export function movFromCrValue(v: Vmcs, cr: 0 | 4, actual: bigint): bigint {
  const [mask, shadow] = maskAndShadow(v, cr);
  return (actual & ~mask) | (shadow & mask);
}
/** CLTS exits if CR0.TS is host-owned and its read shadow is 1 (26.1.3). */
export function cltsExit(v: Vmcs): number {
  const [mask, shadow] = maskAndShadow(v, 0);
  return mask & 8n && shadow & 8n ? ExitReason.CR_ACCESS : NO_EXIT;
}
/**
 * LMSW exits if it would set a host-owned CR0.PE whose shadow is 0, or change a host-owned MP, EM
 * or TS away from its shadow (26.1.3; LMSW never clears PE).
 */
export function lmswExit(v: Vmcs, src: number): number {
  const [mask, shadow] = maskAndShadow(v, 0);
  const m = Number(mask & 0xfn);
  const s = Number(shadow & 0xfn);
  if (m & 1 && src & 1 && (s & 1) === 0) return ExitReason.CR_ACCESS;
  return (src ^ s) & m & 0xe ? ExitReason.CR_ACCESS : NO_EXIT;
}
/** MOV to CR3 exits with "CR3-load exiting" unless the value is one of the first N CR3-target values. */
export function movToCr3Exit(v: Vmcs, value: bigint): number {
  if ((v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.CR3_LOAD_EXITING) === 0) return NO_EXIT;
  const n = Math.min(v.get32(F.CR3_TARGET_COUNT), 4);
  for (let i = 0; i < n; i++) if (v.get64(F.CR3_TARGET_VALUE0 + 2 * i) === value) return NO_EXIT;
  return ExitReason.CR_ACCESS;
}
export function movFromCr3Exit(v: Vmcs): number {
  return procBit(v, Proc.CR3_STORE_EXITING, ExitReason.CR_ACCESS);
}
/** MOV to CR8 (64-bit mode): "CR8-load exiting". */
export function movToCr8Exit(v: Vmcs): number {
  return procBit(v, Proc.CR8_LOAD_EXITING, ExitReason.CR_ACCESS);
}
/** MOV from CR8 (64-bit mode): "CR8-store exiting". */
export function movFromCr8Exit(v: Vmcs): number {
  return procBit(v, Proc.CR8_STORE_EXITING, ExitReason.CR_ACCESS);
}

// ---- TPR shadow (SDM 30.1-30.3, "use TPR shadow" without APIC-register virtualization) -------

/** True when CR8 accesses go to the virtual-APIC page instead of the APIC (30.3). */
export function tprShadowActive(v: Vmcs): boolean {
  return (v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.USE_TPR_SHADOW) !== 0;
}
/** MOV from CR8 with the TPR shadow: VTPR bits 7:4 (30.3). */
export function readVirtualCr8(v: Vmcs, mem: VmxPhysMemory): number {
  mem.read(v.getNum(F.VIRTUAL_APIC_PAGE_ADDR) + 0x80, byte);
  return byte[0]! >>> 4;
}
/**
 * MOV to CR8 with the TPR shadow: VTPR <- value[3:0] << 4 (bytes 81H-83H cleared), then TPR
 * virtualization (30.1.2): returns TPR_BELOW_THRESHOLD (a trap-like exit after the instruction)
 * when VTPR[7:4] drops below TPR threshold[3:0].
 */
export function writeVirtualCr8(v: Vmcs, mem: VmxPhysMemory, value: number): number {
  const b = new Uint8Array(4);
  b[0] = (value & 0xf) << 4;
  mem.write(v.getNum(F.VIRTUAL_APIC_PAGE_ADDR) + 0x80, b);
  return (value & 0xf) < (v.get32(F.TPR_THRESHOLD) & 0xf) ? ExitReason.TPR_BELOW_THRESHOLD : NO_EXIT;
}

// ---- APIC-access page (SDM 30.4) -------------------------------------------------------------

/** APIC-access exit qualification access types (SDM Table 28-6, bits 15:12). */
export const ApicAccessType = { READ: 0, WRITE: 1, FETCH: 2, EVENT_DELIVERY: 3 } as const;

/**
 * A guest-physical access to the APIC-access page with "virtualize APIC accesses" (30.4). Returns
 * the exit reason (44) or NO_EXIT when the address is elsewhere. With "use TPR shadow", a 32-bit
 * aligned data read or write of offset 080H is virtualized (TPR, 30.4.1/30.4.3): this returns
 * NO_EXIT for it and the caller reads/writes VTPR via `readVirtualCr8`/`writeVirtualCr8` semantics.
 */
export function apicAccessExit(v: Vmcs, gpa: number, size: number, type: number): number {
  if ((proc2Of(v) & Proc2.VIRTUALIZE_APIC_ACCESSES) === 0) return NO_EXIT;
  const page = v.getNum(F.APIC_ACCESS_ADDR);
  if (Math.floor(gpa / 4096) * 4096 !== page) return NO_EXIT;
  const off = gpa - page;
  if (type <= ApicAccessType.WRITE && off === 0x80 && size === 4 && tprShadowActive(v)) return NO_EXIT;
  return ExitReason.APIC_ACCESS;
}
/** APIC-access exit qualification: page offset (11:0) and access type (15:12). */
export function apicAccessQualification(offset: number, type: number): number {
  return (offset & 0xfff) | ((type & 0xf) << 12);
}

// ---- I/O (26.1.3, 25.6.4) --------------------------------------------------------------------

/**
 * IN/OUT/INS/OUTS to `port` with `size` bytes (1, 2, 4). With "use I/O bitmaps" the bitmaps decide
 * (bitmap A: ports 0000H-7FFFH, B: 8000H-FFFFH; an access that wraps past FFFFH exits);
 * otherwise "unconditional I/O exiting" does.
 */
export function ioExit(v: Vmcs, mem: VmxPhysMemory, port: number, size: number): number {
  const proc = v.get32(F.CPU_BASED_VM_EXEC_CONTROL);
  if ((proc & Proc.USE_IO_BITMAPS) === 0)
    return proc & Proc.UNCOND_IO_EXITING ? ExitReason.IO_INSTRUCTION : NO_EXIT;
  if (port + size > 0x10000) return ExitReason.IO_INSTRUCTION;
  for (let p = port; p < port + size; p++) {
    const base = v.getNum(p < 0x8000 ? F.IO_BITMAP_A : F.IO_BITMAP_B);
    const bit = p & 0x7fff;
    mem.read(base + (bit >>> 3), byte);
    if ((byte[0]! >>> (bit & 7)) & 1) return ExitReason.IO_INSTRUCTION;
  }
  return NO_EXIT;
}

/** I/O exit qualification (SDM Table 28-5). */
export function ioQualification(
  port: number,
  size: number,
  input: boolean,
  string: boolean,
  rep: boolean,
  immediate: boolean,
): number {
  return (
    (((size - 1) & 7) |
      (input ? 8 : 0) |
      (string ? 0x10 : 0) |
      (rep ? 0x20 : 0) |
      (immediate ? 0x40 : 0) |
      ((port & 0xffff) << 16)) >>>
    0
  );
}

// ---- MSRs (26.1.3, 25.6.9) -------------------------------------------------------------------

/**
 * RDMSR/WRMSR: without "use MSR bitmaps" every access exits; with them, the bit for the MSR in the
 * read-low (0), read-high (1024), write-low (2048) or write-high (3072) quarter decides; MSRs
 * outside 00000000H-00001FFFH and C0000000H-C0001FFFH always exit.
 */
export function msrExit(v: Vmcs, mem: VmxPhysMemory, index: number, write: boolean): number {
  const reason = write ? ExitReason.WRMSR : ExitReason.RDMSR;
  if ((v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.USE_MSR_BITMAPS) === 0) return reason;
  const i = index >>> 0;
  let off: number;
  if (i <= 0x1fff) off = 0;
  else if (i >= 0xc0000000 && i <= 0xc0001fff) off = 1024;
  else return reason;
  if (write) off += 2048;
  const bit = i & 0x1fff;
  mem.read(v.getNum(F.MSR_BITMAP) + off + (bit >>> 3), byte);
  return (byte[0]! >>> (bit & 7)) & 1 ? reason : NO_EXIT;
}

// ---- Exceptions and interrupts (26.2) --------------------------------------------------------

/**
 * Does exception `vector` exit (26.2)? The exception bitmap decides, except that #PF exits iff
 * bit 14 of the bitmap equals ((error code AND PFEC_MASK) = PFEC_MATCH).
 */
export function exceptionExits(v: Vmcs, vector: number, errorCode: number): boolean {
  const bit = (v.get32(F.EXCEPTION_BITMAP) >>> vector) & 1;
  if (vector !== 14) return bit === 1;
  const match =
    (errorCode & v.get32(F.PAGE_FAULT_ERROR_CODE_MASK)) >>> 0 === v.get32(F.PAGE_FAULT_ERROR_CODE_MATCH);
  return (bit === 1) === match;
}

/**
 * VM-exit interruption information for an exception exit (SDM Table 25-19): vector, type (3
 * hardware exception; 6 software exception for INT3/INTO; 5 for INT1), error-code valid.
 */
export function exceptionExitInfo(vector: number, type: number, errorCode: number | null): number {
  return (
    (INTR_INFO_VALID |
      (vector & 0xff) |
      ((type & 7) << 8) |
      (errorCode !== null ? INTR_INFO_DELIVER_CODE : 0)) >>>
    0
  );
}

/** An external interrupt exits with "external-interrupt exiting" (26.2). */
export function externalInterruptExits(v: Vmcs): boolean {
  return (v.get32(F.PIN_BASED_VM_EXEC_CONTROL) & Pin.EXT_INTR_EXITING) !== 0;
}
/**
 * Exit information for an external-interrupt exit: with "acknowledge interrupt on exit" the
 * processor acknowledges the controller and reports the vector (28.2.2); `vector` is that vector.
 */
export function externalInterruptExitInfo(v: Vmcs, vector: number): number {
  return v.get32(F.VM_EXIT_CONTROLS) & (1 << 15)
    ? (INTR_INFO_VALID | (vector & 0xff) | (IntrType.EXTERNAL << 8)) >>> 0
    : 0;
}
/** Should the CPU acknowledge the interrupt controller as part of the exit (28.2.2)? */
export function acknowledgeOnExit(v: Vmcs): boolean {
  return (v.get32(F.VM_EXIT_CONTROLS) & (1 << 15)) !== 0;
}
/** An NMI exits with "NMI exiting" (26.2); the exit reports vector 2, type NMI. */
export function nmiExits(v: Vmcs): boolean {
  return (v.get32(F.PIN_BASED_VM_EXEC_CONTROL) & Pin.NMI_EXITING) !== 0;
}
export const NMI_EXIT_INFO = (INTR_INFO_VALID | 2 | (IntrType.NMI << 8)) >>> 0;

/**
 * Interrupt-window exiting (26.7.5): exit before the next instruction when RFLAGS.IF = 1 and there
 * is no blocking by STI or MOV SS.
 */
export function interruptWindowExit(v: Vmcs, rflagsIf: boolean, interruptibility: number): number {
  if ((v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.INTR_WINDOW_EXITING) === 0) return NO_EXIT;
  return rflagsIf && (interruptibility & 3) === 0 ? ExitReason.INTERRUPT_WINDOW : NO_EXIT;
}
/**
 * NMI-window exiting (26.7.6): exit before the next instruction when there is no virtual-NMI
 * blocking (interruptibility bit 3) and no blocking by MOV SS (nor by STI, which this model also
 * treats as blocking NMIs, an option the SDM allows).
 */
export function nmiWindowExit(v: Vmcs, interruptibility: number): number {
  if ((v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.NMI_WINDOW_EXITING) === 0) return NO_EXIT;
  return (interruptibility & 0xb) === 0 ? ExitReason.NMI_WINDOW : NO_EXIT;
}

// ---- TSC (26.3, 25.6.5) ----------------------------------------------------------------------

/**
 * The TSC value RDTSC/RDTSCP/RDMSR(IA32_TSC) return in the guest: with "use TSC offsetting",
 * (TSC scaled by the TSC multiplier when "use TSC scaling" is 1: (tsc * multiplier) >> 48) plus
 * the TSC offset, modulo 2^64.
 */
export function guestTsc(v: Vmcs, hostTsc: bigint): bigint {
  if ((v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.USE_TSC_OFFSETTING) === 0) return hostTsc;
  let t = hostTsc;
  if (proc2Of(v) & Proc2.TSC_SCALING) t = (t * v.get64(F.TSC_MULTIPLIER)) >> 48n;
  return (t + v.get64(F.TSC_OFFSET)) & 0xffffffffffffffffn;
}

// ---- Signals and activity states (26.2, 27.6.2 "Activity State") ---------------------------

/**
 * Monitor trap flag (26.5.2): with the control set, an MTF VM exit (reason 37) is due on the
 * instruction boundary after each guest instruction completes, and after the delivery of an
 * event (injected or raised by the instruction) through the IDT. MTF exits are blocked in the
 * shutdown and wait-for-SIPI states, not in HLT.
 */
export function mtfExit(v: Vmcs, activityState: number): number {
  if ((v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.MONITOR_TRAP_FLAG) === 0) return NO_EXIT;
  return activityState === Activity.SHUTDOWN || activityState === Activity.WAIT_FOR_SIPI
    ? NO_EXIT
    : ExitReason.MONITOR_TRAP_FLAG;
}

/** A triple fault in VMX non-root operation always exits (26.2, reason 2). */
export const TRIPLE_FAULT_EXIT = ExitReason.TRIPLE_FAULT;

/** INIT exits unconditionally (26.2, reason 3), except that the wait-for-SIPI state blocks it. */
export function initExit(activityState: number): number {
  return activityState === Activity.WAIT_FOR_SIPI ? NO_EXIT : ExitReason.INIT_SIGNAL;
}
/**
 * A SIPI exits (reason 4, qualification = the SIPI vector) only in the wait-for-SIPI state; the
 * active and HLT states discard it (27.6.2).
 */
export function sipiExit(activityState: number): number {
  return activityState === Activity.WAIT_FOR_SIPI ? ExitReason.SIPI : NO_EXIT;
}
/**
 * Events the guest's activity state blocks outright (27.6.2): wait-for-SIPI blocks external
 * interrupts and NMIs (they neither exit nor deliver); shutdown blocks external interrupts.
 */
export function blockedByActivity(activityState: number, nmi: boolean): boolean {
  if (activityState === Activity.WAIT_FOR_SIPI) return true;
  return activityState === Activity.SHUTDOWN && !nmi;
}
