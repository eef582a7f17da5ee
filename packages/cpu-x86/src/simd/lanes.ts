/**
 * One float32/float64 lane of an SSE operation under MXCSR (SDM Vol. 1 §10.2.3, §11.5): raw bits
 * in, raw bits out, exceptions OR'ed into `u.exc`.
 *
 * Fast path: round-to-nearest without FTZ/DAZ, finite normal-or-zero operands and a finite
 * normal-or-exact-zero result come from the host's IEEE double arithmetic (float32 through
 * doubles is exact for +,-,*,/,sqrt: 53 >= 2*24+2, so double rounding is innocuous). PE is then
 * decided exactly (TwoSum / Dekker products) unless it is already set and masked. Everything
 * else (NaNs, infinities, denormals, tiny or huge results, directed rounding, FTZ, DAZ) goes
 * through the soft-float engine, which gives the architected result and flags.
 */
import { sfAdd, sfDiv, sfMul, sfSqrt } from "../fpu/arith.js";
import { Cls, FpExc } from "../fpu/softfloat.js";
import type { SseState } from "./state.js";

/** Float lane operations. */
export const FOp = { ADD: 0, SUB: 1, MUL: 2, DIV: 3, SQRT: 4, MIN: 5, MAX: 6 } as const;

const TINY32 = 2 ** -126;
const TINY64 = 2 ** -1022;
const SAFE_LO = 2 ** -900;
const SAFE_HI = 2 ** 900;
const SPLIT = 134217729; // 2^27 + 1 (Veltkamp)

/** Configure the engine from MXCSR for a slow-path lane. */
export function prepSf(u: SseState): void {
  const sf = u.sf;
  const m = u.mxcsr;
  sf.rc = (m >>> 13) & 3;
  sf.masks = (m >>> 7) & 0x3f;
  sf.ftz = (m & 0x8000) !== 0;
  sf.daz = (m & 0x40) !== 0;
  sf.sse = true;
  sf.flags = 0;
}

/** Exact a*b - fl(a*b) for doubles well inside the exponent range (Dekker). */
function prodErr(a: number, b: number, p: number): number {
  let c = SPLIT * a;
  const ah = c - (c - a);
  const al = a - ah;
  c = SPLIT * b;
  const bh = c - (c - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

/** float32 lane: op(a, b) (b ignored for SQRT). */
export function f32Lane(u: SseState, op: number, a: number, b: number): number {
  const m = u.mxcsr;
  if ((m & 0xe040) === 0 && op <= FOp.SQRT) {
    const ea = (a >>> 23) & 0xff;
    const eb = (b >>> 23) & 0xff;
    if (
      ea !== 0xff &&
      (ea !== 0 || (a & 0x7fffffff) === 0) &&
      (op === FOp.SQRT || (eb !== 0xff && (eb !== 0 || (b & 0x7fffffff) === 0)))
    ) {
      const c = u.cu32;
      c[0] = a;
      const fa = u.cf32[0]!;
      c[0] = b;
      const fb = u.cf32[0]!;
      let r: number;
      switch (op) {
        case FOp.ADD:
          r = fa + fb;
          break;
        case FOp.SUB:
          r = fa - fb;
          break;
        case FOp.MUL:
          r = fa * fb;
          break;
        case FOp.DIV:
          r = fa / fb;
          break;
        default:
          r = Math.sqrt(fa);
      }
      const rf = Math.fround(r);
      const ar = Math.abs(rf);
      if (ar < Number.POSITIVE_INFINITY && (ar >= TINY32 || (rf === 0 && r === 0 && op <= FOp.SUB))) {
        if ((m & 0x1020) !== 0x1020) {
          let inexact = rf !== r;
          if (!inexact) {
            if (op === FOp.ADD || op === FOp.SUB) {
              const bb = op === FOp.ADD ? fb : -fb;
              const t = r - fa;
              inexact = fa - (r - t) + (bb - t) !== 0;
            } else if (op === FOp.DIV) inexact = rf * fb !== fa;
            else if (op === FOp.SQRT) inexact = rf * rf !== fa;
          }
          if (inexact) u.exc |= FpExc.PE;
        }
        u.cf32[0] = rf;
        return u.cu32[0]!;
      }
    }
  }
  prepSf(u);
  const sf = u.sf;
  sf.unpackF32(a, false);
  sf.unpackF32(b, true);
  if (op >= FOp.MIN) return minMax32(u, op, a, b);
  laneOp(u, op);
  sf.packF32();
  u.exc |= sf.flags;
  return sf.oLo;
}

/** float64 lane: op(a, b) with a = aHi:aLo; returns the low word, high word in u.rHi. */
export function f64Lane(u: SseState, op: number, aHi: number, aLo: number, bHi: number, bLo: number): number {
  const m = u.mxcsr;
  if ((m & 0xe040) === 0 && op <= FOp.SQRT) {
    const ea = (aHi >>> 20) & 0x7ff;
    const eb = (bHi >>> 20) & 0x7ff;
    if (
      ea !== 0x7ff &&
      (ea !== 0 || ((aHi & 0x7fffffff) | aLo) === 0) &&
      (op === FOp.SQRT || (eb !== 0x7ff && (eb !== 0 || ((bHi & 0x7fffffff) | bLo) === 0)))
    ) {
      const c = u.cu32;
      c[0] = aLo;
      c[1] = aHi;
      const fa = u.cf64[0]!;
      c[0] = bLo;
      c[1] = bHi;
      const fb = u.cf64[0]!;
      let r: number;
      switch (op) {
        case FOp.ADD:
          r = fa + fb;
          break;
        case FOp.SUB:
          r = fa - fb;
          break;
        case FOp.MUL:
          r = fa * fb;
          break;
        case FOp.DIV:
          r = fa / fb;
          break;
        default:
          r = Math.sqrt(fa);
      }
      const ar = Math.abs(r);
      let ok = ar < Number.POSITIVE_INFINITY && (ar >= TINY64 || (r === 0 && op <= FOp.SUB));
      if (ok && (m & 0x1020) !== 0x1020) {
        let inexact = false;
        if (op === FOp.ADD || op === FOp.SUB) {
          const bb = op === FOp.ADD ? fb : -fb;
          const t = r - fa;
          inexact = fa - (r - t) + (bb - t) !== 0;
        } else {
          // Dekker products need every magnitude (operands, result) well inside the exponent range.
          const ax = Math.abs(fa);
          const ay = op === FOp.SQRT ? ar : Math.abs(fb);
          if (
            ar !== 0 &&
            (ax < SAFE_LO || ax > SAFE_HI || ay < SAFE_LO || ay > SAFE_HI || ar < SAFE_LO || ar > SAFE_HI)
          )
            ok = false;
          else if (op === FOp.MUL) inexact = r !== 0 && prodErr(fa, fb, r) !== 0;
          else if (op === FOp.DIV) {
            const p = r * fb;
            inexact = p !== fa || prodErr(r, fb, p) !== 0;
          } else {
            const p = r * r;
            inexact = p !== fa || prodErr(r, r, p) !== 0;
          }
        }
        if (ok && inexact) u.exc |= FpExc.PE;
      }
      if (ok) {
        u.cf64[0] = r;
        u.rHi = u.cu32[1]!;
        return u.cu32[0]!;
      }
    }
  }
  prepSf(u);
  const sf = u.sf;
  sf.unpackF64(aHi, aLo, false);
  sf.unpackF64(bHi, bLo, true);
  if (op >= FOp.MIN) {
    const sel = minMaxPick(u, op);
    const hi = sel ? bHi : aHi;
    if (sf.daz && (hi & 0x7ff00000) === 0) {
      u.rHi = (hi & 0x80000000) >>> 0;
      return 0;
    }
    u.rHi = hi;
    return sel ? bLo : aLo;
  }
  laneOp(u, op);
  sf.packF64();
  u.exc |= sf.flags;
  u.rHi = sf.oHi;
  return sf.oLo;
}

function laneOp(u: SseState, op: number): void {
  const sf = u.sf;
  switch (op) {
    case FOp.ADD:
      sfAdd(sf, false, true);
      break;
    case FOp.SUB:
      sfAdd(sf, true, true);
      break;
    case FOp.MUL:
      sfMul(sf, true);
      break;
    case FOp.DIV:
      sfDiv(sf, true);
      break;
    default:
      sfSqrt(sf);
  }
}

function minMax32(u: SseState, op: number, a: number, b: number): number {
  const r = minMaxPick(u, op) ? b : a;
  // With DAZ a denormal operand is a zero also as the returned value (observed on the host).
  return u.sf.daz && (r & 0x7f800000) === 0 ? (r & 0x80000000) >>> 0 : r;
}

/**
 * MIN/MAX (SDM Vol. 2 MINPS/MAXPS): any NaN or two zeros give the second (source) operand; a NaN
 * raises IE, a denormal DE. Returns true when the source (slot B) is the result.
 */
function minMaxPick(u: SseState, op: number): boolean {
  const sf = u.sf;
  const ac = sf.aCls;
  const bc = sf.bCls;
  if (ac >= Cls.QNaN || bc >= Cls.QNaN) {
    u.exc |= FpExc.IE;
    return true;
  }
  if (ac === Cls.Denormal || bc === Cls.Denormal) u.exc |= FpExc.DE;
  if (ac === Cls.Zero && bc === Cls.Zero) return true;
  const lt = lessThan(u);
  const gt = !lt && !equal(u);
  return op === FOp.MIN ? !lt : !gt;
}

/** A < B for non-NaN slots. */
export function lessThan(u: SseState): boolean {
  const sf = u.sf;
  const aZ = sf.aCls === Cls.Zero;
  const bZ = sf.bCls === Cls.Zero;
  const aNeg = !aZ && sf.aSign === 1;
  const bNeg = !bZ && sf.bSign === 1;
  if (aZ && bZ) return false;
  if (aZ) return !bNeg;
  if (bZ) return aNeg;
  if (aNeg !== bNeg) return aNeg;
  const aInf = sf.aCls === Cls.Inf;
  const bInf = sf.bCls === Cls.Inf;
  let mag: number;
  if (aInf || bInf) mag = aInf === bInf ? 0 : aInf ? 1 : -1;
  else if (sf.aExp !== sf.bExp) mag = sf.aExp > sf.bExp ? 1 : -1;
  else if (sf.aHi !== sf.bHi) mag = sf.aHi > sf.bHi ? 1 : -1;
  else mag = sf.aLo === sf.bLo ? 0 : sf.aLo > sf.bLo ? 1 : -1;
  return aNeg ? mag > 0 : mag < 0;
}

function equal(u: SseState): boolean {
  const sf = u.sf;
  if (sf.aCls === Cls.Zero && sf.bCls === Cls.Zero) return true;
  return (
    sf.aCls === sf.bCls &&
    sf.aSign === sf.bSign &&
    sf.aExp === sf.bExp &&
    sf.aHi === sf.bHi &&
    sf.aLo === sf.bLo
  );
}

/**
 * CMPPS/CMPSS/CMPPD/CMPSD predicate on slots A, B (imm8 0..7; with AVX's 32 predicates the
 * low 3 bits select the relation and bit 4 flips signalling, SDM Vol. 2 Table 3-1). Returns 1
 * for true. QNaN operands raise IE for the signalling predicates (LT, LE, NLT, NLE).
 */
export function cmpPredicate(u: SseState, imm: number): number {
  const sf = u.sf;
  const ac = sf.aCls;
  const bc = sf.bCls;
  const p = imm & 7;
  const signalling = p === 1 || p === 2 || p === 5 || p === 6;
  if (ac >= Cls.QNaN || bc >= Cls.QNaN) {
    if (signalling || ac === Cls.SNaN || bc === Cls.SNaN) u.exc |= FpExc.IE;
    return p === 3 || p === 4 || p === 5 || p === 6 ? 1 : 0;
  }
  if (ac === Cls.Denormal || bc === Cls.Denormal) u.exc |= FpExc.DE;
  const eq = equal(u);
  const lt = !eq && lessThan(u);
  switch (p) {
    case 0:
      return eq ? 1 : 0;
    case 1:
      return lt ? 1 : 0;
    case 2:
      return lt || eq ? 1 : 0;
    case 3:
      return 0;
    case 4:
      return eq ? 0 : 1;
    case 5:
      return lt ? 0 : 1;
    case 6:
      return lt || eq ? 0 : 1;
    default:
      return 1;
  }
}
