/**
 * Lazy arithmetic flags. Most instructions that write OSZAPC record the operation kind, the operand size
 * and the operands/result; the flags are computed only when something reads them (Jcc, SETcc, PUSHF, an
 * instruction that updates a subset). Carry-in of ADC/SBB is folded into the kind: ADC with CF=0 is
 * recorded as ADD, with CF=1 as ADC1, so no flag has to be kept alongside.
 *
 * Operand convention: for sizes 1 and 2 the values are zero-extended (masked to the size); for sizes 4
 * and 8 the low half is any int32 representation. For size 8 the high halves live in the *Hi fields.
 */
import { ARITH_FLAGS, CpuState, F } from "./state.js";

/** Lazy operation kinds. 0 = flags are all in `flags`. */
export const LF = {
  NONE: 0,
  ADD: 1,
  /** ADC with carry-in 1: CF = res <= dst. */
  ADC1: 2,
  SUB: 3,
  /** SBB with borrow-in 1: CF = dst <= src. */
  SBB1: 4,
  /** AND/OR/XOR/TEST: CF = OF = 0, AF = 0 (SDM: undefined). */
  LOGIC: 5,
  /** INC: as ADD with src 1, CF preserved in `flags`. */
  INC: 6,
  /** DEC: as SUB with src 1, CF preserved in `flags`. */
  DEC: 7,
} as const;

/** PF: set when the low byte of the result has an even number of 1 bits. */
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i;
  b ^= b >> 4;
  b ^= b >> 2;
  b ^= b >> 1;
  PARITY[i] = (b & 1) === 0 ? F.PF : 0;
}

export { PARITY };

export class FlagsCpu extends CpuState {
  lzOp = 0;
  lzSize = 4;
  lzDst = 0;
  lzSrc = 0;
  lzRes = 0;
  lzDstHi = 0;
  lzSrcHi = 0;
  lzResHi = 0;

  /** Sign of a recorded value: returns the sign bit of lo (size 1/2/4) or of hi (size 8) as 0/1. */
  private signOf(lo: number, hi: number): number {
    switch (this.lzSize) {
      case 1:
        return (lo >> 7) & 1;
      case 2:
        return (lo >> 15) & 1;
      case 4:
        return lo >>> 31;
      default:
        return hi >>> 31;
    }
  }

  cf(): boolean {
    switch (this.lzOp) {
      case LF.NONE:
      case LF.INC:
      case LF.DEC:
        return (this.flags & F.CF) !== 0;
      case LF.LOGIC:
        return false;
      case LF.ADD:
        return this.lzSize === 8
          ? ult64(this.lzRes, this.lzResHi, this.lzDst, this.lzDstHi)
          : this.lzRes >>> 0 < this.lzDst >>> 0;
      case LF.ADC1:
        return this.lzSize === 8
          ? !ult64(this.lzDst, this.lzDstHi, this.lzRes, this.lzResHi)
          : this.lzRes >>> 0 <= this.lzDst >>> 0;
      case LF.SUB:
        return this.lzSize === 8
          ? ult64(this.lzDst, this.lzDstHi, this.lzSrc, this.lzSrcHi)
          : this.lzDst >>> 0 < this.lzSrc >>> 0;
      default: // SBB1
        return this.lzSize === 8
          ? !ult64(this.lzSrc, this.lzSrcHi, this.lzDst, this.lzDstHi)
          : this.lzDst >>> 0 <= this.lzSrc >>> 0;
    }
  }

  zf(): boolean {
    if (this.lzOp === LF.NONE) return (this.flags & F.ZF) !== 0;
    switch (this.lzSize) {
      case 1:
        return (this.lzRes & 0xff) === 0;
      case 2:
        return (this.lzRes & 0xffff) === 0;
      case 4:
        return this.lzRes === 0;
      default:
        return (this.lzRes | this.lzResHi) === 0;
    }
  }

  sf(): boolean {
    if (this.lzOp === LF.NONE) return (this.flags & F.SF) !== 0;
    return this.signOf(this.lzRes, this.lzResHi) !== 0;
  }

  of(): boolean {
    switch (this.lzOp) {
      case LF.NONE:
        return (this.flags & F.OF) !== 0;
      case LF.LOGIC:
        return false;
      case LF.ADD:
      case LF.ADC1:
      case LF.INC:
        return (
          this.signOf(
            (this.lzDst ^ this.lzRes) & (this.lzSrc ^ this.lzRes),
            (this.lzDstHi ^ this.lzResHi) & (this.lzSrcHi ^ this.lzResHi),
          ) !== 0
        );
      default:
        return (
          this.signOf(
            (this.lzDst ^ this.lzSrc) & (this.lzDst ^ this.lzRes),
            (this.lzDstHi ^ this.lzSrcHi) & (this.lzDstHi ^ this.lzResHi),
          ) !== 0
        );
    }
  }

  pf(): boolean {
    if (this.lzOp === LF.NONE) return (this.flags & F.PF) !== 0;
    return PARITY[this.lzRes & 0xff] !== 0;
  }

  af(): boolean {
    if (this.lzOp === LF.NONE) return (this.flags & F.AF) !== 0;
    if (this.lzOp === LF.LOGIC) return false;
    return ((this.lzDst ^ this.lzSrc ^ this.lzRes) & 0x10) !== 0;
  }

  /**
   * Folds the lazy state into `flags` and drops it: what cf() ... of() give, computed in one pass
   * (every PUSHF, interrupt, SYSCALL and exit that reads RFLAGS comes here).
   */
  materialize(): void {
    const op = this.lzOp;
    if (op === LF.NONE) return;
    const sz = this.lzSize;
    const res = this.lzRes;
    const old = this.flags;
    let f = (old & ~ARITH_FLAGS) | PARITY[res & 0xff]!;
    // ZF, SF and the sign-bit word for OF: the high half for 8-byte operands.
    let sign: number;
    if (sz === 4) {
      if (res === 0) f |= F.ZF;
      sign = 31;
    } else if (sz === 8) {
      if ((res | this.lzResHi) === 0) f |= F.ZF;
      sign = 31;
    } else if (sz === 1) {
      if ((res & 0xff) === 0) f |= F.ZF;
      sign = 7;
    } else {
      if ((res & 0xffff) === 0) f |= F.ZF;
      sign = 15;
    }
    const hiWord = sz === 8;
    if ((((hiWord ? this.lzResHi : res) >>> sign) & 1) !== 0) f |= F.SF;
    if (op !== LF.LOGIC) {
      const d = this.lzDst;
      const s = this.lzSrc;
      if (((d ^ s ^ res) & 0x10) !== 0) f |= F.AF;
      const dh = this.lzDstHi;
      const sh = this.lzSrcHi;
      const rh = this.lzResHi;
      let cf: boolean;
      let ofw: number;
      switch (op) {
        case LF.ADD:
          cf = hiWord ? ult64(res, rh, d, dh) : res >>> 0 < d >>> 0;
          ofw = hiWord ? (dh ^ rh) & (sh ^ rh) : (d ^ res) & (s ^ res);
          break;
        case LF.ADC1:
          cf = hiWord ? !ult64(d, dh, res, rh) : res >>> 0 <= d >>> 0;
          ofw = hiWord ? (dh ^ rh) & (sh ^ rh) : (d ^ res) & (s ^ res);
          break;
        case LF.SUB:
          cf = hiWord ? ult64(d, dh, s, sh) : d >>> 0 < s >>> 0;
          ofw = hiWord ? (dh ^ sh) & (dh ^ rh) : (d ^ s) & (d ^ res);
          break;
        case LF.SBB1:
          cf = hiWord ? !ult64(s, sh, d, dh) : d >>> 0 <= s >>> 0;
          ofw = hiWord ? (dh ^ sh) & (dh ^ rh) : (d ^ s) & (d ^ res);
          break;
        case LF.INC:
          cf = (old & F.CF) !== 0;
          ofw = hiWord ? (dh ^ rh) & (sh ^ rh) : (d ^ res) & (s ^ res);
          break;
        default: // DEC
          cf = (old & F.CF) !== 0;
          ofw = hiWord ? (dh ^ sh) & (dh ^ rh) : (d ^ s) & (d ^ res);
      }
      if (cf) f |= F.CF;
      if (((ofw >>> sign) & 1) !== 0) f |= F.OF;
    }
    this.flags = f;
    this.lzOp = LF.NONE;
  }

  override getRflags(): number {
    this.materialize();
    return this.flags;
  }

  override setRflags(v: number): void {
    this.lzOp = LF.NONE;
    super.setRflags(v);
  }

  /** Sets the arithmetic flags given in `mask` to `value` bits, keeping the others (materializing first). */
  setArith(mask: number, value: number): void {
    this.materialize();
    this.flags = (this.flags & ~mask) | (value & mask);
  }

  /** Sets ZF, SF, PF from a result of `size` bytes (lo/hi), and CF/OF/AF from `cfOfAf`; eager. */
  setResultFlags(size: number, lo: number, hi: number, cfOfAf: number): void {
    let f = (this.flags & ~ARITH_FLAGS) | (cfOfAf & (F.CF | F.OF | F.AF)) | PARITY[lo & 0xff]!;
    switch (size) {
      case 1:
        if ((lo & 0xff) === 0) f |= F.ZF;
        if (lo & 0x80) f |= F.SF;
        break;
      case 2:
        if ((lo & 0xffff) === 0) f |= F.ZF;
        if (lo & 0x8000) f |= F.SF;
        break;
      case 4:
        if (lo === 0) f |= F.ZF;
        if (lo < 0) f |= F.SF;
        break;
      default:
        if ((lo | hi) === 0) f |= F.ZF;
        if (hi < 0) f |= F.SF;
    }
    this.flags = f;
    this.lzOp = LF.NONE;
  }

  /** Evaluates condition code `cc` (0..15, SDM Vol. 1 Table B-1 order: O NO B AE E NE BE A S NS P NP L GE LE G). */
  cond(cc: number): boolean {
    let v: boolean;
    switch (cc >> 1) {
      case 0:
        v = this.of();
        break;
      case 1:
        v = this.cf();
        break;
      case 2:
        v = this.zf();
        break;
      case 3:
        v = this.cf() || this.zf();
        break;
      case 4:
        v = this.sf();
        break;
      case 5:
        v = this.pf();
        break;
      case 6:
        v = this.sf() !== this.of();
        break;
      default:
        v = this.zf() || this.sf() !== this.of();
    }
    return (cc & 1) === 0 ? v : !v;
  }
}

/** Unsigned 64-bit a < b on halves. */
export function ult64(aLo: number, aHi: number, bLo: number, bHi: number): boolean {
  return aHi >>> 0 < bHi >>> 0 || (aHi === bHi && aLo >>> 0 < bLo >>> 0);
}
