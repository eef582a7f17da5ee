/**
 * A vCPU (KVM_CREATE_VCPU). Until the CPU lands this is the state holder behind the vCPU ioctls,
 * plus the kernel-side pieces of KVM_RUN that need no CPU: MSR and CPUID handling, INIT/SIPI
 * processing into the MP state, interrupt acceptance. `run()` delegates to a {@link VcpuBackend}
 * (the VMX/CPU composition), the seam where `@tskvm/vmx` plugs in.
 */
import { nsToTsc, tscToNs } from "./clock.js";
import {
  applyCpuidRuntimeToEntry,
  type CpuidEntry2,
  type CpuidRuntime,
  cpuidEqual,
  cpuidLookup,
  cpuidWithRuntime,
  validateCpuid2,
} from "./cpuid.js";
import { KvmClockVcpu } from "./devices/kvmclock.js";
import { Lapic, PENDING_INIT, PENDING_SIPI } from "./devices/lapic.js";
import { KVM_APIC_REG_SIZE, MSR_IA32_APICBASE, MSR_IA32_TSC_DEADLINE } from "./devices/lapic-regs.js";
import { fail } from "./errors.js";
import { freshRunFields, type KvmExit, type KvmRunFields } from "./exits.js";
import {
  checkGuestDebug,
  emptyGuestDebug,
  KVM_GUESTDBG_INJECT_BP,
  KVM_GUESTDBG_INJECT_DB,
  type KvmGuestDebug,
} from "./guest-debug.js";
import type { NestedState } from "./run/nested.js";
import { type KvmTranslation, translate } from "./translate.js";
import * as S from "./vcpu-state.js";
import type { Vm } from "./vm.js";

export const MSR_IA32_TSC = 0x10;
/** IA32_BIOS_SIGN_ID (SDM Vol. 4 table 2-2 "IA32_BIOS_SIGN_ID"): the microcode revision, bits 63:32. */
export const MSR_IA32_UCODE_REV = 0x8b;
/** KVM's default microcode revision (kvm_arch_vcpu_create: `microcode_version = 0x100000000ULL`). */
export const DEFAULT_MICROCODE_VERSION = 0x100000000n;
/** Default guest TSC rate when userspace sets none: 2 GHz. */
export const DEFAULT_TSC_KHZ = 2_000_000;
/** MSRs kvm-api itself implements (the CPU adds its own through CpuFeatureSource). */
export const KVM_API_MSRS = [
  MSR_IA32_TSC,
  MSR_IA32_APICBASE,
  MSR_IA32_TSC_DEADLINE,
  MSR_IA32_UCODE_REV,
  0x11,
  0x12,
  0x4b564d00,
  0x4b564d01,
];

/** `struct kvm_msr_entry`. */
export interface MsrEntry {
  index: number;
  data: bigint;
}

/**
 * The parts of the register state a backend holds while it runs the guest: KVM_GET/SET_REGS,
 * _SREGS, _FPU, _DEBUGREGS (set only: the backend never changes the debug registers), and XSTATE:
 * what KVM_GET/SET_XSAVE and KVM_GET/SET_XCRS add to kvm_fpu (XCR0 and the PKRU component).
 */
export const VcpuState = { REGS: 1, SREGS: 2, FPU: 4, DEBUGREGS: 8, XSTATE: 16 } as const;
const STATE_RUNNING =
  VcpuState.REGS | VcpuState.SREGS | VcpuState.FPU | VcpuState.DEBUGREGS | VcpuState.XSTATE;

/** struct kvm_xsave's region: 4 KiB, the standard (non-compacted) XSAVE format. */
const KVM_XSAVE_SIZE = 4096;
/** XSTATE_BV / XCOMP_BV offsets in the XSAVE header (SDM Vol. 1 13.4.2). */
const XSAVE_HDR_XSTATE_BV = 512;
const XSAVE_HDR_XCOMP_BV = 520;
/** XSAVE state components: x87 (0), SSE (1), PKRU (9) (SDM Vol. 1 13.1). */
const XFEATURE_X87 = 1;
const XFEATURE_SSE = 2;
const XFEATURE_PKRU = 1 << 9;
/** CPUID.(7,0):ECX.PKU. */
const CPUID7_ECX_PKU = 1 << 3;
/** IA32_XSS (SDM Vol. 4 table 2-2). */
const MSR_IA32_XSS = 0xda0;

/** What runs the guest: implemented by the VMX/CPU composition. */
export interface VcpuBackend {
  run(vcpu: Vcpu): KvmExit;
  /**
   * Writes the running state's `parts` (VcpuState bits) back with setRegs/setSregs/setFpu. The
   * Vcpu asks only when a part is read after `run()` returned, as KVM reads its register cache on
   * KVM_GET_REGS instead of copying it out on every exit; without it, `run()` must write back.
   */
  readState?(parts: number): void;
  /** KVM_GET_NESTED_STATE / KVM_SET_NESTED_STATE, for backends with nested VMX. */
  getNestedState?(): NestedState | null;
  setNestedState?(s: NestedState): void;
  /**
   * KVM_GET_MSRS / KVM_SET_MSRS of one MSR through the running state (the CPU and the VMCS guest
   * area), so values the guest wrote are what userspace reads. Undefined / false as readMsr/writeMsr.
   */
  hostReadMsr?(index: number): bigint | undefined;
  hostWriteMsr?(index: number, value: bigint): boolean;
  /** An exception is queued for the next entry (KVM_SET_GUEST_DEBUG's inject requests are EBUSY). */
  exceptionPending?(): boolean;
}

export class Vcpu {
  readonly lapic: Lapic | null;
  readonly kvmclock: KvmClockVcpu;
  /** The request/status header of kvm_run. */
  readonly runFields: KvmRunFields = freshRunFields();
  backend: VcpuBackend | undefined;
  private pendingNested: NestedState | null = null;

  /** KVM_GET_NESTED_STATE: the backend's nested VMX state (null without nested VMX in use). */
  getNestedState(): NestedState | null {
    return this.backend?.getNestedState?.() ?? null;
  }
  /** KVM_SET_NESTED_STATE: applied by the backend now, or by the one attached next (restore). */
  setNestedState(s: NestedState): void {
    if (this.backend?.setNestedState) this.backend.setNestedState(s);
    else this.pendingNested = s;
  }
  /** For a backend being attached: the nested state set before it existed. */
  takePendingNestedState(): NestedState | null {
    const s = this.pendingNested;
    this.pendingNested = null;
    return s;
  }

  /** True while INIT must stay pending (set by the backend: nested VMX's root operation). */
  initLatched: () => boolean = () => false;
  private regs: S.KvmRegs = S.resetRegs();
  /**
   * VcpuState parts changed outside the running guest (the SET ioctls, INIT, SIPI) since the
   * backend last took them (`takeDirty`): it loads only those on KVM_RUN (KVM's regs_dirty).
   */
  private dirty = STATE_RUNNING | VcpuState.DEBUGREGS;
  /** VcpuState parts the backend holds newer values of since `run()` returned (`readState`). */
  private stale = 0;
  private sregs: S.KvmSregs;
  private fpu: S.KvmFpu = S.resetFpu();
  private xcr0 = 1n;
  /** PKRU, the XSAVE component 9 (KVM keeps it in vcpu->arch.pkru). */
  private pkru = 0;
  private events: S.KvmVcpuEvents = S.emptyEvents();
  private debugRegs: S.KvmDebugRegs = { db: [0n, 0n, 0n, 0n], dr6: 0xffff0ff0n, dr7: 0x400n, flags: 0 };
  private guestDebug: KvmGuestDebug = emptyGuestDebug();
  /** Bumped by KVM_SET_GUEST_DEBUG; the backend applies the new setting when it moved. */
  guestDebugGeneration = 0;
  /** KVM_GUESTDBG_INJECT_DB/BP not yet taken by the backend: the vector (1 or 3), or -1. */
  guestDebugInject = -1;
  private cpuidTable: CpuidEntry2[] = [];
  /** Bumped by KVM_SET_CPUID2: the backend fits the CPU's features to the new table. */
  cpuidGeneration = 0;
  private readonly cpuMsrs = new Map<number, bigint>();
  /** IA32_BIOS_SIGN_ID as the guest reads it; only KVM_SET_MSRS changes it. */
  private microcodeVersion = DEFAULT_MICROCODE_VERSION;
  /** IA32_APIC_BASE without an in-kernel LAPIC (KVM still keeps it). */
  private apicBaseNoLapic = 0xfee00000 + 0x800;
  /** CR8 without an in-kernel LAPIC (vcpu->arch.cr8); with one, CR8 is the LAPIC's TPR[7:4]. */
  private cr8NoLapic = 0;
  mpState: number;
  tscKhz = DEFAULT_TSC_KHZ;
  /** TSC = nsToTsc(vm ns) + tscOffset. */
  tscOffset = 0;
  /** KVM_INTERRUPT without an in-kernel irqchip: the vector to inject, or -1. */
  pendingExternalVector = -1;
  hasRun = false;
  private readonly msrOut = new Uint32Array(2);

  constructor(
    readonly vm: Vm,
    readonly id: number,
    readonly index: number,
  ) {
    const chip = vm.irqchip;
    this.kvmclock = new KvmClockVcpu(vm.kvmclock, { at: (ns) => this.tscAt(ns), khz: () => this.tscKhz });
    if (chip) {
      this.lapic = new Lapic(id, {
        bus: chip,
        clock: vm.clock,
        tscAt: (ns) => this.tscAt(ns),
        nsAtTsc: (t) => tscToNs(t - this.tscOffset, this.tscKhz),
        eoiBroadcast: (v) => chip.eoiBroadcast(v),
        kick: () => vm.kick(this.index),
        tscDeadline: true,
        x2apic: true,
      });
      chip.addLapic(this.lapic);
    } else {
      this.lapic = null;
    }
    if (id === 0) this.apicBaseNoLapic += 0x100;
    this.sregs = S.resetSregs(BigInt(this.apicBase));
    // api.rst KVM_GET_MP_STATE: with an in-kernel irqchip, APs wait for INIT/SIPI.
    this.mpState = chip && id !== 0 ? S.KVM_MP_STATE_UNINITIALIZED : S.KVM_MP_STATE_RUNNABLE;
  }

  get apicBase(): number {
    return this.lapic ? this.lapic.apicBase : this.apicBaseNoLapic;
  }

  /** The `TscClock` shape the CPU reads RDTSC from. */
  readonly tscClock = { now: (): number => this.tsc() };

  tscAt(ns: number): number {
    return nsToTsc(ns, this.tscKhz) + this.tscOffset;
  }
  /** The guest's TSC now. */
  tsc(): number {
    return this.tscAt(this.vm.clock.nowNs());
  }

  // ---- KVM_RUN ----

  /** KVM_RUN. `immediateExit` returns KVM_EXIT_INTR at once, as KVM does (-EINTR). */
  run(): KvmExit {
    const rf = this.runFields;
    // x86.c kvm_arch_vcpu_ioctl_run ("re-sync apic's tpr"): without an in-kernel LAPIC, kvm_run->cr8
    // is the guest's CR8 from here on, before the immediate_exit check; reserved bits are EINVAL.
    if (!this.lapic && !this.setCr8(rf.cr8)) {
      this.postRunSave();
      fail("EINVAL", "KVM_RUN", "BadCr8", `kvm_run.cr8 = ${rf.cr8}`);
    }
    if (rf.immediateExit) {
      this.postRunSave();
      return { kind: "intr", reason: 10 };
    }
    if (!this.backend)
      fail("EOPNOTSUPP", "KVM_RUN", "NoCpuBackend", "no CPU backend is attached to this vCPU");
    this.hasRun = true;
    this.acceptEvents();
    const exit = this.backend.run(this);
    if (this.backend.readState) this.stale = STATE_RUNNING;
    this.postRunSave();
    return exit;
  }

  /**
   * post_kvm_run_save(), the part kept here: CR8 and IA32_APIC_BASE on every return from KVM_RUN.
   * if_flag and ready_for_interrupt_injection need the running state: the backend fills them.
   */
  private postRunSave(): void {
    this.runFields.apicBase = this.apicBase;
    this.runFields.cr8 = this.cr8;
  }

  /** kvm_get_cr8(): the LAPIC's TPR[7:4], or the vCPU's own CR8 without an in-kernel LAPIC. */
  get cr8(): number {
    return this.lapic ? this.lapic.cr8 : this.cr8NoLapic;
  }

  /**
   * kvm_set_cr8(): false, changing nothing, when a reserved bit (63:4, SDM 2.5) is set. With an
   * in-kernel LAPIC it writes TPR[7:4] (kvm_lapic_set_tpr).
   */
  setCr8(v: number | bigint): boolean {
    const n = typeof v === "bigint" ? (v >= 0n && v <= 15n ? Number(v) : -1) : v;
    if (!Number.isInteger(n) || n < 0 || n > 15) return false;
    if (this.lapic) this.lapic.cr8 = n;
    else this.cr8NoLapic = n;
    return true;
  }

  /**
   * kvm_apic_accept_events(): a pending INIT resets the vCPU (SDM 10.4.7.3; the BSP runs on, an
   * AP waits for SIPI); a SIPI in INIT_RECEIVED starts it at vector << 12 (CS = vector << 8, IP 0).
   */
  acceptEvents(): void {
    const l = this.lapic;
    if (!l?.pendingEvents) return;
    // SDM 24.8: INIT is blocked in VMX root operation (KVM latches it); the backend says when.
    if (l.pendingEvents & PENDING_INIT && this.initLatched()) return;
    if (l.pendingEvents & PENDING_INIT) {
      l.pendingEvents &= ~PENDING_INIT;
      this.initReset();
      this.mpState = this.id === 0 ? S.KVM_MP_STATE_RUNNABLE : S.KVM_MP_STATE_INIT_RECEIVED;
      // A SIPI that arrived before the INIT was processed is dropped (it precedes the INIT).
      if (this.id === 0) l.pendingEvents &= ~PENDING_SIPI;
    }
    if (l.pendingEvents & PENDING_SIPI) {
      l.pendingEvents &= ~PENDING_SIPI;
      if (this.mpState === S.KVM_MP_STATE_INIT_RECEIVED) {
        this.fresh(VcpuState.REGS | VcpuState.SREGS);
        const v = l.sipiVector;
        this.sregs.cs = { ...this.sregs.cs, selector: v << 8, base: BigInt(v << 12) };
        this.regs.rip = 0n;
        this.changed(VcpuState.REGS | VcpuState.SREGS);
        this.mpState = S.KVM_MP_STATE_RUNNABLE;
      }
    }
  }

  /** INIT: registers as after RESET except the LAPIC base and the x87/SSE state (SDM Table 10-1). */
  private initReset(): void {
    this.regs = S.resetRegs();
    const apicBase = BigInt(this.apicBase);
    const efer = 0n;
    this.sregs = { ...S.resetSregs(apicBase), efer };
    this.lapic?.reset(true);
    this.events = S.emptyEvents();
    this.changed(VcpuState.REGS | VcpuState.SREGS);
  }

  /** Parts of the register state set outside the running guest since `takeDirty` last took them. */
  get dirtyParts(): number {
    return this.dirty;
  }

  /** Parts of the register state set outside the running guest since the last call; clears them. */
  takeDirty(): number {
    const d = this.dirty;
    this.dirty = 0;
    return d;
  }

  /** Userspace (or INIT/SIPI) wrote `parts`: the backend loads them, its running copy is older. */
  private changed(parts: number): void {
    this.stale &= ~parts;
    this.dirty |= parts;
  }

  /** Brings `parts` up to date with the running state before they are read. */
  private fresh(parts: number): void {
    const p = this.stale & parts;
    if (p === 0) return;
    // Cleared first: readState stores through setRegs/setSregs/setFpu, which read them.
    this.stale &= ~p;
    this.backend?.readState?.(p);
    // What the backend stored is its own running state, not a change for it to load.
    this.dirty &= ~p;
  }

  // ---- registers ----

  getRegs(): S.KvmRegs {
    this.fresh(VcpuState.REGS);
    return { ...this.regs };
  }
  setRegs(r: S.KvmRegs): void {
    for (const n of S.REG_NAMES) {
      const v = r[n];
      if (typeof v !== "bigint" || v < 0n || v >> 64n) fail("EINVAL", "KVM_SET_REGS", "BadValue", n);
    }
    this.regs = { ...r };
    this.changed(VcpuState.REGS);
  }

  getSregs(): S.KvmSregs {
    this.fresh(VcpuState.SREGS);
    const s = structuredClone(this.sregs);
    s.apicBase = BigInt(this.apicBase);
    s.cr8 = BigInt(this.cr8);
    return s;
  }
  setSregs(s: S.KvmSregs): void {
    S.checkSregs(s, S.CR4_DEFINED, 52);
    if (s.apicBase !== BigInt(this.apicBase)) {
      if (!this.setApicBaseHost(s.apicBase)) fail("EINVAL", "KVM_SET_SREGS", "BadApicBase");
    }
    // __set_sregs_common() ignores kvm_set_cr8()'s result: a CR8 with reserved bits leaves CR8 as is.
    this.setCr8(s.cr8);
    // Without an in-kernel irqchip, interrupt_bitmap carries at most one pending interrupt.
    if (!this.lapic) {
      const bits = s.interruptBitmap;
      let vec = -1;
      for (let w = 0; w < 4; w++) {
        for (let b = 0; b < 64; b++) if (((bits[w] ?? 0n) >> BigInt(b)) & 1n) vec = w * 64 + b;
      }
      this.pendingExternalVector = vec;
    }
    this.sregs = structuredClone(s);
    this.changed(VcpuState.SREGS);
  }

  private setApicBaseHost(v: bigint): boolean {
    if (this.lapic) return this.lapic.setApicBase(Number(v), true);
    this.apicBaseNoLapic = Number(v);
    return true;
  }

  getFpu(): S.KvmFpu {
    this.fresh(VcpuState.FPU);
    return { ...this.fpu, fpr: this.fpu.fpr.slice(), xmm: this.fpu.xmm.slice() };
  }
  setFpu(f: S.KvmFpu): void {
    if (f.fpr.length !== 128 || f.xmm.length !== 256) fail("EINVAL", "KVM_SET_FPU", "BadLength");
    this.fpu = { ...f, fpr: f.fpr.slice(), xmm: f.xmm.slice() };
    this.changed(VcpuState.FPU);
  }

  /**
   * Offset of the PKRU component in a KVM_GET/SET_XSAVE image when the guest's CPUID offers PKU
   * (and the CPU has the component): the host's CPUID.(0DH,9):EBX, as KVM lays the image out with
   * the host's offsets (fpu_copy_guest_fpstate_to_uabi). -1 otherwise.
   */
  private pkruOffset(): number {
    const pku = this.cpuidTable.some((e) => e.function === 7 && e.index === 0 && e.ecx & CPUID7_ECX_PKU);
    const comp = this.vm.kvm.hostCpuid().find((e) => e.function === 0xd && e.index === 9);
    return pku && comp ? comp.ebx : -1;
  }

  /**
   * KVM_GET_XSAVE: the 4 KiB standard-format XSAVE image of the running state: the legacy region
   * (kvm_fpu's FXSAVE64 bytes), XSTATE_BV = x87 | SSE, and PKRU at its CPUID offset with XSTATE_BV[9]
   * when the guest's CPUID offers PKU (KVM writes the PKRU component whenever the guest may use it).
   */
  getXsave(): Uint8Array {
    this.fresh(VcpuState.FPU | VcpuState.XSTATE);
    const img = new Uint8Array(KVM_XSAVE_SIZE);
    const dv = new DataView(img.buffer);
    S.fpuToImage(this.fpu, img);
    let bv = XFEATURE_X87 | XFEATURE_SSE;
    const off = this.pkruOffset();
    if (off >= 0) {
      dv.setUint32(off, this.pkru >>> 0, true);
      bv |= XFEATURE_PKRU;
    }
    dv.setUint32(XSAVE_HDR_XSTATE_BV, bv, true);
    return img;
  }
  /**
   * KVM_SET_XSAVE: loads the image as XRSTOR of every supported component would (copy_uabi_to_xstate):
   * a component whose XSTATE_BV bit is clear takes its initial state (x87: FCW 037FH, empty tags;
   * SSE: XMM registers zero; PKRU: 0). MXCSR comes from the image.
   */
  setXsave(region: Uint8Array): void {
    if (region.length !== KVM_XSAVE_SIZE) fail("EINVAL", "KVM_SET_XSAVE", "BadLength");
    const dv = new DataView(region.buffer, region.byteOffset, region.byteLength);
    // SDM 13.8: XSTATE_BV (offset 512) may only name components enabled in XCR0 (KVM checks
    // against the supported set); XCOMP_BV (520) must be 0 in the standard format.
    const xstateBv = dv.getBigUint64(XSAVE_HDR_XSTATE_BV, true);
    if (xstateBv & ~this.vm.kvm.xcr0Supported) fail("EINVAL", "KVM_SET_XSAVE", "XstateBvUnsupported");
    if (dv.getBigUint64(XSAVE_HDR_XCOMP_BV, true) !== 0n) fail("EINVAL", "KVM_SET_XSAVE", "CompactedFormat");
    // MXCSR reserved bits #GP on XRSTOR; KVM rejects them.
    if (dv.getUint32(24, true) & ~0xffff) fail("EINVAL", "KVM_SET_XSAVE", "MxcsrReserved");
    const bv = Number(xstateBv & 0xffffffffn);
    const f = S.imageToFpu(region);
    if ((bv & XFEATURE_X87) === 0) {
      const init = S.resetFpu();
      Object.assign(f, { ...init, xmm: f.xmm, mxcsr: f.mxcsr });
    }
    if ((bv & XFEATURE_SSE) === 0) f.xmm.fill(0);
    this.setFpu(f);
    const off = this.pkruOffset();
    if (off >= 0) this.setXstate(this.xcr0, bv & XFEATURE_PKRU ? dv.getUint32(off, true) : 0);
  }

  /**
   * XCR0 and PKRU, the XSTATE part: the backend loads them after a change (syncIn) and stores the
   * running values through `setXstate` when they are read (readState).
   */
  getXstate(): { xcr0: bigint; pkru: number } {
    this.fresh(VcpuState.XSTATE);
    return { xcr0: this.xcr0, pkru: this.pkru };
  }
  setXstate(xcr0: bigint, pkru: number): void {
    this.fresh(VcpuState.XSTATE);
    this.xcr0 = xcr0;
    this.pkru = pkru | 0;
    this.changed(VcpuState.XSTATE);
  }

  getXcrs(): S.KvmXcr[] {
    this.fresh(VcpuState.XSTATE);
    return [{ xcr: 0, value: this.xcr0 }];
  }
  setXcrs(xcrs: readonly S.KvmXcr[]): void {
    S.checkXcrs(xcrs, this.vm.kvm.xcr0Supported);
    let xcr0 = this.getXstate().xcr0;
    for (const x of xcrs) xcr0 = x.value;
    this.setXstate(xcr0, this.pkru);
  }

  getVcpuEvents(): S.KvmVcpuEvents {
    const e = structuredClone(this.events);
    e.flags =
      S.KVM_VCPUEVENT_VALID_NMI_PENDING | S.KVM_VCPUEVENT_VALID_SIPI_VECTOR | S.KVM_VCPUEVENT_VALID_SHADOW;
    if (this.lapic) {
      e.nmi.pending = this.lapic.nmiPending > 0 ? 1 : 0;
      e.sipiVector = this.lapic.sipiVector;
    }
    return e;
  }
  setVcpuEvents(e: S.KvmVcpuEvents): void {
    S.checkEvents(e);
    const next = structuredClone(e);
    if (!(e.flags & S.KVM_VCPUEVENT_VALID_NMI_PENDING)) next.nmi.pending = this.events.nmi.pending;
    if (!(e.flags & S.KVM_VCPUEVENT_VALID_SHADOW)) next.interrupt.shadow = this.events.interrupt.shadow;
    if (this.lapic) {
      if (e.flags & S.KVM_VCPUEVENT_VALID_NMI_PENDING) this.lapic.nmiPending = e.nmi.pending ? 1 : 0;
      if (e.flags & S.KVM_VCPUEVENT_VALID_SIPI_VECTOR) this.lapic.sipiVector = e.sipiVector & 0xff;
    }
    this.events = next;
  }

  getDebugRegs(): S.KvmDebugRegs {
    this.fresh(VcpuState.DEBUGREGS);
    return structuredClone(this.debugRegs);
  }
  setDebugRegs(d: S.KvmDebugRegs): void {
    S.checkDebugRegs(d);
    this.debugRegs = structuredClone(d);
    this.changed(VcpuState.DEBUGREGS);
  }

  /** The guest-debug setting in force (control 0 when KVM_GUESTDBG_ENABLE was clear). */
  getGuestDebug(): KvmGuestDebug {
    return { control: this.guestDebug.control, debugreg: this.guestDebug.debugreg.slice() };
  }
  /**
   * KVM_SET_GUEST_DEBUG: single-step, INT3 and hardware breakpoints exiting with KVM_EXIT_DEBUG
   * (see guest-debug.ts). An inject request while an exception is already queued is EBUSY.
   */
  setGuestDebug(d: KvmGuestDebug): void {
    const next = checkGuestDebug(d);
    const inject = d.control & KVM_GUESTDBG_INJECT_DB ? 1 : d.control & KVM_GUESTDBG_INJECT_BP ? 3 : -1;
    if (inject >= 0 && (this.guestDebugInject >= 0 || this.backend?.exceptionPending?.()))
      fail("EBUSY", "KVM_SET_GUEST_DEBUG", "ExceptionPending");
    if (inject >= 0) this.guestDebugInject = inject;
    this.guestDebug = next;
    this.guestDebugGeneration++;
  }

  /**
   * KVM_TRANSLATE: `linear` through the current guest paging (translate.ts), without side effects.
   * The guest's MAXPHYADDR is CPUID 80000008H:EAX[7:0] of KVM_SET_CPUID2 (36 without it, as KVM).
   */
  translate(linear: bigint): KvmTranslation {
    const bits = (this.cpuidTable.find((e) => e.function === 0x80000008)?.eax ?? 0) & 0xff;
    this.fresh(VcpuState.SREGS);
    return translate(this.sregs, this.vm.memory, linear, bits >= 36 && bits <= 52 ? bits : 36);
  }

  // ---- MP state, NMI, interrupt ----

  getMpState(): number {
    // kvm_arch_vcpu_ioctl_get_mpstate(): latched events are processed first.
    this.acceptEvents();
    return this.mpState;
  }
  setMpState(state: number): void {
    const step = "KVM_SET_MP_STATE";
    // x86.c kvm_arch_vcpu_ioctl_set_mpstate() does not range-check the value (AP_RESET_HOLD = 9
    // is valid on x86); the run loop treats states it does not know as not runnable.
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff) fail("EINVAL", step, "UnknownState");
    if (!this.lapic && state !== S.KVM_MP_STATE_RUNNABLE) fail("EINVAL", step, "NoInKernelLapic");
    if (state === S.KVM_MP_STATE_SIPI_RECEIVED) {
      this.mpState = S.KVM_MP_STATE_INIT_RECEIVED;
      this.lapic!.pendingEvents |= PENDING_SIPI;
      return;
    }
    this.mpState = state;
  }

  /** KVM_NMI: queue an NMI. */
  nmi(): void {
    if (this.lapic) this.lapic.nmiPending++;
    else this.events.nmi.pending = 1;
  }

  /** KVM_INTERRUPT: only without an in-kernel irqchip (ENXIO otherwise); irq < 256. */
  interrupt(irq: number): void {
    if (!Number.isInteger(irq) || irq < 0 || irq >= 256) fail("EINVAL", "KVM_INTERRUPT", "BadVector");
    if (this.lapic) fail("ENXIO", "KVM_INTERRUPT", "InKernelIrqchip");
    if (this.pendingExternalVector >= 0) fail("EEXIST", "KVM_INTERRUPT", "AlreadyPending");
    this.pendingExternalVector = irq;
  }

  // ---- LAPIC ----

  /** KVM_GET_LAPIC: the 1 KiB register page. EINVAL without an in-kernel irqchip (x86.c). */
  getLapic(): Uint8Array {
    if (!this.lapic) fail("EINVAL", "KVM_GET_LAPIC", "NoInKernelLapic");
    const s = this.lapic.save();
    return new Uint8Array(Uint32Array.from(s.regs).buffer);
  }
  setLapic(page: Uint8Array): void {
    if (!this.lapic) fail("EINVAL", "KVM_SET_LAPIC", "NoInKernelLapic");
    if (page.length !== KVM_APIC_REG_SIZE) fail("EINVAL", "KVM_SET_LAPIC", "BadLength");
    const copy = page.slice();
    this.lapic.restorePage(new Uint32Array(copy.buffer));
  }

  // ---- CPUID ----

  /**
   * KVM_GET_CPUID2: the table as kvm_update_cpuid_runtime() keeps KVM's stored copy, for the vCPU's
   * current CR4, XCR0, IA32_XSS and IA32_APIC_BASE (kvm_vcpu_ioctl_get_cpuid2 copies those entries).
   */
  getCpuid2(): CpuidEntry2[] {
    return cpuidWithRuntime(this.cpuidTable, this.vm.kvm.hostCpuid(), this.cpuidRuntime());
  }
  /** The table as KVM_SET_CPUID2 gave it, without the runtime updates (the backend's features). */
  cpuidEntries(): readonly CpuidEntry2[] {
    return this.cpuidTable;
  }
  /**
   * KVM_SET_CPUID2. After the first KVM_RUN only the table in force is accepted, compared with the
   * runtime updates applied to both sides (6.1 kvm_set_cpuid: __kvm_update_cpuid_runtime on the
   * incoming entries, then kvm_cpuid_check_equal), so a table read back from KVM_GET_CPUID2, or the
   * one set before the guest changed CR4 or XCR0, still passes; any other is EINVAL
   * (kvm_cpuid_check_equal returns -EINVAL, also for a different entry count; the host's KVM agrees).
   */
  setCpuid2(entries: readonly CpuidEntry2[]): void {
    const t = validateCpuid2(entries);
    if (this.hasRun) {
      const host = this.vm.kvm.hostCpuid();
      const rt = this.cpuidRuntime();
      if (!cpuidEqual(cpuidWithRuntime(t, host, rt), cpuidWithRuntime(this.cpuidTable, host, rt)))
        fail("EINVAL", "KVM_SET_CPUID2", "AfterRun");
    }
    this.cpuidTable = t;
    this.cpuidGeneration++;
  }
  /**
   * The guest state CPUID reflects, read as the ioctls read it (the running state brought back
   * first): CR4 (kvm_sregs), XCR0 (kvm_xcrs), IA32_XSS (KVM_GET_MSRS), IA32_APIC_BASE.
   */
  cpuidRuntime(): CpuidRuntime {
    this.fresh(VcpuState.SREGS | VcpuState.XSTATE);
    const b = this.backend;
    const xss = (b?.hostReadMsr ? b.hostReadMsr(MSR_IA32_XSS) : this.readMsr(MSR_IA32_XSS, true)) ?? 0n;
    return {
      cr4: Number(this.sregs.cr4 & 0xffffffffn),
      xcr0: Number(this.xcr0 & 0xffffffffn),
      xss: Number(xss & 0xffffffffn),
      apicBase: this.apicBase,
    };
  }
  /**
   * CPUID exit handling: `out` gets EAX, EBX, ECX, EDX. With `rt` (the guest's state, see
   * cpuidRuntime), the entry answered from carries what kvm_update_cpuid_runtime() keeps current
   * (APIC, OSXSAVE, OSPKE, leaf 0DH EBX of sub-leaves 0 and 1), as KVM_GET_CPUID2 shows it.
   */
  cpuid(fn: number, index: number, out: Uint32Array, rt?: CpuidRuntime): void {
    const e = cpuidLookup(this.cpuidTable, fn, index, out);
    if (rt !== undefined && e !== undefined)
      applyCpuidRuntimeToEntry(this.cpuidTable, e, this.vm.kvm.hostCpuid(), out, rt);
  }

  // ---- MSRs ----

  /** Is `index` an MSR this vCPU has? */
  hasMsr(index: number): boolean {
    return KVM_API_MSRS.includes(index) || this.cpuMsrs.has(index) || (index >= 0x800 && index <= 0x8ff);
  }

  /** RDMSR; `hostInitiated` is KVM_GET_MSRS. Returns undefined for #GP / unknown. */
  readMsr(index: number, _hostInitiated = false): bigint | undefined {
    const out = this.msrOut;
    switch (index) {
      case MSR_IA32_TSC:
        return BigInt(this.tsc());
      case MSR_IA32_APICBASE:
        return BigInt(this.apicBase);
      case MSR_IA32_UCODE_REV:
        return this.microcodeVersion;
    }
    const kc = this.kvmclock.rdmsr(index);
    if (kc !== undefined) return BigInt(kc);
    if (this.lapic && (index === MSR_IA32_TSC_DEADLINE || (index >= 0x800 && index <= 0x8ff))) {
      return this.lapic.rdmsr(index, out) ? (BigInt(out[1]!) << 32n) | BigInt(out[0]!) : undefined;
    }
    return this.cpuMsrs.get(index);
  }

  /** WRMSR; `hostInitiated` is KVM_SET_MSRS. Returns false for #GP / unknown. */
  writeMsr(index: number, value: bigint, hostInitiated = false): boolean {
    if (value < 0n || value >> 64n) return false;
    const lo = Number(value & 0xffffffffn);
    const hi = Number(value >> 32n);
    switch (index) {
      case MSR_IA32_TSC:
        // Writing the TSC moves this vCPU's offset (SDM 18.17: "the TSC can be written").
        this.tscOffset = Number(value) - nsToTsc(this.vm.clock.nowNs(), this.tscKhz);
        return true;
      case MSR_IA32_APICBASE:
        if (this.lapic) return this.lapic.wrmsr(index, lo, hi, hostInitiated);
        if (lo & 0x2ff) return false;
        this.apicBaseNoLapic = Number(value);
        return true;
      case MSR_IA32_UCODE_REV:
        // kvm_set_msr_common(): a guest write (Linux writes 0 before CPUID + RDMSR to latch the
        // revision, SDM Vol. 3A 10.11.7.1) is accepted and ignored; userspace sets the value.
        if (hostInitiated) this.microcodeVersion = value;
        return true;
    }
    if (this.kvmclock.wrmsr(index, Number(value), this.vm.memory)) return true;
    if (this.lapic && (index === MSR_IA32_TSC_DEADLINE || (index >= 0x800 && index <= 0x8ff))) {
      return this.lapic.wrmsr(index, lo, hi, hostInitiated);
    }
    if (this.cpuMsrs.has(index)) {
      this.cpuMsrs.set(index, value);
      return true;
    }
    return false;
  }

  /** Registers the CPU's MSRs (from CpuFeatureSource) with their reset value 0. */
  addCpuMsrs(indices: readonly number[]): void {
    for (const i of indices) if (!KVM_API_MSRS.includes(i)) this.cpuMsrs.set(i, 0n);
  }

  /** KVM_GET_MSRS: reads entries in order, stops at the first failure; returns the count read. */
  getMsrs(entries: MsrEntry[]): number {
    if (entries.length > 1000000) fail("E2BIG", "KVM_GET_MSRS", "TooMany");
    let n = 0;
    const b = this.backend;
    for (const e of entries) {
      const v = b?.hostReadMsr ? b.hostReadMsr(e.index) : this.readMsr(e.index, true);
      if (v === undefined) break;
      e.data = v;
      n++;
    }
    return n;
  }

  /** KVM_SET_MSRS: writes entries in order, stops at the first failure; returns the count written. */
  setMsrs(entries: readonly MsrEntry[]): number {
    let n = 0;
    const b = this.backend;
    for (const e of entries) {
      if (typeof e.data !== "bigint" || e.data < 0n || e.data >> 64n) break;
      if (!(b?.hostWriteMsr ? b.hostWriteMsr(e.index, e.data) : this.writeMsr(e.index, e.data, true))) break;
      n++;
    }
    return n;
  }

  // ---- TSC / kvmclock ----

  getTscKhz(): number {
    return this.tscKhz;
  }
  /** KVM_SET_TSC_KHZ: the TSC keeps its current value at the new rate. */
  setTscKhz(khz: number): void {
    if (!Number.isInteger(khz) || khz <= 0 || khz > 0xffffffff) fail("EINVAL", "KVM_SET_TSC_KHZ", "BadRate");
    const now = this.vm.clock.nowNs();
    const tsc = this.tscAt(now);
    this.tscKhz = khz;
    this.tscOffset = tsc - nsToTsc(now, khz);
    this.kvmclock.update(this.vm.memory);
  }

  /** KVM_KVMCLOCK_CTRL: tell the guest it was stopped; EINVAL when kvmclock is not active. */
  kvmclockCtrl(): void {
    if (!this.kvmclock.active) fail("EINVAL", "KVM_KVMCLOCK_CTRL", "KvmclockInactive");
    this.kvmclock.guestStopped = true;
    this.kvmclock.update(this.vm.memory);
  }

  // ---- interrupts for the run loop ----

  /** An interrupt is ready for the CPU (in-kernel irqchip, or KVM_INTERRUPT). */
  hasInterrupt(): boolean {
    if (this.lapic) return this.vm.irqchip!.hasInterrupt(this.index);
    return this.pendingExternalVector >= 0;
  }
  /** An NMI is pending (LAPIC NMI delivery or KVM_NMI). */
  hasNmi(): boolean {
    return this.lapic ? this.lapic.nmiPending > 0 : this.events.nmi.pending !== 0;
  }
  /** The CPU takes one pending NMI. */
  acknowledgeNmi(): void {
    if (this.lapic) {
      if (this.lapic.nmiPending > 0) this.lapic.nmiPending--;
    } else {
      this.events.nmi.pending = 0;
    }
  }

  /** INTA: the vector the CPU takes now, or -1. */
  acknowledgeInterrupt(): number {
    if (this.lapic) return this.vm.irqchip!.acknowledge(this.index);
    const v = this.pendingExternalVector;
    this.pendingExternalVector = -1;
    return v;
  }
}
