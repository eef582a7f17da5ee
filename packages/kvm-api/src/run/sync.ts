/**
 * Register state between userspace's view (the Vcpu's `kvm_regs`/`kvm_sregs`, set and read with
 * KVM_SET/GET_REGS and _SREGS) and the running state (GPRs in the CPU, everything else in the VMCS
 * guest-state area), like KVM's register cache: loaded into the VMCS when userspace changed it,
 * written back whenever KVM_RUN returns.
 */
import { fxrstor, fxsave } from "@tskvm/cpu-x86";
import { F, Interruptibility } from "@tskvm/vmx";
import type { KvmExit } from "../exits.js";
import { VcpuState } from "../vcpu.js";
import * as S from "../vcpu-state.js";
import type { VmxBackend } from "./engine.js";
import { sregsToVmcs, vmcsToSregs } from "./vmcs-setup.js";

/** kvm_regs field -> CPU GPR number (SDM register encoding). */
const GPR_INDEX: [keyof S.KvmRegs, number][] = [
  ["rax", 0],
  ["rcx", 1],
  ["rdx", 2],
  ["rbx", 3],
  ["rsp", 4],
  ["rbp", 5],
  ["rsi", 6],
  ["rdi", 7],
  ["r8", 8],
  ["r9", 9],
  ["r10", 10],
  ["r11", 11],
  ["r12", 12],
  ["r13", 13],
  ["r14", 14],
  ["r15", 15],
];

function regsEqual(a: S.KvmRegs, b: S.KvmRegs): boolean {
  for (const n of S.REG_NAMES) if (a[n] !== b[n]) return false;
  return true;
}

function segmentEqual(x: S.KvmSegment, y: S.KvmSegment): boolean {
  return (
    x.base === y.base &&
    x.limit === y.limit &&
    x.selector === y.selector &&
    x.type === y.type &&
    x.present === y.present &&
    x.dpl === y.dpl &&
    x.db === y.db &&
    x.s === y.s &&
    x.l === y.l &&
    x.g === y.g &&
    x.avl === y.avl &&
    x.unusable === y.unusable
  );
}

/** Field by field, without allocating: it runs on every KVM_RUN after userspace set registers. */
function sregsEqual(a: S.KvmSregs, b: S.KvmSregs): boolean {
  for (const n of S.SEGMENT_NAMES) if (!segmentEqual(a[n], b[n])) return false;
  return (
    a.gdt.base === b.gdt.base &&
    a.gdt.limit === b.gdt.limit &&
    a.idt.base === b.idt.base &&
    a.idt.limit === b.idt.limit &&
    a.cr0 === b.cr0 &&
    a.cr2 === b.cr2 &&
    a.cr3 === b.cr3 &&
    a.cr4 === b.cr4 &&
    a.efer === b.efer
  );
}

const FX_SIZE = S.FX_SIZE;

function sameImage(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < FX_SIZE; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class StateSync {
  /** The running state was loaded from userspace's at least once. */
  private loaded = false;
  /**
   * The sregs the Vcpu kept when the running state had values KVM_SET_SREGS refuses (the guest
   * can reach CR4 values userspace may not set): they stand for the running state until it changes.
   */
  private heldSregs: S.KvmSregs | null = null;
  /** The FXSAVE64 image of the x87/SSE state as last exchanged with userspace (KVM_GET/SET_FPU). */
  private readonly lastImage = new Uint8Array(FX_SIZE).fill(0xff);
  private readonly fpuImage = new Uint8Array(FX_SIZE);
  /** Bumped when userspace state was loaded (pending completions check it, as KVM checks RIP). */
  generation = 0;

  constructor(private readonly b: VmxBackend) {}

  /** Loads what userspace set since KVM_RUN last returned into the CPU/VMCS, if it differs. */
  syncIn(): void {
    const vcpu = this.b.vcpu;
    const dirty = vcpu.takeDirty();
    if (dirty & VcpuState.FPU) this.fpuIn();
    if (dirty & VcpuState.XSTATE) this.xstateIn();
    if (dirty & VcpuState.DEBUGREGS) this.b.debug.loadDebugRegs(vcpu.getDebugRegs());
    if ((dirty & (VcpuState.REGS | VcpuState.SREGS)) === 0) return;
    const r = vcpu.getRegs();
    const s = vcpu.getSregs();
    // Userspace wrote back what it read (or nothing new): the running state, blocking included, stays.
    if (
      this.loaded &&
      regsEqual(r, this.runningRegs()) &&
      sregsEqual(s, this.heldSregs ?? this.runningSregs(s))
    )
      return;
    this.loaded = true;
    this.heldSregs = null;
    const cpu = this.b.cpu;
    const v = this.b.unit.vmcs;
    for (const [name, i] of GPR_INDEX) {
      cpu.r[i * 2] = Number(r[name] & 0xffffffffn) | 0;
      cpu.r[i * 2 + 1] = Number(r[name] >> 32n) | 0;
    }
    v.set64(F.GUEST_RIP, r.rip);
    v.set64(F.GUEST_RSP, r.rsp);
    v.set64(F.GUEST_RFLAGS, r.rflags | 2n);
    sregsToVmcs(v, s, cpu, (cr3) => this.pdptes(cr3));
    this.b.nested.sregsLoaded(s.cr0, s.cr4);
    // A fresh register state starts with no blocking and active (KVM_SET_REGS/SREGS semantics).
    v.set32(F.GUEST_INTERRUPTIBILITY_INFO, v.get32(F.GUEST_INTERRUPTIBILITY_INFO) & Interruptibility.NMI);
    v.set32(F.GUEST_ACTIVITY_STATE, 0);
    this.generation++;
  }

  /**
   * KVM_SET_FPU into the CPU's x87 and SSE units when userspace changed it. kvm_fpu is the FXSAVE64
   * image in other clothes (x86.c kvm_arch_vcpu_ioctl_set_fpu): fcw/fsw/ftwx/last_opcode at 0-7,
   * last_ip and last_dp at 8 and 16, MXCSR at 24, fpr at 32, xmm at 160; FXRSTOR64 loads it.
   */
  private fpuIn(): void {
    const img = this.fpuImage;
    S.fpuToImage(this.b.vcpu.getFpu(), img);
    if (sameImage(img, this.lastImage)) return;
    const u = this.b.cpu.fpUnits;
    fxrstor(u.x87, u.sse, img, 0, true, 16);
    this.lastImage.set(img);
  }

  /**
   * KVM_SET_XCRS / KVM_SET_XSAVE's XCR0 and PKRU into the CPU. A new PKRU drops the translations, as
   * WRPKRU does: the TLB keeps the rights PKRU gave.
   */
  private xstateIn(): void {
    const cpu = this.b.cpu;
    const x = this.b.vcpu.getXstate();
    cpu.xcr0Lo = Number(x.xcr0 & 0xffffffffn) | 0;
    cpu.xcr0Hi = Number(x.xcr0 >> 32n) | 0;
    if (cpu.pkru !== x.pkru) {
      cpu.pkru = x.pkru;
      cpu.flushTranslations();
    }
  }

  /** The CPU's x87/SSE state back into the Vcpu's kvm_fpu when the guest changed it (FXSAVE64). */
  private fpuOut(): void {
    const img = this.fpuImage;
    const u = this.b.cpu.fpUnits;
    fxsave(u.x87, u.sse, img, 0, true, 16);
    if (sameImage(img, this.lastImage)) return;
    this.b.vcpu.setFpu(S.imageToFpu(img));
    this.lastImage.set(img);
  }

  /** The four PAE PDPTEs at CR3[31:5] (SDM 4.4.1), from guest memory. */
  private pdptes(cr3: bigint): bigint[] {
    const buf = new Uint8Array(32);
    if (!this.b.vcpu.vm.memory.read(Number(cr3 & 0xffffffe0n), buf)) return [0n, 0n, 0n, 0n];
    const dv = new DataView(buf.buffer);
    return [0, 8, 16, 24].map((o) => dv.getBigUint64(o, true));
  }

  /** kvm_regs of the running state: GPRs in the CPU, RIP/RSP/RFLAGS in the VMCS guest area. */
  private runningRegs(): S.KvmRegs {
    const cpu = this.b.cpu;
    const v = this.b.unit.vmcs;
    const regs = {} as S.KvmRegs;
    for (const [name, i] of GPR_INDEX)
      regs[name] = (BigInt(cpu.r[i * 2 + 1]! >>> 0) << 32n) | BigInt(cpu.r[i * 2]! >>> 0);
    regs.rip = v.get64(F.GUEST_RIP);
    regs.rsp = v.get64(F.GUEST_RSP);
    regs.rflags = v.get64(F.GUEST_RFLAGS);
    return regs;
  }

  /** kvm_sregs of the running state; apicBase, cr8 and the interrupt bitmap come from `base`. */
  private runningSregs(base: S.KvmSregs): S.KvmSregs {
    return this.b.nested.l2Sregs(vmcsToSregs(this.b.unit.vmcs, this.b.cpu, base));
  }

  /** `VcpuBackend.readState`: the running state's `parts` into the Vcpu (KVM_GET_REGS and co.). */
  readState(parts: number): void {
    const vcpu = this.b.vcpu;
    if (parts & VcpuState.REGS) vcpu.setRegs(this.runningRegs());
    if (parts & VcpuState.SREGS) {
      const full = this.runningSregs(vcpu.getSregs());
      if (!vcpu.lapic) {
        const bm: [bigint, bigint, bigint, bigint] = [0n, 0n, 0n, 0n];
        const p = vcpu.pendingExternalVector;
        if (p >= 0) bm[p >>> 6] = 1n << BigInt(p & 63);
        full.interruptBitmap = bm;
      }
      try {
        vcpu.setSregs(full);
        this.heldSregs = null;
      } catch {
        // A state KVM_SET_SREGS would refuse: userspace keeps the previous sregs; the running
        // state is unaffected.
        this.heldSregs = vcpu.getSregs();
      }
    }
    if (parts & VcpuState.FPU) this.fpuOut();
    if (parts & VcpuState.XSTATE) {
      const cpu = this.b.cpu;
      vcpu.setXstate((BigInt(cpu.xcr0Hi >>> 0) << 32n) | BigInt(cpu.xcr0Lo >>> 0), cpu.pkru);
    }
    if (parts & VcpuState.DEBUGREGS) vcpu.setDebugRegs(this.b.debug.readDebugRegs());
  }

  /**
   * Fills kvm_run's status fields that need the running state as KVM_RUN returns (x86.c
   * post_kvm_run_save; the Vcpu adds CR8 and the APIC base); returns `exit`. Registers stay in the
   * CPU and the VMCS until userspace reads them (`readState`).
   */
  out(exit: KvmExit): KvmExit {
    const b = this.b;
    const vcpu = b.vcpu;
    const v = b.unit.vmcs;
    const rf = vcpu.runFields;
    // After an exit taken without the VM exit the CPU holds the guest state, not the VMCS.
    const lazy = b.lazyIo;
    const ifFlag = ((lazy ? b.cpu.flags : v.get32(F.GUEST_RFLAGS)) & 0x200) !== 0;
    rf.ifFlag = ifFlag;
    // pic_in_kernel() || kvm_vcpu_ready_for_interrupt_injection(): with the in-kernel PIC the
    // field is always 1; otherwise IF set, no STI/MOV SS shadow, no event being (re)injected and
    // no KVM_INTERRUPT vector still waiting (kvm_cpu_accept_dm_intr).
    rf.readyForInterruptInjection =
      vcpu.vm.irqchip !== null ||
      (ifFlag &&
        (lazy ? b.cpu.interruptShadow === 0 : (v.get32(F.GUEST_INTERRUPTIBILITY_INFO) & 3) === 0) &&
        !b.entryEventPending() &&
        vcpu.pendingExternalVector < 0);
    return exit;
  }
}
