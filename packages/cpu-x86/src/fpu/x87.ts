/**
 * x87 FPU state and register-stack semantics (SDM Vol. 1 Chapter 8): eight physical 80-bit
 * registers R0..R7, TOP, the tag word, control and status words, the last-instruction pointers
 * (FIP/FCS, FDP/FDS, FOP), and the MMX aliasing of Chapter 9 (MMn is the significand of Rn).
 *
 * Instruction semantics live in x87ops.ts; state images (FSTENV, FSAVE, FXSAVE, XSAVE) in image.ts.
 */
import { FpExc, INDEF_HI, INDEF_SE, SoftFloat, X87_BIAS_ADJUST } from "./softfloat.js";

/** Status word bits (SDM Vol. 1 §8.1.3). */
export const Sw = {
  IE: 0x0001,
  DE: 0x0002,
  ZE: 0x0004,
  OE: 0x0008,
  UE: 0x0010,
  PE: 0x0020,
  SF: 0x0040,
  ES: 0x0080,
  C0: 0x0100,
  C1: 0x0200,
  C2: 0x0400,
  TOP_SHIFT: 11,
  C3: 0x4000,
  B: 0x8000,
} as const;

/** Control word fields (SDM Vol. 1 §8.1.5). */
export const Cw = {
  MASKS: 0x003f,
  PC_SHIFT: 8,
  RC_SHIFT: 10,
  X: 0x1000,
  /** FNINIT value: all exceptions masked, 64-bit precision, round to nearest. */
  INIT: 0x037f,
} as const;

/** Two-bit tag values (SDM Vol. 1 §8.1.7). */
export const Tag = { Valid: 0, Zero: 1, Special: 2, Empty: 3 } as const;

/** Plain JSON state of the x87 unit (`X87.save()`). Registers are physical R0..R7. */
export interface X87State {
  cw: number;
  /** Status word including TOP. */
  sw: number;
  /** Full 16-bit tag word (2 bits per physical register). */
  tw: number;
  fop: number;
  fip: number;
  fipHi: number;
  fcs: number;
  fdp: number;
  fdpHi: number;
  fds: number;
  /** Physical registers R0..R7 as { se, hi, lo }. */
  regs: { se: number; hi: number; lo: number }[];
}

/** Error of X87.restore: which field was wrong. */
export type X87RestoreError = { kind: "BadField"; field: string };

/**
 * The x87 unit. `sf` is its soft-float engine; ops configure it from the control word.
 *
 * @example
 * const fpu = new X87();
 * fpu.push(0x3fff, 0x80000000, 0); // 1.0
 * fpu.st(0) === 0 || fpu.getSw() >>> 11 === 7; // TOP is now 7
 */
export class X87 {
  readonly sf = new SoftFloat();
  /** Significands: R[i] low half at [2i], high half at [2i+1]. MMi aliases exactly these words. */
  readonly mant = new Uint32Array(16);
  /** Sign/exponent of R[i]; MMX writes set it to 0xFFFF (SDM Vol. 1 §9.5.1). */
  readonly se = new Uint16Array(8);
  /** Full tag word, 2 bits per physical register. */
  tw = 0xffff;
  cw: number = Cw.INIT;
  /** Status word without TOP (bits 13:11 kept in `top`). */
  sw = 0;
  top = 0;
  fop = 0;
  fip = 0;
  fipHi = 0;
  fcs = 0;
  fdp = 0;
  fdpHi = 0;
  fds = 0;
  /** Scratch for the transcendentals' double glue (words 6,7 alias scratch[3]). */
  readonly scratch = new Float64Array(4);
  readonly scratchU32 = new Uint32Array(this.scratch.buffer);
  /** Result of the last memory-store op (FST/FIST/...): float32/int in oLo, float64/int64 in oHi:oLo, ext adds oSe. */
  oSe = 0;
  oHi = 0;
  oLo = 0;

  /** FNINIT (SDM Vol. 2 FINIT): registers keep their contents. */
  init(): void {
    this.cw = Cw.INIT;
    this.sw = 0;
    this.top = 0;
    this.tw = 0xffff;
    this.fop = 0;
    this.fip = 0;
    this.fipHi = 0;
    this.fcs = 0;
    this.fdp = 0;
    this.fdpHi = 0;
    this.fds = 0;
  }

  /** Status word with TOP. */
  getSw(): number {
    return (this.sw & ~0x3800) | (this.top << 11);
  }

  setSw(v: number): void {
    this.top = (v >>> 11) & 7;
    this.sw = v & 0xc7ff;
  }

  /** Physical register number of ST(i). */
  phys(i: number): number {
    return (this.top + i) & 7;
  }

  tagOf(phys: number): number {
    return (this.tw >>> (2 * phys)) & 3;
  }

  setTag(phys: number, t: number): void {
    this.tw = (this.tw & ~(3 << (2 * phys))) | (t << (2 * phys));
  }

  isEmpty(i: number): boolean {
    return this.tagOf(this.phys(i)) === Tag.Empty;
  }

  /** The tag a value gets when written (SDM Vol. 1 §8.1.7). */
  static classify(se: number, hi: number, lo: number): number {
    const e = se & 0x7fff;
    if (e === 0x7fff) return Tag.Special;
    if (e === 0) return hi === 0 && lo === 0 ? Tag.Zero : Tag.Special;
    return hi & 0x80000000 ? Tag.Valid : Tag.Special;
  }

  /** Write physical register p and tag it from its contents. */
  writePhys(p: number, se: number, hi: number, lo: number): void {
    this.se[p] = se;
    this.mant[2 * p + 1] = hi;
    this.mant[2 * p] = lo;
    this.setTag(p, X87.classify(se, hi, lo));
  }

  writeST(i: number, se: number, hi: number, lo: number): void {
    this.writePhys(this.phys(i), se, hi, lo);
  }

  stSe(i: number): number {
    return this.se[this.phys(i)]!;
  }

  stHi(i: number): number {
    return this.mant[2 * this.phys(i) + 1]!;
  }

  stLo(i: number): number {
    return this.mant[2 * this.phys(i)]!;
  }

  /** Unpack ST(i) into engine slot A (b=false) or B. */
  loadSlot(i: number, b: boolean): number {
    const p = this.phys(i);
    return this.sf.unpackX(this.se[p]!, this.mant[2 * p + 1]!, this.mant[2 * p]!, b);
  }

  /** Pop: tag ST(0) empty, TOP + 1. */
  pop(): void {
    this.setTag(this.top, Tag.Empty);
    this.top = (this.top + 1) & 7;
  }

  /**
   * Push a value. Stack overflow (ST(7) not empty) sets IE, SF and C1; when IE is masked the
   * real indefinite is pushed instead, else nothing changes (SDM Vol. 1 §8.5.1.1).
   * Returns true when the value was pushed without a stack fault: the caller then records the
   * operation's own exceptions with C1 = 0. After an overflow C1 stays 1 (the host CPU agrees).
   */
  push(se: number, hi: number, lo: number): boolean {
    const p = (this.top - 1) & 7;
    if (this.tagOf(p) !== Tag.Empty) {
      this.raise(FpExc.IE | Sw.SF, Sw.C1);
      if ((this.cw & FpExc.IE) === 0) return false;
      this.top = p;
      this.writePhys(p, INDEF_SE, INDEF_HI, 0);
      return false;
    }
    this.top = p;
    this.writePhys(p, se, hi, lo);
    return true;
  }

  /**
   * Stack underflow (an empty source register): IE and SF, C1 = 0 (SDM Vol. 1 §8.5.1.1).
   * Returns true when IE is masked, i.e. the caller stores the real indefinite.
   */
  underflow(): boolean {
    this.raise(FpExc.IE | Sw.SF, 0);
    return (this.cw & FpExc.IE) !== 0;
  }

  /**
   * Record exceptions in the status word: sticky flags, ES and B when any pending flag is
   * unmasked (SDM Vol. 1 §8.1.3.3), C1 set to `c1` (0 or Sw.C1).
   */
  raise(exc: number, c1: number): void {
    let sw = (this.sw & ~Sw.C1) | exc | c1;
    if (sw & ~this.cw & 0x3f) sw |= Sw.ES | Sw.B;
    this.sw = sw;
  }

  /** Condition codes C3 C2 C1 C0 from a 4-bit value (bit 3 = C3 ... bit 0 = C0). */
  setCC(c3: number, c2: number, c1: number, c0: number): void {
    this.sw =
      (this.sw & ~(Sw.C0 | Sw.C1 | Sw.C2 | Sw.C3)) |
      (c0 ? Sw.C0 : 0) |
      (c1 ? Sw.C1 : 0) |
      (c2 ? Sw.C2 : 0) |
      (c3 ? Sw.C3 : 0);
  }

  /** An unmasked exception is pending: the next waiting x87 instruction takes #MF (CR0.NE=1). */
  pendingException(): boolean {
    return (this.sw & Sw.ES) !== 0;
  }

  /** FNCLEX: clear exception flags, SF, ES and B (SDM Vol. 2 FCLEX). */
  clex(): void {
    this.sw &= ~(0x3f | Sw.SF | Sw.ES | Sw.B);
  }

  /** FLDCW: also recomputes ES/B against the new masks (SDM Vol. 1 §8.1.5). */
  setCw(v: number): void {
    // Bit 6 is reserved and reads as 1 (the host CPU: FLDCW 0 -> FNSTCW 0040H); bits 15:13 read 0.
    this.cw = (v & 0x1f3f) | 0x40;
    if (this.sw & ~this.cw & 0x3f) this.sw |= Sw.ES | Sw.B;
    else this.sw &= ~(Sw.ES | Sw.B);
  }

  /**
   * Configure the engine from the control word: RC, masks and the precision (PC 00 = 24 bits,
   * 10 = 53, 11 = 64; the reserved 01 is treated as 64, see the test "PC=01").
   * Returns the precision in bits.
   */
  prepare(): number {
    const sf = this.sf;
    sf.rc = (this.cw >>> 10) & 3;
    sf.masks = this.cw & 0x3f;
    sf.ftz = false;
    sf.daz = false;
    sf.sse = false;
    sf.flags = 0;
    sf.roundedUp = 0;
    const pc = (this.cw >>> 8) & 3;
    return pc === 0 ? 24 : pc === 2 ? 53 : 64;
  }

  /** Bias adjust for register destinations (unmasked OE/UE). */
  static readonly ADJ = X87_BIAS_ADJUST;

  /** Record the last non-control instruction (FOP = 11 bits of the opcode; SDM Vol. 1 §8.1.8). */
  setLastInsn(
    fop: number,
    fcs: number,
    fip: number,
    fipHi: number,
    fds: number,
    fdp: number,
    fdpHi: number,
  ): void {
    this.fop = fop & 0x7ff;
    this.fcs = fcs & 0xffff;
    this.fip = fip >>> 0;
    this.fipHi = fipHi >>> 0;
    this.fds = fds & 0xffff;
    this.fdp = fdp >>> 0;
    this.fdpHi = fdpHi >>> 0;
  }

  // ------------------------------------------------------------------ MMX aliasing

  /**
   * Any MMX instruction (except EMMS): TOP = 0 and all tags valid (SDM Vol. 1 §9.5.1).
   * The executor calls this before an MMX op's register accesses.
   */
  mmxEnter(): void {
    this.top = 0;
    this.tw = 0;
  }

  /** EMMS: all tags empty. */
  emms(): void {
    this.tw = 0xffff;
  }

  /** Write MMn (64 bits): the exponent field becomes all ones (SDM Vol. 1 §9.5.1). */
  writeMm(n: number, hi: number, lo: number): void {
    this.mant[2 * n] = lo;
    this.mant[2 * n + 1] = hi;
    this.se[n] = 0xffff;
  }

  // ------------------------------------------------------------------ state

  save(): X87State {
    const regs: X87State["regs"] = [];
    for (let p = 0; p < 8; p++)
      regs.push({ se: this.se[p]!, hi: this.mant[2 * p + 1]!, lo: this.mant[2 * p]! });
    return {
      cw: this.cw,
      sw: this.getSw(),
      tw: this.tw,
      fop: this.fop,
      fip: this.fip,
      fipHi: this.fipHi,
      fcs: this.fcs,
      fdp: this.fdp,
      fdpHi: this.fdpHi,
      fds: this.fds,
      regs,
    };
  }

  /** Rebuild from `save()` output; validates every field's type and range. */
  static restore(s: X87State): X87 | X87RestoreError {
    const u = (v: unknown, max: number): boolean =>
      typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
    const fields: [keyof X87State, number][] = [
      ["cw", 0xffff],
      ["sw", 0xffff],
      ["tw", 0xffff],
      ["fop", 0x7ff],
      ["fip", 0xffffffff],
      ["fipHi", 0xffffffff],
      ["fcs", 0xffff],
      ["fdp", 0xffffffff],
      ["fdpHi", 0xffffffff],
      ["fds", 0xffff],
    ];
    for (const [f, max] of fields) if (!u(s[f], max)) return { kind: "BadField", field: f };
    if (!Array.isArray(s.regs) || s.regs.length !== 8) return { kind: "BadField", field: "regs" };
    const x = new X87();
    for (let p = 0; p < 8; p++) {
      const r = s.regs[p];
      if (!r || !u(r.se, 0xffff) || !u(r.hi, 0xffffffff) || !u(r.lo, 0xffffffff))
        return { kind: "BadField", field: `regs[${p}]` };
      x.se[p] = r.se;
      x.mant[2 * p + 1] = r.hi;
      x.mant[2 * p] = r.lo;
    }
    x.cw = s.cw & 0x1f7f;
    x.setSw(s.sw);
    x.tw = s.tw;
    x.fop = s.fop;
    x.fip = s.fip;
    x.fipHi = s.fipHi;
    x.fcs = s.fcs;
    x.fdp = s.fdp;
    x.fdpHi = s.fdpHi;
    x.fds = s.fds;
    return x;
  }
}
