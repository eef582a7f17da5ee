/**
 * Register state between userspace's view (the Vcpu's `kvm_regs`/`kvm_sregs`, set and read with
 * KVM_SET/GET_REGS and _SREGS) and the running state (GPRs in the CPU, everything else in the VMCS
 * guest-state area), like KVM's register cache: loaded into the VMCS when userspace changed it,
 * written back whenever KVM_RUN returns.
 */
import { fxrstor, fxsave } from "@tskvm/cpu-x86";
import { F, Interruptibility } from "@tskvm/vmx";
import type { KvmExit } from "../exits.js";
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

/** Field by field, without allocating: it runs on every KVM_RUN return. */
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

/** The FXSAVE64 bytes kvm_fpu covers: the x87 header, ST0-7 and XMM0-15 (0..415). */
const FX_SIZE = 416;

function fpuToImage(f: S.KvmFpu, img: Uint8Array): void {
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  dv.setUint16(0, f.fcw, true);
  dv.setUint16(2, f.fsw, true);
  img[4] = f.ftwx & 0xff;
  img[5] = 0;
  dv.setUint16(6, f.lastOpcode & 0x7ff, true);
  dv.setBigUint64(8, f.lastIp, true);
  dv.setBigUint64(16, f.lastDp, true);
  // MXCSR reserved bits would make FXRSTOR #GP; KVM keeps only what the host accepts (mask 0xffff).
  dv.setUint32(24, f.mxcsr & 0xffff, true);
  dv.setUint32(28, 0xffff, true);
  img.set(f.fpr.subarray(0, 128), 32);
  img.set(f.xmm.subarray(0, 256), 160);
}

function imageToFpu(img: Uint8Array): S.KvmFpu {
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  return {
    fpr: img.slice(32, 160),
    fcw: dv.getUint16(0, true),
    fsw: dv.getUint16(2, true),
    ftwx: img[4]!,
    lastOpcode: dv.getUint16(6, true),
    lastIp: dv.getBigUint64(8, true),
    lastDp: dv.getBigUint64(16, true),
    xmm: img.slice(160, 416),
    mxcsr: dv.getUint32(24, true),
  };
}

function sameImage(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < FX_SIZE; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class StateSync {
  private lastRegs: S.KvmRegs | null = null;
  private lastSregs: S.KvmSregs | null = null;
  /** The FXSAVE64 image of the x87/SSE state as last exchanged with userspace (KVM_GET/SET_FPU). */
  private readonly lastImage = new Uint8Array(FX_SIZE).fill(0xff);
  private readonly fpuImage = new Uint8Array(FX_SIZE);
  /** Bumped when userspace state was loaded (pending completions check it, as KVM checks RIP). */
  generation = 0;
  /** `vcpu.stateGeneration` when the Vcpu last matched the running state (after `out`/`syncIn`). */
  private seenGeneration = -1;

  constructor(private readonly b: VmxBackend) {}

  /** Loads userspace's registers into the CPU/VMCS if they changed since KVM_RUN last returned. */
  syncIn(): void {
    const vcpu = this.b.vcpu;
    // Nothing was set since the state was last exchanged: skip the copies and compares.
    if (vcpu.stateGeneration === this.seenGeneration) return;
    this.fpuIn();
    const r = vcpu.getRegs();
    const s = vcpu.getSregs();
    const lr = this.lastRegs;
    const ls = this.lastSregs;
    this.seenGeneration = vcpu.stateGeneration;
    if (lr !== null && ls !== null && regsEqual(r, lr) && sregsEqual(s, ls)) return;
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
    this.b.debug.loadDr7(vcpu.getDebugRegs().dr7);
    // A fresh register state starts with no blocking and active (KVM_SET_REGS/SREGS semantics).
    v.set32(F.GUEST_INTERRUPTIBILITY_INFO, v.get32(F.GUEST_INTERRUPTIBILITY_INFO) & Interruptibility.NMI);
    v.set32(F.GUEST_ACTIVITY_STATE, 0);
    this.lastRegs = r;
    this.lastSregs = s;
    this.generation++;
  }

  /**
   * KVM_SET_FPU into the CPU's x87 and SSE units when userspace changed it. kvm_fpu is the FXSAVE64
   * image in other clothes (x86.c kvm_arch_vcpu_ioctl_set_fpu): fcw/fsw/ftwx/last_opcode at 0-7,
   * last_ip and last_dp at 8 and 16, MXCSR at 24, fpr at 32, xmm at 160; FXRSTOR64 loads it.
   */
  private fpuIn(): void {
    const img = this.fpuImage;
    fpuToImage(this.b.vcpu.getFpu(), img);
    if (sameImage(img, this.lastImage)) return;
    const u = this.b.cpu.fpUnits;
    fxrstor(u.x87, u.sse, img, 0, true, 16);
    this.lastImage.set(img);
  }

  /** The CPU's x87/SSE state back into the Vcpu's kvm_fpu when the guest changed it (FXSAVE64). */
  private fpuOut(): void {
    const img = this.fpuImage;
    const u = this.b.cpu.fpUnits;
    fxsave(u.x87, u.sse, img, 0, true, 16);
    if (sameImage(img, this.lastImage)) return;
    this.b.vcpu.setFpu(imageToFpu(img));
    this.lastImage.set(img);
  }

  /** The four PAE PDPTEs at CR3[31:5] (SDM 4.4.1), from guest memory. */
  private pdptes(cr3: bigint): bigint[] {
    const buf = new Uint8Array(32);
    if (!this.b.vcpu.vm.memory.read(Number(cr3 & 0xffffffe0n), buf)) return [0n, 0n, 0n, 0n];
    const dv = new DataView(buf.buffer);
    return [0, 8, 16, 24].map((o) => dv.getBigUint64(o, true));
  }

  /** Writes the running state back to the Vcpu and fills kvm_run's status fields; returns `exit`. */
  out(exit: KvmExit): KvmExit {
    const b = this.b;
    const vcpu = b.vcpu;
    const cpu = b.cpu;
    const v = b.unit.vmcs;
    // Only what changed goes back through KVM_SET_REGS/SREGS (their copies and checks dominate a
    // userspace exit); `last*` mirror what the Vcpu holds.
    const lr = this.lastRegs;
    const regs = lr !== null ? { ...lr } : vcpu.getRegs();
    for (const [name, i] of GPR_INDEX)
      regs[name] = (BigInt(cpu.r[i * 2 + 1]! >>> 0) << 32n) | BigInt(cpu.r[i * 2]! >>> 0);
    regs.rip = v.get64(F.GUEST_RIP);
    regs.rsp = v.get64(F.GUEST_RSP);
    regs.rflags = v.get64(F.GUEST_RFLAGS);
    if (lr === null || !regsEqual(regs, lr)) {
      vcpu.setRegs(regs);
      this.lastRegs = regs;
    }
    const ls = this.lastSregs;
    const sregs = this.b.nested.l2Sregs(vmcsToSregs(v, cpu, ls ?? vcpu.getSregs()));
    if (ls === null || !sregsEqual(sregs, ls) || !vcpu.lapic) {
      const full = this.b.nested.l2Sregs(vmcsToSregs(v, cpu, vcpu.getSregs()));
      if (!vcpu.lapic) {
        const bm: [bigint, bigint, bigint, bigint] = [0n, 0n, 0n, 0n];
        const p = vcpu.pendingExternalVector;
        if (p >= 0) bm[p >>> 6] = 1n << BigInt(p & 63);
        full.interruptBitmap = bm;
      }
      try {
        vcpu.setSregs(full);
      } catch {
        // A state KVM_SET_SREGS would refuse (the guest can reach CR4 values userspace may not
        // set): userspace keeps the previous sregs; the running state is unaffected.
      }
      this.lastSregs = vcpu.getSregs();
    }
    this.fpuOut();
    this.seenGeneration = vcpu.stateGeneration;
    const rf = vcpu.runFields;
    const rflags = v.get64(F.GUEST_RFLAGS);
    const ifFlag = (rflags & 0x200n) !== 0n;
    rf.ifFlag = ifFlag;
    rf.readyForInterruptInjection =
      ifFlag &&
      (v.get32(F.GUEST_INTERRUPTIBILITY_INFO) & 3) === 0 &&
      !b.entryEventPending() &&
      vcpu.pendingExternalVector < 0;
    return exit;
  }
}
