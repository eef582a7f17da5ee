/**
 * Architectural state of one x86-64 logical processor (SDM Vol. 1 ch. 3, Vol. 3 ch. 2-3).
 *
 * 64-bit registers are pairs of 32-bit halves in an Int32Array (`r[2*n]` low, `r[2*n+1]` high), so the
 * hot path never needs BigInt. Segment registers keep their hidden parts (base, limit, access rights in
 * the VMX access-rights layout, SDM Vol. 3 24.4.1) in parallel typed arrays indexed ES=0 CS=1 SS=2 DS=3
 * FS=4 GS=5 LDTR=6 TR=7.
 */

/** RFLAGS bits (SDM Vol. 1 3.4.3). */
export const F = {
  CF: 1 << 0,
  FIXED1: 1 << 1,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
} as const;

/** The six arithmetic flags that lazy evaluation covers. */
export const ARITH_FLAGS = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;

/** Segment register indexes. */
export const Seg = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5, LDTR: 6, TR: 7 } as const;

/** Access-rights bits (VMX layout: descriptor bits 40..47 and 52..55 packed into bits 0..7, 12..15). */
export const AR = {
  TYPE_MASK: 0xf,
  ACCESSED: 1 << 0,
  /** Code: readable; data: writable. */
  RW: 1 << 1,
  /** Code: conforming; data: expand-down. */
  CE: 1 << 2,
  CODE: 1 << 3,
  S: 1 << 4,
  DPL_SHIFT: 5,
  P: 1 << 7,
  AVL: 1 << 12,
  L: 1 << 13,
  DB: 1 << 14,
  G: 1 << 15,
  /** VMX "segment unusable" (null selector loaded). */
  UNUSABLE: 1 << 16,
} as const;

/** CR0 bits (SDM Vol. 3 2.5). */
export const CR0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 1 << 31,
} as const;

/** CR4 bits. */
export const CR4 = {
  VME: 1 << 0,
  PVI: 1 << 1,
  TSD: 1 << 2,
  DE: 1 << 3,
  PSE: 1 << 4,
  PAE: 1 << 5,
  MCE: 1 << 6,
  PGE: 1 << 7,
  PCE: 1 << 8,
  OSFXSR: 1 << 9,
  OSXMMEXCPT: 1 << 10,
  UMIP: 1 << 11,
  VMXE: 1 << 13,
  FSGSBASE: 1 << 16,
  PCIDE: 1 << 17,
  OSXSAVE: 1 << 18,
  SMEP: 1 << 20,
  SMAP: 1 << 21,
  /** Protection keys for user-mode pages (PKRU, SDM Vol. 3 4.6.2). */
  PKE: 1 << 22,
} as const;

/** EFER bits (SDM Vol. 3 2.2.1). */
/** DR7.GD, general detect (SDM Vol. 3 18.2.4): MOV to or from a debug register raises #DB. */
export const DR7_GD = 1 << 13;

export const EFER = { SCE: 1 << 0, LME: 1 << 8, LMA: 1 << 10, NXE: 1 << 11 } as const;

/** Model-specific registers the CPU implements (SDM Vol. 4). Any other index raises #GP(0). */
export const Msr = {
  TSC: 0x10,
  APIC_BASE: 0x1b,
  FEATURE_CONTROL: 0x3a,
  TSC_ADJUST: 0x3b,
  SPEC_CTRL: 0x48,
  MTRRCAP: 0xfe,
  SYSENTER_CS: 0x174,
  SYSENTER_ESP: 0x175,
  SYSENTER_EIP: 0x176,
  MISC_ENABLE: 0x1a0,
  PAT: 0x277,
  MTRR_DEF_TYPE: 0x2ff,
  EFER: 0xc0000080,
  STAR: 0xc0000081,
  LSTAR: 0xc0000082,
  CSTAR: 0xc0000083,
  FMASK: 0xc0000084,
  FS_BASE: 0xc0000100,
  GS_BASE: 0xc0000101,
  KERNEL_GS_BASE: 0xc0000102,
  TSC_AUX: 0xc0000103,
} as const;

/**
 * IA32_XSS (SDM Vol. 1 13.3), present when CPUID.(0DH,1):EAX[3] reports XSAVES. Not in `Msr`, the list
 * kvm-api reports as KVM_GET_MSR_INDEX_LIST: KVM lists it only when XSAVES is supported, which here is
 * opt-in.
 */
export const MSR_IA32_XSS = 0xda0;

/** Register numbers (SDM encoding order). */
export const Reg = {
  RAX: 0,
  RCX: 1,
  RDX: 2,
  RBX: 3,
  RSP: 4,
  RBP: 5,
  RSI: 6,
  RDI: 7,
} as const;

/** The 64-bit MSRs kept as halves, by name; index into `CpuState.msr64`. */
export const MSR64_NAMES = [
  "star",
  "lstar",
  "cstar",
  "fmask",
  "kernelGsBase",
  "sysenterEsp",
  "sysenterEip",
  "pat",
  "tscAux",
  "apicBase",
  "miscEnable",
  "featureControl",
  "mtrrDefType",
  "specCtrl",
  "tscAdjust",
] as const;
export type Msr64Name = (typeof MSR64_NAMES)[number];
/** Index of each named 64-bit MSR in `msr64` (lo at 2*i, hi at 2*i+1). */
export const M64 = Object.fromEntries(MSR64_NAMES.map((n, i) => [n, i])) as Record<Msr64Name, number>;

/** A 64-bit value in a snapshot: hex string "0x..." of up to 16 digits. */
export type Hex64 = string;

export interface SegmentState {
  selector: number;
  base: Hex64;
  limit: number;
  /** Access rights in the VMX layout (see `AR`). */
  attr: number;
}

/** Plain, JSON-able state of the CPU (integer part). Named fields only. */
export interface CpuStateSnapshot {
  version: 1;
  rax: Hex64;
  rcx: Hex64;
  rdx: Hex64;
  rbx: Hex64;
  rsp: Hex64;
  rbp: Hex64;
  rsi: Hex64;
  rdi: Hex64;
  r8: Hex64;
  r9: Hex64;
  r10: Hex64;
  r11: Hex64;
  r12: Hex64;
  r13: Hex64;
  r14: Hex64;
  r15: Hex64;
  rip: Hex64;
  rflags: number;
  es: SegmentState;
  cs: SegmentState;
  ss: SegmentState;
  ds: SegmentState;
  fs: SegmentState;
  gs: SegmentState;
  ldtr: SegmentState;
  tr: SegmentState;
  gdtr: { base: Hex64; limit: number };
  idtr: { base: Hex64; limit: number };
  cr0: number;
  cr2: Hex64;
  cr3: Hex64;
  cr4: number;
  cr8: number;
  efer: number;
  dr0: Hex64;
  dr1: Hex64;
  dr2: Hex64;
  dr3: Hex64;
  dr6: number;
  dr7: number;
  xcr0: Hex64;
  /** PKRU (absent in snapshots taken before protection keys: 0). */
  pkru?: number;
  tsc: Hex64;
  sysenterCs: number;
  msrs: Record<Msr64Name, Hex64>;
  xmm: string[];
  mxcsr: number;
  halted: boolean;
  /** Interruptibility: STI or MOV SS shadow on the next instruction, NMI blocking. */
  interruptShadow: number;
  nmiBlocked: boolean;
}

const REG_NAMES = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;
const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"] as const;

/** Formats a 64-bit value given as halves (cold path). */
export function hex64(lo: number, hi: number): Hex64 {
  return `0x${(hi >>> 0).toString(16).padStart(8, "0")}${(lo >>> 0).toString(16).padStart(8, "0")}`;
}

/** Parses a snapshot hex value into halves; throws a descriptive error on malformed input. */
export function parseHex64(s: unknown, what: string): [number, number] {
  if (typeof s !== "string" || !/^0x[0-9a-fA-F]{1,16}$/.test(s)) {
    throw new CpuStateError(`${what}: expected a hex string 0x..., got ${JSON.stringify(s)}`);
  }
  const v = BigInt(s);
  return [Number(v & 0xffffffffn) | 0, Number(v >> 32n) | 0];
}

/** The error `restore` raises for a malformed snapshot. */
export class CpuStateError extends Error {
  override name = "CpuStateError";
}

function num(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new CpuStateError(`${what}: expected an integer`);
  return v;
}

/**
 * Registers and hidden state. Behaviour lives in subclasses (flags, memory, execution); this class is
 * only storage plus `save`/`restore`.
 */
export class CpuState {
  /** GPRs as halves: r[2n] = low 32 bits, r[2n+1] = high 32 bits. */
  readonly r = new Int32Array(32);
  ripLo = 0;
  ripHi = 0;
  /**
   * RFLAGS except the six arithmetic flags while `lazyOp !== 0` (see flags.ts); bit 1 is always set.
   */
  flags = F.FIXED1;

  readonly segSel = new Int32Array(8);
  readonly segBaseLo = new Int32Array(8);
  readonly segBaseHi = new Int32Array(8);
  /** Byte-granular effective limit (already scaled by G). */
  readonly segLimit = new Int32Array(8);
  readonly segAttr = new Int32Array(8);

  gdtrBaseLo = 0;
  gdtrBaseHi = 0;
  gdtrLimit = 0xffff;
  idtrBaseLo = 0;
  idtrBaseHi = 0;
  idtrLimit = 0xffff;

  cr0 = CR0.ET | CR0.CD | CR0.NW;
  cr2Lo = 0;
  cr2Hi = 0;
  cr3Lo = 0;
  cr3Hi = 0;
  cr4 = 0;
  cr8 = 0;
  efer = 0;
  /** DR0..DR3 as halves. */
  readonly dr = new Int32Array(8);
  dr6 = 0xffff0ff0 | 0;
  dr7 = 0x400;
  xcr0Lo = 1;
  xcr0Hi = 0;
  /** Protection-key rights for user pages (SDM Vol. 3 4.6.2): AD = bit 2k, WD = bit 2k + 1. */
  pkru = 0;
  /**
   * IA32_XSS (low half; the supported bits, `XSS_SUPPORTED`, are none, so it stays 0 and snapshots
   * leave it out).
   */
  xssLo = 0;
  sysenterCs = 0;
  /** Named 64-bit MSRs (see `MSR64_NAMES`), halves. */
  readonly msr64 = new Int32Array(MSR64_NAMES.length * 2);

  /** XMM0..15, 4 dwords each, with float views over the same buffer; MXCSR. */
  readonly xmm = new Uint32Array(16 * 4);
  readonly xmmF32 = new Float32Array(this.xmm.buffer);
  readonly xmmF64 = new Float64Array(this.xmm.buffer);
  /** Holder of MXCSR: the SSE unit's state object once it is composed in (cpu.ts). */
  mxcsrBox: { mxcsr: number } = { mxcsr: 0x1f80 };
  get mxcsr(): number {
    return this.mxcsrBox.mxcsr;
  }
  set mxcsr(v: number) {
    this.mxcsrBox.mxcsr = v;
  }

  /** TSC offset against the VM clock: TSC = clock() + tscOffset (cold; number is exact to 2^53). */
  tscOffset = 0;

  halted = false;
  /** 1 = STI shadow, 2 = MOV SS shadow; cleared after the next instruction (SDM Vol. 3 6.8.3). */
  interruptShadow = 0;
  nmiBlocked = false;

  // ---- cached mode (recomputed by `updateMode`) ----
  /** Current privilege level (CS.DPL, SDM Vol. 3 5.5; 0 in real mode, 3 in virtual-8086 mode). */
  cpl = 0;
  /** Decode mode of the current code segment. */
  codeMode: 16 | 32 | 64 = 16;
  /** Stack address size in bytes (SS.B, or 8 in 64-bit mode). */
  stackSize = 2;
  /**
   * Moves whenever the meaning of a (CS, RIP) -> code mapping may change (mode or CS change, TLB
   * flush); block links made under another epoch are not followed. Bits 1:0 are the CPL, the rest a
   * generation: a privilege change alone only switches the low bits, so after SYSCALL and SYSRET (or
   * an interrupt from user mode and its IRET) the links made at each level serve again.
   */
  linkEpoch = 0;
  /**
   * The epoch of links to code fetched through a global translation (PTE.G with CR4.PGE): those
   * translations survive MOV CR3 (SDM Vol. 3 4.10.4.1), so links into kernel code need not be
   * dropped at every context switch. It moves with `linkEpoch` except at the non-global flush, and
   * has the same low CPL bits; it is always negative, so never equal to a `linkEpoch`.
   */
  globalLinkEpoch = -4;
  /**
   * What `linkEpoch` was last moved for: decode mode, CPL, CS base and limit. Not private: generated
   * SYSCALL/SYSRET (jit-gen.ts `genFlatCsSs`) write `moveLinkEpoch`'s CPL-only case out.
   */
  linkMode = -1;
  linkCpl = -1;
  linkCsBase = 0;
  linkCsLimit = 0;

  constructor() {
    this.resetState();
  }

  /** Power-on / RESET values (SDM Vol. 3 9.1.1, Table 9-1). */
  resetState(): void {
    this.r.fill(0);
    this.r[Reg.RDX * 2] = 0x600; // processor signature family 6
    this.ripLo = 0xfff0;
    this.ripHi = 0;
    this.flags = F.FIXED1;
    for (let s = 0; s < 8; s++) {
      this.segSel[s] = 0;
      this.segBaseLo[s] = 0;
      this.segBaseHi[s] = 0;
      this.segLimit[s] = 0xffff;
      this.segAttr[s] = AR.P | AR.S | AR.RW | AR.ACCESSED;
    }
    this.segSel[Seg.CS] = 0xf000;
    this.segBaseLo[Seg.CS] = 0xffff0000 | 0;
    this.segAttr[Seg.CS] = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED;
    this.segAttr[Seg.LDTR] = AR.P | 2;
    this.segAttr[Seg.TR] = AR.P | 3; // busy 16-bit TSS per Table 9-1 (VMX expects 32/64-bit busy: 11)
    this.gdtrBaseLo = this.gdtrBaseHi = 0;
    this.gdtrLimit = 0xffff;
    this.idtrBaseLo = this.idtrBaseHi = 0;
    this.idtrLimit = 0xffff;
    this.cr0 = CR0.ET | CR0.CD | CR0.NW;
    this.cr2Lo = this.cr2Hi = this.cr3Lo = this.cr3Hi = 0;
    this.cr4 = this.cr8 = this.efer = 0;
    this.dr.fill(0);
    this.dr6 = 0xffff0ff0 | 0;
    this.dr7 = 0x400;
    this.xcr0Lo = 1;
    this.xcr0Hi = 0;
    this.pkru = 0;
    this.xssLo = 0;
    this.sysenterCs = 0;
    this.msr64.fill(0);
    this.msr64[M64.pat * 2] = 0x00070406;
    this.msr64[M64.pat * 2 + 1] = 0x00070406;
    this.msr64[M64.apicBase * 2] = 0xfee00900 | 0; // BSP, enabled, default base
    this.msr64[M64.miscEnable * 2] = 1; // fast strings
    this.xmm.fill(0);
    this.mxcsr = 0x1f80;
    this.tscOffset = 0;
    this.halted = false;
    this.interruptShadow = 0;
    this.nmiBlocked = false;
    this.cpl = 0;
    this.codeMode = 16;
    this.stackSize = 2;
  }

  /** RFLAGS as the guest would read it (subclasses materialize lazy flags). */
  getRflags(): number {
    return this.flags;
  }

  /** Writes RFLAGS (subclasses drop lazy state). */
  setRflags(v: number): void {
    this.flags = (v | F.FIXED1) & 0x3f7fd7;
  }

  /**
   * Recomputes `codeMode` and `stackSize` from CR0/EFER/CS/SS (SDM Vol. 3 2.2, 5.2.1). CPL is 0 in real
   * mode and 3 in virtual-8086 mode; in protected mode it is kept by whoever loads CS (it equals CS.RPL
   * once a protected-mode CS is loaded, and stays 0 right after CR0.PE is set).
   */
  updateMode(): void {
    const csAttr = this.segAttr[Seg.CS]!;
    if ((this.cr0 & CR0.PE) === 0) {
      this.cpl = 0;
      this.codeMode = csAttr & AR.DB ? 32 : 16;
    } else if (this.flags & F.VM) {
      this.cpl = 3;
      this.codeMode = 16;
    } else {
      this.codeMode = this.efer & EFER.LMA && csAttr & AR.L ? 64 : csAttr & AR.DB ? 32 : 16;
    }
    this.stackSize = this.codeMode === 64 ? 8 : this.segAttr[Seg.SS]! & AR.DB ? 4 : 2;
    this.moveLinkEpoch(this.codeMode, this.segBaseLo[Seg.CS]!, this.segLimit[Seg.CS]!, this.cpl);
  }

  /**
   * Links and the jump cache hold while the fetch context is the same: a VM entry, an interrupt or
   * an IRET that stays in the same code segment at the same CPL keeps them. A new decode mode, CS
   * base or limit starts a new generation; a CPL change alone switches the epochs' low bits.
   */
  moveLinkEpoch(mode: number, base: number, limit: number, cpl: number): void {
    if (mode !== this.linkMode || base !== this.linkCsBase || limit !== this.linkCsLimit) {
      this.linkMode = mode;
      this.linkCpl = cpl;
      this.linkCsBase = base;
      this.linkCsLimit = limit;
      this.linkEpoch = (((this.linkEpoch & ~3) + 4) & 0x7fffffff) | cpl;
      this.globalLinkEpoch = ((this.globalLinkEpoch & ~3) - 4) | cpl | 0x80000000;
    } else if (cpl !== this.linkCpl) {
      this.linkCpl = cpl;
      this.linkEpoch = (this.linkEpoch & ~3) | cpl;
      this.globalLinkEpoch = (this.globalLinkEpoch & ~3) | cpl;
    }
  }

  /** Drops every block link and jump-cache entry: a new generation at the same CPL. */
  newLinkEpoch(): void {
    this.linkEpoch = (this.linkEpoch + 4) & 0x7fffffff;
    this.globalLinkEpoch = (this.globalLinkEpoch - 4) | 0x80000000;
  }

  /** Drops the links and jump-cache entries of code fetched through non-global translations. */
  newNonGlobalLinkEpoch(): void {
    this.linkEpoch = (this.linkEpoch + 4) & 0x7fffffff;
  }

  /** Plain named-field snapshot of the integer and SSE state. */
  save(): CpuStateSnapshot {
    const seg = (s: number): SegmentState => ({
      selector: this.segSel[s]! & 0xffff,
      base: hex64(this.segBaseLo[s]!, this.segBaseHi[s]!),
      limit: this.segLimit[s]! >>> 0,
      attr: this.segAttr[s]!,
    });
    const msrs = {} as Record<Msr64Name, Hex64>;
    for (const n of MSR64_NAMES) msrs[n] = hex64(this.msr64[M64[n] * 2]!, this.msr64[M64[n] * 2 + 1]!);
    const xmm: string[] = [];
    for (let i = 0; i < 16; i++) {
      let s = "0x";
      for (let d = 3; d >= 0; d--) s += this.xmm[i * 4 + d]!.toString(16).padStart(8, "0");
      xmm.push(s);
    }
    const regs = {} as Record<(typeof REG_NAMES)[number], Hex64>;
    REG_NAMES.forEach((n, i) => {
      regs[n] = hex64(this.r[2 * i]!, this.r[2 * i + 1]!);
    });
    return {
      version: 1,
      ...regs,
      rip: hex64(this.ripLo, this.ripHi),
      rflags: this.getRflags() >>> 0,
      es: seg(0),
      cs: seg(1),
      ss: seg(2),
      ds: seg(3),
      fs: seg(4),
      gs: seg(5),
      ldtr: seg(6),
      tr: seg(7),
      gdtr: { base: hex64(this.gdtrBaseLo, this.gdtrBaseHi), limit: this.gdtrLimit },
      idtr: { base: hex64(this.idtrBaseLo, this.idtrBaseHi), limit: this.idtrLimit },
      cr0: this.cr0 >>> 0,
      cr2: hex64(this.cr2Lo, this.cr2Hi),
      cr3: hex64(this.cr3Lo, this.cr3Hi),
      cr4: this.cr4 >>> 0,
      cr8: this.cr8,
      efer: this.efer >>> 0,
      dr0: hex64(this.dr[0]!, this.dr[1]!),
      dr1: hex64(this.dr[2]!, this.dr[3]!),
      dr2: hex64(this.dr[4]!, this.dr[5]!),
      dr3: hex64(this.dr[6]!, this.dr[7]!),
      dr6: this.dr6 >>> 0,
      dr7: this.dr7 >>> 0,
      xcr0: hex64(this.xcr0Lo, this.xcr0Hi),
      pkru: this.pkru >>> 0,
      tsc: hex64((this.tscOffset % 2 ** 32) | 0, Math.floor(this.tscOffset / 2 ** 32) | 0),
      sysenterCs: this.sysenterCs >>> 0,
      msrs,
      xmm,
      mxcsr: this.mxcsr >>> 0,
      halted: this.halted,
      interruptShadow: this.interruptShadow,
      nmiBlocked: this.nmiBlocked,
    };
  }

  /** Loads a snapshot made by `save`, validating every field; throws `CpuStateError` on bad input. */
  restore(s: CpuStateSnapshot): void {
    if (s === null || typeof s !== "object" || s.version !== 1) {
      throw new CpuStateError("unsupported CPU snapshot version");
    }
    const r = new Int32Array(32);
    REG_NAMES.forEach((n, i) => {
      const [lo, hi] = parseHex64(s[n], n);
      r[2 * i] = lo;
      r[2 * i + 1] = hi;
    });
    const seg = (name: (typeof SEG_NAMES)[number], idx: number): void => {
      const v = s[name];
      if (v === null || typeof v !== "object") throw new CpuStateError(`${name}: missing`);
      const [lo, hi] = parseHex64(v.base, `${name}.base`);
      this.segSel[idx] = num(v.selector, `${name}.selector`) & 0xffff;
      this.segBaseLo[idx] = lo;
      this.segBaseHi[idx] = hi;
      this.segLimit[idx] = num(v.limit, `${name}.limit`) | 0;
      this.segAttr[idx] = num(v.attr, `${name}.attr`) | 0;
    };
    SEG_NAMES.forEach((n, i) => {
      seg(n, i);
    });
    this.r.set(r);
    [this.ripLo, this.ripHi] = parseHex64(s.rip, "rip");
    this.setRflags(num(s.rflags, "rflags"));
    [this.gdtrBaseLo, this.gdtrBaseHi] = parseHex64(s.gdtr?.base, "gdtr.base");
    this.gdtrLimit = num(s.gdtr.limit, "gdtr.limit") & 0xffff;
    [this.idtrBaseLo, this.idtrBaseHi] = parseHex64(s.idtr?.base, "idtr.base");
    this.idtrLimit = num(s.idtr.limit, "idtr.limit") & 0xffff;
    this.cr0 = num(s.cr0, "cr0") | 0;
    [this.cr2Lo, this.cr2Hi] = parseHex64(s.cr2, "cr2");
    [this.cr3Lo, this.cr3Hi] = parseHex64(s.cr3, "cr3");
    this.cr4 = num(s.cr4, "cr4") | 0;
    this.cr8 = num(s.cr8, "cr8") & 15;
    this.efer = num(s.efer, "efer") | 0;
    const drs = [s.dr0, s.dr1, s.dr2, s.dr3];
    drs.forEach((d, i) => {
      const [lo, hi] = parseHex64(d, `dr${i}`);
      this.dr[2 * i] = lo;
      this.dr[2 * i + 1] = hi;
    });
    this.dr6 = num(s.dr6, "dr6") | 0;
    this.dr7 = num(s.dr7, "dr7") | 0;
    [this.xcr0Lo, this.xcr0Hi] = parseHex64(s.xcr0, "xcr0");
    this.pkru = s.pkru === undefined ? 0 : num(s.pkru, "pkru") | 0;
    const [tl, th] = parseHex64(s.tsc, "tsc");
    this.tscOffset = (th >>> 0) * 2 ** 32 + (tl >>> 0);
    this.sysenterCs = num(s.sysenterCs, "sysenterCs") & 0xffff;
    for (const n of MSR64_NAMES) {
      const [lo, hi] = parseHex64(s.msrs?.[n], `msrs.${n}`);
      this.msr64[M64[n] * 2] = lo;
      this.msr64[M64[n] * 2 + 1] = hi;
    }
    if (!Array.isArray(s.xmm) || s.xmm.length !== 16) throw new CpuStateError("xmm: expected 16 entries");
    s.xmm.forEach((x, i) => {
      if (typeof x !== "string" || !/^0x[0-9a-fA-F]{32}$/.test(x))
        throw new CpuStateError(`xmm${i}: bad value`);
      for (let d = 0; d < 4; d++)
        this.xmm[i * 4 + d] = Number.parseInt(x.slice(2 + (3 - d) * 8, 10 + (3 - d) * 8), 16);
    });
    this.mxcsr = num(s.mxcsr, "mxcsr") & 0xffff;
    this.halted = s.halted === true;
    this.interruptShadow = num(s.interruptShadow, "interruptShadow") & 3;
    this.nmiBlocked = s.nmiBlocked === true;
    // CPL is SS.DPL in protected mode (the VMX guest-state convention, SDM Vol. 3 24.4.1).
    this.cpl = (this.segAttr[Seg.SS]! >> AR.DPL_SHIFT) & 3;
    this.updateMode();
  }
}
