/**
 * The engine behind `Vcpu.run()`: KVM_RUN as arch/x86/kvm/vmx does it (vcpu_run -> vcpu_enter_guest
 * -> vmx_vcpu_run -> vmx_handle_exit), over the software VMX of `@tskvm/vmx`, the CPU of
 * `@tskvm/cpu-x86` and the two-dimensional walk of `@tskvm/mmu-ept`.
 *
 * One iteration: process INIT/SIPI and the halted state, service expired timers, inject a pending
 * event through the VM-entry interruption-information field (or arm interrupt-window exiting),
 * VMLAUNCH/VMRESUME, run the CPU in non-root mode with the VMX intercept decisions as its hook and
 * guest paging + EPT as its translator, VM exit, then handle the exit in the kernel (exits.ts) and
 * loop, or return a `kvm_run` exit to userspace.
 */
import { Cpu, FAULT, RunExit, TranslateFault, type TranslateResult, type Translator } from "@tskvm/cpu-x86";
import { Mmu } from "@tskvm/mmu-ept";
import {
  DEFAULT_CR4_FIXED1,
  type ExitInfo,
  ExitReason,
  F,
  INTR_INFO_VALID,
  IntrType,
  Proc,
  VmxCaps,
  VmxUnit,
} from "@tskvm/vmx";
import { DeterministicClock } from "../clock.js";
import { applyGuestCpuid } from "../cpu-features.js";
import { MSR_IA32_TSC_DEADLINE } from "../devices/lapic-regs.js";
import {
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_INTERNAL_ERROR_DELIVERY_EV,
  KVM_INTERNAL_ERROR_EMULATION,
  type KvmExit,
} from "../exits.js";
import { KVM_API_MSRS, type Vcpu, type VcpuBackend } from "../vcpu.js";
import * as S from "../vcpu-state.js";
import { GuestDebugUnit } from "./debug.js";
import { EptMap } from "./ept-map.js";
import { ExitHandlers } from "./exits.js";
import { GuestBus } from "./guest-bus.js";
import { NonRootHooks } from "./hooks.js";
import { HOST_PHYS_BITS, HostMemory, WalkMemory } from "./host-memory.js";
import { type NestedState, NestedVmx } from "./nested.js";
import { StateSync } from "./sync.js";
import { CR4_PKE, msrBitmap, programControls } from "./vmcs-setup.js";
import { cpuToRecord, recordToCpu, VmxStateRecord } from "./vmx-state.js";

/** `beforeEntry`: the vCPU blocked and woke; look again. */
const AGAIN = 1;

/** `kernelWork`: nothing for the kernel, run on. */
const WORK_NONE = 0;
/** `kernelWork`: a timer deadline passed or an interrupt became deliverable, nothing else. */
const WORK_EVENTS = 1;
/** `kernelWork`: a kick, an NMI, a run budget spent...: the exit and the entry path. */
const WORK_ENTRY = 2;

/** Tuning of one vCPU's run loop. */
export interface VmxBackendOptions {
  /** Instructions per CPU slice between looks at timers and kicks (default 8192). */
  sliceInstructions?: number;
  /** Host milliseconds one `run()` may spend before returning KVM_EXIT_INTR (default 50). */
  maxRunMs?: number;
  /** Guest instructions one `run()` may retire before returning KVM_EXIT_INTR (default 50M). */
  maxRunInstructions?: number;
  /** Longest a halted vCPU waits in one `run()` before KVM_EXIT_INTR (host ms, default 10). */
  maxHaltMs?: number;
  /**
   * A word in shared memory another thread sets non-zero (then `Atomics.notify`) to kick this vCPU
   * out to userspace with KVM_EXIT_INTR, as a signal does to a thread in KVM_RUN. Cleared on exit.
   */
  kickWord?: Int32Array;
  /**
   * Nested VMX (KVM's `nested` module parameter): the guest may run its own hypervisor when its
   * CPUID.1:ECX.VMX is also set (KVM_SET_CPUID2). Defaults to the Kvm's `nested` option.
   */
  nestedVmx?: boolean;
  /**
   * Executions of a looping code region before the CPU compiles it to JavaScript (cpu-x86's
   * `CpuOptions.jitThreshold`; regions without a loop wait JIT_STRAIGHT_FACTOR times longer).
   * Defaults to the CPU's JIT_THRESHOLD.
   */
  jitThreshold?: number;
}

/** Translator wrapper that remembers the linear address of an EPT exit (SDM 28.2.1 guest-linear). */
class EptTranslator implements Translator {
  linLo = 0;
  linHi = 0;
  /** The walker in use: L0's EPT over guest paging, or for L2 with nested EPT L1's (nested.ts). */
  constructor(public mmu: Mmu) {}
  translate(linLo: number, linHi: number, access: number, out: TranslateResult): boolean {
    if (this.mmu.translate(linLo, linHi, access, out)) return true;
    if (out.fault === TranslateFault.EXIT) {
      this.linLo = linLo;
      this.linHi = linHi;
    }
    return false;
  }
}

const hostNowMs = (): number => performance.now();

/** MSRs with a copy in the VMCS guest-state area (SDM 25.4.1): SYSENTER_CS/ESP/EIP, PAT, FS/GS base. */
const VMCS_MSR_FIELDS = new Map<number, number>([
  [0x174, F.GUEST_SYSENTER_CS],
  [0x175, F.GUEST_SYSENTER_ESP],
  [0x176, F.GUEST_SYSENTER_EIP],
  [0x277, F.GUEST_IA32_PAT],
  [0xc0000100, F.GUEST_FS_BASE],
  [0xc0000101, F.GUEST_GS_BASE],
]);

/** The VMX + CPU backend of one vCPU (`vcpu.backend`). */
export class VmxBackend implements VcpuBackend {
  /** The VMX hardware: CR4.PKE may be 1 (the CPU has protection keys, opt-in per guest CPUID). */
  readonly caps = new VmxCaps({ physAddrBits: HOST_PHYS_BITS, cr4Fixed1: DEFAULT_CR4_FIXED1 | CR4_PKE });
  readonly host = new HostMemory();
  readonly ept = new EptMap();
  readonly record = new VmxStateRecord();
  readonly unit: VmxUnit;
  readonly hooks: NonRootHooks;
  readonly bus: GuestBus;
  readonly mmu: Mmu;
  readonly translator: EptTranslator;
  readonly cpu: Cpu;
  readonly sync: StateSync;
  readonly handlers: ExitHandlers;
  readonly nested: NestedVmx;
  readonly debug: GuestDebugUnit;
  readonly opts: Required<Omit<VmxBackendOptions, "kickWord" | "jitThreshold">> & { kickWord: Int32Array };
  /** VM-exit counts by basic reason (for tests and tuning). */
  readonly exitCounts = new Map<number, number>();
  private eptStale = true;
  /** Set by irqchip kicks: something may be deliverable, leave the slice or the halt wait. */
  private wake = false;
  /** Set by `requestExit()`. */
  private exitRequested = false;
  private runStartMs = 0;
  private runStartInsns = 0;
  /** Guest time at the start of this KVM_RUN; kept for the deterministic clock only (`block`). */
  private runStartNs = 0;
  /**
   * The exit information of an intercepted instruction, refilled for each one: most exits of a boot
   * are these (port I/O, MSRs, CPUID), and the VMX unit reads it only during `exit`.
   */
  private readonly interceptExit: ExitInfo = {
    reason: 0,
    qualification: 0n,
    guestLinear: undefined,
    guestPhysical: 0n,
    intrInfo: 0,
    intrErrorCode: undefined,
    idtVectoringInfo: undefined,
    idtVectoringErrorCode: undefined,
    instructionLength: 0,
    instructionInfo: undefined,
  };
  /** The vCPU's CPUID generation the CPU's features were fitted to. */
  private cpuidSeen = -1;
  /**
   * A port I/O exit for userspace taken without the VM exit (`ioWithoutExit`): the guest state is
   * still the CPU's, and the VMCS guest area is as the last VM exit left it. The next `run()`
   * finishes the instruction on the CPU and goes on without a VM entry (`resumeWithoutEntry`), or
   * anything that needs the VMCS makes the exit real first (`flushLazyExit`).
   */
  lazyIo = false;
  private lazyQual = 0;
  private lazyLen = 0;
  /** An event was injected by this entry: with MTF the exit is due before any instruction (SDM 26.5.2). */
  private injectedAtEntry = false;

  constructor(
    readonly vcpu: Vcpu,
    opts: VmxBackendOptions = {},
  ) {
    this.opts = {
      sliceInstructions: opts.sliceInstructions ?? 8192,
      maxRunMs: opts.maxRunMs ?? 50,
      maxRunInstructions: opts.maxRunInstructions ?? 50_000_000,
      maxHaltMs: opts.maxHaltMs ?? 10,
      nestedVmx: opts.nestedVmx ?? vcpu.vm.kvm.nested,
      kickWord: opts.kickWord ?? new Int32Array(new SharedArrayBuffer(4)),
    };
    this.unit = new VmxUnit({ caps: this.caps, cpu: this.record, mem: this.host });
    this.hooks = new NonRootHooks(this.unit.vmcs, this.host);
    this.bus = new GuestBus(vcpu, () => this.cpu, this.hooks);
    const vm = vcpu.vm;
    this.cpu = new Cpu({
      memory: this.bus,
      io: this.bus,
      intercepts: this.hooks,
      interrupts: null,
      clock: { now: () => vcpu.tsc() },
      jitThreshold: opts.jitThreshold,
    });
    // Guest paging walked through EPT (the 2D walk); the walker reads the CPU's paging registers.
    this.mmu = new Mmu(this.cpu, new WalkMemory(vm.memory, this.ept.mem), {
      tlb: false,
      maxPhyAddr: HOST_PHYS_BITS,
    });
    this.translator = new EptTranslator(this.mmu);
    this.cpu.translator = this.translator;
    this.hooks.cpu = this.cpu;
    this.sync = new StateSync(this);
    this.handlers = new ExitHandlers(this);
    this.debug = new GuestDebugUnit(this);
    vm.memory.onChange((c) => {
      if (c.kind === "dirty-log-reset") this.cpu.flushTranslations();
      else this.eptStale = true;
    });
    vm.onKick((i) => {
      if (i === vcpu.index) this.wake = true;
    });
    this.vmxOn();
    this.nested = new NestedVmx(this);
    const pending = vcpu.takePendingNestedState();
    if (pending !== null) this.nested.setState(pending);
  }

  /** KVM_GET_NESTED_STATE. */
  getNestedState(): NestedState | null {
    this.flushLazyExit();
    return this.nested.getState();
  }

  /** KVM_SET_NESTED_STATE (throws VmxStateError). */
  setNestedState(s: NestedState): void {
    this.flushLazyExit();
    this.nested.setState(s);
  }

  /** KVM_GET_MSRS: the MSR as the guest sees it now (the CPU's own, kvm-api's, nested VMX's). */
  hostReadMsr(index: number): bigint | undefined {
    this.flushLazyExit();
    return this.handlers.readMsr(index >>> 0);
  }

  /**
   * KVM_SET_MSRS: kvm-api's MSRs host-initiated, the rest into the CPU; those the VMCS guest area
   * also holds (loaded at every entry) are written there too.
   */
  hostWriteMsr(index: number, value: bigint): boolean {
    this.flushLazyExit();
    const idx = index >>> 0;
    if (KVM_API_MSRS.includes(idx) || (idx >= 0x800 && idx <= 0x8ff))
      return this.vcpu.writeMsr(idx, value, true);
    if (!this.handlers.writeMsr(idx, Number(value & 0xffffffffn) | 0, Number(value >> 32n) | 0)) return false;
    const field = VMCS_MSR_FIELDS.get(idx);
    if (field !== undefined) {
      if (idx === 0x174) this.unit.vmcs.set32(field, Number(value & 0xffffffffn));
      else this.unit.vmcs.set64(field, value);
    }
    return true;
  }

  readState(parts: number): void {
    this.flushLazyExit();
    this.sync.readState(parts);
  }

  /** KVM_SET_GUEST_DEBUG's inject requests are EBUSY while an event waits for entry. */
  exceptionPending(): boolean {
    this.flushLazyExit();
    return this.entryEventPending();
  }

  /** Makes the next (or current) `run()` return KVM_EXIT_INTR, like a signal to the vCPU thread. */
  requestExit(): void {
    this.exitRequested = true;
    this.cpu.requestStop();
  }

  /** VMXON, VMCLEAR, VMPTRLD, then the VMCS as KVM programs it (vmx_vcpu_create / init_vmcs). */
  private vmxOn(): void {
    const h = this.host;
    const vmxon = h.alloc();
    const vmcs = h.alloc();
    const bitmap = h.alloc();
    const hostCr3 = h.alloc();
    const rev = new Uint8Array(4);
    new DataView(rev.buffer).setUint32(0, this.caps.config.revisionId, true);
    h.write(vmxon, rev);
    h.write(vmcs, rev);
    h.write(bitmap, msrBitmap());
    const u = this.unit;
    const ok = (o: { kind: string }, what: string) => {
      if (o.kind !== "done" || (this.record.rflags & 0x41n) !== 0n)
        throw new Error(`kvm-api: ${what} failed`);
    };
    ok(
      u.vmxon(() => BigInt(vmxon)),
      "VMXON",
    );
    ok(
      u.vmclear(() => BigInt(vmcs)),
      "VMCLEAR",
    );
    ok(
      u.vmptrld(() => BigInt(vmcs)),
      "VMPTRLD",
    );
    programControls(u.vmcs, this.caps, { msrBitmap: bitmap, hostCr3 }, this.ept.eptp());
  }

  // ------------------------------------------------------------------------------------- KVM_RUN

  run(vcpu: Vcpu): KvmExit {
    this.runStartMs = hostNowMs();
    this.runStartInsns = this.cpu.executed;
    // The host clock's nowNs() is a performance.now() of its own (~0.5 us, and a boot makes ~20,000
    // KVM_RUNs); only the deterministic clock's halt budget reads runStartNs.
    const clock = vcpu.vm.clock;
    if (clock.mode === "deterministic") this.runStartNs = clock.nowNs();
    if (vcpu.cpuidGeneration !== this.cpuidSeen) {
      this.cpuidSeen = vcpu.cpuidGeneration;
      applyGuestCpuid(this.cpu.cpuidModel, vcpu.cpuidEntries(), vcpu.vm.kvm.hostCpuid());
    }
    // After an I/O exit taken without the VM exit: on without the VM entry when nothing needs it.
    let resumed = false;
    if (this.lazyIo) {
      const r = this.resumeWithoutEntry();
      if (r !== true && r !== false) return this.sync.out(r);
      resumed = r;
    }
    if (!resumed) {
      this.sync.syncIn();
      this.debug.sync();
      const pending = this.handlers.complete();
      if (pending !== null) return this.sync.out(pending);
      if (this.debug.stepPending) return this.sync.out(this.debug.stepExit());
    }
    for (;;) {
      if (!resumed) {
        const pre = this.beforeEntry(vcpu);
        if (pre === AGAIN) continue;
        if (pre !== null) return this.sync.out(pre);
      }
      resumed = false;
      const fatal = this.runGuest();
      if (fatal !== null) return this.sync.out(fatal);
      const r = this.handlers.handle(this.countExit());
      if (r !== null) return this.sync.out(r);
      // Single-step: an instruction the kernel completed reports now (KVM's
      // kvm_skip_emulated_instruction -> kvm_vcpu_do_singlestep); after a userspace exit, at the
      // next KVM_RUN once that exit is completed.
      if (this.debug.stepPending) return this.sync.out(this.debug.stepExit());
    }
  }

  /**
   * vcpu_enter_guest() up to the VM entry: kicks, memory changes, INIT/SIPI, the halted state,
   * timers, event injection, then VMLAUNCH/VMRESUME. Returns null once entered, AGAIN to look
   * again (the vCPU was blocked and woke), or the exit for userspace.
   */
  private beforeEntry(vcpu: Vcpu): KvmExit | typeof AGAIN | null {
    if (this.interrupted()) return { kind: "intr", reason: KVM_EXIT_INTR };
    if (this.eptStale) this.rebuildEpt();
    if (vcpu.lapic?.pendingEvents) {
      vcpu.acceptEvents();
      this.sync.syncIn();
    }
    // Not runnable: wait-for-SIPI (an AP before SIPI) or halted with nothing to wake it.
    if (vcpu.mpState === S.KVM_MP_STATE_UNINITIALIZED || vcpu.mpState === S.KVM_MP_STATE_INIT_RECEIVED) {
      if (!this.block()) return { kind: "intr", reason: KVM_EXIT_INTR };
      return AGAIN;
    }
    if (vcpu.mpState === S.KVM_MP_STATE_HALTED) {
      this.serviceTimers();
      if (this.handlers.hasWakeEvent()) vcpu.mpState = S.KVM_MP_STATE_RUNNABLE;
      else {
        if (!this.block()) return { kind: "intr", reason: KVM_EXIT_INTR };
        return AGAIN;
      }
    }
    this.serviceTimers();
    if (!this.bus.replaying && !this.hooks.emulatingIo) {
      // The irqchip's kicks so far (a timer serviced just now, an MSI from userspace) are answered
      // by this look at the events, as vcpu_enter_guest() clears KVM_REQ_EVENT before
      // inject_pending_event(): left set, they would end the guest's first slice with a VM exit
      // that finds nothing to do.
      this.wake = false;
      const l1 = this.nested.checkEvents();
      if (l1 !== null) return l1;
      const early = this.handlers.injectEvents();
      if (early !== null) return early;
      this.nested.rearmWindows();
    }
    return this.enter();
  }

  /** The basic reason of the VM exit just made, counted. */
  private countExit(): number {
    return this.count(this.unit.vmcs.get32(F.VM_EXIT_REASON) & 0xffff);
  }

  /** One more exit for `reason` in `exitCounts` (made, or handled without the VM exit). */
  private count(reason: number): number {
    this.exitCounts.set(reason, (this.exitCounts.get(reason) ?? 0) + 1);
    return reason;
  }

  /**
   * Can an exit be handled without the VM exit (the `...WithoutExit` paths)? Only when the exit
   * would change nothing the CPU does not hold but the VMCS: an in-kernel irqchip (events are
   * injected in the kernel, never by KVM_EXIT_IRQ_WINDOW_OPEN), not L2 (the exit may be L1's), no
   * guest debugging, no RFLAGS.TF or STI/MOV-SS shadow (which `ExitHandlers.skip` acts on), no
   * enabled breakpoints, no bus access waiting for userspace. The caller checks MTF and single
   * instructions (string I/O emulation, replays), which `runGuest` knows.
   */
  private exitless(): boolean {
    const cpu = this.cpu;
    return (
      this.vcpu.lapic !== null &&
      !this.nested.l2Active &&
      this.debug.idle &&
      (cpu.flags & 0x100) === 0 &&
      cpu.interruptShadow === 0 &&
      (cpu.dr7 & 0xff) === 0 &&
      this.bus.posted.length === 0 &&
      this.bus.pendingRead === null
    );
  }

  /**
   * An event the last entry injected was delivered before the first guest instruction (`enter`):
   * all a VM exit would do about it is clear the valid bit of the VM-entry interruption-information
   * field (SDM 28.2), so that a later entry does not inject it again. Every exit handled without
   * the VM exit does that first.
   */
  private retireEntryEvent(): void {
    const v = this.unit.vmcs;
    const info = v.get32(F.VM_ENTRY_INTR_INFO_FIELD);
    if ((info & INTR_INFO_VALID) !== 0) v.set32(F.VM_ENTRY_INTR_INFO_FIELD, info & ~INTR_INFO_VALID);
  }

  /**
   * An intercepted instruction handled without the VM exit, when that is safe (`exitless`):
   * undefined when the exit must be made, null when the kernel completed the instruction, else
   * the exit for userspace (port I/O only).
   */
  private interceptWithoutExit(reason: number, len: number): KvmExit | null | undefined {
    switch (reason) {
      case ExitReason.IO_INSTRUCTION:
        return this.ioWithoutExit();
      case ExitReason.CPUID:
        return this.cpuidWithoutExit(len);
      case ExitReason.WRMSR:
        return this.tscDeadlineWithoutExit(len);
      default:
        return undefined;
    }
  }

  /**
   * CPUID from the vCPU's table written straight into the CPU's RAX..RDX, RIP stepped there
   * (`ExitHandlers.cpuidOnCpu`, the code the full exit runs). Linux runs it a hundred times per
   * boot, each a software VM exit and entry for four registers. The instruction is not counted in
   * `cpu.executed`, as for the full exit: the deterministic clock stays the same either way.
   */
  private cpuidWithoutExit(len: number): null | undefined {
    if (!this.exitless()) return undefined;
    this.retireEntryEvent();
    this.count(ExitReason.CPUID);
    this.handlers.cpuidOnCpu(len);
    return null;
  }

  /**
   * WRMSR to IA32_TSC_DEADLINE through the full exit's write path (`ExitHandlers.wrmsrOnCpu`),
   * without the VM exit: KVM's handle_fastpath_set_msr_irqoff() (arch/x86/kvm/x86.c) does the same
   * for this MSR (and the x2APIC ICR) before interrupts are even enabled after the VM exit. A
   * write that is #GP takes the full exit, which injects it. The new deadline (or a timer that
   * fires at once) is then looked at where the slice would end (`sliceEnd`).
   */
  private tscDeadlineWithoutExit(len: number): null | undefined {
    if (this.cpu.r[2] !== MSR_IA32_TSC_DEADLINE || !this.exitless()) return undefined;
    if (!this.handlers.wrmsrOnCpu(len)) return undefined;
    this.retireEntryEvent();
    this.count(ExitReason.WRMSR);
    return null;
  }

  /**
   * A non-string IN/OUT the CPU stopped at (`hooks.exit`), handled without a VM exit when the exit
   * would change nothing but the VMCS: KVM's handle_io in the kernel, or a KVM_EXIT_IO for userspace
   * whose completion then goes to the CPU (`resumeWithoutEntry`). Returns undefined when the exit
   * must be made (no in-kernel irqchip, nested L2, guest debugging, single-step, an interrupt
   * shadow, enabled breakpoints, string I/O, pending bus accesses); null when the kernel completed
   * the instruction; else the exit for userspace. A software VM exit and entry cost more
   * than the rest of an I/O round trip, and the serial console makes two per character.
   */
  private ioWithoutExit(): KvmExit | null | undefined {
    const e = this.hooks.exit;
    const qual = Number(e.qualification);
    if ((qual & 0x10) !== 0 || !this.exitless()) return undefined;
    this.retireEntryEvent();
    this.count(ExitReason.IO_INSTRUCTION);
    const r = this.handlers.ioOnCpu(qual, e.instructionLength);
    if (r !== null) {
      this.lazyIo = true;
      this.lazyQual = qual;
      this.lazyLen = e.instructionLength;
    }
    return r;
  }

  /**
   * KVM_RUN after `ioWithoutExit` went to userspace: completes the instruction on the CPU (IN data,
   * RIP) and returns true to run on without a VM entry, when userspace changed no state, no guest
   * debugging was set, and no NMI or NMI window, INIT/SIPI, kick or memory change needs the entry
   * path (which would inject or rearm through the VMCS); external interrupts and their window are
   * handled on the CPU (`interruptWithoutEntry`). Otherwise makes the VM exit real (completed or
   * not) for the full path. An exit for userspace if delivering an interrupt failed.
   */
  private resumeWithoutEntry(): boolean | KvmExit {
    if (!this.entryNeeded()) {
      this.handlers.complete(true);
      this.serviceTimers();
      // Kicks so far are answered here, as in `beforeEntry`.
      this.wake = false;
      if (!this.nmiNeedsEntry()) return this.interruptWithoutEntry();
    }
    this.flushLazyExit();
    return false;
  }

  /**
   * Does `beforeEntry` have work besides timers and external interrupts: registers userspace set,
   * a KVM_SET_GUEST_DEBUG, memory changes, INIT/SIPI, a vCPU not runnable, a kick?
   */
  private entryNeeded(): boolean {
    const vcpu = this.vcpu;
    return (
      vcpu.dirtyParts !== 0 ||
      !this.debug.idle ||
      this.eptStale ||
      (vcpu.lapic?.pendingEvents ?? 0) !== 0 ||
      vcpu.mpState !== S.KVM_MP_STATE_RUNNABLE ||
      this.kicked()
    );
  }

  /** An NMI to inject or an NMI window armed: `injectEvents` does those through the VMCS. */
  private nmiNeedsEntry(): boolean {
    return (
      this.vcpu.hasNmi() ||
      (this.unit.vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.NMI_WINDOW_EXITING) !== 0
    );
  }

  /**
   * Where a slice ended, or the kernel completed an instruction without the exit: undefined to run
   * on, else what `runGuest` returns (null once the VM exit is made, or an exit for userspace).
   * `fast`: no MTF and no single instruction, so the exit may be left out (`eventsWithoutExit`).
   */
  private sliceEnd(fast: boolean): KvmExit | null | undefined {
    const w = this.kernelWork();
    if (w === WORK_NONE) return undefined;
    if (w === WORK_EVENTS && fast) {
      const r = this.eventsWithoutExit();
      if (r === true) return undefined;
      if (r !== false) return r;
    }
    return this.hostInterrupt();
  }

  /**
   * The external-interrupt exit of an expired timer or of an interrupt that became deliverable,
   * without the VM exit and entry: the timers serviced as `handle` would, then the interrupt
   * delivered, or its window armed, on the CPU (`interruptWithoutEntry`) as `beforeEntry` would
   * through the VMCS. Real KVM's VMX preemption-timer fastpath does this for the LAPIC timer
   * (handle_fastpath_preemption_timer, arch/x86/kvm/vmx/vmx.c: the expired timer's interrupt is
   * injected and the guest re-entered without leaving vcpu_enter_guest's irqs-off loop). Counted as
   * the EXTERNAL_INTERRUPT exit it replaces, so exit statistics compare with the full path. False
   * (nothing counted) when the exit and the entry path are needed: then also after servicing, when
   * a timer raised an NMI or INIT (LVT delivery modes); `handle` then services nothing twice.
   */
  private eventsWithoutExit(): boolean | KvmExit {
    if (!this.exitless() || this.entryNeeded()) return false;
    this.serviceTimers();
    // A timer that fired kicked this vCPU: answered here, as in `beforeEntry`.
    this.wake = false;
    if (this.nmiNeedsEntry() || (this.vcpu.lapic?.pendingEvents ?? 0) !== 0) return false;
    this.retireEntryEvent();
    this.count(ExitReason.EXTERNAL_INTERRUPT);
    return this.interruptWithoutEntry();
  }

  /**
   * `injectEvents` for external interrupts, done on the CPU instead of through the VMCS: a pending
   * interrupt the guest can take now (RFLAGS.IF set, no STI/MOV-SS blocking) is acknowledged at the
   * irqchip and delivered through the guest IDT before the next instruction, which is what the VM
   * entry does with the VM-entry interruption-information field (SDM 27.6.1); one it cannot take
   * arms interrupt-window exiting (the CPU's INTR line, as `enter` sets it); none disarms it. APICv's
   * posted interrupts spare real KVM the exit and entry the same way. A delivery that fails is an
   * internal error after an external-interrupt VM exit, as in `enter`.
   */
  private interruptWithoutEntry(): true | KvmExit {
    const cpu = this.cpu;
    const v = this.unit.vmcs;
    const proc = v.get32(F.CPU_BASED_VM_EXEC_CONTROL);
    const pending = this.vcpu.hasInterrupt();
    this.lazyIo = false;
    this.injectedAtEntry = false;
    if (pending && (cpu.flags & 0x200) !== 0 && cpu.interruptShadow === 0) {
      const vec = this.vcpu.acknowledgeInterrupt();
      if (vec >= 0) {
        v.set32(F.CPU_BASED_VM_EXEC_CONTROL, proc & ~Proc.INTR_WINDOW_EXITING);
        cpu.irqPending = false;
        this.injectedAtEntry = true;
        try {
          cpu.deliverEvent(vec, IntrType.EXTERNAL, false, 0, cpu.ripLo, cpu.ripHi);
        } catch (e) {
          // The state as the failed delivery left it (rolled back) into the VMCS, as `enter` does.
          this.vmExit({ reason: ExitReason.EXTERNAL_INTERRUPT });
          return this.internal(KVM_INTERNAL_ERROR_DELIVERY_EV, [BigInt(vec), e === FAULT ? 1n : 0n]);
        }
        return true;
      }
    }
    v.set32(
      F.CPU_BASED_VM_EXEC_CONTROL,
      pending ? proc | Proc.INTR_WINDOW_EXITING : proc & ~Proc.INTR_WINDOW_EXITING,
    );
    cpu.irqPending = pending;
    return true;
  }

  /** The VM exit `ioWithoutExit` skipped, made now (the guest state into the VMCS). */
  flushLazyExit(): void {
    if (!this.lazyIo) return;
    this.lazyIo = false;
    const x = this.interceptExit;
    x.reason = ExitReason.IO_INSTRUCTION;
    x.qualification = BigInt(this.lazyQual >>> 0);
    x.intrInfo = 0;
    x.intrErrorCode = undefined;
    x.instructionLength = this.lazyLen;
    x.guestPhysical = 0n;
    x.instructionInfo = undefined;
    this.vmExit(x);
  }

  /** immediate_exit, a kick from another thread or `requestExit()` is pending (nothing cleared). */
  private kicked(): boolean {
    return (
      this.vcpu.runFields.immediateExit || this.exitRequested || Atomics.load(this.opts.kickWord, 0) !== 0
    );
  }

  /** immediate_exit, a kick from another thread, `requestExit()`, or the run's time budget. */
  private interrupted(): boolean {
    if (this.kicked()) {
      this.exitRequested = false;
      Atomics.store(this.opts.kickWord, 0, 0);
      return true;
    }
    if (this.cpu.executed - this.runStartInsns >= this.opts.maxRunInstructions) return true;
    // Host time bounds every run, whatever the guest clock: the host must never hang.
    return hostNowMs() - this.runStartMs >= this.opts.maxRunMs;
  }

  /** Services every in-kernel timer (PIT, LAPIC) whose deadline passed. */
  serviceTimers(): void {
    const vm = this.vcpu.vm;
    if (vm.nextDeadlineNs() <= vm.clock.nowNs()) vm.tick();
  }

  /**
   * kvm_vcpu_block(): waits for a timer deadline, a kick or the halt budget. With the
   * deterministic clock time jumps to the next deadline. Returns false when nothing can wake the
   * vCPU within this run (the caller returns KVM_EXIT_INTR so userspace gets control).
   */
  private block(): boolean {
    const vm = this.vcpu.vm;
    if (this.wake) {
      this.wake = false;
      return true;
    }
    const deadline = vm.nextDeadlineNs();
    const clock = vm.clock;
    if (clock instanceof DeterministicClock) {
      // Guest time spent halted counts against the run's time budget too, so a vCPU halted with
      // interrupts off under a periodic timer still comes back to userspace.
      if (!Number.isFinite(deadline) || clock.nowNs() - this.runStartNs >= this.opts.maxRunMs * 1e6)
        return false;
      clock.advanceTo(deadline);
      vm.tick();
      return true;
    }
    const left = this.opts.maxRunMs - (hostNowMs() - this.runStartMs);
    if (left <= 0) return false;
    const waitMs = Math.min(this.opts.maxHaltMs, left, Math.max(0, (deadline - clock.nowNs()) / 1e6));
    if (waitMs > 0) Atomics.wait(this.opts.kickWord, 0, 0, waitMs);
    vm.tick();
    return true;
  }

  /** New slots: rebuild the identity EPT (KVM zaps and refaults; here eagerly) and drop the TLB. */
  private rebuildEpt(): void {
    this.ept.reset();
    this.ept.populate(this.vcpu.vm.memory.slots());
    const eptp = this.ept.eptp();
    this.unit.vmcs.set64(F.EPT_POINTER, eptp);
    this.mmu.setEptp({ lo: Number(eptp & 0xffffffffn) | 0, hi: Number(eptp >> 32n) | 0 });
    this.cpu.flushTranslations();
    this.cpu.codePages.clear();
    this.eptStale = false;
  }

  /** VMLAUNCH / VMRESUME and the guest-state load into the CPU. Returns a userspace exit on failure. */
  private enter(): KvmExit | null {
    const u = this.unit;
    const o = u.vmcs.launched ? u.vmresume() : u.vmlaunch();
    if (o.kind !== "entered" && this.nested.l2Active) {
      // vmcs02 failed L0's entry: L1 sees a VM-entry failure, and L0 enters L1 instead.
      const r = this.nested.entryFailed();
      return r ?? this.enter();
    }
    switch (o.kind) {
      case "entered":
        break;
      case "entry-failed":
        // vmx_handle_exit(): VM-entry failure -> KVM_EXIT_FAIL_ENTRY with the full exit reason.
        return {
          kind: "fail-entry",
          reason: KVM_EXIT_FAIL_ENTRY,
          hardwareEntryFailureReason: BigInt(u.vmcs.get32(F.VM_EXIT_REASON) >>> 0),
          cpu: this.vcpu.index,
        };
      case "done":
        // VMfailValid: KVM reports the VM-instruction error number.
        return {
          kind: "fail-entry",
          reason: KVM_EXIT_FAIL_ENTRY,
          hardwareEntryFailureReason: BigInt(u.vmcs.get32(F.VM_INSTRUCTION_ERROR)),
          cpu: this.vcpu.index,
        };
      default:
        return this.internal(KVM_INTERNAL_ERROR_EMULATION, [BigInt(o.kind.length)]);
    }
    const cpu = this.cpu;
    recordToCpu(this.record, cpu);
    const proc = u.vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL);
    cpu.irqPending = (proc & Proc.INTR_WINDOW_EXITING) !== 0;
    cpu.nmiPending = (proc & Proc.NMI_WINDOW_EXITING) !== 0;
    const inj = o.inject;
    this.injectedAtEntry = inj !== null && inj.type !== IntrType.OTHER;
    if (inj !== null && inj.type !== IntrType.OTHER) {
      // SDM 27.6.1: the event is delivered through the guest IDT before any guest instruction.
      const soft = inj.type >= IntrType.SW_INTERRUPT;
      const ret = cpu.ripLo >>> 0;
      const retLo = soft ? ret + inj.instructionLength : ret;
      try {
        cpu.deliverEvent(
          inj.vector,
          inj.type,
          inj.errorCode !== null,
          inj.errorCode ?? 0,
          retLo | 0,
          retLo > 0xffffffff ? cpu.ripHi + 1 : cpu.ripHi,
        );
      } catch (e) {
        this.vmExit({ reason: ExitReason.EXTERNAL_INTERRUPT });
        return this.internal(KVM_INTERNAL_ERROR_DELIVERY_EV, [BigInt(inj.vector), e === FAULT ? 1n : 0n]);
      }
    }
    return null;
  }

  /**
   * Runs the CPU in non-root operation until something needs the kernel, then performs the VM
   * exit. Returns a userspace exit only for emulator failures.
   */
  private runGuest(): KvmExit | null {
    const cpu = this.cpu;
    const hooks = this.hooks;
    const bus = this.bus;
    const clock = this.vcpu.vm.clock;
    // Monitor trap flag (SDM 26.5.2): one instruction, then an MTF VM exit (guest-debug single-step).
    const mtf = (this.unit.vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.MONITOR_TRAP_FLAG) !== 0;
    if (mtf && this.injectedAtEntry && !cpu.shutdown) return this.mtfExit();
    for (;;) {
      if (cpu.shutdown) {
        this.vmExit({ reason: ExitReason.TRIPLE_FAULT });
        return null;
      }
      const single = bus.replaying || hooks.emulatingIo;
      const budget = single || mtf ? 1 : this.sliceBudget();
      const before = cpu.executed;
      bus.aborted = false;
      hooks.exit.reason = -1;
      const rx = cpu.run(budget);
      clock.retire(cpu.executed - before);
      if (single) {
        hooks.emulatingIo = false;
        if (!bus.aborted) bus.retired();
      }
      switch (rx) {
        case RunExit.INTERCEPT: {
          if (hooks.inPlace) {
            hooks.inPlace = false;
            this.stepRip(cpu.curInsn?.length ?? 0);
            cpu.executed++;
            if (mtf) return this.mtfExit();
            continue;
          }
          const e = hooks.exit;
          if (!mtf && !single) {
            const r = this.interceptWithoutExit(e.reason, e.instructionLength);
            // Completed in the kernel: on as after a slice.
            if (r === null) break;
            if (r !== undefined) return r;
          }
          const x = this.interceptExit;
          x.reason = e.reason;
          x.qualification = e.qualification;
          x.intrInfo = e.intrInfo;
          x.intrErrorCode = e.intrErrorCode;
          x.instructionLength = e.instructionLength;
          x.guestPhysical = e.guestPhysical === 0 ? 0n : BigInt(e.guestPhysical);
          x.instructionInfo = e.instructionInfo;
          this.vmExit(x);
          return null;
        }
        case RunExit.TRANSLATION: {
          const t = this.translator;
          const m = t.mmu;
          this.vmExit({
            reason: m.exitReason,
            qualification: BigInt(m.exitQual >>> 0),
            guestPhysical: BigInt(m.exitGpa),
            guestLinear: (BigInt(t.linHi >>> 0) << 32n) | BigInt(t.linLo >>> 0),
          });
          return null;
        }
        case RunExit.STOPPED:
          if (bus.posted.length > 0) {
            // The store completed (posted): under MTF it is a step, reported after the write exits.
            if (mtf) this.debug.stepPending = true;
            const p = bus.posted[0]!;
            this.vmExit(
              p.pio
                ? {
                    reason: ExitReason.IO_INSTRUCTION,
                    qualification: BigInt(((p.size - 1) | 0x10 | (p.addr << 16)) >>> 0),
                  }
                : { reason: ExitReason.EPT_VIOLATION, qualification: 2n, guestPhysical: BigInt(p.addr) },
            );
            return null;
          }
          // A stop request (a kick), or an interrupt an in-kernel MMIO write raised.
          break;
        case RunExit.BUDGET:
          if (mtf) return this.mtfExit();
          break;
        case RunExit.HLT:
          // Only reachable with an entry in the HLT activity state: the kernel waits for an event.
          this.vmExit({ reason: ExitReason.HLT, instructionLength: 0 });
          return null;
        case RunExit.SHUTDOWN:
          this.vmExit({ reason: ExitReason.TRIPLE_FAULT });
          return null;
        default:
          this.vmExit({ reason: ExitReason.EXTERNAL_INTERRUPT });
          return this.internal(KVM_INTERNAL_ERROR_EMULATION, [BigInt(rx)], cpu.internalError);
      }
      const s = this.sliceEnd(!mtf && !single);
      if (s !== undefined) return s;
    }
  }

  private mtfExit(): null {
    this.vmExit({ reason: ExitReason.MONITOR_TRAP_FLAG });
    return null;
  }

  /** A host interrupt (timer, kick) stops the guest: an external-interrupt VM exit (SDM 26.2). */
  private hostInterrupt(): null {
    this.vmExit({ reason: ExitReason.EXTERNAL_INTERRUPT });
    return null;
  }

  /**
   * After a slice: does the kernel have work? WORK_EVENTS when all it has is an expired timer or an
   * interrupt that became deliverable with no window armed for it; WORK_ENTRY for a kick (from the
   * irqchip: `wake`, or from userspace), an NMI, or a spent run budget.
   */
  private kernelWork(): number {
    const vm = this.vcpu.vm;
    if (this.wake) {
      this.wake = false;
      return WORK_ENTRY;
    }
    const armed = (this.unit.vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL) & Proc.INTR_WINDOW_EXITING) !== 0;
    const due = vm.nextDeadlineNs() <= vm.clock.nowNs() || (!armed && this.vcpu.hasInterrupt());
    if (
      this.vcpu.hasNmi() ||
      this.kicked() ||
      this.cpu.executed - this.runStartInsns >= this.opts.maxRunInstructions ||
      hostNowMs() - this.runStartMs >= this.opts.maxRunMs
    )
      return WORK_ENTRY;
    return due ? WORK_EVENTS : WORK_NONE;
  }

  /** Instructions until the next timer deadline (deterministic clock), capped by the slice size. */
  private sliceBudget(): number {
    const left = this.opts.maxRunInstructions - (this.cpu.executed - this.runStartInsns);
    const max = Math.max(1, Math.min(this.opts.sliceInstructions, left));
    const clock = this.vcpu.vm.clock;
    if (!(clock instanceof DeterministicClock)) return max;
    const ns = this.vcpu.vm.nextDeadlineNs() - clock.nowNs();
    if (!Number.isFinite(ns)) return max;
    return Math.max(1, Math.min(max, Math.ceil(ns / clock.nsPerInstruction)));
  }

  /** Steps RIP past an instruction completed in place (wrapping as the code size says). */
  stepRip(len: number): void {
    const cpu = this.cpu;
    const n = (cpu.ripLo >>> 0) + len;
    if (cpu.codeMode === 64) {
      cpu.ripLo = n | 0;
      if (n > 0xffffffff) cpu.ripHi = (cpu.ripHi + 1) | 0;
    } else {
      cpu.ripLo = cpu.codeMode === 16 ? n & 0xffff : n | 0;
    }
  }

  /** VM exit: the CPU's guest state into the record, then the VMX unit's exit (SDM chapter 28). */
  vmExit(info: Parameters<VmxUnit["exit"]>[0]): void {
    cpuToRecord(this.cpu, this.record);
    const r = this.unit.exit(info);
    if (r.kind === "abort") throw new Error(`kvm-api: VMX abort ${r.indicator} on a kernel VMCS`);
  }

  internal(suberror: number, data: bigint[], message = ""): KvmExit {
    if (message) this.lastInternalError = message;
    return { kind: "internal-error", reason: KVM_EXIT_INTERNAL_ERROR, suberror, data };
  }

  /** Text of the last emulator failure (INTERNAL_ERROR), for diagnostics. */
  lastInternalError = "";

  /** Guest-visible entry-interruption info currently pending (an injected exception or event). */
  entryEventPending(): boolean {
    return (this.unit.vmcs.get32(F.VM_ENTRY_INTR_INFO_FIELD) & INTR_INFO_VALID) !== 0;
  }
}

/** Attaches a VMX backend to a vCPU: from now on `vcpu.run()` runs the guest. */
export function attachVmxBackend(vcpu: Vcpu, opts: VmxBackendOptions = {}): VmxBackend {
  const b = new VmxBackend(vcpu, opts);
  vcpu.backend = b;
  return b;
}
