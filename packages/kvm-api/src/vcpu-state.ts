/**
 * Architectural vCPU state as the KVM vCPU ioctls carry it (`struct kvm_regs`, `kvm_sregs`,
 * `kvm_fpu`, `kvm_xsave`, `kvm_xcrs`, `kvm_vcpu_events`, `kvm_debugregs`, `kvm_mp_state`), with
 * the reset values (SDM Vol. 3 10.1.1, Table 10-1 "IA-32 and Intel 64 Processor States Following
 * Power-up, Reset, or INIT") and the checks KVM makes on the set side (arch/x86/kvm/x86.c).
 * 64-bit fields are bigint: these are cold, userspace-facing copies, not the CPU's hot state.
 */
import { fail } from "./errors.js";

export interface KvmRegs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}
export const REG_NAMES = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
] as const satisfies readonly (keyof KvmRegs)[];

export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}
export interface KvmDtable {
  base: bigint;
  limit: number;
}
export interface KvmSregs {
  cs: KvmSegment;
  ds: KvmSegment;
  es: KvmSegment;
  fs: KvmSegment;
  gs: KvmSegment;
  ss: KvmSegment;
  tr: KvmSegment;
  ldt: KvmSegment;
  gdt: KvmDtable;
  idt: KvmDtable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** 256 bits: the pending external interrupt (userspace irqchip only). */
  interruptBitmap: [bigint, bigint, bigint, bigint];
}
export const SEGMENT_NAMES = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

/** `struct kvm_fpu`: x87 registers, control words, and XMM0-15. */
export interface KvmFpu {
  /** 8 x 16 bytes (80-bit values in the low 10). */
  fpr: Uint8Array;
  fcw: number;
  fsw: number;
  /** Abridged tag word (FXSAVE format). */
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  /** 16 x 16 bytes. */
  xmm: Uint8Array;
  mxcsr: number;
}

/** `struct kvm_xcrs`: XCR0 only on x86 today. */
export interface KvmXcr {
  xcr: number;
  value: bigint;
}

/** `struct kvm_vcpu_events` (api.rst 4.31). */
export interface KvmVcpuEvents {
  exception: { injected: number; nr: number; hasErrorCode: number; pending: number; errorCode: number };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipiVector: number;
  flags: number;
  smi: { smm: number; pending: number; smmInsideNmi: number; latchedInit: number };
  tripleFault: { pending: number };
  exceptionHasPayload: number;
  exceptionPayload: bigint;
}
export const KVM_VCPUEVENT_VALID_NMI_PENDING = 0x1;
export const KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x2;
export const KVM_VCPUEVENT_VALID_SHADOW = 0x4;
export const KVM_VCPUEVENT_VALID_SMM = 0x8;
export const KVM_VCPUEVENT_VALID_PAYLOAD = 0x10;
export const KVM_VCPUEVENT_VALID_TRIPLE_FAULT = 0x20;

/** `struct kvm_debugregs`. */
export interface KvmDebugRegs {
  db: [bigint, bigint, bigint, bigint];
  dr6: bigint;
  dr7: bigint;
  flags: number;
}

/** KVM_MP_STATE_* (api.rst 4.38). */
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;
export const KVM_MP_STATE_SIPI_RECEIVED = 4;

function seg(selector: number, base: bigint, type: number, extra: Partial<KvmSegment> = {}): KvmSegment {
  return {
    base,
    limit: 0xffff,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
    ...extra,
  };
}

/** Registers after RESET (SDM Table 10-1): RIP 0xfff0, RFLAGS 2, EDX = family/model/stepping. */
export function resetRegs(edx = 0x600n): KvmRegs {
  const r = Object.fromEntries(REG_NAMES.map((n) => [n, 0n])) as unknown as KvmRegs;
  r.rip = 0xfff0n;
  r.rflags = 2n;
  r.rdx = edx;
  return r;
}

/** Segment and control registers after RESET (SDM Table 10-1; KVM's vmx_vcpu_reset values). */
export function resetSregs(apicBase: bigint): KvmSregs {
  return {
    cs: seg(0xf000, 0xffff0000n, 0xb),
    ds: seg(0, 0n, 3),
    es: seg(0, 0n, 3),
    fs: seg(0, 0n, 3),
    gs: seg(0, 0n, 3),
    ss: seg(0, 0n, 3),
    tr: seg(0, 0n, 0xb, { s: 0 }),
    ldt: seg(0, 0n, 2, { s: 0 }),
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n,
    cr2: 0n,
    cr3: 0n,
    cr4: 0n,
    cr8: 0n,
    efer: 0n,
    apicBase,
    interruptBitmap: [0n, 0n, 0n, 0n],
  };
}

/** FPU after FNINIT/RESET: FCW 0x37f, MXCSR 0x1f80 (SDM Table 10-1). */
export function resetFpu(): KvmFpu {
  return {
    fpr: new Uint8Array(128),
    fcw: 0x37f,
    fsw: 0,
    ftwx: 0,
    lastOpcode: 0,
    lastIp: 0n,
    lastDp: 0n,
    xmm: new Uint8Array(256),
    mxcsr: 0x1f80,
  };
}

/** The FXSAVE64 bytes kvm_fpu covers: the x87 header, ST0-7 and XMM0-15 (0..415). */
export const FX_SIZE = 416;

/** kvm_fpu as the FXSAVE64 image it stands for (x86.c kvm_arch_vcpu_ioctl_get/set_fpu). */
export function fpuToImage(f: KvmFpu, img: Uint8Array): void {
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

/** The kvm_fpu fields of an FXSAVE64 image (also the legacy region of an XSAVE image). */
export function imageToFpu(img: Uint8Array): KvmFpu {
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

export function emptyEvents(): KvmVcpuEvents {
  return {
    exception: { injected: 0, nr: 0, hasErrorCode: 0, pending: 0, errorCode: 0 },
    interrupt: { injected: 0, nr: 0, soft: 0, shadow: 0 },
    nmi: { injected: 0, pending: 0, masked: 0 },
    sipiVector: 0,
    flags: 0,
    smi: { smm: 0, pending: 0, smmInsideNmi: 0, latchedInit: 0 },
    tripleFault: { pending: 0 },
    exceptionHasPayload: 0,
    exceptionPayload: 0n,
  };
}

const CR0_PE = 1n;
const CR0_NW = 1n << 29n;
const CR0_CD = 1n << 30n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;
/** CR4 bits the architecture defines up to PKS (bit 24); others are reserved (#GP, KVM EINVAL). */
export const CR4_DEFINED = 0x1ff7fffn;

/** KVM_SET_SREGS checks: x86.c kvm_is_valid_sregs(), kvm_is_valid_cr0(), kvm_is_valid_cr4(). */
export function checkSregs(s: KvmSregs, cr4Allowed: bigint, maxPhysAddrBits: number): void {
  const step = "KVM_SET_SREGS";
  if (s.efer & EFER_LME && s.cr0 & CR0_PG) {
    // Long mode active: CR4.PAE and EFER.LMA must be set, and CR3 a legal GPA.
    if (!(s.cr4 & CR4_PAE) || !(s.efer & EFER_LMA)) fail("EINVAL", step, "LongModeInconsistent");
    if (s.cr3 >> BigInt(maxPhysAddrBits) !== 0n) fail("EINVAL", step, "IllegalCr3");
  } else if (s.efer & EFER_LMA || s.cs.l) {
    fail("EINVAL", step, "LmaWithoutPaging");
  }
  if (s.cr0 >> 32n !== 0n) fail("EINVAL", step, "Cr0Reserved");
  if (s.cr0 & CR0_NW && !(s.cr0 & CR0_CD)) fail("EINVAL", step, "Cr0NwWithoutCd");
  if (s.cr0 & CR0_PG && !(s.cr0 & CR0_PE)) fail("EINVAL", step, "Cr0PgWithoutPe");
  if (s.cr4 & ~cr4Allowed) fail("EINVAL", step, "Cr4Reserved", `0x${s.cr4.toString(16)}`);
  for (const n of SEGMENT_NAMES) {
    const g = s[n];
    if (g.base < 0n || g.base >> 64n !== 0n) fail("EINVAL", step, "SegmentBase", n);
  }
}

/** KVM_SET_VCPU_EVENTS checks: x86.c kvm_vcpu_ioctl_x86_set_vcpu_events(). */
export function checkEvents(e: KvmVcpuEvents): void {
  const step = "KVM_SET_VCPU_EVENTS";
  const valid =
    KVM_VCPUEVENT_VALID_NMI_PENDING |
    KVM_VCPUEVENT_VALID_SIPI_VECTOR |
    KVM_VCPUEVENT_VALID_SHADOW |
    KVM_VCPUEVENT_VALID_PAYLOAD |
    KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
  // SMM is not offered (no KVM_CAP_X86_SMM), so VALID_SMM is an unknown flag here.
  if (e.flags & ~valid) fail("EINVAL", step, "UnknownFlags");
  if (e.exception.injected || e.exception.pending) {
    if (e.exception.nr > 31 || e.exception.nr === 2) fail("EINVAL", step, "BadExceptionVector");
  }
  if (e.exception.pending && !(e.flags & KVM_VCPUEVENT_VALID_PAYLOAD)) {
    // Without KVM_CAP_EXCEPTION_PAYLOAD "pending" is not part of the ABI.
    fail("EINVAL", step, "PendingWithoutPayloadCap");
  }
  if (e.tripleFault.pending && !(e.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT)) {
    fail("EINVAL", step, "TripleFaultWithoutFlag");
  }
}

/** KVM_SET_DEBUGREGS checks: flags must be 0, DR6 and DR7 bits 63:32 clear. */
export function checkDebugRegs(d: KvmDebugRegs): void {
  const step = "KVM_SET_DEBUGREGS";
  if (d.flags) fail("EINVAL", step, "BadFlags");
  if (d.dr6 >> 32n) fail("EINVAL", step, "Dr6Reserved");
  if (d.dr7 >> 32n) fail("EINVAL", step, "Dr7Reserved");
}

/** XCR0 rules (SDM 13.3): x87 must be set, AVX needs SSE, only offered components. */
export function checkXcrs(xcrs: readonly KvmXcr[], xcr0Supported: bigint): void {
  const step = "KVM_SET_XCRS";
  if (xcrs.length > 16) fail("EINVAL", step, "TooManyXcrs");
  for (const x of xcrs) {
    if (x.xcr !== 0) fail("EINVAL", step, "UnknownXcr");
    if (!(x.value & 1n)) fail("EINVAL", step, "X87Clear");
    if (x.value & 4n && !(x.value & 2n)) fail("EINVAL", step, "AvxWithoutSse");
    if (x.value & ~xcr0Supported) fail("EINVAL", step, "UnsupportedComponent");
  }
}
