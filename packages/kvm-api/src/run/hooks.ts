/**
 * The CPU's `Intercepts` hook in VMX non-root operation: every interceptable instruction and event
 * asks the vmx package's decisions (SDM Vol. 3C chapter 26) against the current VMCS. A decision
 * to exit records the exit information and stops the CPU (RIP on the instruction); the run loop then
 * performs the VM exit through the VMX unit. Non-exiting instructions whose non-root behaviour
 * differs from root behaviour (CR0/CR4 reads through the read shadows, CR0/CR4 writes that keep the
 * host-owned bits, SDM 26.3) are completed here "in place": the hook performs them and asks the run
 * loop to step RIP past them without a VM exit.
 */
import { type Cpu, InterceptKind as IK, type Intercepts, NO_REG, Op, Prefix } from "@tskvm/cpu-x86";
import {
  CrAccess,
  cltsExit,
  crQualification,
  descriptorTableExit,
  ExitReason,
  exceptionExitInfo,
  exceptionExits,
  hltExit,
  IntrType,
  invlpgExit,
  invpcidExit,
  ioExit,
  ioQualification,
  lmswExit,
  monitorExit,
  movDrExit,
  movFromCr3Exit,
  movFromCr8Exit,
  movFromCrValue,
  movToCr3Exit,
  movToCr8Exit,
  movToCrExit,
  movToCrValue,
  msrExit,
  mwaitExit,
  NO_EXIT,
  pauseExit,
  RAISE_UD,
  rdpmcExit,
  rdrandExit,
  rdseedExit,
  rdtscExit,
  rdtscpExit,
  type Vmcs,
  type VmxPhysMemory,
  vmxInstructionInfo,
  wbinvdExit,
} from "@tskvm/vmx";

/** Exit information gathered at the intercept point (SDM 28.2). */
export interface PendingExit {
  reason: number;
  qualification: bigint;
  intrInfo: number;
  intrErrorCode: number | undefined;
  instructionLength: number;
  guestPhysical: number;
  guestLinear: bigint | undefined;
  /** VM-exit instruction information (SDM 28.2.5), for instructions that have it. */
  instructionInfo: number | undefined;
}

/** VMX instruction -> basic exit reason in non-root operation (SDM 26.1.2). */
const VMX_INSN_EXIT = new Map<number, number>([
  [Op.VMCALL, ExitReason.VMCALL],
  [Op.VMCLEAR, ExitReason.VMCLEAR],
  [Op.VMLAUNCH, ExitReason.VMLAUNCH],
  [Op.VMPTRLD, ExitReason.VMPTRLD],
  [Op.VMPTRST, ExitReason.VMPTRST],
  [Op.VMREAD, ExitReason.VMREAD],
  [Op.VMRESUME, ExitReason.VMRESUME],
  [Op.VMWRITE, ExitReason.VMWRITE],
  [Op.VMXOFF, ExitReason.VMXOFF],
  [Op.VMXON, ExitReason.VMXON],
  [Op.INVEPT, ExitReason.INVEPT],
  [Op.INVVPID, ExitReason.INVVPID],
  [Op.VMFUNC, ExitReason.VMFUNC],
]);

/** The hook. One per vCPU; `vmcs` is the unit's current VMCS, `mem` the host memory of bitmaps. */
export class NonRootHooks implements Intercepts {
  readonly exit: PendingExit = {
    reason: -1,
    qualification: 0n,
    intrInfo: 0,
    intrErrorCode: undefined,
    instructionLength: 0,
    guestPhysical: 0,
    guestLinear: undefined,
    instructionInfo: undefined,
  };
  /** Set by the hook: the instruction was completed in place; step RIP and keep running. */
  inPlace = false;
  /**
   * Set by the MMIO/port path before it raises its abort (a read userspace must answer): the next
   * exception is that abort, reported as this exit (reason, qualification, guest-physical address).
   */
  abort: { reason: number; qualification: bigint; gpa: number } | null = null;
  /** Suppresses I/O exits for one instruction: the kernel emulates a string I/O by re-executing it. */
  emulatingIo = false;
  /** Does L1 intercept this port for the running L2 (nested.ts)? String I/O exits only then. */
  l1StringIo: (port: number, size: number) => boolean = () => false;
  /**
   * XSAVES (`restore` false) / XRSTORS in the running guest: an exit reason, NO_EXIT or RAISE_UD,
   * for `xssRequested` = IA32_XSS & EDX:EAX. L0's own guest (L1) gets NO_EXIT: KVM allows XSAVES
   * exactly when the guest's CPUID has it (the CPU's model raises #UD otherwise, `applyGuestCpuid`)
   * with an XSS-exiting bitmap of 0 (VMX_XSS_EXIT_BITMAP). For L2, nested.ts asks vmcs12.
   */
  xsaves: (restore: boolean, xssRequested: number) => number = () => NO_EXIT;
  cpu!: Cpu;

  constructor(
    readonly vmcs: Vmcs,
    readonly mem: VmxPhysMemory,
  ) {}

  private take(reason: number, qualification = 0n, withLength = true): boolean {
    const e = this.exit;
    e.reason = reason;
    e.qualification = qualification;
    e.intrInfo = 0;
    e.intrErrorCode = undefined;
    e.guestLinear = undefined;
    e.guestPhysical = 0;
    e.instructionInfo = undefined;
    e.instructionLength = withLength ? (this.cpu.curInsn?.length ?? 0) : 0;
    return true;
  }

  private decide(reason: number, qualification = 0n): boolean {
    if (reason === NO_EXIT) return false;
    if (reason === RAISE_UD) this.cpu.raise(6);
    return this.take(reason, qualification);
  }

  intercept(kind: IK, a: number, b: number): boolean {
    const v = this.vmcs;
    const cpu = this.cpu;
    switch (kind) {
      case IK.CPUID:
        return this.take(ExitReason.CPUID);
      case IK.HLT:
        return this.decide(hltExit(v));
      case IK.IO: {
        // String I/O (INS/OUTS) is the kernel's to emulate anyway (handle_io -> the emulator): it
        // runs inline through the CPU's PortIo (GuestBus) without a VM exit per instruction. The
        // CPU's REP loop also decrements RCX when an iteration is intercepted, so an exit here
        // would lose an iteration (reported to cpu-x86).
        // For L2, string I/O to a port L1 intercepts exits (to be reflected to L1).
        if (this.emulatingIo) return false;
        const port = a & 0xffff;
        const size = (a >>> 16) & 0xff;
        const input = (a >>> 24) & 1;
        const string = b !== 0;
        if (string ? !this.l1StringIo(port, size) : ioExit(v, this.mem, port, size) === NO_EXIT) return false;
        const i = cpu.curInsn;
        const rep = string && i !== null && (i.prefixes & (Prefix.REP | Prefix.REPNE)) !== 0;
        const imm = !string && i !== null && (i.opcode & 8) === 0;
        this.take(
          ExitReason.IO_INSTRUCTION,
          BigInt(ioQualification(port, size, input === 1, string, rep, imm)),
        );
        if (string && i !== null) {
          // INS/OUTS instruction information (SDM Table 28-8, IA32_VMX_BASIC[54] = 1): address size
          // and, for OUTS, the segment (`sg`: the override, else DS).
          this.exit.instructionInfo =
            (((i.addrSize === 2 ? 0 : i.addrSize === 4 ? 1 : 2) << 7) | (i.sg << 15)) >>> 0;
        }
        return true;
      }
      case IK.RDMSR:
      case IK.WRMSR:
        return this.decide(msrExit(v, this.mem, a >>> 0, kind === IK.WRMSR));
      case IK.MOV_CR:
        return this.movCr(a & 15, (a >>> 4) & 1, (a >>> 8) & 15);
      case IK.MOV_DR: {
        const r = movDrExit(v);
        if (r === NO_EXIT) return false;
        return this.take(r, BigInt((a & 7) | (((a >>> 4) & 1) === 0 ? 0x10 : 0) | (((a >>> 8) & 15) << 8)));
      }
      case IK.CLTS:
        return this.decide(cltsExit(v), BigInt(crQualification(0, CrAccess.CLTS, 0)));
      case IK.LMSW:
        return this.decide(lmswExit(v, a & 0xffff), BigInt(crQualification(0, CrAccess.LMSW, 0, false, a)));
      case IK.INVLPG:
        return this.decide(invlpgExit(v), (BigInt(b >>> 0) << 32n) | BigInt(a >>> 0));
      case IK.INVPCID:
        return this.decide(invpcidExit(v));
      case IK.RDTSC:
        return this.decide(rdtscExit(v));
      case IK.RDTSCP:
        return this.decide(rdtscpExit(v));
      case IK.RDPMC:
        return this.decide(rdpmcExit(v));
      case IK.MONITOR:
        return this.decide(monitorExit(v));
      case IK.MWAIT:
        return this.decide(mwaitExit(v));
      case IK.PAUSE:
        return this.decide(pauseExit(v));
      case IK.WBINVD:
        return this.decide(wbinvdExit(v));
      case IK.INVD:
        return this.take(ExitReason.INVD);
      case IK.XSETBV:
        return this.take(ExitReason.XSETBV);
      case IK.XSAVES:
        return this.decide(this.xsaves(a === 1, b));
      case IK.RDRAND:
        return this.decide(rdrandExit(v));
      case IK.RDSEED:
        return this.decide(rdseedExit(v));
      case IK.DESCRIPTOR_TABLE:
        return this.decide(descriptorTableExit(v, a >= 4));
      case IK.VMX_INSN: {
        const r = VMX_INSN_EXIT.get(a);
        return r === undefined ? false : this.vmxInstruction(r);
      }
      case IK.EXCEPTION:
        return this.exception(a, b);
      case IK.EXTERNAL_INTERRUPT:
        // The CPU's INTR line is raised only while "interrupt-window exiting" is armed: the CPU
        // asks here exactly when RFLAGS.IF = 1 and no STI/MOV-SS blocking (SDM 26.7.5).
        cpu.irqPending = false;
        return this.take(ExitReason.INTERRUPT_WINDOW, 0n, false);
      case IK.NMI:
        // Likewise the NMI line stands for "NMI-window exiting" (SDM 26.7.6).
        cpu.nmiPending = false;
        return this.take(ExitReason.NMI_WINDOW, 0n, false);
      case IK.TRIPLE_FAULT:
        return this.take(ExitReason.TRIPLE_FAULT, 0n, false);
      case IK.TASK_SWITCH:
        return this.take(ExitReason.TASK_SWITCH, 0n, false);
      default:
        return false;
    }
  }

  /** Exceptions: the exception bitmap (SDM 26.2), or the MMIO path's abort. */
  private exception(vec: number, err: number): boolean {
    const ab = this.abort;
    if (ab !== null) {
      // Not an exception: a read that userspace must answer, reported as the exit that brought the
      // kernel in (an EPT violation for MMIO, SDM Table 28-7; an I/O exit for ports).
      this.abort = null;
      this.take(ab.reason, ab.qualification, false);
      this.exit.guestPhysical = ab.gpa;
      return true;
    }
    if (!exceptionExits(this.vmcs, vec, Math.max(err, 0))) return false;
    const i = this.cpu.curInsn;
    let type: number = IntrType.HW_EXCEPTION;
    let len = 0;
    if (i !== null && ((vec === 3 && i.op === Op.INT3) || (vec === 4 && i.op === Op.INTO))) {
      type = IntrType.SW_EXCEPTION;
      len = i.length;
    } else if (i !== null && vec === 1 && i.op === Op.INT1) {
      type = IntrType.PRIV_SW_EXCEPTION;
      len = i.length;
    }
    // #PF: the qualification is the faulting linear address; CR2 is not written (SDM 27.1, 28.2.1).
    // #DB: B0-B3 of the instruction, data or I/O breakpoints hit; DR6 is not written (SDM 28.2.1).
    const qual = vec === 14 ? this.pfAddress() : vec === 1 ? BigInt(this.cpu.dbHits) : 0n;
    this.take(ExitReason.EXCEPTION_NMI, qual, false);
    this.exit.intrInfo = exceptionExitInfo(vec, type, err < 0 ? null : err);
    this.exit.intrErrorCode = err < 0 ? undefined : err;
    this.exit.instructionLength = len;
    return true;
  }

  /**
   * A VMX instruction exit with its instruction information and, for a memory operand, the
   * displacement as qualification (SDM 28.2.1, 28.2.5 Table 28-13/28-14), as L0 decodes the operand
   * from them (KVM get_vmx_mem_address). Deviation: a RIP-relative operand has no encoding there;
   * it is reported with base and index invalid and the qualification = next RIP + displacement.
   */
  private vmxInstruction(reason: number): boolean {
    const i = this.cpu.curInsn;
    this.take(reason);
    // Every VMX instruction has a ModRM byte (VMCALL, VMLAUNCH... are 0F 01 with mod = 3).
    if (i === null) return true;
    if (!i.isMem) {
      this.exit.instructionInfo = vmxInstructionInfo({ reg1: i.rm }, i.reg);
      return true;
    }
    const rip = i.ripRel;
    // `sg`: the override, else SS with an rSP/rBP base, else DS (SDM Vol. 1 3.7.4).
    const seg = i.sg;
    this.exit.instructionInfo = vmxInstructionInfo(
      {
        scale: i.scale,
        addrSize: i.addrSize === 2 ? 0 : i.addrSize === 4 ? 1 : 2,
        seg,
        index: rip || i.index === NO_REG ? null : i.index,
        base: rip || i.base === NO_REG ? null : i.base,
      },
      i.reg,
    );
    let disp = BigInt.asUintN(64, BigInt(i.disp | 0));
    if (rip) {
      const next = (BigInt(this.cpu.ripHi >>> 0) << 32n) | BigInt(this.cpu.ripLo >>> 0);
      disp = BigInt.asUintN(64, next + BigInt(i.length) + BigInt(i.disp | 0));
    }
    this.exit.qualification = disp;
    return true;
  }

  private pfAddress(): bigint {
    return (BigInt(this.cpu.pfHi >>> 0) << 32n) | BigInt(this.cpu.pfLo >>> 0);
  }

  /** MOV to/from CRn (SDM 26.1.3 and 26.3). */
  private movCr(cr: number, write: number, gpr: number): boolean {
    const v = this.vmcs;
    const cpu = this.cpu;
    const wide = cpu.codeMode === 64;
    const qual = BigInt(crQualification(cr, write ? CrAccess.MOV_TO_CR : CrAccess.MOV_FROM_CR, gpr));
    if (cr === 3)
      return this.decide(write ? movToCr3Exit(v, this.gprValue(gpr, wide)) : movFromCr3Exit(v), qual);
    if (cr === 8) return this.decide(write ? movToCr8Exit(v) : movFromCr8Exit(v), qual);
    if (cr !== 0 && cr !== 4) return false;
    const actual = BigInt((cr === 0 ? cpu.cr0 : cpu.cr4) >>> 0);
    if (!write) {
      const val = movFromCrValue(v, cr, actual);
      cpu.r[gpr * 2] = Number(val & 0xffffffffn) | 0;
      cpu.r[gpr * 2 + 1] = 0;
      this.inPlace = true;
      return this.take(-1);
    }
    const value = this.gprValue(gpr, wide);
    if (movToCrExit(v, cr, value) !== NO_EXIT) return this.take(ExitReason.CR_ACCESS, qual);
    const eff = movToCrValue(v, cr, value, actual);
    // The CPU's own MOV-to-CR checks and mode switches (IA-32e activation, #GP) apply to the value
    // that reaches the register; a #GP thrown here is the instruction's.
    cpu.writeCr(cr, Number(eff & 0xffffffffn) | 0, Number(eff >> 32n) | 0);
    this.inPlace = true;
    return this.take(-1);
  }

  private gprValue(gpr: number, wide: boolean): bigint {
    const lo = BigInt(this.cpu.r[gpr * 2]! >>> 0);
    return wide ? (BigInt(this.cpu.r[gpr * 2 + 1]! >>> 0) << 32n) | lo : lo;
  }
}
