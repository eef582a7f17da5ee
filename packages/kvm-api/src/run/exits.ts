/**
 * The kernel side of VM exits (arch/x86/kvm/vmx/vmx.c kvm_vmx_exit_handlers[] and x86.c): what KVM
 * completes itself (CPUID from the CPUID2 table, MSRs, CR accesses, in-kernel port and MMIO
 * devices, EPT violations on RAM, HLT while the irqchip has work, XSETBV, INVD/WBINVD/MWAIT/MONITOR)
 * and what becomes a `kvm_run` exit for userspace, with the completion of IN and MMIO reads on
 * the next KVM_RUN (complete_userspace_io). Event injection before entry (inject_pending_event,
 * interrupt and NMI windows) is here too.
 */
import { FAULT } from "@tskvm/cpu-x86";
import {
  ExitReason,
  F,
  INTR_INFO_DELIVER_CODE,
  INTR_INFO_VALID,
  Interruptibility,
  IntrType,
  Proc,
} from "@tskvm/vmx";
import type { CpuidRuntime } from "../cpuid.js";
import {
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_IN,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_IRQ_WINDOW_OPEN,
  KVM_EXIT_MMIO,
  KVM_EXIT_SET_TPR,
  KVM_EXIT_SHUTDOWN,
  KVM_INTERNAL_ERROR_EMULATION,
  KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
  type KvmExit,
} from "../exits.js";
import { KVM_API_MSRS } from "../vcpu.js";
import type { VmxBackend } from "./engine.js";
import type { Access } from "./guest-bus.js";
import { CR4_HOST_OWNED, setIa32eEntry } from "./vmcs-setup.js";

/** What the next KVM_RUN must finish before entering (complete_userspace_io). */
type Completion =
  | { kind: "skip"; len: number; gen: number }
  | { kind: "in"; size: number; len: number; data: Uint8Array; gen: number }
  | { kind: "read"; size: number; data: Uint8Array; gen: number };

/** KVM_HC_* are not implemented: every hypercall returns -KVM_ENOSYS (include/uapi/linux/kvm_para.h). */
const KVM_ENOSYS = 1000n;
/** RFLAGS.TF and DR6.BS (SDM Vol. 3 18.2.3), as numbers for the CPU's 32-bit DR6. */
const RFLAGS_TF = 0x100;
const DR6_BS = 0x4000;

export class ExitHandlers {
  private completion: Completion | null = null;
  private readonly cpuidOut = new Uint32Array(4);
  /** The guest state CPUID reflects, refilled per CPUID exit. */
  private readonly cpuidRt: CpuidRuntime = { cr4: 0, xcr0: 1, xss: 0, apicBase: 0 };

  constructor(private readonly b: VmxBackend) {}

  private get v() {
    return this.b.unit.vmcs;
  }

  // ---------------------------------------------------------------- userspace completions

  /**
   * Finishes the exit userspace just handled: IN data into RAX and RIP past the instruction, OUT
   * and MMIO writes skipped past, MMIO/port reads queued for the re-executed instruction; then
   * hands out posted writes still queued (one exit each). A completion is dropped when userspace
   * rewrote the registers meanwhile (KVM checks that RIP did not move).
   */
  complete(onCpu = false): KvmExit | null {
    const c = this.completion;
    this.completion = null;
    const fresh = c !== null && c.gen === this.b.sync.generation;
    if (c !== null && fresh) {
      if (c.kind === "read") {
        this.b.bus.answer(le(c.data, c.size));
      } else {
        if (c.kind === "in") this.setRax(c.size, le(c.data, c.size));
        this.done(c.len, onCpu);
      }
    } else if (c !== null) {
      this.b.bus.reset();
    }
    if (this.b.bus.posted.length > 0) return this.postedExit();
    return null;
  }

  /** The next posted write as an exit; two 4-byte halves of one 8-byte MMIO store become one. */
  private postedExit(): KvmExit {
    const q = this.b.bus.posted;
    const p = q.shift()!;
    if (p.pio) {
      const data = new Uint8Array(p.size);
      putLe(data, p.value, p.size);
      return {
        kind: "io",
        reason: KVM_EXIT_IO,
        direction: KVM_EXIT_IO_OUT,
        size: p.size,
        port: p.addr,
        count: 1,
        data,
      };
    }
    const data = new Uint8Array(8);
    putLe(data, p.value, p.size);
    let len: number = p.size;
    const n = q[0];
    if (
      n !== undefined &&
      !n.pio &&
      n.insn === p.insn &&
      p.size === 4 &&
      n.size === 4 &&
      n.addr === p.addr + 4
    ) {
      q.shift();
      putLe(data.subarray(4), n.value, 4);
      len = 8;
    }
    return { kind: "mmio", reason: KVM_EXIT_MMIO, physAddr: p.addr, data, len, isWrite: true };
  }

  /** A read userspace must answer (the bus aborted the instruction for it). */
  private readExit(r: Access): KvmExit {
    const gen = this.b.sync.generation;
    if (r.pio) {
      const data = new Uint8Array(r.size);
      this.completion = { kind: "read", size: r.size, data, gen };
      return {
        kind: "io",
        reason: KVM_EXIT_IO,
        direction: KVM_EXIT_IO_IN,
        size: r.size,
        port: r.addr,
        count: 1,
        data,
      };
    }
    const data = new Uint8Array(8);
    this.completion = { kind: "read", size: r.size, data, gen };
    return { kind: "mmio", reason: KVM_EXIT_MMIO, physAddr: r.addr, data, len: r.size, isWrite: false };
  }

  // ---------------------------------------------------------------- event injection

  /** Is there something that ends a HLT (kvm_vcpu_has_events)? */
  hasWakeEvent(): boolean {
    const vcpu = this.b.vcpu;
    if (vcpu.hasNmi()) return true;
    // With L1's external-interrupt exiting an interrupt ends L2's halt whatever L2's RFLAGS.IF.
    return vcpu.hasInterrupt() && (this.interruptible() || this.b.nested.interruptExits());
  }

  /** RFLAGS.IF = 1 and no STI/MOV-SS blocking (vmx_interrupt_allowed). */
  private interruptible(): boolean {
    const v = this.v;
    // Low halves only: this runs before every entry and on every HLT, a bigint each time adds up.
    return (v.get32(F.GUEST_RFLAGS) & 0x200) !== 0 && (v.get32(F.GUEST_INTERRUPTIBILITY_INFO) & 3) === 0;
  }

  private setWindow(bit: number, on: boolean): void {
    const v = this.v;
    const p = v.get32(F.CPU_BASED_VM_EXEC_CONTROL);
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, on ? p | bit : p & ~bit);
  }

  /**
   * inject_pending_event(): an NMI, else an external interrupt from the irqchip (or KVM_INTERRUPT),
   * through the VM-entry interruption-information field (SDM 25.8.3); when the guest cannot take it
   * now, NMI- or interrupt-window exiting (SDM 26.7.5-6). Returns IRQ_WINDOW_OPEN when userspace
   * asked for it and the window is open (userspace irqchip).
   */
  injectEvents(): KvmExit | null {
    const b = this.b;
    const vcpu = b.vcpu;
    const v = this.v;
    const busy = b.entryEventPending();
    if (vcpu.hasNmi()) {
      const blocked =
        (v.get32(F.GUEST_INTERRUPTIBILITY_INFO) &
          (Interruptibility.NMI | Interruptibility.MOV_SS | Interruptibility.STI)) !==
        0;
      if (!busy && !blocked) {
        vcpu.acknowledgeNmi();
        v.set32(F.VM_ENTRY_INTR_INFO_FIELD, (INTR_INFO_VALID | 2 | (IntrType.NMI << 8)) >>> 0);
        this.setWindow(Proc.NMI_WINDOW_EXITING, false);
        return null;
      }
      this.setWindow(Proc.NMI_WINDOW_EXITING, true);
    }
    const ready = this.interruptible();
    if (vcpu.hasInterrupt()) {
      if (ready && !b.entryEventPending()) {
        const vec = vcpu.acknowledgeInterrupt();
        if (vec >= 0) {
          v.set32(
            F.VM_ENTRY_INTR_INFO_FIELD,
            (INTR_INFO_VALID | (vec & 0xff) | (IntrType.EXTERNAL << 8)) >>> 0,
          );
          this.setWindow(Proc.INTR_WINDOW_EXITING, false);
          return null;
        }
      }
      this.setWindow(Proc.INTR_WINDOW_EXITING, true);
      return null;
    }
    if (!vcpu.lapic && vcpu.runFields.requestInterruptWindow) {
      if (ready && !b.entryEventPending())
        return { kind: "irq-window-open", reason: KVM_EXIT_IRQ_WINDOW_OPEN };
      this.setWindow(Proc.INTR_WINDOW_EXITING, true);
      return null;
    }
    this.setWindow(Proc.INTR_WINDOW_EXITING, false);
    return null;
  }

  /** Queue a hardware exception for the next entry (kvm_queue_exception). */
  injectException(vector: number, errorCode: number | null): void {
    const v = this.v;
    // SDM 27.2.1.3: no error code may be delivered to a real-mode guest (unrestricted guest).
    const pe = (v.get32(F.GUEST_CR0) & 1) !== 0;
    const code = errorCode !== null && pe;
    v.set32(
      F.VM_ENTRY_INTR_INFO_FIELD,
      (INTR_INFO_VALID | vector | (IntrType.HW_EXCEPTION << 8) | (code ? INTR_INFO_DELIVER_CODE : 0)) >>> 0,
    );
    if (code) v.set32(F.VM_ENTRY_EXCEPTION_ERROR_CODE, errorCode!);
  }

  // ---------------------------------------------------------------- exit dispatch

  /** vmx_handle_exit(): null to re-enter, or the exit for userspace. */
  handle(reason: number): KvmExit | null {
    const b = this.b;
    const v = this.v;
    // Reads and posted writes from the bus come first, whatever exit carried them.
    const r = b.bus.pendingRead;
    if (r !== null && b.bus.aborted) return this.readExit(r);
    if (b.bus.posted.length > 0) return this.postedExit();
    const len = v.get32(F.VM_EXIT_INSTRUCTION_LEN);
    // The handlers below read bits 31:0 of the qualification only; as a number, no bigint per exit.
    const qual = v.get32(F.EXIT_QUALIFICATION);
    // An exit from L2 that L1 asked for goes to L1 (nested_vmx_reflect_vmexit).
    const nested = b.nested;
    // (Not a HLT exit of length 0: that is L2 entered in the HLT activity state, which waits here.)
    if (nested.l2Active && !(reason === ExitReason.HLT && len === 0) && nested.wantsExit(reason))
      return nested.reflect(reason);
    switch (reason) {
      case ExitReason.EXTERNAL_INTERRUPT:
        b.serviceTimers();
        return null;
      case ExitReason.TRIPLE_FAULT:
        return { kind: "shutdown", reason: KVM_EXIT_SHUTDOWN };
      case ExitReason.INTERRUPT_WINDOW:
        this.setWindow(Proc.INTR_WINDOW_EXITING, false);
        if (!b.vcpu.lapic && b.vcpu.runFields.requestInterruptWindow && b.vcpu.pendingExternalVector < 0)
          return { kind: "irq-window-open", reason: KVM_EXIT_IRQ_WINDOW_OPEN };
        return null;
      case ExitReason.NMI_WINDOW:
        this.setWindow(Proc.NMI_WINDOW_EXITING, false);
        return null;
      case ExitReason.EXCEPTION_NMI:
        return this.exception();
      case ExitReason.CPUID:
        this.cpuid(len, false);
        return null;
      case ExitReason.HLT:
        this.skip(len);
        if (b.vcpu.lapic) {
          // kvm_emulate_halt(): with an in-kernel irqchip the vCPU blocks in the kernel.
          if (!this.hasWakeEvent()) b.vcpu.mpState = 3; /* KVM_MP_STATE_HALTED */
          return null;
        }
        return { kind: "hlt", reason: KVM_EXIT_HLT };
      case ExitReason.INVD:
      case ExitReason.WBINVD:
      case ExitReason.MWAIT:
      case ExitReason.MONITOR:
      case ExitReason.PAUSE:
        // KVM treats these as no-ops (MWAIT/MONITOR as NOP, kvm_emulate_wbinvd flushes caches).
        this.skip(len);
        return null;
      case ExitReason.RDPMC:
        this.injectException(13, 0);
        return null;
      case ExitReason.VMCALL:
        // kvm_emulate_hypercall(): -KVM_EPERM at CPL > 0, -KVM_ENOSYS for an unknown number.
        this.setGpr64(0, (v.get32(F.GUEST_SS_AR_BYTES) >>> 5) & 3 ? -1n : -KVM_ENOSYS);
        this.skip(len);
        return null;
      case ExitReason.VMCLEAR:
      case ExitReason.VMLAUNCH:
      case ExitReason.VMPTRLD:
      case ExitReason.VMPTRST:
      case ExitReason.VMREAD:
      case ExitReason.VMRESUME:
      case ExitReason.VMWRITE:
      case ExitReason.VMXOFF:
      case ExitReason.VMXON:
      case ExitReason.INVEPT:
      case ExitReason.INVVPID:
      case ExitReason.VMFUNC:
        // handle_vmx_instruction(): emulated for L1 with nested VMX (nested.ts), else #UD.
        if (nested.allowed()) return nested.instruction(reason, len);
        this.injectException(6, null);
        return null;
      case ExitReason.MONITOR_TRAP_FLAG:
        return b.debug.stepExit();
      case ExitReason.DR_ACCESS: {
        const gd = b.debug.generalDetect();
        if (gd === "injected") return null;
        if (gd !== null) return gd;
        if (!b.debug.movDr(qual)) this.injectException(13, 0);
        else this.skip(len);
        return null;
      }
      case ExitReason.CR_ACCESS:
        return this.crAccess(qual, len);
      case ExitReason.IO_INSTRUCTION:
        return this.io(qual, len);
      case ExitReason.RDMSR:
        return this.rdmsr(len);
      case ExitReason.WRMSR:
        if (!this.wrmsr(len, false)) this.injectException(13, 0);
        return null;
      case ExitReason.XSETBV:
        return this.xsetbv(len);
      case ExitReason.EPT_VIOLATION:
        return this.eptViolation(qual, v.getNum(F.GUEST_PHYSICAL_ADDRESS));
      case ExitReason.EPT_MISCONFIG:
        return b.internal(KVM_INTERNAL_ERROR_EMULATION, [BigInt(reason), v.get64(F.GUEST_PHYSICAL_ADDRESS)]);
      default:
        return {
          kind: "internal-error",
          reason: KVM_EXIT_INTERNAL_ERROR,
          suberror: KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
          data: [BigInt(reason), BigInt(b.vcpu.index)],
        };
    }
  }

  /**
   * Exceptions from the exception bitmap: #DB/#BP for guest debugging become KVM_EXIT_DEBUG
   * (run/debug.ts); the rest are re-injected into the guest.
   */
  private exception(): KvmExit | null {
    const v = this.v;
    const info = v.get32(F.VM_EXIT_INTR_INFO);
    const vector = info & 0xff;
    if (vector === 18) return this.b.internal(KVM_INTERNAL_ERROR_EMULATION, [18n]);
    if (vector === 1 || vector === 3) {
      const qual = v.get64(F.EXIT_QUALIFICATION);
      const dbg = this.b.debug.exception(vector, qual, v.get32(F.VM_EXIT_INSTRUCTION_LEN));
      if (dbg !== null) return dbg;
      // SDM 28.2.1: a #DB exit leaves DR6 alone; delivering it to the guest updates DR6 (KVM's
      // exception payload).
      if (vector === 1) this.b.cpu.dr6 |= Number(qual & 0x600fn);
    }
    v.set32(F.VM_ENTRY_INTR_INFO_FIELD, info & ~(1 << 12));
    if (info & INTR_INFO_DELIVER_CODE)
      v.set32(F.VM_ENTRY_EXCEPTION_ERROR_CODE, v.get32(F.VM_EXIT_INTR_ERROR_CODE));
    v.set32(F.VM_ENTRY_INSTRUCTION_LEN, v.get32(F.VM_EXIT_INSTRUCTION_LEN));
    return null;
  }

  /**
   * kvm_emulate_cpuid(): the vCPU's CPUID2 table (incl. the KVM leaves), zero-extended into RAX..RDX.
   * `onCpu`: the engine's exit-less path (`VmxBackend.cpuidWithoutExit`), RIP is the CPU's.
   */
  private cpuid(len: number, onCpu: boolean): void {
    const cpu = this.b.cpu;
    const o = this.cpuidOut;
    const rt = this.cpuidRt;
    // OSXSAVE and PKE are guest-owned CR4 bits (CR4_HOST_OWNED): the CPU's CR4 has the guest's.
    rt.cr4 = cpu.cr4;
    rt.xcr0 = cpu.xcr0Lo;
    rt.xss = cpu.xssLo;
    // IA32_APIC_BASE is kvm-api's MSR (KVM_API_MSRS), never the CPU's.
    rt.apicBase = this.b.vcpu.apicBase;
    this.b.vcpu.cpuid(cpu.r[0]! >>> 0, cpu.r[2]! >>> 0, o, rt);
    const set = (reg: number, val: number) => {
      cpu.r[reg * 2] = val | 0;
      cpu.r[reg * 2 + 1] = 0;
    };
    set(0, o[0]!);
    set(3, o[1]!);
    set(1, o[2]!);
    set(2, o[3]!);
    this.done(len, onCpu);
  }

  private rdmsr(len: number): null {
    const cpu = this.b.cpu;
    const idx = cpu.r[2]! >>> 0;
    const v = this.readMsr(idx);
    if (v === undefined) {
      this.injectException(13, 0);
      return null;
    }
    cpu.r[0] = Number(v & 0xffffffffn) | 0;
    cpu.r[1] = 0;
    cpu.r[4] = Number(v >> 32n) | 0;
    cpu.r[5] = 0;
    this.skip(len);
    return null;
  }

  /**
   * kvm_emulate_wrmsr(): ECX <- EDX:EAX and RIP past the instruction; false, with nothing written or
   * moved, when the write is #GP (the caller injects it). `onCpu` as for `cpuid`.
   */
  private wrmsr(len: number, onCpu: boolean): boolean {
    const cpu = this.b.cpu;
    if (!this.writeMsr(cpu.r[2]! >>> 0, cpu.r[0]!, cpu.r[4]!)) return false;
    this.done(len, onCpu);
    return true;
  }

  /** MSRs kvm-api models (TSC, APIC base, x2APIC, TSC deadline, kvmclock) there, the rest in the CPU. */
  private kernelMsr(idx: number): boolean {
    return KVM_API_MSRS.includes(idx) || (idx >= 0x800 && idx <= 0x8ff);
  }
  readMsr(idx: number): bigint | undefined {
    const vcpu = this.b.vcpu;
    const n = this.b.nested.readMsr(idx);
    if (n !== null) return n;
    if (this.kernelMsr(idx)) return vcpu.readMsr(idx);
    const cpu = this.b.cpu;
    if (cpu.readMsr(idx)) return (BigInt(cpu.msrHi >>> 0) << 32n) | BigInt(cpu.msrLo >>> 0);
    return vcpu.readMsr(idx);
  }
  writeMsr(idx: number, lo: number, hi: number): boolean {
    const vcpu = this.b.vcpu;
    const value = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    const n = this.b.nested.writeMsr(idx, value, () => this.readMsr(idx));
    if (n !== null) return n;
    if (this.kernelMsr(idx)) return vcpu.writeMsr(idx, value);
    if (this.b.cpu.writeMsr(idx, lo, hi)) return true;
    return vcpu.writeMsr(idx, value);
  }

  /** kvm_emulate_xsetbv() / __kvm_set_xcr(): XCR0 only, x87 bit set, supported bits, AVX needs SSE. */
  private xsetbv(len: number): null {
    const cpu = this.b.cpu;
    const lo = cpu.r[0]! >>> 0;
    if (
      cpu.r[2] !== 0 ||
      cpu.r[4] !== 0 ||
      (lo & 1) === 0 ||
      (lo & ~cpu.cpuidModel.xcr0Mask) !== 0 ||
      (lo & 6) === 4
    ) {
      this.injectException(13, 0);
      return null;
    }
    cpu.xcr0Lo = lo | 0;
    cpu.xcr0Hi = 0;
    this.skip(len);
    return null;
  }

  /** handle_cr(): MOV to/from CR8 (the LAPIC TPR), MOV to CR0/CR4 changing a host-owned bit. */
  private crAccess(qual: number, len: number): KvmExit | null {
    const b = this.b;
    const cpu = b.cpu;
    const v = this.v;
    const cr = qual & 15;
    const type = (qual >>> 4) & 3;
    const gpr = (qual >>> 8) & 15;
    const vcpu = b.vcpu;
    // CR8 is the vCPU's (kvm_get_cr8/kvm_set_cr8): the LAPIC TPR, or vcpu->arch.cr8 without one.
    if (type === 1 && cr === 8) {
      cpu.r[gpr * 2] = vcpu.cr8;
      cpu.r[gpr * 2 + 1] = 0;
      this.skip(len);
      return null;
    }
    if (type !== 0)
      return b.internal(KVM_INTERNAL_ERROR_EMULATION, [BigInt(ExitReason.CR_ACCESS), BigInt(qual)]);
    const lo = cpu.r[gpr * 2]!;
    const hi = cpu.codeMode === 64 ? cpu.r[gpr * 2 + 1]! : 0;
    if (cr === 8) {
      // SDM 2.5: reserved bits 63:4 are #GP. (vmx.c handle_cr truncates to u8 first, so KVM takes
      // e.g. 0x100 as 0; not copied.)
      if (hi !== 0 || (lo & ~15) !== 0) {
        this.injectException(13, 0);
        return null;
      }
      const prev = vcpu.cr8;
      vcpu.setCr8(lo);
      this.skip(len);
      // vmx.c handle_cr(): without an in-kernel LAPIC, a lower TPR goes to userspace, whose
      // interrupt controller may now have an interrupt to deliver.
      if (!vcpu.lapic && lo < prev) return { kind: "set-tpr", reason: KVM_EXIT_SET_TPR };
      return null;
    }
    if (cr !== 0 && cr !== 4) return b.internal(KVM_INTERNAL_ERROR_EMULATION, [BigInt(qual)]);
    // kvm_set_cr4(): CR4.VMXE only with nested VMX exposed; L2 keeps its VMX fixed bits.
    const l2Bad =
      b.nested.l2Active && !b.nested.crWriteAllowed(cr, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
    if (l2Bad || (cr === 4 && lo & Number(CR4_HOST_OWNED) && !b.nested.allowed())) {
      this.injectException(13, 0);
      return null;
    }
    const forced = cr === 0 ? 0x20 : Number(CR4_HOST_OWNED);
    try {
      // The CPU holds the guest state at the exit: its MOV-to-CR logic gives the #GP checks and the
      // IA-32e activation; the VMCS then takes the result (vmx_set_cr0 / vmx_set_efer).
      cpu.writeCr(cr, lo | forced, hi);
    } catch (e) {
      if (e !== FAULT) throw e;
      this.injectException(13, 0);
      return null;
    }
    if (cr === 0) {
      v.set64(F.CR0_READ_SHADOW, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
      v.set64(F.GUEST_CR0, BigInt(cpu.cr0 >>> 0));
      v.set64(F.GUEST_IA32_EFER, BigInt(cpu.efer >>> 0));
      setIa32eEntry(v, (cpu.efer & 0x400) !== 0);
    } else {
      v.set64(F.CR4_READ_SHADOW, BigInt(lo >>> 0));
      v.set64(F.GUEST_CR4, BigInt(cpu.cr4 >>> 0));
    }
    // For L2 the read shadow also carries L1's shadows (nested.ts).
    if (b.nested.l2Active) b.nested.crWritten(cr, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
    this.skip(len);
    return null;
  }

  /**
   * handle_io(): in-kernel devices first; string I/O is emulated by re-executing the instruction.
   * `onCpu`: the engine's exit-less path (`VmxBackend.ioWithoutExit`): no VM exit was made, so RIP
   * is the CPU's, not the VMCS's.
   */
  private io(qual: number, len: number, onCpu = false): KvmExit | null {
    const b = this.b;
    const size = ((qual & 7) + 1) as 1 | 2 | 4;
    const input = (qual & 8) !== 0;
    const port = qual >>> 16;
    if (qual & 0x10) {
      b.hooks.emulatingIo = true;
      return null;
    }
    const cpu = b.cpu;
    const vm = b.vcpu.vm;
    const gen = b.sync.generation;
    if (input) {
      const val = vm.ioIn(port, size);
      if (val !== undefined) {
        this.setRax(size, val);
        this.done(len, onCpu);
        return null;
      }
      const data = new Uint8Array(size);
      this.completion = { kind: "in", size, len, data, gen };
      return { kind: "io", reason: KVM_EXIT_IO, direction: KVM_EXIT_IO_IN, size, port, count: 1, data };
    }
    const val = size === 4 ? cpu.r[0]! >>> 0 : cpu.r[0]! & (size === 2 ? 0xffff : 0xff);
    if (vm.ioOut(port, size, val)) {
      this.done(len, onCpu);
      return null;
    }
    const data = new Uint8Array(size);
    putLe(data, val, size);
    this.completion = { kind: "skip", len, gen };
    return { kind: "io", reason: KVM_EXIT_IO, direction: KVM_EXIT_IO_OUT, size, port, count: 1, data };
  }

  /**
   * tdp_page_fault(): a GPA in a slot gets its mapping (the eager map covers slots; this is the
   * fallback); a GPA outside every slot is MMIO: mapped as such and the instruction retried, its
   * accesses then reach the MMIO handlers.
   */
  private eptViolation(qual: number, gpa: number): KvmExit | null {
    const b = this.b;
    const slot = b.vcpu.vm.memory.slotAt(gpa);
    if (slot !== undefined) {
      if (slot.readonly && qual & 2) {
        // A write to a read-only slot is KVM_EXIT_MMIO; emulating the store needs the CPU to route
        // one instruction's RAM page through MMIO, which it cannot do yet.
        return b.internal(KVM_INTERNAL_ERROR_EMULATION, [BigInt(ExitReason.EPT_VIOLATION), BigInt(gpa)]);
      }
      b.ept.mapRam(gpa, slot.readonly);
      return null;
    }
    b.ept.mapMmio(gpa);
    return null;
  }

  /**
   * `io` for a non-string IN/OUT the CPU stopped at without a VM exit (`VmxBackend.ioWithoutExit`
   * checked that nothing else needs the exit): RAX and RIP in the CPU.
   */
  ioOnCpu(qual: number, len: number): KvmExit | null {
    return this.io(qual, len, true);
  }

  /** `cpuid` for a CPUID the CPU stopped at without a VM exit (`VmxBackend.cpuidWithoutExit`). */
  cpuidOnCpu(len: number): void {
    this.cpuid(len, true);
  }

  /**
   * `wrmsr` for a WRMSR the CPU stopped at without a VM exit (`VmxBackend.tscDeadlineWithoutExit`):
   * false when it is #GP, which only the full exit injects.
   */
  wrmsrOnCpu(len: number): boolean {
    return this.wrmsr(len, true);
  }

  // ---------------------------------------------------------------- helpers

  /**
   * An instruction the kernel completed: `skip` after a VM exit; without one (`onCpu`, the engine's
   * exit-less I/O, CPUID and WRMSR, entered only with no single-step, TF or interrupt shadow in the
   * way) RIP moves in the CPU.
   */
  private done(len: number, onCpu: boolean): void {
    if (onCpu) this.b.stepRip(len);
    else this.skip(len);
  }

  /** kvm_skip_emulated_instruction(): RIP past the instruction, STI/MOV-SS blocking cleared. */
  skip(len: number): void {
    const v = this.v;
    // On 32-bit halves: every instruction the kernel completes comes through here.
    const lo = v.get32(F.GUEST_RIP) + len;
    const lma = (v.get32(F.GUEST_IA32_EFER) & 0x400) !== 0;
    const ar = v.get32(F.GUEST_CS_AR_BYTES);
    const pe = (v.get32(F.GUEST_CR0) & 1) !== 0;
    if (lma && ar & 0x2000) {
      const hi = v.getHi(F.GUEST_RIP);
      v.setHalves(F.GUEST_RIP, lo >>> 0, lo > 0xffffffff ? (hi + 1) >>> 0 : hi);
    } else v.setHalves(F.GUEST_RIP, pe && ar & 0x4000 ? lo >>> 0 : lo & 0xffff, 0);
    if (this.b.debug.stepping) this.b.debug.stepPending = true;
    else if ((v.get32(F.GUEST_RFLAGS) & RFLAGS_TF) !== 0) {
      // kvm_vcpu_do_singlestep(): the guest single-steps with RFLAGS.TF, and the instruction the
      // kernel completed for it traps as on hardware: #DB with DR6.BS (SDM Vol. 3 18.3.1.4).
      this.b.cpu.dr6 |= DR6_BS;
      this.injectException(1, null);
    }
    const ib = v.get32(F.GUEST_INTERRUPTIBILITY_INFO);
    if (ib & 3) v.set32(F.GUEST_INTERRUPTIBILITY_INFO, ib & ~3);
  }

  /** Writes AL/AX/EAX as an IN does (EAX zero-extends into RAX). */
  private setRax(size: number, val: number): void {
    const r = this.b.cpu.r;
    if (size === 4) {
      r[0] = val | 0;
      r[1] = 0;
    } else if (size === 2) r[0] = (r[0]! & ~0xffff) | (val & 0xffff);
    else r[0] = (r[0]! & ~0xff) | (val & 0xff);
  }

  private setGpr64(reg: number, val: bigint): void {
    const u = BigInt.asUintN(64, val);
    this.b.cpu.r[reg * 2] = Number(u & 0xffffffffn) | 0;
    this.b.cpu.r[reg * 2 + 1] = Number(u >> 32n) | 0;
  }
}

function le(data: Uint8Array, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + (data[i] ?? 0);
  return v >>> 0;
}

function putLe(data: Uint8Array, value: number, size: number): void {
  for (let i = 0; i < size; i++) data[i] = (value >>> (8 * i)) & 0xff;
}
