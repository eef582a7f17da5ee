/**
 * x87 remainder, scaling and transcendental instructions (SDM Vol. 2 FPREM, FPREM1, FSCALE,
 * FXTRACT, FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X, FYL2XP1).
 *
 * FPREM/FPREM1/FSCALE/FXTRACT are exact (bit-identical to hardware for complete remainders).
 * Deviations, on purpose:
 * - FPREM/FPREM1 partial remainders (exponent difference >= 64) reduce by N = 63 bits per step;
 *   the SDM allows any N in 32..63 and the final remainder is the same. (The AMD host uses a
 *   different N, so intermediate partial results differ from it; the final result does not.)
 * - The transcendentals evaluate in host double precision: the 64-bit argument is split into
 *   two doubles (hi + lo, exact) and the result corrected to first order in lo, so results are
 *   accurate to about one double ulp (2^-53 relative), not to the x87's 64-bit significand.
 *   Like the hardware, FSIN/FCOS/FSINCOS/FPTAN reduce by the x87's 66-bit pi (modelled as a
 *   scaling of the argument, see PI66_EPS). C1 (rounded up) is reported as 0; PE is raised for
 *   every inexact result.
 */
import { Cls, FpExc, INDEF_HI, INDEF_SE, type SoftFloat, X80_BIAS, X87_BIAS_ADJUST } from "./softfloat.js";
import { Sw, type X87 } from "./x87.js";

// ------------------------------------------------------------------ double <-> extended glue

/** Extended slot A -> two doubles hi + lo with hi + lo == value exactly (finite normal/denormal). */
function slotToDD(sf: SoftFloat, out: Float64Array): void {
  const e = sf.aExp;
  const sign = sf.aSign ? -1 : 1;
  // hi: top 32 bits; lo: low 32 bits (each exact in a double), scaled by the exponent.
  const h = sf.aHi * 2 ** (e - 31);
  const l = sf.aLo * 2 ** (e - 63);
  const s = h + l;
  out[0] = sign * s;
  out[1] = sign * (l - (s - h));
}

/** Double -> extended raw bits into sf.oSe/oHi/oLo (exact). */
function doubleToX(x: X87, v: number): void {
  const sf = x.sf;
  x.scratch[3] = v;
  sf.unpackF64(x.scratchU32[7]!, x.scratchU32[6]!, false);
  sf.zFromSlot(false);
  if (sf.aCls >= Cls.Inf) {
    sf.zCls = sf.aCls === Cls.Inf ? Cls.Inf : Cls.QNaN;
    sf.z2 = sf.aHi | 0xc0000000;
    sf.z1 = sf.aLo;
  }
  sf.packX(64, 0);
}

/** Write a double result to ST(i) with PE (and UE/OE as its magnitude says). */
function writeDouble(x: X87, i: number, v: number): void {
  const sf = x.sf;
  const keep = sf.flags;
  sf.flags = 0;
  doubleToX(x, v);
  sf.flags = keep | FpExc.PE;
  if (v !== 0 && Math.abs(v) < 2 ** -16382) sf.flags |= FpExc.UE;
  x.writeST(i, sf.oSe, sf.oHi, sf.oLo);
}

const PRE = FpExc.IE | FpExc.DE | FpExc.ZE;

/** Common prologue: empty check (stack underflow), then unpack ST(0) into A (and ST(1) into B). */
function operands(x: X87, two: boolean): boolean {
  x.prepare();
  if (x.isEmpty(0) || (two && x.isEmpty(1))) {
    if (x.underflow()) {
      x.writeST(0, INDEF_SE, INDEF_HI, 0);
      if (two) x.writeST(1, INDEF_SE, INDEF_HI, 0);
    }
    return false;
  }
  x.loadSlot(0, false);
  if (two) x.loadSlot(1, true);
  return true;
}

/** Report the engine's flags; false when a pre-computation exception is unmasked (no result). */
function preOk(x: X87): boolean {
  const sf = x.sf;
  if (sf.flags & PRE & ~sf.masks) {
    x.raise(sf.flags & PRE, 0);
    return false;
  }
  return true;
}

/** NaN operand(s): write the propagated NaN to ST(dst). Returns true when handled. */
function nanCase(x: X87, two: boolean, dst: number): boolean {
  const sf = x.sf;
  const handled = two ? sf.propagateNaN2(false) : sf.propagateNaN1();
  if (!handled) return false;
  if (preOk(x)) {
    sf.packX(64, 0);
    x.writeST(dst, sf.oSe, sf.oHi, sf.oLo);
    x.raise(sf.flags, 0);
  }
  return true;
}

function invalidTo(x: X87, dst: number): void {
  const sf = x.sf;
  sf.invalid();
  if (preOk(x)) {
    x.writeST(dst, INDEF_SE, INDEF_HI, 0);
    x.raise(sf.flags, 0);
  }
}

// ------------------------------------------------------------------ FPREM / FPREM1

/**
 * FPREM (nearest = false: quotient truncated) and FPREM1 (IEEE remainder, quotient rounded to
 * nearest even). C2 = 1 for a partial remainder; C0, C3, C1 = quotient bits 2, 1, 0.
 */
export function fPrem(x: X87, nearest: boolean): void {
  if (!operands(x, true)) return;
  const sf = x.sf;
  if (nanCase(x, true, 0)) return;
  const ac = sf.aCls;
  const bc = sf.bCls;
  if (ac === Cls.Inf || bc === Cls.Zero) {
    invalidTo(x, 0);
    return;
  }
  if (ac === Cls.Denormal || bc === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!preOk(x)) return;
  if (ac === Cls.Zero || bc === Cls.Inf) {
    // Remainder is ST(0) itself (re-encoded: a pseudo-denormal comes back normal), quotient 0.
    sf.zFromSlot(false);
    sf.packX(64, X87_BIAS_ADJUST);
    x.writeST(0, sf.oSe, sf.oHi, sf.oLo);
    x.setCC(0, 0, 0, 0);
    x.raise(sf.flags, 0);
    return;
  }
  const d = sf.aExp - sf.bExp;
  const partial = d >= 64;
  const steps = partial ? 63 : d; // quotient bits after the first
  const bh = sf.bHi;
  const bl = sf.bLo;
  let rh = sf.aHi;
  let rl = sf.aLo;
  let rx = 0;
  let q = 0; // low bits of the quotient
  if (d >= 0) {
    for (let i = 0; i <= steps; i++) {
      if (i > 0) {
        rx = rh >>> 31;
        rh = ((rh << 1) | (rl >>> 31)) >>> 0;
        rl = (rl << 1) >>> 0;
      }
      q = (q << 1) & 0xff;
      if (rx !== 0 || rh > bh || (rh === bh && rl >= bl)) {
        let l = rl - bl;
        let h = rh - bh;
        if (l < 0) {
          l += 0x100000000;
          h -= 1;
        }
        rh = h >>> 0;
        rl = l >>> 0;
        rx = 0;
        q |= 1;
      }
    }
  }
  // Remainder R (< B) has exponent weight: R's bit 63 is worth 2^(bExp + (partial ? d - 63 : 0)).
  let rExp = sf.bExp + (partial ? d - 63 : 0);
  let sign = sf.aSign;
  if (d < 0) {
    // |A| < |B|: quotient 0 (FPREM), or 1 when |A| > |B|/2 for FPREM1.
    rExp = sf.aExp;
    if (nearest && d === -1 && (rh > bh || (rh === bh && rl > bl))) {
      // |A| in (|B|/2, |B|): R = B - A (computed at A's scale), quotient 1, sign flips.
      let l = bl * 2 - rl;
      let h = bh * 2 - rh;
      if (l > 0xffffffff) {
        l -= 0x100000000;
        h += 1;
      } else if (l < 0) {
        l += 0x100000000;
        h -= 1;
      }
      rh = h >>> 0;
      rl = l >>> 0;
      sign ^= 1;
      q = 1;
    }
  } else if (nearest && !partial) {
    // Round the quotient to nearest even: compare 2R with B.
    const r2x = rh >>> 31;
    const r2h = ((rh << 1) | (rl >>> 31)) >>> 0;
    const r2l = (rl << 1) >>> 0;
    const gt = r2x !== 0 || r2h > bh || (r2h === bh && r2l > bl);
    const eq = r2x === 0 && r2h === bh && r2l === bl;
    if (gt || (eq && q & 1)) {
      let l = bl - rl;
      let h = bh - rh;
      if (l < 0) {
        l += 0x100000000;
        h -= 1;
      }
      rh = h >>> 0;
      rl = l >>> 0;
      sign ^= 1;
      q = (q + 1) & 0xff;
    }
  }
  sf.zCls = Cls.Normal;
  sf.zSign = sign;
  sf.zExp = rExp;
  sf.z2 = rh;
  sf.z1 = rl;
  sf.z0 = 0;
  sf.zSticky = 0;
  sf.normalizeZ();
  if (sf.zCls === Cls.Zero) sf.zSign = sf.aSign;
  sf.packX(64, X87_BIAS_ADJUST);
  x.writeST(0, sf.oSe, sf.oHi, sf.oLo);
  x.raise(sf.flags & ~FpExc.PE, 0);
  x.setCC((q >>> 1) & 1, partial ? 1 : 0, q & 1, (q >>> 2) & 1);
}

// ------------------------------------------------------------------ FSCALE / FXTRACT

/** FSCALE: ST(0) := ST(0) * 2^trunc(ST(1)), rounded per RC/PC (SDM Vol. 2 FSCALE Table 3-46). */
export function fScale(x: X87): void {
  if (!operands(x, true)) return;
  const sf = x.sf;
  if (nanCase(x, true, 0)) return;
  const ac = sf.aCls;
  const bc = sf.bCls;
  if (ac === Cls.Denormal || bc === Cls.Denormal) sf.flags |= FpExc.DE;
  if (bc === Cls.Inf) {
    // x * 2^+inf = inf (IE for 0), x * 2^-inf = 0 (IE for inf).
    if ((sf.bSign === 0 && ac === Cls.Zero) || (sf.bSign === 1 && ac === Cls.Inf)) {
      invalidTo(x, 0);
      return;
    }
    if (!preOk(x)) return;
    if (ac === Cls.Inf || ac === Cls.Zero) sf.zFromSlot(false);
    else if (sf.bSign === 0) sf.setInf(sf.aSign);
    else sf.setZero(sf.aSign);
  } else {
    if (!preOk(x)) return;
    sf.zFromSlot(false);
    if (ac === Cls.Normal || ac === Cls.Denormal) {
      // trunc(ST(1)): |ST(1)| < 2^31 gives an exact integer; beyond, any huge scale saturates.
      let n = 0;
      if (bc !== Cls.Zero && sf.bExp >= 0) {
        n = sf.bExp >= 30 ? 0x40000000 : Math.floor(sf.bHi / 2 ** (31 - sf.bExp));
        if (sf.bSign) n = -n;
      }
      sf.zExp += n;
    }
  }
  sf.packX(64, X87_BIAS_ADJUST);
  x.writeST(0, sf.oSe, sf.oHi, sf.oLo);
  x.raise(sf.flags, sf.flags & FpExc.PE && sf.roundedUp ? Sw.C1 : 0);
}

/** FXTRACT: ST(0) := exponent (as a value), then push the significand with exponent 0. */
export function fXtract(x: X87): void {
  if (!operands(x, false)) return;
  const sf = x.sf;
  const c = sf.aCls;
  if (!x.isEmpty(7)) {
    // The push would overflow the stack (SDM Vol. 2 FXTRACT #IS).
    if (x.push(0, 0, 0)) x.raise(0, 0);
    return;
  }
  if (c >= Cls.QNaN) {
    if (!nanCase(x, false, 0) || sf.flags & FpExc.IE & ~sf.masks) return;
    x.push(x.stSe(0), x.stHi(0), x.stLo(0));
    return;
  }
  if (c === Cls.Zero) {
    // ZE: exponent -inf, significand keeps the zero (SDM Vol. 2 FXTRACT).
    sf.flags |= FpExc.ZE;
    if (!preOk(x)) return;
    const se = x.stSe(0);
    x.writeST(0, 0xffff, 0x80000000, 0);
    x.push(se, 0, 0);
    x.raise(sf.flags, 0);
    return;
  }
  if (c === Cls.Inf) {
    const se = x.stSe(0);
    x.writeST(0, 0x7fff, 0x80000000, 0);
    x.push(se, 0x80000000, 0);
    x.raise(0, 0);
    return;
  }
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!preOk(x)) return;
  const sign = sf.aSign;
  const hi = sf.aHi;
  const lo = sf.aLo;
  const e = sf.aExp;
  sf.unpackI64(e < 0 ? 0xffffffff : 0, e >>> 0);
  sf.zFromSlot(false);
  sf.packX(64, 0);
  x.writeST(0, sf.oSe, sf.oHi, sf.oLo);
  x.push((sign << 15) | X80_BIAS, hi, lo);
  x.raise(sf.flags, 0);
}

// ------------------------------------------------------------------ transcendentals

/** Argument as hi + lo doubles into dd; returns false for NaN/inf/unsupported handled here. */
function trigArg(x: X87, dd: Float64Array): boolean {
  const sf = x.sf;
  if (nanCase(x, false, 0)) return false;
  if (sf.aCls === Cls.Inf) {
    invalidTo(x, 0);
    return false;
  }
  if (sf.aCls === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!preOk(x)) return false;
  if (sf.aCls === Cls.Zero) {
    dd[0] = sf.aSign ? -0 : 0;
    dd[1] = 0;
  } else slotToDD(sf, dd);
  return true;
}

/** pi / pi66 - 1, with pi66 = 0xC90FDAA22168C234C * 2^-66 (the x87's internal pi). */
const PI66_EPS = 1.2874146789751208e-21;

/** |ST(0)| >= 2^63: C2 = 1 and ST(0) unchanged (SDM Vol. 2 FSIN). */
function outOfRange(x: X87): boolean {
  const sf = x.sf;
  if ((sf.aCls === Cls.Normal || sf.aCls === Cls.Denormal) && sf.aExp >= 63) {
    x.setCC(0, 1, 0, 0);
    return true;
  }
  return false;
}

/** FSIN (op 0), FCOS (1), FSINCOS (2), FPTAN (3). */
export function fTrig(x: X87, op: 0 | 1 | 2 | 3): void {
  if (!operands(x, false)) return;
  const sf = x.sf;
  const pushes = op >= 2;
  if (pushes && !x.isEmpty(7)) {
    if (x.push(0, 0, 0)) x.raise(0, 0);
    return;
  }
  if (outOfRange(x)) {
    x.raise(sf.flags, 0);
    return;
  }
  if (!trigArg(x, x.scratch)) {
    if (pushes && sf.aCls >= Cls.QNaN && !x.isEmpty(0)) x.push(x.stSe(0), x.stHi(0), x.stLo(0));
    return;
  }
  const h = x.scratch[0]!;
  // The x87 reduces by its 66-bit pi (SDM Vol. 1 §8.3.10): that equals evaluating the true
  // function at x * pi / pi66, i.e. x + x * PI66_EPS (folded into the low part).
  const l = x.scratch[1]! + (h + x.scratch[1]!) * PI66_EPS;
  const sh = Math.sin(h);
  const ch = Math.cos(h);
  const zero = sf.aCls === Cls.Zero;
  x.setCC(0, 0, 0, 0);
  switch (op) {
    case 0:
      writeDouble(x, 0, zero ? h : sh + ch * l);
      break;
    case 1:
      writeDouble(x, 0, zero ? 1 : ch - sh * l);
      break;
    case 2: {
      const s = zero ? h : sh + ch * l;
      const c = zero ? 1 : ch - sh * l;
      writeDouble(x, 0, s);
      x.push(0, 0, 0);
      writeDouble(x, 0, c);
      break;
    }
    default: {
      const t = Math.tan(h);
      writeDouble(x, 0, zero ? h : t + (1 + t * t) * l);
      x.push(0x3fff, 0x80000000, 0);
    }
  }
  if (zero) sf.flags &= ~FpExc.PE;
  x.raise(sf.flags, 0);
}

/** Both operands as doubles (value rounded to double) for the two-operand functions. */
function twoArgs(x: X87, dd: Float64Array): boolean {
  const sf = x.sf;
  if (nanCase(x, true, 1)) {
    x.pop();
    return false;
  }
  if (sf.aCls === Cls.Denormal || sf.bCls === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!preOk(x)) return false;
  const toD = (b: boolean): number => {
    if (b) sf.swapSlots();
    let v: number;
    if (sf.aCls === Cls.Zero) v = sf.aSign ? -0 : 0;
    else if (sf.aCls === Cls.Inf) v = sf.aSign ? -Infinity : Infinity;
    else {
      slotToDD(sf, dd);
      v = dd[0]! + dd[1]!;
    }
    if (b) sf.swapSlots();
    return v;
  };
  dd[2] = toD(false);
  dd[3] = toD(true);
  return true;
}

/** Finish a two-operand function: result into ST(1), pop. Invalid -> indefinite. */
function finish2(x: X87, r: number, invalid: boolean, zeroDivide: boolean): void {
  const sf = x.sf;
  if (invalid) {
    invalidTo(x, 1);
    if (!(sf.flags & FpExc.IE & ~sf.masks)) x.pop();
    return;
  }
  if (zeroDivide) {
    sf.flags |= FpExc.ZE;
    if (!preOk(x)) return;
  }
  writeDouble(x, 1, r);
  if (zeroDivide || !Number.isFinite(r) || r === 0 || Number.isInteger(r)) sf.flags &= ~FpExc.PE;
  x.raise(sf.flags, 0);
  x.pop();
}

/** FPATAN: ST(1) := atan2(ST(1), ST(0)), pop. */
export function fPatan(x: X87): void {
  if (!operands(x, true)) return;
  if (!twoArgs(x, x.scratch)) return;
  const r = Math.atan2(x.scratch[3]!, x.scratch[2]!);
  finish2(x, r, false, false);
}

/** FYL2X: ST(1) := ST(1) * log2(ST(0)), pop. */
export function fYl2x(x: X87): void {
  if (!operands(x, true)) return;
  if (!twoArgs(x, x.scratch)) return;
  const v = x.scratch[2]!;
  const y = x.scratch[3]!;
  const invalid =
    v < 0 ||
    (v === 0 && y === 0) ||
    (v === 1 && !Number.isFinite(y)) ||
    (v === Infinity && y === 0) ||
    (Object.is(v, -0) && y === 0);
  const zd = v === 0 && y !== 0 && Number.isFinite(y);
  finish2(x, zd ? (y > 0 ? -Infinity : Infinity) : y * Math.log2(v), invalid, zd);
}

/** FYL2XP1: ST(1) := ST(1) * log2(ST(0) + 1), pop. */
export function fYl2xp1(x: X87): void {
  if (!operands(x, true)) return;
  if (!twoArgs(x, x.scratch)) return;
  const v = x.scratch[2]!;
  const y = x.scratch[3]!;
  const invalid = (v === 0 && !Number.isFinite(y)) || (!Number.isFinite(v) && y === 0) || v < -1;
  finish2(x, (y * Math.log1p(v)) / Math.LN2, invalid, false);
}

/** F2XM1: ST(0) := 2^ST(0) - 1 (for -1 <= ST(0) <= 1; outside, the result is undefined). */
export function f2xm1(x: X87): void {
  if (!operands(x, false)) return;
  const sf = x.sf;
  if (nanCase(x, false, 0)) return;
  if (sf.aCls === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!preOk(x)) return;
  if (sf.aCls === Cls.Zero || sf.aCls === Cls.Inf) {
    if (sf.aCls === Cls.Inf && sf.aSign) x.writeST(0, 0xbfff, 0x80000000, 0);
    x.raise(sf.flags, 0);
    return;
  }
  slotToDD(sf, x.scratch);
  const v = x.scratch[0]! + x.scratch[1]!;
  writeDouble(x, 0, Math.expm1(v * Math.LN2));
  x.raise(sf.flags, 0);
}
