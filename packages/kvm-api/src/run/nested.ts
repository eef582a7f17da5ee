/**
 * Nested VMX, as arch/x86/kvm/vmx/nested.c does it: the guest (L1) runs its own hypervisor, which
 * VMLAUNCHes its own guest (L2).
 *
 * - L1's VMX instructions exit to L0 (us) and are emulated by a second `VmxUnit` of the vmx package,
 *   L1's virtual VMX unit: its caps are what L0 offers L1 (`nestedCaps`), its memory L1's
 *   guest-physical memory (vmcs12, the VMXON region, bitmaps and MSR areas live there), its CPU state
 *   the guest-state area of L0's current VMCS (`NestedCpuView`). So VMsucceed/VMfail, the
 *   VM-instruction error numbers, every VM-entry check on vmcs12, the guest-state load, VM-entry
 *   failures and the VM exit to L1 are the same code that serves L0's own KVM_RUN.
 * - A successful VMLAUNCH/VMRESUME of vmcs12 leaves L2's state in vmcs01's guest-state area; L0
 *   moves it to vmcs02 (a VMCS in L0's private memory) whose controls merge L0's needs with L1's
 *   (prepare_vmcs02) and runs L2 on the CPU under vmcs02.
 * - An exit from L2 is reflected to L1 when vmcs12 asks for it (`l1WantsExit`, the intercept
 *   decisions asked again against vmcs12): the virtual unit's VM exit stores L2's state and exit
 *   information into vmcs12 and loads vmcs12's host state; the guest-state area moves back to
 *   vmcs01. Otherwise L0 handles the exit for L2 and resumes it.
 * - With EPT in vmcs12, L2 runs with L0's CPU translating through a second walker over L1's EPT
 *   (EPT on EPT: L0's own EPT is an identity map of L1's memory, so the composition is L1's EPT).
 *
 * Limits (README "Nested VMX"): L1 gets no unrestricted guest, VMCS shadowing, VM functions, TPR
 * shadow, APIC virtualization, TSC offsetting/scaling, MTF or preemption timer (the capability MSRs
 * say so, so VM entry refuses them with VMfailValid 7). No L3.
 */
import { Access, TranslateFault, type TranslateResult } from "@tskvm/cpu-x86";
import { Mmu } from "@tskvm/mmu-ept";
import {
  canonical,
  checkControls,
  checkHostState,
  copyGuestState,
  DEFAULT_CR4_FIXED1,
  EXIT_REASON_ENTRY_FAILURE,
  ExitCtl,
  type ExitInfo,
  ExitReason,
  entryEnv,
  F,
  FeatureControl,
  IMPLEMENTED_PROC2,
  INTR_INFO_VALID,
  IntrType,
  in64BitMode,
  ioExit,
  l1WantsExit,
  NMI_EXIT_INFO,
  NO_EXIT,
  Pin,
  Proc,
  Proc2,
  type Seg,
  Vmcs,
  VmxCaps,
  VmxMsr,
  type VmxOutcome,
  type VmxPhysMemory,
  VmxStateError,
  VmxUnit,
  type VmxUnitState,
  xsavesExit,
} from "@tskvm/vmx";
import { PENDING_INIT } from "../devices/lapic.js";
import { KVM_EXIT_SHUTDOWN, type KvmExit } from "../exits.js";
import type { KvmSregs } from "../vcpu-state.js";
import type { VmxBackend } from "./engine.js";
import { HostMemory, WalkMemory } from "./host-memory.js";
import { NestedCpuView } from "./nested-view.js";
import {
  CR0_HOST_OWNED,
  CR4_HOST_OWNED,
  CR4_PKE,
  EXCEPTION_BITMAP_BASE,
  setIa32eEntry,
} from "./vmcs-setup.js";

/** Secondary controls L0 offers L1 for L2 (KVM's nested secondary controls, minus what is not here). */
const L1_PROC2 =
  Proc2.ENABLE_EPT |
  Proc2.ENABLE_RDTSCP |
  Proc2.ENABLE_VPID |
  Proc2.WBINVD_EXITING |
  Proc2.DESC_TABLE_EXITING |
  Proc2.RDRAND_EXITING |
  Proc2.RDSEED_EXITING |
  Proc2.ENABLE_INVPCID;

/** CPUID.(7,0):ECX.PKU and CPUID.(0DH,1):EAX.XSAVES. */
const CPUID7_ECX_PKU = 1 << 3;
const CPUID_D1_EAX_XSAVES = 1 << 3;

/** Primary controls whose exits vmcs02 takes over from vmcs12 (the rest are L0's anyway). */
const L1_PROC_EXITS =
  Proc.INTR_WINDOW_EXITING |
  Proc.NMI_WINDOW_EXITING |
  Proc.INVLPG_EXITING |
  Proc.RDTSC_EXITING |
  Proc.CR3_LOAD_EXITING |
  Proc.CR3_STORE_EXITING |
  Proc.MOV_DR_EXITING |
  Proc.PAUSE_EXITING;

/** CR0.PE and PG: fixed to 1 for L2 (IA32_VMX_CR0_FIXED0 without unrestricted guest). */
const CR0_FIXED_L2 = 0x80000001n;

/** VPID vmcs02 runs L2 with (L1 runs with 1): the CPU's TLB is dropped on every switch anyway. */
const L2_VPID = 2;

/** What L1's CPUID offers that changes its VMX capabilities (nested_vmx_cr_fixed1_bits_update etc.). */
export interface L1Features {
  /** CPUID.(7,0):ECX.PKU: CR4.PKE may be 1 in VMX operation. */
  pku?: boolean;
  /** CPUID.(0DH,1):EAX.XSAVES: "enable XSAVES/XRSTORS" is offered for L2 (where the vmx package has it). */
  xsaves?: boolean;
}

/**
 * The VMX capabilities L0 offers L1 (KVM nested_vmx_setup_ctls_msrs): the vmx package's model minus
 * what this nested implementation cannot virtualize. `physAddrBits` is L1's MAXPHYADDR.
 */
export function nestedCaps(physAddrBits: number, l1: L1Features = {}): VmxCaps {
  return new VmxCaps({
    physAddrBits,
    cr4Fixed1: DEFAULT_CR4_FIXED1 | (l1.pku ? CR4_PKE : 0),
    disabledPin: Pin.PREEMPTION_TIMER,
    disabledProc: Proc.USE_TSC_OFFSETTING | Proc.USE_TPR_SHADOW | Proc.MONITOR_TRAP_FLAG,
    // "enable XSAVES/XRSTORS" is decided on vmcs12 (l2Xsaves), never merged into vmcs02.
    disabledProc2: IMPLEMENTED_PROC2 & ~(L1_PROC2 | (l1.xsaves ? Proc2.ENABLE_XSAVES : 0)),
    disabledExit: ExitCtl.SAVE_PREEMPTION_TIMER,
    // The run loop keeps wait-for-SIPI as an MP state of the vCPU, not as a state L2 can be in.
    waitForSipi: false,
  });
}

/** Nested VMX state for snapshots (KVM_GET/SET_NESTED_STATE), plain JSON through `toJsonable`. */
export interface NestedState {
  /** L1's virtual VMX unit: VMX operation, VMXON and vmcs12 pointers, the cached vmcs12. */
  unit: VmxUnitState;
  /** L2's own CR0/CR4 (its view of the bits L0 owns) while L2 runs. */
  l2Cr0: bigint;
  l2Cr4: bigint;
}

/** A fault the emulation of an L1 instruction raises in L1 (the operand's #GP, #SS or #PF). */
class GuestFault {
  constructor(
    readonly vector: number,
    readonly errorCode: number,
    readonly cr2: bigint | null = null,
  ) {}
}

/** L1's guest-physical memory for its VMX unit: RAM slots; elsewhere reads are all ones, writes dropped. */
class L1PhysMemory implements VmxPhysMemory {
  constructor(private readonly b: VmxBackend) {}
  read(pa: number, dst: Uint8Array): void {
    if (!this.b.vcpu.vm.memory.read(pa, dst)) dst.fill(0xff);
  }
  write(pa: number, src: Uint8Array): void {
    this.b.vcpu.vm.memory.write(pa, src);
  }
}

export class NestedVmx {
  private caps12: VmxCaps | null = null;
  private unit12: VmxUnit | null = null;
  private view12: NestedCpuView | null = null;
  /** vmcs01 (L0's VMCS for L1) and vmcs02 (L0's VMCS for L2), in L0's private memory. */
  private readonly vmcs01: number;
  private readonly vmcs02: number;
  private readonly scratch = new Vmcs();
  private readonly mem: L1PhysMemory;
  private readonly tr: TranslateResult = {
    paddr: 0,
    writable: false,
    user: false,
    nx: false,
    global: false,
    pageSize: 0,
    fault: 0,
    errorCode: 0,
  };
  private readonly cpuidOut = new Uint32Array(4);
  private l2Mmu: Mmu | null = null;

  constructor(private readonly b: VmxBackend) {
    this.vmcs01 = b.unit.currentPointer;
    this.vmcs02 = b.host.alloc();
    const rev = new Uint8Array(4);
    new DataView(rev.buffer).setUint32(0, b.caps.config.revisionId, true);
    b.host.write(this.vmcs02, rev);
    this.mem = new L1PhysMemory(b);
    b.hooks.l1StringIo = (port, size) =>
      this.l2Active && ioExit(this.unit.vmcs, this.mem, port, size) !== NO_EXIT;
    // XSAVES/XRSTORS in L2 are decided on vmcs12 ("enable XSAVES/XRSTORS" and the XSS-exiting bitmap,
    // as the CPU would on vmcs02 had prepare_vmcs02 copied them, as KVM does): #UD or exit 63/64,
    // reflected to L1. vmcs02 carries neither, so L0's VMX needs no XSAVES support of its own.
    b.hooks.xsaves = (restore, xss) => (this.l2Active ? xsavesExit(this.unit.vmcs, xss, restore) : NO_EXIT);
    // SDM 24.8: INIT is blocked in VMX root operation; in non-root operation it exits (26.2).
    b.vcpu.initLatched = () => this.unit12?.inVmxOperation === true;
  }

  /**
   * Nested VMX is available to this vCPU (KVM nested_vmx_allowed()): the backend's `nestedVmx`
   * (the `nested` module parameter) and CPUID.1:ECX.VMX[5] in the vCPU's CPUID table.
   */
  allowed(): boolean {
    if (!this.b.opts.nestedVmx) return false;
    this.b.vcpu.cpuid(1, 0, this.cpuidOut);
    return (this.cpuidOut[2]! & 0x20) !== 0;
  }

  /** The capability MSRs L1 reads, fixed at first use (L1's MAXPHYADDR from CPUID 80000008H). */
  get caps(): VmxCaps {
    if (this.caps12 === null) {
      this.b.vcpu.cpuid(0x80000008, 0, this.cpuidOut);
      const bits = this.cpuidOut[0]! & 0xff;
      this.b.vcpu.cpuid(7, 0, this.cpuidOut);
      const pku = (this.cpuidOut[2]! & CPUID7_ECX_PKU) !== 0;
      this.b.vcpu.cpuid(0xd, 1, this.cpuidOut);
      const xsaves = (this.cpuidOut[0]! & CPUID_D1_EAX_XSAVES) !== 0;
      // L1 can never name L0's private window (HOST_BASE has bit 45 set): MAXPHYADDR <= 45.
      this.caps12 = nestedCaps(bits >= 32 && bits <= 45 ? bits : 40, { pku, xsaves });
    }
    return this.caps12;
  }

  /** L1's virtual VMX unit (vmcs12 is its current VMCS), created on first use. */
  get unit(): VmxUnit {
    return this.parts().unit;
  }

  private get view(): NestedCpuView {
    return this.parts().view;
  }

  private parts(restore?: VmxUnitState): { unit: VmxUnit; view: NestedCpuView } {
    if (restore === undefined && this.unit12 !== null && this.view12 !== null)
      return { unit: this.unit12, view: this.view12 };
    const handlers = this.b.handlers;
    let unit12: VmxUnit | null = null;
    const view = new NestedCpuView(this.b.unit.vmcs, () => unit12!.vmcs, {
      read: (i) => handlers.readMsr(i),
      write: (i, v) => handlers.writeMsr(i, Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0),
    });
    const flush = () => this.b.cpu.flushTranslations();
    const deps = { caps: this.caps, cpu: view, mem: this.mem, tlb: { invept: flush, invvpid: flush } };
    const unit = restore === undefined ? new VmxUnit(deps) : VmxUnit.restore(deps, restore);
    unit12 = unit;
    this.unit12 = unit;
    this.view12 = view;
    return { unit, view };
  }

  /** L2 is running (KVM is_guest_mode()): L1's virtual unit is in VMX non-root operation. */
  get l2Active(): boolean {
    return this.unit12?.nonRoot === true;
  }

  // ---------------------------------------------------------------- MSRs

  /**
   * RDMSR of the MSRs nested VMX owns: the VMX capability MSRs (0x480-0x491, #GP without nested
   * VMX, SDM Vol. 4 Table 2-2). Returns null for any other MSR.
   */
  readMsr(index: number): bigint | undefined | null {
    if (index < VmxMsr.BASIC || index > VmxMsr.VMFUNC) return null;
    return this.allowed() ? this.caps.readMsr(index) : undefined;
  }

  /**
   * WRMSR of the MSRs nested VMX owns. The capability MSRs are read-only (#GP). IA32_FEATURE_CONTROL
   * (SDM Vol. 3C 24.7): #GP once locked, and only LOCK and, with nested VMX, "enable VMX outside
   * SMX" may be set (KVM vmx_feature_control_msr_valid()). Null for any other MSR.
   */
  writeMsr(index: number, value: bigint, current: () => bigint | undefined): boolean | null {
    if (index >= VmxMsr.BASIC && index <= VmxMsr.VMFUNC) return false;
    if (index !== 0x3a) return null;
    if (((current() ?? 0n) & BigInt(FeatureControl.LOCK)) !== 0n) return false;
    const valid = BigInt(FeatureControl.LOCK | (this.allowed() ? FeatureControl.VMX_OUTSIDE_SMX : 0));
    if ((value & ~valid) !== 0n) return false;
    return null;
  }

  // ---------------------------------------------------------------- L1's VMX instructions

  /** handle_vmx_instruction(): L1 executed a VMX instruction (vmcs01 holds the exit). */
  instruction(reason: number, len: number): KvmExit | null {
    const b = this.b;
    const v = b.unit.vmcs;
    const info = v.get32(F.VMX_INSTRUCTION_INFO);
    const qual = v.get64(F.EXIT_QUALIFICATION);
    const u = this.unit;
    const reg2 = (info >>> 28) & 15;
    let o: VmxOutcome;
    try {
      switch (reason) {
        case ExitReason.VMXON:
          o = u.vmxon(() => this.load(info, qual, 8));
          break;
        case ExitReason.VMXOFF:
          o = u.vmxoff();
          break;
        case ExitReason.VMCLEAR:
          o = u.vmclear(() => this.load(info, qual, 8));
          break;
        case ExitReason.VMPTRLD:
          o = u.vmptrld(() => this.load(info, qual, 8));
          break;
        case ExitReason.VMPTRST:
          o = u.vmptrst((x) => this.store(info, qual, x, 8));
          break;
        case ExitReason.VMREAD:
          o = u.vmread(this.gpr(reg2), (x) => this.store(info, qual, x, this.opSize()));
          break;
        case ExitReason.VMWRITE:
          o = u.vmwrite(this.gpr(reg2), () => this.load(info, qual, this.opSize()));
          break;
        case ExitReason.VMLAUNCH:
        case ExitReason.VMRESUME:
          return this.launch(reason === ExitReason.VMLAUNCH, len);
        case ExitReason.INVEPT:
          o = u.invept(this.gpr(reg2), () => this.load128(info, qual));
          break;
        case ExitReason.INVVPID:
          o = u.invvpid(this.gpr(reg2), () => this.load128(info, qual));
          break;
        default:
          // VMFUNC in L1 (VMX root operation of its unit): #UD.
          o = { kind: "fault", vector: 6, errorCode: null };
      }
    } catch (e) {
      if (!(e instanceof GuestFault)) throw e;
      if (e.cr2 !== null) {
        b.cpu.cr2Lo = Number(e.cr2 & 0xffffffffn) | 0;
        b.cpu.cr2Hi = Number(e.cr2 >> 32n) | 0;
      }
      b.handlers.injectException(e.vector, e.errorCode);
      return null;
    }
    this.complete(o, len);
    return null;
  }

  /** After an instruction: VMsucceed/VMfail skip it; a fault goes to L1 (nested_vmx_succeed/fail). */
  private complete(o: VmxOutcome, len: number): void {
    const h = this.b.handlers;
    if (o.kind === "done") h.skip(len);
    else if (o.kind === "fault") h.injectException(o.vector, o.errorCode);
    else h.injectException(6, null); // no other outcome is reachable from VMX root operation
  }

  /** nested_vmx_run(): VMLAUNCH/VMRESUME of vmcs12. */
  private launch(launch: boolean, len: number): KvmExit | null {
    const o = this.unit.vmlaunchResume(launch);
    switch (o.kind) {
      case "entered":
        this.enterL2();
        return null;
      case "entry-failed":
        // The VM-entry failure exit loaded vmcs12's host state into vmcs01's guest area: L1
        // continues at its host RIP with reason 33/34 (bit 31 set) in vmcs12.
        this.b.cpu.flushTranslations();
        return null;
      case "abort":
        return { kind: "shutdown", reason: KVM_EXIT_SHUTDOWN };
      default:
        this.complete(o, len);
        return null;
    }
  }

  // ---------------------------------------------------------------- operands (get_vmx_mem_address)

  private gpr(n: number): bigint {
    const r = this.b.cpu.r;
    const lo = BigInt(r[n * 2]! >>> 0);
    return in64BitMode(this.view) ? (BigInt(r[n * 2 + 1]! >>> 0) << 32n) | lo : lo;
  }

  private setGpr(n: number, v: bigint): void {
    const r = this.b.cpu.r;
    r[n * 2] = Number(v & 0xffffffffn) | 0;
    r[n * 2 + 1] = in64BitMode(this.view) ? Number((v >> 32n) & 0xffffffffn) | 0 : 0;
  }

  /** VMREAD/VMWRITE operand size: 64 bits in 64-bit mode, else 32. */
  private opSize(): number {
    return in64BitMode(this.view) ? 8 : 4;
  }

  /**
   * The linear address of the memory operand (SDM 28.2.5 instruction information + displacement in
   * the qualification), with the segment checks of the instruction: canonical in 64-bit mode,
   * usable segment, limit and writability outside it (#GP(0), #SS(0) for SS).
   */
  private linear(info: number, qual: bigint, size: number, write: boolean): bigint {
    const wide = in64BitMode(this.view);
    let off = qual;
    if ((info & (1 << 27)) === 0) off += this.gpr((info >>> 23) & 15);
    if ((info & (1 << 22)) === 0) off += this.gpr((info >>> 18) & 15) << BigInt(info & 3);
    const as = (info >>> 7) & 7;
    off &= as === 0 ? 0xffffn : as === 1 ? 0xffffffffn : 0xffffffffffffffffn;
    const segN = ((info >>> 15) & 7) as Seg;
    const seg = this.view.getSegment(segN);
    const fault = new GuestFault(segN === 2 ? 12 : 13, 0);
    if (wide) {
      const lin = BigInt.asUintN(64, segN === 4 || segN === 5 ? off + seg.base : off);
      if (!canonical(lin)) throw fault;
      return lin;
    }
    const type = seg.ar & 0xf;
    if (seg.ar & 0x10000) throw fault;
    if (write && (type & 8 || (type & 2) === 0)) throw fault;
    if (!write && (type & 0xa) === 8) throw fault; // execute-only code
    const expandDown = (type & 0xc) === 4;
    const last = off + BigInt(size - 1);
    if (expandDown ? off <= BigInt(seg.limit) : last > BigInt(seg.limit)) throw fault;
    return (seg.base + off) & 0xffffffffn;
  }

  /** L1's linear -> guest-physical through its paging (the engine's MMU; #PF into L1). */
  private translate(lin: bigint, write: boolean): number {
    const m = this.b.mmu;
    const out = this.tr;
    const lo = Number(lin & 0xffffffffn) | 0;
    const hi = Number(lin >> 32n) | 0;
    if (m.translate(lo, hi, write ? Access.WRITE : 0, out)) return out.paddr;
    if (out.fault === TranslateFault.PAGE_FAULT) throw new GuestFault(14, out.errorCode, lin);
    // An EPT exit of L0's own map (an MMIO page not yet mapped): the address is known; it is not RAM.
    return m.exitGpa;
  }

  /** Reads or writes `buf` at a linear address, page by page. */
  private access(lin: bigint, buf: Uint8Array, write: boolean): void {
    let i = 0;
    while (i < buf.length) {
      const a = BigInt.asUintN(64, lin + BigInt(i));
      const n = Math.min(4096 - Number(a & 0xfffn), buf.length - i);
      const gpa = this.translate(a, write);
      const chunk = buf.subarray(i, i + n);
      if (write) this.mem.write(gpa, chunk);
      else this.mem.read(gpa, chunk);
      i += n;
    }
  }

  /** A register (instruction information bit 10) or memory source of `size` bytes. */
  private load(info: number, qual: bigint, size: number): bigint {
    if (info & (1 << 10)) return this.gpr((info >>> 3) & 15);
    const buf = new Uint8Array(8);
    this.access(this.linear(info, qual, size, false), buf.subarray(0, size), false);
    return new DataView(buf.buffer).getBigUint64(0, true);
  }

  private load128(info: number, qual: bigint): [bigint, bigint] {
    const buf = new Uint8Array(16);
    this.access(this.linear(info, qual, 16, false), buf, false);
    const dv = new DataView(buf.buffer);
    return [dv.getBigUint64(0, true), dv.getBigUint64(8, true)];
  }

  private store(info: number, qual: bigint, v: bigint, size: number): void {
    if (info & (1 << 10)) {
      this.setGpr((info >>> 3) & 15, v);
      return;
    }
    const buf = new Uint8Array(8);
    new DataView(buf.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    this.access(this.linear(info, qual, size, true), buf.subarray(0, size), true);
  }

  // ---------------------------------------------------------------- L1 <-> L2

  /** Makes `pa` L0's current VMCS; the image of the other stays in its page. */
  private switchTo(pa: number): void {
    const o = this.b.unit.vmptrld(() => BigInt(pa));
    if (o.kind !== "done" || this.b.unit.currentPointer !== pa) throw new Error("kvm-api: VMPTRLD of vmcs0x");
  }

  /**
   * prepare_vmcs02(): L2's state (just loaded into vmcs01's guest area by L1's unit) moves to vmcs02,
   * whose controls are L0's for L1 merged with L1's for L2.
   */
  private enterL2(): void {
    const v = this.b.unit.vmcs;
    this.scratch.copyFrom(v);
    const l2Cr0 = v.get64(F.CR0_READ_SHADOW);
    const l2Cr4 = v.get64(F.CR4_READ_SHADOW);
    this.switchTo(this.vmcs02);
    // Every field of vmcs01 (L0's controls and host state, L2's guest state); vmcs02's own header
    // (revision, launch state) stays.
    v.words.set(this.scratch.words.subarray(4), 4);
    this.prepareVmcs02(l2Cr0, l2Cr4);
    // 27.6: vmcs12's event injection is delivered by vmcs02's entry.
    const v12 = this.unit.vmcs;
    const inj = v12.get32(F.VM_ENTRY_INTR_INFO_FIELD);
    v.set32(F.VM_ENTRY_INTR_INFO_FIELD, inj & INTR_INFO_VALID ? inj : 0);
    v.set32(F.VM_ENTRY_EXCEPTION_ERROR_CODE, v12.get32(F.VM_ENTRY_EXCEPTION_ERROR_CODE));
    v.set32(F.VM_ENTRY_INSTRUCTION_LEN, v12.get32(F.VM_ENTRY_INSTRUCTION_LEN));
  }

  /** vmcs02 (current, holding L0's controls) gets L1's controls merged in; L2's view of CR0/CR4. */
  private prepareVmcs02(l2Cr0: bigint, l2Cr4: bigint): void {
    const b = this.b;
    const v = b.unit.vmcs;
    const v12 = this.unit.vmcs;
    const view = this.view;
    const proc12 = v12.get32(F.CPU_BASED_VM_EXEC_CONTROL);
    // I/O and MSR accesses all exit to L0, which asks vmcs12's bitmaps (nested_vmx_exit_handled_io
    // and _msr): vmcs02 uses no bitmaps. Window exiting is re-armed by the injection logic.
    const proc =
      (v.get32(F.CPU_BASED_VM_EXEC_CONTROL) &
        ~(Proc.USE_MSR_BITMAPS | Proc.USE_IO_BITMAPS | Proc.INTR_WINDOW_EXITING | Proc.NMI_WINDOW_EXITING)) |
      Proc.UNCOND_IO_EXITING |
      (proc12 & L1_PROC_EXITS);
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, proc);
    const proc2_12 = proc12 & Proc.ACTIVATE_SECONDARY ? v12.get32(F.SECONDARY_VM_EXEC_CONTROL) : 0;
    v.set32(
      F.SECONDARY_VM_EXEC_CONTROL,
      // No unrestricted guest for L2 (not offered to L1): PE and PG stay 1, so L2's linear
      // addresses always go through its paging and, with nested EPT, through L1's EPT.
      (v.get32(F.SECONDARY_VM_EXEC_CONTROL) &
        ~(Proc2.ENABLE_RDTSCP | Proc2.ENABLE_INVPCID | Proc2.UNRESTRICTED_GUEST)) |
        (proc2_12 & L1_PROC2 & ~(Proc2.ENABLE_VPID | Proc2.ENABLE_EPT)),
    );
    v.set32(F.VIRTUAL_PROCESSOR_ID, L2_VPID);
    v.set32(F.CR3_TARGET_COUNT, v12.get32(F.CR3_TARGET_COUNT));
    for (let i = 0; i < 4; i++) v.set64(F.CR3_TARGET_VALUE0 + 2 * i, v12.get64(F.CR3_TARGET_VALUE0 + 2 * i));
    v.set32(F.EXCEPTION_BITMAP, EXCEPTION_BITMAP_BASE | v12.get32(F.EXCEPTION_BITMAP));
    v.set32(F.PAGE_FAULT_ERROR_CODE_MASK, v12.get32(F.PAGE_FAULT_ERROR_CODE_MASK));
    v.set32(F.PAGE_FAULT_ERROR_CODE_MATCH, v12.get32(F.PAGE_FAULT_ERROR_CODE_MATCH));
    v.set64(F.CR0_GUEST_HOST_MASK, CR0_HOST_OWNED | CR0_FIXED_L2 | v12.get64(F.CR0_GUEST_HOST_MASK));
    v.set64(F.CR4_GUEST_HOST_MASK, CR4_HOST_OWNED | v12.get64(F.CR4_GUEST_HOST_MASK));
    view.level = "l2";
    view.l2Cr0 = l2Cr0;
    view.l2Cr4 = l2Cr4;
    view.mergeShadow(0);
    view.mergeShadow(4);
    // EPT on EPT: L2's guest-physical addresses go through L1's EPT (vmcs12's EPTP, walked in L1's
    // memory with L1's MAXPHYADDR, so it can never name L0's private window) and the result is an
    // L1 guest-physical address, which L0's own map sends to RAM or MMIO as for L1 (the identity
    // EPT of L0 composes trivially). vmcs02 keeps L0's EPTP for its own entry checks.
    if (proc2_12 & Proc2.ENABLE_EPT) {
      const eptp = v12.get64(F.EPT_POINTER);
      const m = this.mmu12();
      m.setEptp({ lo: Number(eptp & 0xffffffffn) | 0, hi: Number(eptp >> 32n) | 0 });
      b.translator.mmu = m;
    }
    b.cpu.flushTranslations();
  }

  /**
   * nested_vmx_vmexit(): the exit to L1. L1's unit stores L2's state (vmcs02's guest area) and the
   * exit information into vmcs12 and loads vmcs12's host state; that state then moves to vmcs01.
   */
  exitToL1(info: ExitInfo, entryFailure = false): KvmExit | null {
    const r = this.unit.exit(info);
    if (entryFailure) this.unit.vmcs.set32(F.VM_EXIT_REASON, (EXIT_REASON_ENTRY_FAILURE | info.reason) >>> 0);
    const b = this.b;
    const view = this.view;
    this.scratch.copyFrom(b.unit.vmcs);
    this.switchTo(this.vmcs01);
    const v = b.unit.vmcs;
    copyGuestState(this.scratch, v);
    view.level = "l1";
    v.set64(F.CR0_READ_SHADOW, view.l2Cr0);
    v.set64(F.CR4_READ_SHADOW, view.l2Cr4);
    setIa32eEntry(v, (v.get64(F.GUEST_IA32_EFER) & 0x400n) !== 0n);
    v.set32(F.VM_ENTRY_INTR_INFO_FIELD, 0);
    b.translator.mmu = b.mmu;
    b.cpu.flushTranslations();
    return r.kind === "abort" ? { kind: "shutdown", reason: KVM_EXIT_SHUTDOWN } : null;
  }

  /** The walker for L2 under L1's EPT: guest paging over L1's EPT, in L1's RAM only. */
  private mmu12(): Mmu {
    if (this.l2Mmu === null)
      this.l2Mmu = new Mmu(this.b.cpu, new WalkMemory(this.b.vcpu.vm.memory, new HostMemory()), {
        tlb: false,
        maxPhyAddr: this.caps.physAddrBits,
      });
    return this.l2Mmu;
  }

  /**
   * KVM_GET_NESTED_STATE: L1's VMX operation (its unit's state with the cached vmcs12) and L2's own
   * CR0/CR4; null when L1 is not in VMX operation. L2's other registers are the vCPU's registers.
   */
  getState(): NestedState | null {
    const u = this.unit12;
    if (u === null || !u.inVmxOperation) return null;
    const view = this.view;
    return { unit: u.save(), l2Cr0: view.l2Cr0, l2Cr4: view.l2Cr4 };
  }

  /**
   * KVM_SET_NESTED_STATE, before the vCPU runs again: L1's unit as saved and, when L2 was running,
   * vmcs02 prepared again from L0's controls and vmcs12 (nested_vmx_enter_non_root_mode without the
   * entry: the registers userspace restores are L2's). Validates as VM entry would; throws
   * VmxStateError and changes nothing on a bad state.
   */
  setState(s: NestedState): void {
    if (!this.allowed()) throw new VmxStateError("nested VMX is not enabled for this vCPU");
    if (this.l2Active) throw new VmxStateError("L2 is running");
    if (typeof s?.l2Cr0 !== "bigint" || typeof s.l2Cr4 !== "bigint") throw new VmxStateError("l2Cr0/l2Cr4");
    const keep = { unit: this.unit12, view: this.view12 };
    let unit: VmxUnit;
    try {
      unit = this.parts(s.unit).unit;
    } catch (e) {
      this.unit12 = keep.unit;
      this.view12 = keep.view;
      throw e;
    }
    if (unit.nonRoot) {
      // The processor mode at the original VMLAUNCH was L1's, which the state does not carry: take
      // the one vmcs12's host address-space size returns to.
      const hostLma = (unit.vmcs.get32(F.VM_EXIT_CONTROLS) & ExitCtl.HOST_ADDR_SPACE_SIZE) !== 0;
      const env = { ...entryEnv(unit), hostLma };
      const bad = checkControls(env) ?? checkHostState(env);
      if (bad !== null) {
        this.unit12 = keep.unit;
        this.view12 = keep.view;
        throw new VmxStateError(bad);
      }
      const v = this.b.unit.vmcs;
      this.scratch.copyFrom(v);
      this.switchTo(this.vmcs02);
      v.words.set(this.scratch.words.subarray(4), 4);
      this.prepareVmcs02(s.l2Cr0, s.l2Cr4);
    }
  }

  /** Does L1 want the exit L0 just took from L2? */
  wantsExit(reason: number): boolean {
    const v = this.b.unit.vmcs;
    return l1WantsExit(this.unit.vmcs, this.mem, {
      reason,
      qualification: v.get64(F.EXIT_QUALIFICATION),
      intrInfo: v.get32(F.VM_EXIT_INTR_INFO),
      intrErrorCode: v.get32(F.VM_EXIT_INTR_ERROR_CODE),
      // L2's register as the instruction used it: 32 bits outside 64-bit mode.
      gpr: (n) => this.gpr(n),
    });
  }

  /** Reflects the exit L0 just took from L2 to L1, with vmcs02's exit information. */
  reflect(reason: number): KvmExit | null {
    const v = this.b.unit.vmcs;
    const intrInfo = v.get32(F.VM_EXIT_INTR_INFO);
    return this.exitToL1({
      reason,
      qualification: v.get64(F.EXIT_QUALIFICATION),
      intrInfo,
      ...(intrInfo & (1 << 11) ? { intrErrorCode: v.get32(F.VM_EXIT_INTR_ERROR_CODE) } : {}),
      idtVectoringInfo: v.get32(F.IDT_VECTORING_INFO_FIELD),
      idtVectoringErrorCode: v.get32(F.IDT_VECTORING_ERROR_CODE),
      instructionLength: v.get32(F.VM_EXIT_INSTRUCTION_LEN),
      instructionInfo: v.get32(F.VMX_INSTRUCTION_INFO),
      guestLinear: v.get64(F.GUEST_LINEAR_ADDRESS),
      guestPhysical: v.get64(F.GUEST_PHYSICAL_ADDRESS),
    });
  }

  /**
   * vmcs02 failed L0's own entry checks (a state vmcs12's checks let through): L1 sees a VM-entry
   * failure for invalid guest state (reason 33 with bit 31), KVM's EXIT_REASON_INVALID_STATE.
   */
  entryFailed(): KvmExit | null {
    return this.exitToL1({ reason: ExitReason.ENTRY_FAIL_GUEST_STATE }, true);
  }

  /**
   * Before entering L2 (vmx_check_nested_events): an NMI or external interrupt for L1 with vmcs12's
   * NMI / external-interrupt exiting becomes an exit to L1 (SDM 26.2), with the vector when
   * "acknowledge interrupt on exit" is 1 (28.2.2). Without those controls the injection logic
   * delivers them to L2, as the SDM says non-root operation does.
   */
  checkEvents(): KvmExit | null {
    if (!this.l2Active) return null;
    const b = this.b;
    const vcpu = b.vcpu;
    if (b.entryEventPending()) return null;
    // 26.2: INIT in VMX non-root operation exits unconditionally; it stays latched for L1.
    if ((vcpu.lapic?.pendingEvents ?? 0) & PENDING_INIT)
      return this.exitToL1({ reason: ExitReason.INIT_SIGNAL });
    const pin12 = this.unit.vmcs.get32(F.PIN_BASED_VM_EXEC_CONTROL);
    if (vcpu.hasNmi() && pin12 & Pin.NMI_EXITING) {
      vcpu.acknowledgeNmi();
      return this.exitToL1({ reason: ExitReason.EXCEPTION_NMI, intrInfo: NMI_EXIT_INFO });
    }
    if (vcpu.hasInterrupt() && pin12 & Pin.EXT_INTR_EXITING) {
      let intrInfo = 0;
      if (this.unit.vmcs.get32(F.VM_EXIT_CONTROLS) & ExitCtl.ACK_INTR_ON_EXIT) {
        const vec = vcpu.acknowledgeInterrupt();
        if (vec >= 0) intrInfo = (INTR_INFO_VALID | (vec & 0xff) | (IntrType.EXTERNAL << 8)) >>> 0;
      }
      return this.exitToL1({ reason: ExitReason.EXTERNAL_INTERRUPT, intrInfo });
    }
    return null;
  }

  /** True when an interrupt for L1 would end L2's halt by exiting to L1. */
  interruptExits(): boolean {
    return this.l2Active && (this.unit.vmcs.get32(F.PIN_BASED_VM_EXEC_CONTROL) & Pin.EXT_INTR_EXITING) !== 0;
  }

  /** After L0's injection logic: vmcs12's window exiting stays armed in vmcs02. */
  rearmWindows(): void {
    if (!this.l2Active) return;
    const v = this.b.unit.vmcs;
    const want =
      this.unit.vmcs.get32(F.CPU_BASED_VM_EXEC_CONTROL) &
      (Proc.INTR_WINDOW_EXITING | Proc.NMI_WINDOW_EXITING);
    v.set32(F.CPU_BASED_VM_EXEC_CONTROL, v.get32(F.CPU_BASED_VM_EXEC_CONTROL) | want);
  }

  /**
   * A MOV to CR0/CR4 by L2 that L1 does not intercept and L0 completes: false when it would clear a
   * bit the VMX fixed-0 MSRs L1 sees keep at 1 (PE, NE, PG; VMXE), which is #GP (SDM 24.8, 26.3).
   */
  crWriteAllowed(cr: number, value: bigint): boolean {
    const fixed0 = cr === 0 ? BigInt(this.caps.cr0Fixed0) : cr === 4 ? BigInt(this.caps.cr4Fixed0) : 0n;
    return (value & fixed0) === fixed0;
  }

  /**
   * KVM_GET_SREGS while L2 runs: L2's own CR0/CR4 (as KVM's vcpu->arch.cr0 in guest mode), not the
   * read shadows L1 gave it. Unchanged when L2 is not running.
   */
  l2Sregs(s: KvmSregs): KvmSregs {
    if (!this.l2Active) return s;
    const view = this.view;
    return { ...s, cr0: view.cr0, cr4: view.cr4 };
  }

  /** KVM_SET_SREGS while L2 runs: its CR0/CR4 are L2's own; vmcs02's read shadows stay merged. */
  sregsLoaded(cr0: bigint, cr4: bigint): void {
    if (!this.l2Active) return;
    this.crWritten(0, cr0);
    this.crWritten(4, cr4);
  }

  /** L0 completed a MOV to CR0/CR4 for L2: L2's own value, and the merged read shadow. */
  crWritten(cr: 0 | 4, value: bigint): void {
    const view = this.view;
    if (cr === 0) view.l2Cr0 = value;
    else view.l2Cr4 = value;
    view.mergeShadow(cr);
  }
}
