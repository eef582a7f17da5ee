/**
 * KVM_SET_GUEST_DEBUG on the VMX backend, the way vmx.c does it with the VMCS:
 * - single-step: the "monitor trap flag" control (SDM 26.5.2): an MTF VM exit after each guest
 *   instruction (and after an injected event is delivered), reported as KVM_EXIT_DEBUG with
 *   exception 1 and DR6.BS. Deviation from KVM, which sets RFLAGS.TF and hides it from the guest:
 *   MTF leaves the guest's RFLAGS (PUSHF images, exception frames) untouched, and the CPU has no TF
 *   trap. An instruction the kernel completes itself (CPUID, port I/O, MSRs...) steps too, as
 *   kvm_skip_emulated_instruction() does.
 * - INT3: the exception bitmap's #BP bit (update_exception_bitmap); the #BP exit is KVM_EXIT_DEBUG
 *   with exception 3 and the INT3's address; RIP stays on the INT3.
 * - hardware breakpoints: userspace's DR0-3/DR7 go into the CPU (GUEST_DR7 in the VMCS) while the
 *   guest's own live in a shadow, MOV DR exits so the guest reads and writes its shadow
 *   (handle_dr), and the #DB bit of the exception bitmap makes the CPU's breakpoint #DB a VM exit
 *   (exit qualification = DR6 B0-B3, SDM 28.2.1): the instruction-breakpoint fault and the data
 *   (R/W = 01, 11) and I/O (10) breakpoint traps alike.
 * With single-step or hardware breakpoints every #DB goes to userspace (handle_exception_nmi).
 *
 * Guest debugging applies to the vCPU's own code (L1); while L2 runs a changed setting waits for
 * the next exit to L1. Off, it costs the run loop one compare per KVM_RUN and one per VM exit.
 */
import { F, INTR_INFO_VALID, IntrType, Proc } from "@tskvm/vmx";
import { KVM_EXIT_DEBUG, type KvmExit } from "../exits.js";
import {
  DR6_ACTIVE_LOW,
  DR6_BD,
  DR6_BS,
  KVM_GUESTDBG_SINGLESTEP,
  KVM_GUESTDBG_USE_HW_BP,
  KVM_GUESTDBG_USE_SW_BP,
} from "../guest-debug.js";
import type { KvmDebugRegs } from "../vcpu-state.js";
import type { VmxBackend } from "./engine.js";
import { EXCEPTION_BITMAP_BASE } from "./vmcs-setup.js";

const DB = 1;
const BP = 3;

export class GuestDebugUnit {
  /** The effective control (0 when off). */
  control = 0;
  /** An instruction completed by the kernel under single-step: report it before re-entering. */
  stepPending = false;
  /** Length of the last INT3 that exited (for KVM_GUESTDBG_INJECT_BP, vmx_inject_exception). */
  private bpLength = 1;
  private seen = 0;
  /** The guest's DR0-3 (lo/hi pairs) and DR7 while userspace's are in the CPU; null otherwise. */
  private shadow: { dr: Int32Array; dr7: bigint } | null = null;

  constructor(private readonly b: VmxBackend) {}

  private get v() {
    return this.b.unit.vmcs;
  }

  /** Single-step is on (the kernel's own instruction completions report a step). */
  get stepping(): boolean {
    return (this.control & KVM_GUESTDBG_SINGLESTEP) !== 0;
  }

  /** No KVM_SET_GUEST_DEBUG since the last `sync`, and no guest debugging on. */
  get idle(): boolean {
    return this.control === 0 && this.b.vcpu.guestDebugGeneration === this.seen;
  }

  /** At KVM_RUN: applies a KVM_SET_GUEST_DEBUG made since the last one, and its inject request. */
  sync(): void {
    const vcpu = this.b.vcpu;
    if (vcpu.guestDebugGeneration === this.seen || this.b.nested.l2Active) return;
    this.seen = vcpu.guestDebugGeneration;
    const d = vcpu.getGuestDebug();
    const c = d.control;
    this.control = c;
    const v = this.v;
    const hw = (c & KVM_GUESTDBG_USE_HW_BP) !== 0;
    let eb = v.get32(F.EXCEPTION_BITMAP) & ~((1 << DB) | (1 << BP));
    if (c & (KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_USE_HW_BP)) eb |= 1 << DB;
    if (c & KVM_GUESTDBG_USE_SW_BP) eb |= 1 << BP;
    v.set32(F.EXCEPTION_BITMAP, eb | EXCEPTION_BITMAP_BASE);
    let proc = v.get32(F.CPU_BASED_VM_EXEC_CONTROL) & ~(Proc.MONITOR_TRAP_FLAG | Proc.MOV_DR_EXITING);
    if (this.stepping) proc |= Proc.MONITOR_TRAP_FLAG;
    if (hw) proc |= Proc.MOV_DR_EXITING;
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, proc);
    const cpu = this.b.cpu;
    if (hw) {
      this.shadow ??= { dr: cpu.dr.slice(0, 8), dr7: v.get64(F.GUEST_DR7) };
      for (let i = 0; i < 4; i++) {
        const r = d.debugreg[i]!;
        cpu.dr[2 * i] = Number(r & 0xffffffffn) | 0;
        cpu.dr[2 * i + 1] = Number(r >> 32n) | 0;
      }
      // DR7 bit 10 reads as 1, bits 11-12 and 14-15 as 0 (SDM 18.2.4).
      v.set64(F.GUEST_DR7, (d.debugreg[7]! | 0x400n) & ~0xd800n);
    } else if (this.shadow !== null) {
      cpu.dr.set(this.shadow.dr);
      v.set64(F.GUEST_DR7, this.shadow.dr7);
      this.shadow = null;
    }
    const inj = vcpu.guestDebugInject;
    vcpu.guestDebugInject = -1;
    if (inj === DB) this.b.handlers.injectException(DB, null);
    else if (inj === BP) {
      // #BP is a software exception: delivery returns past the INT3 (kvm_exception_is_soft).
      v.set32(F.VM_ENTRY_INTR_INFO_FIELD, (INTR_INFO_VALID | BP | (IntrType.SW_EXCEPTION << 8)) >>> 0);
      v.set32(F.VM_ENTRY_INSTRUCTION_LEN, this.bpLength);
    }
  }

  /**
   * KVM_SET_DEBUGREGS: the guest's DR0-3, DR6 and DR7 (kvm_vcpu_ioctl_x86_set_debugregs). DR0-3
   * and DR7 go to the shadow while userspace's breakpoints own the CPU's; DR7 lives in the VMCS.
   */
  loadDebugRegs(d: KvmDebugRegs): void {
    const drs = this.shadow !== null ? this.shadow.dr : this.b.cpu.dr;
    for (let i = 0; i < 4; i++) {
      drs[2 * i] = Number(d.db[i]! & 0xffffffffn) | 0;
      drs[2 * i + 1] = Number(d.db[i]! >> 32n) | 0;
    }
    this.b.cpu.dr6 = Number(d.dr6 & 0xffffffffn) | 0;
    if (this.shadow !== null) this.shadow.dr7 = d.dr7;
    else this.v.set64(F.GUEST_DR7, d.dr7);
  }

  /** KVM_GET_DEBUGREGS: the guest's view of its debug registers, as the running guest left them. */
  readDebugRegs(): KvmDebugRegs {
    const drs = this.shadow !== null ? this.shadow.dr : this.b.cpu.dr;
    const db = [0n, 0n, 0n, 0n] as KvmDebugRegs["db"];
    for (let i = 0; i < 4; i++) db[i] = (BigInt(drs[2 * i + 1]! >>> 0) << 32n) | BigInt(drs[2 * i]! >>> 0);
    const dr7 = this.shadow !== null ? this.shadow.dr7 : this.v.get64(F.GUEST_DR7);
    return { db, dr6: BigInt(this.b.cpu.dr6 >>> 0), dr7, flags: 0 };
  }

  /** kvm_get_linear_rip(): CS.base + RIP, truncated to 32 bits outside 64-bit mode. */
  private linearRip(): bigint {
    const v = this.v;
    const rip = v.get64(F.GUEST_RIP);
    const lma = (v.get64(F.GUEST_IA32_EFER) & 0x400n) !== 0n;
    if (lma && v.get32(F.GUEST_CS_AR_BYTES) & 0x2000) return rip;
    return (v.get64(F.GUEST_CS_BASE) + rip) & 0xffffffffn;
  }

  private exit(exception: number, dr6: bigint): KvmExit {
    return {
      kind: "debug",
      reason: KVM_EXIT_DEBUG,
      exception,
      pc: this.linearRip(),
      dr6: dr6 | DR6_ACTIVE_LOW,
      dr7: this.v.get64(F.GUEST_DR7),
    };
  }

  /** One instruction completed under single-step (an MTF exit or a kernel completion). */
  stepExit(): KvmExit {
    this.stepPending = false;
    return this.exit(DB, DR6_BS);
  }

  /**
   * A #DB or #BP exit (handle_exception_nmi): userspace's when guest debugging asked for it, else
   * null and the caller reflects it into the guest.
   */
  exception(vector: number, qualification: bigint, instructionLength: number): KvmExit | null {
    const c = this.control;
    if (vector === BP && c & KVM_GUESTDBG_USE_SW_BP) {
      this.bpLength = instructionLength || 1;
      return this.exit(BP, 0n);
    }
    if (vector === DB && c & (KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_USE_HW_BP))
      return this.exit(DB, qualification);
    return null;
  }

  /**
   * handle_dr()'s general detect: the MOV-DR exit comes before the #DB that DR7.GD (in the DR7 the
   * guest runs with, userspace's under USE_HW_BP) raises for the MOV (SDM Vol. 3 18.2.4), so the
   * kernel raises it: KVM_EXIT_DEBUG with DR6.BD under USE_HW_BP, else a #DB for the guest with
   * DR6.BD set. Null when GD is clear and the MOV goes ahead.
   */
  generalDetect(): KvmExit | "injected" | null {
    if ((this.v.get64(F.GUEST_DR7) & 0x2000n) === 0n) return null;
    if (this.control & KVM_GUESTDBG_USE_HW_BP) return this.exit(DB, DR6_BD);
    this.b.cpu.dr6 |= Number(DR6_BD);
    this.b.handlers.injectException(DB, null);
    return "injected";
  }

  /**
   * handle_dr(): a guest MOV to/from DRn while userspace owns the debug registers works on the
   * guest's shadow (DR6 stays the CPU's: every #DB goes to userspace meanwhile). Returns false when
   * the instruction faults (#GP for a DR6/DR7 value above 32 bits, SDM Vol. 2 MOV DR).
   */
  movDr(qualification: number): boolean {
    const s = this.shadow;
    const cpu = this.b.cpu;
    const dr = qualification & 7;
    const toDr = (qualification & 0x10) === 0;
    const gpr = (qualification >>> 8) & 15;
    const wide = cpu.codeMode === 64;
    const dr7 = s !== null ? s.dr7 : this.v.get64(F.GUEST_DR7);
    const drs = s !== null ? s.dr : cpu.dr;
    if (!toDr) {
      let lo: number;
      let hi = 0;
      if (dr < 4) {
        lo = drs[2 * dr]!;
        hi = wide ? drs[2 * dr + 1]! : 0;
      } else lo = dr === 6 ? cpu.dr6 : Number(dr7);
      cpu.r[gpr * 2] = lo | 0;
      cpu.r[gpr * 2 + 1] = hi;
      return true;
    }
    const lo = cpu.r[gpr * 2]!;
    const hi = wide ? cpu.r[gpr * 2 + 1]! : 0;
    if (dr >= 6 && hi !== 0) return false;
    if (dr < 4) {
      drs[2 * dr] = lo;
      drs[2 * dr + 1] = hi;
    } else if (dr === 6) cpu.dr6 = (lo | 0xffff0ff0) & ~0x1000;
    else {
      const nv = BigInt(((lo | 0x400) & ~0xd800) >>> 0);
      if (s !== null) s.dr7 = nv;
      else this.v.set64(F.GUEST_DR7, nv);
    }
    return true;
  }
}
