/**
 * Soft-float engine for x87 80-bit extended precision, also used for exact SSE float32/float64
 * arithmetic when the host's double arithmetic cannot give the architected result or flags.
 *
 * Values travel as raw bits: an extended value is `se` (sign bit 15, biased exponent 14..0) and a
 * 64-bit significand in two unsigned 32-bit halves `hi`/`lo` (explicit integer bit = hi bit 31).
 * No BigInt and no allocation: operands are unpacked into the A/B slots of this object, an
 * operation leaves an exact intermediate (96-bit significand + sticky bit) in the Z slot, and a
 * packer rounds it into the destination format (Intel SDM Vol. 1 §4.8, §4.9, §8.1.5).
 *
 * Rounding follows IEEE 754 with x86's choices: tininess is detected after rounding (SDM Vol. 1
 * §4.9.1.5 and §11.5.2.2), masked underflow is flagged only when the result is also inexact,
 * masked overflow delivers infinity or the largest finite number by rounding mode (Table 4-10).
 */

/** Exception flag bits, at the same positions as in the x87 status word and in MXCSR. */
export const FpExc = {
  IE: 0x01,
  DE: 0x02,
  ZE: 0x04,
  OE: 0x08,
  UE: 0x10,
  PE: 0x20,
} as const;

/** Rounding control, as encoded in FCW.RC (bits 11:10) and MXCSR.RC (bits 14:13). */
export const RoundMode = { Nearest: 0, Down: 1, Up: 2, Zero: 3 } as const;

/** Operand classes after unpacking. Finite non-zero values are Normal or Denormal (normalized). */
export const Cls = {
  Zero: 0,
  Normal: 1,
  /** A denormal (or x87 pseudo-denormal) input; the slot holds it normalized. */
  Denormal: 2,
  Inf: 3,
  QNaN: 4,
  SNaN: 5,
  /** x87 unsupported encodings: unnormals, pseudo-NaNs, pseudo-infinities (SDM Vol. 1 §8.2.2). */
  Unsupported: 6,
} as const;

/** Extended exponent bias and the normal exponent range of the three formats. */
export const X80_BIAS = 16383;
export const X80_EMIN = -16382;
export const X80_EMAX = 16383;
export const F64_EMIN = -1022;
export const F64_EMAX = 1023;
export const F32_EMIN = -126;
export const F32_EMAX = 127;
/** x87 bias adjust for unmasked overflow/underflow with a register destination (SDM Vol. 1 §4.9.1.4). */
export const X87_BIAS_ADJUST = 24576;

/** Real indefinite / QNaN floating-point indefinite: sign 1, quiet, zero payload (SDM Vol. 1 Table 4-3). */
export const INDEF_SE = 0xffff;
export const INDEF_HI = 0xc0000000;

/**
 * The engine. One instance per consumer (the x87 unit owns one, the SSE unit another); its fields
 * are scratch registers, so it is not re-entrant, and it never throws.
 *
 * @example
 * const sf = new SoftFloat();
 * sf.unpackF64A(0x3ff00000, 0); // 1.0
 * sf.unpackF64B(0x40000000, 0); // 2.0
 * sf.add(false, false);
 * sf.packF64(); // sf.oHi === 0x40080000 (3.0)
 */
export class SoftFloat {
  /** Rounding mode (RoundMode). */
  rc = 0;
  /** Masked exceptions: bit set = masked (FCW bits 5:0, MXCSR bits 12:7 shifted down). */
  masks = 0x3f;
  /** SSE flush-to-zero (MXCSR.FTZ): tiny results become zero when UE is masked. */
  ftz = false;
  /** SSE denormals-are-zeros (MXCSR.DAZ): denormal inputs read as zero, no DE. */
  daz = false;
  /**
   * SSE conventions for unmasked OE/UE (no result is delivered; PE is reported with them when
   * the rounded result is inexact), versus x87 memory stores (OE/UE alone). Observed on the host.
   */
  sse = false;
  /** Exceptions raised by operations since the caller last cleared it. */
  flags = 0;
  /** x87 C1 after a rounded result: 1 if the magnitude was rounded up (SDM Vol. 1 §8.1.3.1). */
  roundedUp = 0;
  /** Set when the last pack applied the x87 unmasked overflow/underflow bias adjust. */
  biasAdjusted = false;

  // Operand slots.
  aSign = 0;
  aExp = 0;
  aHi = 0;
  aLo = 0;
  aCls = 0;
  bSign = 0;
  bExp = 0;
  bHi = 0;
  bLo = 0;
  bCls = 0;

  // Intermediate: class, sign, unbiased exponent of z2 bit 31, 96-bit significand, sticky.
  zCls = 0;
  zSign = 0;
  zExp = 0;
  z2 = 0;
  z1 = 0;
  z0 = 0;
  zSticky = 0;

  // Packed output: extended (oSe, oHi, oLo), float64 (oHi, oLo), float32 (oLo).
  oSe = 0;
  oHi = 0;
  oLo = 0;

  // ---------------------------------------------------------------- unpacking

  /** Unpack an extended value into slot A (b=false) or B (b=true); returns its class. */
  unpackX(se: number, hi: number, lo: number, b: boolean): number {
    const sign = (se >>> 15) & 1;
    const e = se & 0x7fff;
    hi >>>= 0;
    lo >>>= 0;
    let cls: number;
    let exp = e - X80_BIAS;
    if (e === 0x7fff) {
      if ((hi & 0x80000000) === 0) cls = Cls.Unsupported;
      else if ((hi & 0x7fffffff) === 0 && lo === 0) cls = Cls.Inf;
      else cls = hi & 0x40000000 ? Cls.QNaN : Cls.SNaN;
    } else if (e === 0) {
      if (hi === 0 && lo === 0) cls = Cls.Zero;
      else {
        // Denormals have exponent 2^-16382 with integer bit 0; a pseudo-denormal (integer bit 1)
        // is read as the same exponent, i.e. as a normal (SDM Vol. 1 §8.2.2).
        cls = Cls.Denormal;
        exp = X80_EMIN;
        if ((hi & 0x80000000) === 0) {
          const sh = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
          exp -= sh;
          if (sh >= 32) {
            hi = (lo << (sh - 32)) >>> 0;
            lo = 0;
          } else {
            hi = ((hi << sh) | (lo >>> (32 - sh))) >>> 0;
            lo = (lo << sh) >>> 0;
          }
        }
      }
    } else cls = hi & 0x80000000 ? Cls.Normal : Cls.Unsupported;
    if (b) {
      this.bSign = sign;
      this.bExp = exp;
      this.bHi = hi;
      this.bLo = lo;
      this.bCls = cls;
    } else {
      this.aSign = sign;
      this.aExp = exp;
      this.aHi = hi;
      this.aLo = lo;
      this.aCls = cls;
    }
    return cls;
  }

  /** Unpack a float64 (as hi/lo words) exactly into slot A or B; honours `daz`. */
  unpackF64(hi: number, lo: number, b: boolean): number {
    const sign = hi >>> 31;
    const e = (hi >>> 20) & 0x7ff;
    const fh = hi & 0xfffff;
    lo >>>= 0;
    let sh = ((fh << 11) | (lo >>> 21)) >>> 0;
    let sl = (lo << 11) >>> 0;
    let exp = e - 1023;
    let cls: number;
    if (e === 0x7ff) {
      sh = (sh | 0x80000000) >>> 0;
      if (fh === 0 && lo === 0) cls = Cls.Inf;
      else cls = fh & 0x80000 ? Cls.QNaN : Cls.SNaN;
    } else if (e === 0) {
      if (fh === 0 && lo === 0) cls = Cls.Zero;
      else if (this.daz) cls = Cls.Zero;
      else {
        cls = Cls.Denormal;
        const z = sh !== 0 ? Math.clz32(sh) : 32 + Math.clz32(sl);
        exp = F64_EMIN - z;
        if (z >= 32) {
          sh = (sl << (z - 32)) >>> 0;
          sl = 0;
        } else if (z > 0) {
          sh = ((sh << z) | (sl >>> (32 - z))) >>> 0;
          sl = (sl << z) >>> 0;
        }
      }
    } else {
      cls = Cls.Normal;
      sh = (sh | 0x80000000) >>> 0;
    }
    if (cls === Cls.Zero) {
      sh = 0;
      sl = 0;
    }
    if (b) {
      this.bSign = sign;
      this.bExp = exp;
      this.bHi = sh;
      this.bLo = sl;
      this.bCls = cls;
    } else {
      this.aSign = sign;
      this.aExp = exp;
      this.aHi = sh;
      this.aLo = sl;
      this.aCls = cls;
    }
    return cls;
  }

  /** Unpack a float32 (raw bits) exactly into slot A or B; honours `daz`. */
  unpackF32(bits: number, b: boolean): number {
    const sign = bits >>> 31;
    const e = (bits >>> 23) & 0xff;
    const f = bits & 0x7fffff;
    let sh = (f << 8) >>> 0;
    let exp = e - 127;
    let cls: number;
    if (e === 0xff) {
      sh = (sh | 0x80000000) >>> 0;
      if (f === 0) cls = Cls.Inf;
      else cls = f & 0x400000 ? Cls.QNaN : Cls.SNaN;
    } else if (e === 0) {
      if (f === 0 || this.daz) {
        cls = Cls.Zero;
        sh = 0;
      } else {
        cls = Cls.Denormal;
        const z = Math.clz32(sh);
        exp = F32_EMIN - z;
        sh = (sh << z) >>> 0;
      }
    } else {
      cls = Cls.Normal;
      sh = (sh | 0x80000000) >>> 0;
    }
    if (b) {
      this.bSign = sign;
      this.bExp = exp;
      this.bHi = sh;
      this.bLo = 0;
      this.bCls = cls;
    } else {
      this.aSign = sign;
      this.aExp = exp;
      this.aHi = sh;
      this.aLo = 0;
      this.aCls = cls;
    }
    return cls;
  }

  /** Unpack a signed 64-bit integer (hi/lo words) into slot A as an exact value. */
  unpackI64(hi: number, lo: number): void {
    let sign = 0;
    hi >>>= 0;
    lo >>>= 0;
    if (hi & 0x80000000) {
      sign = 1;
      lo = (~lo + 1) >>> 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    }
    this.aSign = sign;
    if (hi === 0 && lo === 0) {
      this.aCls = Cls.Zero;
      this.aExp = 0;
      this.aHi = 0;
      this.aLo = 0;
      return;
    }
    const z = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
    if (z >= 32) {
      hi = (lo << (z - 32)) >>> 0;
      lo = 0;
    } else if (z > 0) {
      hi = ((hi << z) | (lo >>> (32 - z))) >>> 0;
      lo = (lo << z) >>> 0;
    }
    this.aCls = Cls.Normal;
    this.aExp = 63 - z;
    this.aHi = hi;
    this.aLo = lo;
  }

  /** Exchange slots A and B (reversed operations: FSUBR, FDIVR). */
  swapSlots(): void {
    let t = this.aSign;
    this.aSign = this.bSign;
    this.bSign = t;
    t = this.aExp;
    this.aExp = this.bExp;
    this.bExp = t;
    t = this.aHi;
    this.aHi = this.bHi;
    this.bHi = t;
    t = this.aLo;
    this.aLo = this.bLo;
    this.bLo = t;
    t = this.aCls;
    this.aCls = this.bCls;
    this.bCls = t;
  }

  /** Slot B := slot A. */
  copyAtoB(): void {
    this.bSign = this.aSign;
    this.bExp = this.aExp;
    this.bHi = this.aHi;
    this.bLo = this.aLo;
    this.bCls = this.aCls;
  }

  // ---------------------------------------------------------------- Z helpers

  /** Copy slot A (or B) into Z as a finite value to be rounded. */
  zFromSlot(b: boolean): void {
    if (b) {
      this.zSign = this.bSign;
      this.zExp = this.bExp;
      this.z2 = this.bHi;
      this.z1 = this.bLo;
      this.zCls = this.bCls === Cls.Denormal ? Cls.Normal : this.bCls;
    } else {
      this.zSign = this.aSign;
      this.zExp = this.aExp;
      this.z2 = this.aHi;
      this.z1 = this.aLo;
      this.zCls = this.aCls === Cls.Denormal ? Cls.Normal : this.aCls;
    }
    this.z0 = 0;
    this.zSticky = 0;
  }

  setZero(sign: number): void {
    this.zCls = Cls.Zero;
    this.zSign = sign;
  }

  setInf(sign: number): void {
    this.zCls = Cls.Inf;
    this.zSign = sign;
  }

  /** The default NaN (real indefinite / QNaN floating-point indefinite) and IE. */
  invalid(): void {
    this.flags |= FpExc.IE;
    this.zCls = Cls.QNaN;
    this.zSign = 1;
    this.z2 = INDEF_HI;
    this.z1 = 0;
  }

  /** Z := quieted NaN from slot A or B. */
  private nanFrom(b: boolean): void {
    this.zCls = Cls.QNaN;
    if (b) {
      this.zSign = this.bSign;
      this.z2 = (this.bHi | 0xc0000000) >>> 0;
      this.z1 = this.bLo;
    } else {
      this.zSign = this.aSign;
      this.z2 = (this.aHi | 0xc0000000) >>> 0;
      this.z1 = this.aLo;
    }
  }

  /**
   * NaN/unsupported operand handling for two-operand operations; returns true when Z now holds the
   * result. x87 rules (sse=false) and SSE rules per SDM Vol. 1 Table 4-7 and §11.5.2.2.
   */
  propagateNaN2(sse: boolean): boolean {
    const ac = this.aCls;
    const bc = this.bCls;
    if (ac < Cls.QNaN && bc < Cls.QNaN) return false;
    if (ac === Cls.Unsupported || bc === Cls.Unsupported) {
      this.invalid();
      return true;
    }
    if (ac === Cls.SNaN || bc === Cls.SNaN) this.flags |= FpExc.IE;
    const aNaN = ac === Cls.QNaN || ac === Cls.SNaN;
    const bNaN = bc === Cls.QNaN || bc === Cls.SNaN;
    if (sse) {
      // SSE: the first source operand wins, converted to a QNaN.
      this.nanFrom(!aNaN);
      return true;
    }
    if (aNaN && bNaN) {
      if (ac !== bc) {
        // One SNaN and one QNaN: the QNaN source operand.
        this.nanFrom(bc === Cls.QNaN);
        return true;
      }
      // Same kind: the larger significand; on a tie the positive one (SDM Table 4-7 leaves the
      // tie open; this is what the host does, pinned by test/fpu-oracle.test.ts).
      const ah = (this.aHi & 0x7fffffff) >>> 0;
      const bh = (this.bHi & 0x7fffffff) >>> 0;
      let pickB = bh > ah || (bh === ah && this.bLo > this.aLo);
      if (bh === ah && this.bLo === this.aLo) pickB = this.bSign < this.aSign;
      this.nanFrom(pickB);
      return true;
    }
    this.nanFrom(!aNaN);
    return true;
  }

  /** Single-operand NaN handling (FSQRT, FRNDINT, conversions); true when Z holds the result. */
  propagateNaN1(): boolean {
    const ac = this.aCls;
    if (ac < Cls.QNaN) return false;
    if (ac === Cls.Unsupported) {
      this.invalid();
      return true;
    }
    if (ac === Cls.SNaN) this.flags |= FpExc.IE;
    this.nanFrom(false);
    return true;
  }

  /** Normalize Z (finite, possibly zero significand) so that z2 bit 31 is set. */
  normalizeZ(): void {
    let z2 = this.z2;
    let z1 = this.z1;
    let z0 = this.z0;
    if (z2 === 0 && z1 === 0 && z0 === 0) {
      if (this.zSticky === 0) {
        this.zCls = Cls.Zero;
        return;
      }
      // Only sticky bits remain: cannot happen for add/mul/div/sqrt (>= 64 significant bits kept).
      z0 = 1;
    }
    while (z2 === 0) {
      z2 = z1;
      z1 = z0;
      z0 = 0;
      this.zExp -= 32;
    }
    const s = Math.clz32(z2);
    if (s > 0) {
      z2 = ((z2 << s) | (z1 >>> (32 - s))) >>> 0;
      z1 = ((z1 << s) | (z0 >>> (32 - s))) >>> 0;
      z0 = (z0 << s) >>> 0;
      this.zExp -= s;
    }
    this.z2 = z2;
    this.z1 = z1;
    this.z0 = z0;
    this.zCls = Cls.Normal;
  }

  /** Shift Z's 96-bit significand right by n (n >= 0), folding lost bits into the sticky bit. */
  shiftRightZ(n: number): void {
    if (n <= 0) return;
    let z2 = this.z2;
    let z1 = this.z1;
    let z0 = this.z0;
    let st = this.zSticky;
    if (n >= 96) {
      st |= z2 | z1 | z0 ? 1 : 0;
      z2 = 0;
      z1 = 0;
      z0 = 0;
    } else {
      while (n >= 32) {
        st |= z0 ? 1 : 0;
        z0 = z1;
        z1 = z2;
        z2 = 0;
        n -= 32;
      }
      if (n > 0) {
        st |= (z0 << (32 - n)) >>> 0 ? 1 : 0;
        z0 = ((z0 >>> n) | (z1 << (32 - n))) >>> 0;
        z1 = ((z1 >>> n) | (z2 << (32 - n))) >>> 0;
        z2 = z2 >>> n;
      }
    }
    this.z2 = z2;
    this.z1 = z1;
    this.z0 = z0;
    this.zSticky = st;
  }

  // ---------------------------------------------------------------- rounding

  /**
   * Round the finite normalized Z to `bits` significant bits within the normal exponent range
   * [emin, emax]; leaves z2:z1 as the rounded 64-bit significand (integer bit clear when the
   * result is denormal), zExp as its exponent, and raises OE/UE/PE per the masks.
   * Returns 0 for a finite result, 1 when the result overflowed to infinity, 2 when it
   * overflowed to the largest finite number, 3 when FTZ flushed it to zero.
   * `adjust` is the x87 bias adjust for unmasked OE/UE on a register destination (0 for memory/SSE).
   */
  roundZ(bits: number, emin: number, emax: number, adjust: number): number {
    this.biasAdjusted = false;
    if (this.zExp < emin) {
      // x86 detects tininess after rounding: tiny unless rounding with an unbounded exponent
      // carries the value up to 2^emin (SDM Vol. 1 §4.9.1.5).
      const tiny = this.zExp < emin - 1 || !this.roundCarries(bits);
      if (tiny) {
        if ((this.masks & FpExc.UE) === 0 && adjust !== 0 && this.zExp + adjust >= emin) {
          // Unmasked underflow, register destination: round the true result and add the bias
          // adjust to the exponent (SDM Vol. 1 §4.9.1.5).
          this.flags |= FpExc.UE;
          this.roundBits(bits);
          this.zExp += adjust;
          this.biasAdjusted = true;
          return 0;
        }
        if ((this.masks & FpExc.UE) === 0) {
          // Unmasked underflow to memory or an SSE register: the caller delivers no result,
          // UE alone is reported (as for OE).
          this.flags |= FpExc.UE;
          if (this.sse) this.roundBits(bits);
          else if (adjust !== 0) this.flags |= FpExc.PE; // beyond the bias adjust: zero, inexact (host)
          this.zCls = Cls.Zero;
          return 0;
        } else if (this.ftz) {
          // SSE FTZ: tiny results become a zero of the same sign with UE and PE (SDM Vol. 1 §10.2.3.3).
          this.flags |= FpExc.UE | FpExc.PE;
          this.zCls = Cls.Zero;
          return 3;
        }
        this.shiftRightZ(emin - this.zExp);
        this.zExp = emin;
        if (this.roundBits(bits) && (this.masks & FpExc.UE) !== 0) this.flags |= FpExc.UE;
        if (this.z2 === 0 && this.z1 === 0) this.zCls = Cls.Zero;
        return 0;
      }
      this.shiftRightZ(emin - this.zExp);
      this.zExp = emin;
    }
    this.roundBits(bits);
    if (this.zExp > emax) {
      this.flags |= FpExc.OE;
      // Unmasked with a register destination: the bias-adjusted result, unless even that does
      // not fit (FSCALE by huge amounts); then the masked response (observed on the host).
      const fits = adjust !== 0 && this.zExp - adjust <= emax;
      if ((this.masks & FpExc.OE) === 0 && (adjust === 0 || fits)) {
        if (adjust !== 0) {
          this.zExp -= adjust;
          this.biasAdjusted = true;
        } else if (!this.sse) this.flags &= ~FpExc.PE; // x87 memory destination: OE alone (observed on the host)
        return 0;
      }
      this.flags |= FpExc.PE;
      if (adjust !== 0 && (this.masks & FpExc.OE) === 0) {
        // Unmasked, beyond even the bias adjust: infinity whatever the rounding mode (host).
        this.zCls = Cls.Inf;
        this.roundedUp = 1;
        return 1;
      }
      // Masked overflow: infinity or the largest finite number, by rounding mode and sign (Table 4-10).
      const rc = this.rc;
      const toInf =
        rc === RoundMode.Nearest ||
        (rc === RoundMode.Up ? this.zSign === 0 : rc === RoundMode.Down && this.zSign === 1);
      if (toInf) {
        this.zCls = Cls.Inf;
        this.roundedUp = 1;
        return 1;
      }
      this.roundedUp = 0;
      this.zExp = emax;
      this.setMaxSignificand(bits);
      return 2;
    }
    return 0;
  }

  /** z2:z1 := the largest significand with `bits` bits. */
  private setMaxSignificand(bits: number): void {
    if (bits >= 32) {
      this.z2 = 0xffffffff;
      this.z1 = bits === 64 ? 0xffffffff : (~0 << (64 - bits)) >>> 0;
    } else {
      this.z2 = (~0 << (32 - bits)) >>> 0;
      this.z1 = 0;
    }
  }

  /** Would rounding Z to `bits` bits carry out of the significand (all ones, rounding up)? */
  private roundCarries(bits: number): boolean {
    let ones: boolean;
    if (bits > 32) {
      const pos = 64 - bits;
      ones = this.z2 === 0xffffffff && this.z1 >>> pos === 0xffffffff >>> pos;
    } else {
      const pos = 32 - bits;
      ones = this.z2 >>> pos === 0xffffffff >>> pos;
    }
    return ones && this.roundIncrement(bits) !== 0;
  }

  /** 1 when Z rounded to `bits` bits takes the increment, 0 otherwise; sets `inexact` scratch. */
  private inexact = 0;
  private roundIncrement(bits: number): number {
    let half: number;
    let rest: number;
    let lsb: number;
    if (bits === 64) {
      half = this.z0 >>> 31;
      rest = (this.z0 & 0x7fffffff) | this.zSticky;
      lsb = this.z1 & 1;
    } else if (bits > 32) {
      const pos = 64 - bits;
      half = (this.z1 >>> (pos - 1)) & 1;
      rest = (this.z1 & ((1 << (pos - 1)) - 1)) | this.z0 | this.zSticky;
      lsb = (this.z1 >>> pos) & 1;
    } else {
      const pos = 32 - bits;
      half = (this.z2 >>> (pos - 1)) & 1;
      rest = (this.z2 & ((1 << (pos - 1)) - 1)) | this.z1 | this.z0 | this.zSticky;
      lsb = (this.z2 >>> pos) & 1;
    }
    this.inexact = half | rest ? 1 : 0;
    switch (this.rc) {
      case RoundMode.Nearest:
        return half && (rest || lsb) ? 1 : 0;
      case RoundMode.Up:
        return this.inexact && this.zSign === 0 ? 1 : 0;
      case RoundMode.Down:
        return this.inexact && this.zSign === 1 ? 1 : 0;
      default:
        return 0;
    }
  }

  /** Round Z in place to `bits` bits (exponent unbounded); returns 1 if inexact (PE raised). */
  private roundBits(bits: number): number {
    const inc = this.roundIncrement(bits);
    const inexact = this.inexact;
    if (bits > 32) {
      const pos = 64 - bits;
      let z1 = pos === 0 ? this.z1 : (this.z1 & (~0 << pos)) >>> 0;
      let z2 = this.z2;
      if (inc) {
        z1 = z1 + 2 ** pos;
        if (z1 > 0xffffffff) {
          z1 -= 0x100000000;
          z2 += 1;
          if (z2 > 0xffffffff) {
            z2 = 0x80000000;
            this.zExp += 1;
          }
        }
      }
      this.z2 = z2 >>> 0;
      this.z1 = z1 >>> 0;
    } else {
      const pos = 32 - bits;
      let z2 = (this.z2 & (~0 << pos)) >>> 0;
      if (inc) {
        z2 += 2 ** pos;
        if (z2 > 0xffffffff) {
          z2 = 0x80000000;
          this.zExp += 1;
        }
      }
      this.z2 = z2 >>> 0;
      this.z1 = 0;
    }
    // A denormal that rounds up into the integer bit becomes normal at emin: no exponent change needed.
    this.z0 = 0;
    this.zSticky = 0;
    if (inexact) {
      this.flags |= FpExc.PE;
      this.roundedUp = inc;
    }
    return inexact;
  }

  // ---------------------------------------------------------------- packing

  /**
   * Round Z to an extended value with `bits` of precision (x87 precision control) into
   * oSe/oHi/oLo. `adjust` = X87_BIAS_ADJUST for a register destination, 0 for memory.
   */
  packX(bits: number, adjust: number): void {
    if (this.zCls === Cls.Normal) this.roundZ(bits, X80_EMIN, X80_EMAX, adjust);
    const s = this.zSign << 15;
    switch (this.zCls) {
      case Cls.Zero:
        this.oSe = s;
        this.oHi = 0;
        this.oLo = 0;
        return;
      case Cls.Inf:
        this.oSe = s | 0x7fff;
        this.oHi = 0x80000000;
        this.oLo = 0;
        return;
      case Cls.QNaN:
      case Cls.SNaN:
        this.oSe = s | 0x7fff;
        this.oHi = this.z2;
        this.oLo = this.z1;
        return;
      default: {
        const normal = (this.z2 & 0x80000000) !== 0;
        this.oSe = s | (normal ? (this.zExp + X80_BIAS) & 0x7fff : 0);
        this.oHi = this.z2;
        this.oLo = this.z1;
      }
    }
  }

  /** Round Z to float64 into oHi/oLo. */
  packF64(): void {
    if (this.zCls === Cls.Normal) this.roundZ(53, F64_EMIN, F64_EMAX, 0);
    const s = this.zSign << 31;
    switch (this.zCls) {
      case Cls.Zero:
        this.oHi = s >>> 0;
        this.oLo = 0;
        return;
      case Cls.Inf:
        this.oHi = (s | 0x7ff00000) >>> 0;
        this.oLo = 0;
        return;
      case Cls.QNaN:
      case Cls.SNaN:
        this.oHi = (s | 0x7ff80000 | ((this.z2 >>> 11) & 0xfffff)) >>> 0;
        this.oLo = ((this.z2 << 21) | (this.z1 >>> 11)) >>> 0;
        return;
      default: {
        const normal = (this.z2 & 0x80000000) !== 0;
        const e = normal ? this.zExp + 1023 : 0;
        this.oHi = (s | (e << 20) | ((this.z2 >>> 11) & 0xfffff)) >>> 0;
        this.oLo = ((this.z2 << 21) | (this.z1 >>> 11)) >>> 0;
      }
    }
  }

  /** Round Z to float32 into oLo. */
  packF32(): void {
    if (this.zCls === Cls.Normal) this.roundZ(24, F32_EMIN, F32_EMAX, 0);
    const s = this.zSign << 31;
    switch (this.zCls) {
      case Cls.Zero:
        this.oLo = s >>> 0;
        return;
      case Cls.Inf:
        this.oLo = (s | 0x7f800000) >>> 0;
        return;
      case Cls.QNaN:
      case Cls.SNaN:
        this.oLo = (s | 0x7fc00000 | ((this.z2 >>> 8) & 0x7fffff)) >>> 0;
        return;
      default: {
        const normal = (this.z2 & 0x80000000) !== 0;
        const e = normal ? this.zExp + 127 : 0;
        this.oLo = (s | (e << 23) | ((this.z2 >>> 8) & 0x7fffff)) >>> 0;
      }
    }
  }
}
