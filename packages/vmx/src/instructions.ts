/**
 * The VMX instructions (SDM Vol. 3C chapter 31, "VMX Instruction Reference") on one logical
 * processor: VMXON, VMXOFF, VMCLEAR, VMPTRLD, VMPTRST, VMREAD, VMWRITE, VMLAUNCH, VMRESUME,
 * VMCALL, VMFUNC, INVEPT, INVVPID. Each method follows the instruction's pseudocode in order:
 * #UD conditions, VM exit in non-root operation, #GP(0), then VMsucceed / VMfailInvalid /
 * VMfailValid(error number) (SDM 31.2 "Conventions").
 *
 * Memory operands come in as callbacks the CPU supplies (`load`, `store`): they are called only at
 * the point the pseudocode reads or writes the operand, so a fault they raise (the CPU's own way,
 * e.g. by throwing its fault signal) preempts nothing that should have come first and leaves no
 * VMX state half-changed. Register operands (a VMXON with mod = 3 and so on) are #UD in the decoder.
 */
import { FeatureControl, type VmxCaps, VmxMsr } from "./caps";
import { ExitReason, Interruptibility, Pin, Proc, Proc2, VmError } from "./controls";
import { type InjectedEvent, vmEntry } from "./entry";
import { EntryChecks } from "./entry-check-cache";
import { validEptp } from "./entry-checks-controls";
import { fixedOkHalves } from "./entry-checks-host";
import { type ExitInfo, type VmExitResult, vmExit } from "./exit";
import { F, FieldType, fieldDef, Seg } from "./fields";
import type { VmxCpuState, VmxPhysMemory, VmxTlbHooks } from "./iface";
import { NO_TLB, VmxReg } from "./iface";
import { canonical } from "./util";
import { Vmcs } from "./vmcs";

/** What the CPU does after a VMX instruction (or VM entry). */
export type VmxOutcome =
  /** The instruction completed (RFLAGS updated); the CPU advances RIP past it. */
  | { kind: "done" }
  /** Raise an exception instead: #UD (6, no error code) or #GP(0) (13). */
  | { kind: "fault"; vector: 6 | 13; errorCode: number | null }
  /**
   * In VMX non-root operation the instruction causes a VM exit (SDM 26.1.2/26.1.3): the CPU calls
   * `exitForInstruction` with this reason, its qualification and its own decode information.
   */
  | { kind: "exit"; reason: number; qualification: bigint }
  /** VM entry succeeded: the logical processor is in VMX non-root operation with guest state. */
  | { kind: "entered"; inject: InjectedEvent | null }
  /** VM entry failed after loading guest state: a VM-entry failure exit loaded host state. */
  | { kind: "entry-failed" }
  /** A VMX abort (SDM 28.7): the logical processor enters the shutdown state. */
  | { kind: "abort"; indicator: number };

const DONE: VmxOutcome = { kind: "done" };
const UD: VmxOutcome = { kind: "fault", vector: 6, errorCode: null };
const GP0: VmxOutcome = { kind: "fault", vector: 13, errorCode: 0 };

/** RFLAGS arithmetic flags VMX instructions report through (SDM 31.2). */
const CF = 1;
const PF = 4;
const AF = 0x10;
const ZF = 0x40;
const SF = 0x80;
const OF = 0x800;
const ARITH = CF | PF | AF | ZF | SF | OF;
const RFLAGS_VM = 1 << 17;

/** VMPTRST's value for "no current VMCS" (SDM 25.1). */
export const INVALID_VMCS_POINTER = 0xffffffffffffffffn;

/** Options for a VMX unit. */
export interface VmxUnitDeps {
  caps: VmxCaps;
  cpu: VmxCpuState;
  mem: VmxPhysMemory;
  tlb?: VmxTlbHooks;
  /**
   * EPTP validity (SDM 27.2.1.1), defaulting to `validEptp` against `caps`: the EPT walker may
   * narrow it (it knows which walk lengths it implements).
   */
  eptpValid?: (eptp: bigint) => boolean;
}

/** True when the processor is in 64-bit mode (IA32_EFER.LMA = 1 and CS.L = 1). */
export function in64BitMode(cpu: VmxCpuState): boolean {
  return (cpu.lo(VmxReg.EFER) & 0x400) !== 0 && (cpu.segAr(Seg.CS) & 0x2000) !== 0;
}

/** #UD conditions common to the VMX instructions: real mode, virtual-8086 mode, compatibility mode. */
function badMode(cpu: VmxCpuState): boolean {
  if ((cpu.lo(VmxReg.CR0) & 1) === 0) return true;
  if ((cpu.lo(VmxReg.RFLAGS) & RFLAGS_VM) !== 0) return true;
  return (cpu.lo(VmxReg.EFER) & 0x400) !== 0 && (cpu.segAr(Seg.CS) & 0x2000) === 0;
}

/** A JSON-able snapshot of a VMX unit (STYLE.md "State"): named fields, the VMCS cache as hex. */
export interface VmxUnitState {
  inVmxOperation: boolean;
  nonRoot: boolean;
  vmxonPointer: number;
  currentPointer: number;
  /** The cached current VMCS region image (4096 bytes as 8192 hex digits). */
  vmcs: string;
  preemptionTimer: number;
  preemptionResidue: number;
  hostNmiBlocked: boolean;
  aborted: boolean;
}

/** Why `VmxUnit.restore` rejected a state. */
export class VmxStateError extends Error {
  constructor(readonly field: string) {
    super(`invalid VMX unit state: ${field}`);
  }
}

/** One logical processor's VMX state: VMX operation, the VMXON region, the current VMCS. */
export class VmxUnit {
  readonly caps: VmxCaps;
  readonly cpu: VmxCpuState;
  readonly mem: VmxPhysMemory;
  readonly tlb: VmxTlbHooks;
  readonly eptpValid: (eptp: bigint) => boolean;
  /** In VMX operation (after VMXON, before VMXOFF). */
  inVmxOperation = false;
  /** In VMX non-root operation (between a VM entry and the next VM exit). */
  nonRoot = false;
  /** Physical address of the VMXON region. */
  vmxonPointer = -1;
  /** Physical address of the current VMCS, -1 when invalid. */
  currentPointer = -1;
  /** The processor's cached copy of the current VMCS (valid while `currentPointer >= 0`). */
  readonly vmcs = new Vmcs();
  /** VMX-preemption timer value while the guest runs with the timer active (SDM 26.5.1). */
  preemptionTimer = 0;
  /** TSC ticks not yet counted by the preemption timer (it counts every 2^rate ticks). */
  preemptionResidue = 0;
  /** Blocking by NMI in the host when VM entry happened (restored by VM exit, SDM 28.5.4). */
  hostNmiBlocked = false;
  /** PAUSE-loop exiting (SDM 26.1.3): TSC of the last CPL-0 PAUSE and of the first in its loop. */
  plePrevious = -1;
  pleLoopStart = 0;
  /** Set when a VMX abort put the processor in shutdown (SDM 28.7). */
  aborted = false;
  /** The VM-entry checks on the current VMCS, skipped while their inputs are unchanged. */
  readonly entryChecks: EntryChecks;

  constructor(deps: VmxUnitDeps) {
    this.caps = deps.caps;
    this.cpu = deps.cpu;
    this.mem = deps.mem;
    this.tlb = deps.tlb ?? NO_TLB;
    const caps = deps.caps;
    this.eptpValid = deps.eptpValid ?? ((e) => validEptp(caps, e));
    this.entryChecks = new EntryChecks(this);
  }

  /**
   * Perform a VM exit (SDM chapter 28) from VMX non-root operation: the CPU calls this when an
   * intercept decision (intercepts.ts) or a VMX instruction says the guest exits, with the guest
   * state as it is at the exit point (RIP at the instruction for instruction exits).
   */
  exit(info: ExitInfo): VmExitResult {
    return vmExit(this, info);
  }

  /** Snapshot the VMX state of this logical processor. */
  save(): VmxUnitState {
    return {
      inVmxOperation: this.inVmxOperation,
      nonRoot: this.nonRoot,
      vmxonPointer: this.vmxonPointer,
      currentPointer: this.currentPointer,
      vmcs: Array.from(this.vmcs.bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
      preemptionTimer: this.preemptionTimer,
      preemptionResidue: this.preemptionResidue,
      hostNmiBlocked: this.hostNmiBlocked,
      aborted: this.aborted,
    };
  }

  /** Rebuild a unit from `save()` output; throws VmxStateError on a malformed state. */
  static restore(deps: VmxUnitDeps, s: VmxUnitState): VmxUnit {
    const u = new VmxUnit(deps);
    const bool = (k: keyof VmxUnitState) => {
      if (typeof s[k] !== "boolean") throw new VmxStateError(k);
      return s[k] as boolean;
    };
    const int = (k: keyof VmxUnitState, min: number) => {
      const v = s[k];
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) throw new VmxStateError(k);
      return v;
    };
    u.inVmxOperation = bool("inVmxOperation");
    u.nonRoot = bool("nonRoot");
    u.hostNmiBlocked = bool("hostNmiBlocked");
    u.aborted = bool("aborted");
    u.vmxonPointer = int("vmxonPointer", -1);
    u.currentPointer = int("currentPointer", -1);
    u.preemptionTimer = int("preemptionTimer", 0);
    u.preemptionResidue = int("preemptionResidue", 0);
    if (typeof s.vmcs !== "string" || !/^[0-9a-f]{8192}$/.test(s.vmcs)) throw new VmxStateError("vmcs");
    for (let i = 0; i < 4096; i++) u.vmcs.bytes[i] = Number.parseInt(s.vmcs.slice(2 * i, 2 * i + 2), 16);
    if (u.nonRoot && (!u.inVmxOperation || u.currentPointer < 0)) throw new VmxStateError("nonRoot");
    return u;
  }

  // ---- SDM 31.2 conventions -------------------------------------------------------------------

  private setArith(bits: number): void {
    const cpu = this.cpu;
    cpu.set(VmxReg.RFLAGS, ((cpu.lo(VmxReg.RFLAGS) & ~ARITH) | bits) >>> 0, cpu.hi(VmxReg.RFLAGS));
  }
  /** VMsucceed: CF, PF, AF, ZF, SF, OF <- 0. */
  succeed(): VmxOutcome {
    this.setArith(0);
    return DONE;
  }
  /** VMfailInvalid: CF <- 1, the others 0. */
  failInvalid(): VmxOutcome {
    this.setArith(CF);
    return DONE;
  }
  /** VMfailValid(n): ZF <- 1, the others 0; the VM-instruction error field <- n. */
  failValid(error: number): VmxOutcome {
    this.setArith(ZF);
    this.vmcs.set32(F.VM_INSTRUCTION_ERROR, error);
    return DONE;
  }
  /** VMfail(n): VMfailValid if there is a current VMCS, else VMfailInvalid. */
  fail(error: number): VmxOutcome {
    return this.currentPointer >= 0 ? this.failValid(error) : this.failInvalid();
  }

  private exitOutcome(reason: number): VmxOutcome {
    return { kind: "exit", reason, qualification: 0n };
  }

  /** Physical-address operand check: 4-KByte aligned and within MAXPHYADDR. */
  private badPagePointer(pa: bigint): boolean {
    return (pa & 0xfffn) !== 0n || !this.caps.paValid(pa);
  }

  private readU32(pa: number): number {
    const b = new Uint8Array(4);
    this.mem.read(pa, b);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  /** Write the cached current VMCS back to its region (SDM 25.11.1: VMCLEAR makes it coherent). */
  flushCurrent(): void {
    if (this.currentPointer >= 0) this.mem.write(this.currentPointer, this.vmcs.bytes);
  }

  private makeCurrent(pa: number): void {
    if (pa === this.currentPointer) return;
    this.flushCurrent();
    this.mem.read(pa, this.vmcs.bytes);
    this.currentPointer = pa;
  }

  // ---- instructions ---------------------------------------------------------------------------

  /** VMXON m64 (SDM 31.3). */
  vmxon(load: () => bigint): VmxOutcome {
    const cpu = this.cpu;
    if (badMode(cpu) || (cpu.lo(VmxReg.CR4) & 0x2000) === 0) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMXON);
    if (this.inVmxOperation) {
      if (cpu.cpl > 0) return GP0;
      return this.fail(VmError.VMXON_IN_ROOT);
    }
    if (cpu.cpl > 0) return GP0;
    // CR0 and CR4 must respect the FIXED MSRs (SDM 24.8 "Restrictions on VMX Operation").
    const caps = this.caps;
    if (
      !fixedOkHalves(cpu.lo(VmxReg.CR0), cpu.hi(VmxReg.CR0), caps.cr0Fixed0, caps.cr0Fixed1) ||
      !fixedOkHalves(cpu.lo(VmxReg.CR4), cpu.hi(VmxReg.CR4), caps.cr4Fixed0, caps.cr4Fixed1)
    )
      return GP0;
    const fc = Number((cpu.readMsr(0x3a) ?? 0n) & 0xffn);
    if ((fc & FeatureControl.LOCK) === 0 || (fc & FeatureControl.VMX_OUTSIDE_SMX) === 0) return GP0;
    const addr = load();
    if (this.badPagePointer(addr)) return this.failInvalid();
    const rev = this.readU32(Number(addr));
    if ((rev & 0x7fffffff) !== caps.config.revisionId || rev >>> 31 !== 0) return this.failInvalid();
    this.inVmxOperation = true;
    this.vmxonPointer = Number(addr);
    this.currentPointer = -1;
    return this.succeed();
  }

  /** VMXOFF (SDM 31.3). */
  vmxoff(): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu)) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMXOFF);
    if (this.cpu.cpl > 0) return GP0;
    // Leaving VMX operation: keep the current VMCS's data in memory (SDM 24.11 recommends a VMCLEAR
    // first; writing it back here is what a processor may do and loses nothing).
    this.flushCurrent();
    this.inVmxOperation = false;
    this.currentPointer = -1;
    this.vmxonPointer = -1;
    return this.succeed();
  }

  /** VMCLEAR m64 (SDM 31.3). */
  vmclear(load: () => bigint): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu)) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMCLEAR);
    if (this.cpu.cpl > 0) return GP0;
    const addr = load();
    if (this.badPagePointer(addr)) return this.fail(VmError.VMCLEAR_INVALID_ADDRESS);
    const pa = Number(addr);
    if (pa === this.vmxonPointer) return this.fail(VmError.VMCLEAR_VMXON_POINTER);
    if (pa === this.currentPointer) {
      this.vmcs.launched = false;
      this.flushCurrent();
      this.currentPointer = -1;
    } else {
      // Only the launch state word of our layout (vmcs.ts) changes; the rest is already in memory.
      this.mem.write(pa + 8, new Uint8Array(4));
    }
    return this.succeed();
  }

  /** VMPTRLD m64 (SDM 31.3). */
  vmptrld(load: () => bigint): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu)) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMPTRLD);
    if (this.cpu.cpl > 0) return GP0;
    const addr = load();
    if (this.badPagePointer(addr)) return this.fail(VmError.VMPTRLD_INVALID_ADDRESS);
    const pa = Number(addr);
    if (pa === this.vmxonPointer) return this.fail(VmError.VMPTRLD_VMXON_POINTER);
    const rev = this.readU32(pa);
    // Bit 31 (shadow VMCS) is an error while "VMCS shadowing" is not supported.
    const shadowOk = (this.caps.proc2.may1 & Proc2.VMCS_SHADOWING) !== 0;
    if ((rev & 0x7fffffff) !== this.caps.config.revisionId || (rev >>> 31 === 1 && !shadowOk))
      return this.fail(VmError.VMPTRLD_BAD_REVISION);
    this.makeCurrent(pa);
    return this.succeed();
  }

  /** VMPTRST m64 (SDM 31.3). */
  vmptrst(store: (v: bigint) => void): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu)) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMPTRST);
    if (this.cpu.cpl > 0) return GP0;
    store(this.currentPointer >= 0 ? BigInt(this.currentPointer) : INVALID_VMCS_POINTER);
    return this.succeed();
  }

  /** Field encoding check shared by VMREAD and VMWRITE: bits 63:32 set name no field. */
  private fieldOf(enc: bigint): number {
    if (enc >> 32n !== 0n) return -1;
    const e = Number(enc);
    return this.caps.fieldSupported(e) ? e : -1;
  }

  /** VMREAD r/m, reg (SDM 31.3). `enc` is the register source; `store` writes the destination. */
  vmread(enc: bigint, store: (v: bigint) => void): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu)) return UD;
    // VMCS shadowing is not implemented, so every VMREAD in non-root operation exits (SDM 26.1.3).
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMREAD);
    if (this.cpu.cpl > 0) return GP0;
    if (this.currentPointer < 0) return this.failInvalid();
    const wide = in64BitMode(this.cpu);
    const e = this.fieldOf(wide ? enc : enc & 0xffffffffn);
    if (e < 0) return this.failValid(VmError.UNSUPPORTED_COMPONENT);
    const v = this.vmcs.readEncoded(e);
    // Outside 64-bit mode the operand is 32 bits: "the high bits of the field are not read".
    store(wide ? v : v & 0xffffffffn);
    return this.succeed();
  }

  /** VMWRITE reg, r/m (SDM 31.3). `enc` is the register operand; `load` reads the source. */
  vmwrite(enc: bigint, load: () => bigint): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu)) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMWRITE);
    if (this.cpu.cpl > 0) return GP0;
    if (this.currentPointer < 0) return this.failInvalid();
    const wide = in64BitMode(this.cpu);
    const value = wide ? load() : load() & 0xffffffffn;
    const e = this.fieldOf(wide ? enc : enc & 0xffffffffn);
    if (e < 0) return this.failValid(VmError.UNSUPPORTED_COMPONENT);
    // IA32_VMX_MISC bit 29 is 0: the VM-exit information fields are read-only.
    if (fieldDef(e)?.type === FieldType.ExitInfo) return this.failValid(VmError.VMWRITE_READ_ONLY);
    // "If the VMCS field is longer than the effective operand size, the high bits of the field
    // are cleared": a zero-extended 32-bit value does exactly that.
    this.vmcs.writeEncoded(e, value);
    return this.succeed();
  }

  /** VMLAUNCH (`launch` true) and VMRESUME (SDM 31.3 and 27.1). */
  vmlaunchResume(launch: boolean): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu)) return UD;
    if (this.nonRoot) return this.exitOutcome(launch ? ExitReason.VMLAUNCH : ExitReason.VMRESUME);
    if (this.cpu.cpl > 0) return GP0;
    if (this.currentPointer < 0) return this.failInvalid();
    if ((this.cpu.interruptibility & Interruptibility.MOV_SS) !== 0)
      return this.failValid(VmError.ENTRY_MOV_SS_BLOCKING);
    if (launch && this.vmcs.launched) return this.failValid(VmError.VMLAUNCH_NONCLEAR);
    if (!launch && !this.vmcs.launched) return this.failValid(VmError.VMRESUME_NONLAUNCHED);
    return vmEntry(this, launch);
  }

  vmlaunch(): VmxOutcome {
    return this.vmlaunchResume(true);
  }
  vmresume(): VmxOutcome {
    return this.vmlaunchResume(false);
  }

  /** VMCALL (SDM 31.3): exits unconditionally in non-root operation, at any CPL. */
  vmcall(): VmxOutcome {
    if (!this.inVmxOperation) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.VMCALL);
    const cpu = this.cpu;
    if ((cpu.lo(VmxReg.RFLAGS) & RFLAGS_VM) !== 0) return UD;
    if ((cpu.lo(VmxReg.EFER) & 0x400) !== 0 && (cpu.segAr(Seg.CS) & 0x2000) === 0) return UD;
    if (cpu.cpl > 0) return GP0;
    // The dual-monitor treatment of SMIs is not supported (IA32_VMX_BASIC[49] = 0).
    return this.fail(VmError.VMCALL_IN_ROOT);
  }

  /**
   * VMFUNC (SDM 31.3, 26.5.6): only leaf 0, EPTP switching. `eax`/`ecx` are the register values.
   * Returns "done" after switching (the CPU must drop EPT-derived translations for the old EPTP).
   */
  vmfunc(eax: number, ecx: number): VmxOutcome {
    const vmcs = this.vmcs;
    if (!this.nonRoot || (this.secondaryControls() & Proc2.ENABLE_VMFUNC) === 0) return UD;
    const func = vmcs.get32(F.VM_FUNCTION_CONTROL);
    const vmfuncExit: VmxOutcome = { kind: "exit", reason: ExitReason.VMFUNC, qualification: 0n };
    if (eax >>> 0 >= 64 || eax >= 32 || ((func >>> eax) & 1) === 0) return vmfuncExit;
    // Leaf 0 is the only VM function implemented (IA32_VMX_VMFUNC = 1).
    if (eax !== 0 || ecx >>> 0 >= 512) return vmfuncExit;
    const list = Number(vmcs.get64(F.EPTP_LIST_ADDRESS));
    const b = new Uint8Array(8);
    this.mem.read(list + 8 * ecx, b);
    const dv = new DataView(b.buffer);
    const eptp = (BigInt(dv.getUint32(4, true)) << 32n) | BigInt(dv.getUint32(0, true));
    if (!this.eptpValid(eptp)) return vmfuncExit;
    vmcs.set64(F.EPT_POINTER, eptp);
    return DONE;
  }

  /**
   * Advance the VMX-preemption timer by `tscTicks` TSC ticks while the guest runs (SDM 26.5.1: it
   * counts down by 1 every 2^rate ticks, rate = IA32_VMX_MISC[4:0]). Returns true when the timer
   * is 0: the CPU then performs a VM exit with reason 52 (PREEMPTION_TIMER) before the next
   * instruction. A timer that is 0 at VM entry expires before the first guest instruction.
   */
  preemptionTick(tscTicks: number): boolean {
    if (!this.nonRoot || (this.vmcs.get32(F.PIN_BASED_VM_EXEC_CONTROL) & Pin.PREEMPTION_TIMER) === 0)
      return false;
    if (this.preemptionTimer === 0) return true;
    const period = 2 ** this.caps.config.preemptionTimerRate;
    const total = this.preemptionResidue + tscTicks;
    const dec = Math.floor(total / period);
    this.preemptionResidue = total - dec * period;
    this.preemptionTimer = Math.max(0, this.preemptionTimer - dec);
    return this.preemptionTimer === 0;
  }

  /**
   * PAUSE in VMX non-root operation (SDM 26.1.3): exits (reason 40) with "PAUSE exiting"; else,
   * with "PAUSE-loop exiting" at CPL 0, a PAUSE more than PLE_Gap TSC ticks after the previous
   * CPL-0 PAUSE starts a new loop (as does the first after VM entry), and one more than
   * PLE_Window ticks after the start of its loop exits. `tsc` is the current TSC (a number of
   * ticks; only differences matter).
   */
  pause(cpl: number, tsc: number): number {
    const v = this.vmcs;
    if (v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.PAUSE_EXITING) return ExitReason.PAUSE;
    if ((this.secondaryControls() & Proc2.PAUSE_LOOP_EXITING) === 0 || cpl !== 0) return -1;
    const prev = this.plePrevious;
    this.plePrevious = tsc;
    if (prev < 0 || tsc - prev > v.get32(F.PLE_GAP)) {
      this.pleLoopStart = tsc;
      return -1;
    }
    return tsc - this.pleLoopStart > v.get32(F.PLE_WINDOW) ? ExitReason.PAUSE : -1;
  }

  /** Secondary controls in effect: 0 unless "activate secondary controls" is 1. */
  secondaryControls(): number {
    return this.vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL) >>> 31
      ? this.vmcs.get32(F.SECONDARY_VM_EXEC_CONTROL)
      : 0;
  }

  /** INVEPT r64/r32, m128 (SDM 31.3). `type` is the register operand. */
  invept(type: bigint, load: () => [bigint, bigint]): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu) || (this.caps.eptVpidCapLo & (1 << 20)) === 0) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.INVEPT);
    if (this.cpu.cpl > 0) return GP0;
    const cap = this.caps.eptVpidCapLo;
    const t = in64BitMode(this.cpu) ? type : type & 0xffffffffn;
    const supported = (t === 1n && (cap & (1 << 25)) !== 0) || (t === 2n && (cap & (1 << 26)) !== 0);
    if (!supported) return this.fail(VmError.INVALID_INVEPT_INVVPID);
    const [eptp] = load();
    if (t === 1n) {
      if (!this.eptpValid(eptp)) return this.fail(VmError.INVALID_INVEPT_INVVPID);
      this.tlb.invept(eptp);
    } else {
      this.tlb.invept(null);
    }
    return this.succeed();
  }

  /** INVVPID r64/r32, m128 (SDM 31.3). */
  invvpid(type: bigint, load: () => [bigint, bigint]): VmxOutcome {
    if (!this.inVmxOperation || badMode(this.cpu) || (this.caps.eptVpidCapHi & 1) === 0) return UD;
    if (this.nonRoot) return this.exitOutcome(ExitReason.INVVPID);
    if (this.cpu.cpl > 0) return GP0;
    const t = in64BitMode(this.cpu) ? type : type & 0xffffffffn;
    if (t > 3n || (this.caps.eptVpidCapHi & (1 << (8 + Number(t)))) === 0)
      return this.fail(VmError.INVALID_INVEPT_INVVPID);
    const [lo, linear] = load();
    if (lo >> 16n !== 0n) return this.fail(VmError.INVALID_INVEPT_INVVPID);
    const vpid = Number(lo & 0xffffn);
    if (t !== 2n && vpid === 0) return this.fail(VmError.INVALID_INVEPT_INVVPID);
    if (t === 0n && !canonical(linear)) return this.fail(VmError.INVALID_INVEPT_INVVPID);
    this.tlb.invvpid(Number(t), vpid, linear);
    return this.succeed();
  }

  /** RDMSR of a VMX capability MSR (0x480-0x491): undefined means #GP. */
  readCapabilityMsr(index: number): bigint | undefined {
    if (index < VmxMsr.BASIC || index > 0x493) return undefined;
    return this.caps.readMsr(index);
  }
}
