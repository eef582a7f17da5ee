/**
 * SSE/SSE2/SSE3/SSE4.1 floating-point instructions over XmmFile registers (word offsets):
 * arithmetic, compares, conversions, rounding, horizontal ops, dot products (SDM Vol. 2 entries
 * of the same names). Each returns SimdStatus; results are committed only when no unmasked
 * exception occurred, and MXCSR flags are set either way (SDM Vol. 1 §11.5.1).
 */
import { roundX80ToInt, slotToInt } from "../fpu/convert.js";
import { Cls, FpExc } from "../fpu/softfloat.js";
import { cmpPredicate, FOp, f32Lane, f64Lane, prepSf } from "./lanes.js";
import { SimdStatus, type SseState, type XmmFile } from "./state.js";

/** Start an instruction: clear the per-instruction exception accumulator. */
function begin(u: SseState): void {
  u.exc = 0;
}

/** Commit n result words to D at d unless an exception is unmasked. */
export function commit(u: SseState, D: XmmFile, d: number, n: number): number {
  if (flagsOnly(u)) return SimdStatus.Xm;
  for (let i = 0; i < n; i++) D.u32[d + i] = u.res[i]!;
  return SimdStatus.Ok;
}

/**
 * Fold the instruction's exceptions into MXCSR; true when one is unmasked (#XM). Pre-computation
 * exceptions (IE, DE, ZE) of any lane take precedence: when one is unmasked, post-computation
 * ones (OE, UE, PE) are not reported (SDM Vol. 1 §11.5.2).
 */
export function flagsOnly(u: SseState): boolean {
  const unmasked = ~(u.mxcsr >>> 7) & 0x3f;
  const pre = u.exc & 7;
  if (pre & unmasked) {
    u.mxcsr |= pre;
    return true;
  }
  const exc = u.exc & 0x3f;
  u.mxcsr |= exc;
  return (exc & unmasked) !== 0;
}

/** ADDPS/SUBPS/MULPS/DIVPS/SQRTPS/MINPS/MAXPS (op = FOp). */
export function arithPs(u: SseState, op: number, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  for (let i = 0; i < 4; i++)
    u.res[i] =
      op === FOp.SQRT ? f32Lane(u, op, S.u32[s + i]!, 0) : f32Lane(u, op, D.u32[d + i]!, S.u32[s + i]!);
  return commit(u, D, d, 4);
}

/** ADDSS..MAXSS, SQRTSS: lane 0 only. */
export function arithSs(u: SseState, op: number, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  u.res[0] = op === FOp.SQRT ? f32Lane(u, op, S.u32[s]!, 0) : f32Lane(u, op, D.u32[d]!, S.u32[s]!);
  return commit(u, D, d, 1);
}

/** ADDPD..MAXPD, SQRTPD. */
export function arithPd(u: SseState, op: number, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  for (let i = 0; i < 4; i += 2) {
    u.res[i] =
      op === FOp.SQRT
        ? f64Lane(u, op, S.u32[s + i + 1]!, S.u32[s + i]!, 0, 0)
        : f64Lane(u, op, D.u32[d + i + 1]!, D.u32[d + i]!, S.u32[s + i + 1]!, S.u32[s + i]!);
    u.res[i + 1] = u.rHi;
  }
  return commit(u, D, d, 4);
}

/** ADDSD..MAXSD, SQRTSD: low double only. */
export function arithSd(u: SseState, op: number, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  u.res[0] =
    op === FOp.SQRT
      ? f64Lane(u, op, S.u32[s + 1]!, S.u32[s]!, 0, 0)
      : f64Lane(u, op, D.u32[d + 1]!, D.u32[d]!, S.u32[s + 1]!, S.u32[s]!);
  u.res[1] = u.rHi;
  return commit(u, D, d, 2);
}

/** ADDSUBPS (SSE3): lanes 0, 2 subtract, 1, 3 add. */
export function addsubPs(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  for (let i = 0; i < 4; i++) u.res[i] = f32Lane(u, i & 1 ? FOp.ADD : FOp.SUB, D.u32[d + i]!, S.u32[s + i]!);
  return commit(u, D, d, 4);
}

/** ADDSUBPD (SSE3). */
export function addsubPd(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  u.res[0] = f64Lane(u, FOp.SUB, D.u32[d + 1]!, D.u32[d]!, S.u32[s + 1]!, S.u32[s]!);
  u.res[1] = u.rHi;
  u.res[2] = f64Lane(u, FOp.ADD, D.u32[d + 3]!, D.u32[d + 2]!, S.u32[s + 3]!, S.u32[s + 2]!);
  u.res[3] = u.rHi;
  return commit(u, D, d, 4);
}

/** HADDPS/HSUBPS (SSE3): pairs of D then pairs of S. */
export function hPs(u: SseState, sub: boolean, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  const op = sub ? FOp.SUB : FOp.ADD;
  u.res[0] = f32Lane(u, op, D.u32[d]!, D.u32[d + 1]!);
  u.res[1] = f32Lane(u, op, D.u32[d + 2]!, D.u32[d + 3]!);
  u.res[2] = f32Lane(u, op, S.u32[s]!, S.u32[s + 1]!);
  u.res[3] = f32Lane(u, op, S.u32[s + 2]!, S.u32[s + 3]!);
  return commit(u, D, d, 4);
}

/** HADDPD/HSUBPD (SSE3). */
export function hPd(u: SseState, sub: boolean, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  const op = sub ? FOp.SUB : FOp.ADD;
  u.res[0] = f64Lane(u, op, D.u32[d + 1]!, D.u32[d]!, D.u32[d + 3]!, D.u32[d + 2]!);
  u.res[1] = u.rHi;
  u.res[2] = f64Lane(u, op, S.u32[s + 1]!, S.u32[s]!, S.u32[s + 3]!, S.u32[s + 2]!);
  u.res[3] = u.rHi;
  return commit(u, D, d, 4);
}

// ------------------------------------------------------------------ compares

function cmp32(u: SseState, imm: number, a: number, b: number): number {
  prepSf(u);
  u.sf.unpackF32(a, false);
  u.sf.unpackF32(b, true);
  return cmpPredicate(u, imm) ? 0xffffffff : 0;
}

function cmp64(u: SseState, imm: number, aHi: number, aLo: number, bHi: number, bLo: number): number {
  prepSf(u);
  u.sf.unpackF64(aHi, aLo, false);
  u.sf.unpackF64(bHi, bLo, true);
  return cmpPredicate(u, imm) ? 0xffffffff : 0;
}

/** CMPPS/CMPSS (scalar = true) with predicate imm8 (0..7). */
export function cmpPs(
  u: SseState,
  imm: number,
  scalar: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  const n = scalar ? 1 : 4;
  for (let i = 0; i < n; i++) u.res[i] = cmp32(u, imm, D.u32[d + i]!, S.u32[s + i]!);
  return commit(u, D, d, n);
}

/** CMPPD/CMPSD (scalar = true). */
export function cmpPd(
  u: SseState,
  imm: number,
  scalar: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  const n = scalar ? 2 : 4;
  for (let i = 0; i < n; i += 2) {
    const r = cmp64(u, imm, D.u32[d + i + 1]!, D.u32[d + i]!, S.u32[s + i + 1]!, S.u32[s + i]!);
    u.res[i] = r;
    u.res[i + 1] = r;
  }
  return commit(u, D, d, n);
}

/**
 * COMISS/UCOMISS (double = false) and COMISD/UCOMISD: returns the new ZF|PF|CF (OF, SF, AF
 * cleared), or -1 on an unmasked exception (#XM, EFLAGS unchanged). COMI* raise IE for any NaN,
 * UCOMI* only for an SNaN (SDM Vol. 2 COMISS/UCOMISS).
 */
export function comi(
  u: SseState,
  double: boolean,
  quiet: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  prepSf(u);
  const sf = u.sf;
  if (double) {
    sf.unpackF64(D.u32[d + 1]!, D.u32[d]!, false);
    sf.unpackF64(S.u32[s + 1]!, S.u32[s]!, true);
  } else {
    sf.unpackF32(D.u32[d]!, false);
    sf.unpackF32(S.u32[s]!, true);
  }
  let fl: number;
  if (sf.aCls >= Cls.QNaN || sf.bCls >= Cls.QNaN) {
    if (!quiet || sf.aCls === Cls.SNaN || sf.bCls === Cls.SNaN) u.exc |= FpExc.IE;
    fl = 0x45;
  } else {
    if (sf.aCls === Cls.Denormal || sf.bCls === Cls.Denormal) u.exc |= FpExc.DE;
    if (cmpPredicate(u, 0)) fl = 0x40;
    else fl = cmpPredicate(u, 1) ? 0x01 : 0;
  }
  return flagsOnly(u) ? -1 : fl;
}

// ------------------------------------------------------------------ conversions

/** float32 bits -> float64 (hi in u.rHi): exact; SNaN -> IE, denormal -> DE (CVTSS2SD, CVTPS2PD). */
function f32to64(u: SseState, a: number): number {
  prepSf(u);
  const sf = u.sf;
  const c = sf.unpackF32(a, false);
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packF64();
  u.exc |= sf.flags;
  u.rHi = sf.oHi;
  return sf.oLo;
}

/** float64 -> float32 with MXCSR rounding (CVTSD2SS, CVTPD2PS). */
function f64to32(u: SseState, hi: number, lo: number): number {
  prepSf(u);
  const sf = u.sf;
  const c = sf.unpackF64(hi, lo, false);
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packF32();
  u.exc |= sf.flags;
  return sf.oLo;
}

/** Signed integer (hi:lo) -> float32/float64 with MXCSR rounding; exact when it fits. */
function intToF(u: SseState, hi: number, lo: number, double: boolean): number {
  prepSf(u);
  const sf = u.sf;
  sf.unpackI64(hi, lo);
  sf.zFromSlot(false);
  if (double) sf.packF64();
  else sf.packF32();
  u.exc |= sf.flags;
  u.rHi = sf.oHi;
  return sf.oLo;
}

/**
 * float -> signed integer of `width` bits (32/64), rounding with MXCSR.RC or truncating;
 * NaN/out of range -> IE and the integer indefinite. Low word returned, high in u.rHi.
 */
function fToInt(
  u: SseState,
  double: boolean,
  hi: number,
  lo: number,
  width: number,
  truncate: boolean,
): number {
  prepSf(u);
  const sf = u.sf;
  if (double) sf.unpackF64(hi, lo, false);
  else sf.unpackF32(lo, false);
  slotToInt(sf, width, truncate ? 3 : sf.rc);
  u.exc |= sf.flags;
  u.rHi = sf.oHi;
  return sf.oLo;
}

/** CVTSS2SD. */
export function cvtss2sd(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  u.res[0] = f32to64(u, S.u32[s]!);
  u.res[1] = u.rHi;
  return commit(u, D, d, 2);
}

/** CVTSD2SS. */
export function cvtsd2ss(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  u.res[0] = f64to32(u, S.u32[s + 1]!, S.u32[s]!);
  return commit(u, D, d, 1);
}

/** CVTPS2PD: two low floats to two doubles. */
export function cvtps2pd(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  const a0 = S.u32[s]!;
  const a1 = S.u32[s + 1]!;
  u.res[0] = f32to64(u, a0);
  u.res[1] = u.rHi;
  u.res[2] = f32to64(u, a1);
  u.res[3] = u.rHi;
  return commit(u, D, d, 4);
}

/** CVTPD2PS: upper half of the destination zeroed. */
export function cvtpd2ps(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  u.res[0] = f64to32(u, S.u32[s + 1]!, S.u32[s]!);
  u.res[1] = f64to32(u, S.u32[s + 3]!, S.u32[s + 2]!);
  u.res[2] = 0;
  u.res[3] = 0;
  return commit(u, D, d, 4);
}

/** CVTSI2SS/CVTSI2SD: integer (32-bit: hi = sign extension) into the low lane. */
export function cvtsi2f(u: SseState, double: boolean, hi: number, lo: number, D: XmmFile, d: number): number {
  begin(u);
  u.res[0] = intToF(u, hi, lo, double);
  u.res[1] = u.rHi;
  return commit(u, D, d, double ? 2 : 1);
}

/** CVTDQ2PS (4 lanes) / CVTDQ2PD (2 low ints to 2 doubles, exact). */
export function cvtdq2f(u: SseState, double: boolean, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  if (double) {
    const a0 = S.u32[s]!;
    const a1 = S.u32[s + 1]!;
    u.res[0] = intToF(u, a0 & 0x80000000 ? 0xffffffff : 0, a0, true);
    u.res[1] = u.rHi;
    u.res[2] = intToF(u, a1 & 0x80000000 ? 0xffffffff : 0, a1, true);
    u.res[3] = u.rHi;
  } else {
    for (let i = 0; i < 4; i++) {
      const a = S.u32[s + i]!;
      u.res[i] = intToF(u, a & 0x80000000 ? 0xffffffff : 0, a, false);
    }
  }
  return commit(u, D, d, 4);
}

/**
 * CVT(T)SS2SI / CVT(T)SD2SI: returns SimdStatus; the integer is in u.res[0] (low) and u.res[1]
 * (high, 64-bit destinations) for the executor to write to the GPR.
 */
export function cvtf2si(
  u: SseState,
  double: boolean,
  width: 32 | 64,
  truncate: boolean,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  u.res[0] = fToInt(u, double, S.u32[s + 1]!, S.u32[s]!, width, truncate);
  u.res[1] = u.rHi;
  return flagsOnly(u) ? SimdStatus.Xm : SimdStatus.Ok;
}

/** CVT(T)PS2DQ (4 lanes) and CVT(T)PD2DQ (2 lanes, upper half zeroed). */
export function cvtf2dq(
  u: SseState,
  double: boolean,
  truncate: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  if (double) {
    u.res[0] = fToInt(u, true, S.u32[s + 1]!, S.u32[s]!, 32, truncate);
    u.res[1] = fToInt(u, true, S.u32[s + 3]!, S.u32[s + 2]!, 32, truncate);
    u.res[2] = 0;
    u.res[3] = 0;
  } else for (let i = 0; i < 4; i++) u.res[i] = fToInt(u, false, 0, S.u32[s + i]!, 32, truncate);
  return commit(u, D, d, 4);
}

/**
 * MMX-destination conversions: CVT(T)PS2PI, CVT(T)PD2PI (two ints into an MMX register) and
 * CVTPI2PS (two ints into the low half of an XMM), CVTPI2PD.
 */
export function cvtf2pi(
  u: SseState,
  double: boolean,
  truncate: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  if (double) {
    u.res[0] = fToInt(u, true, S.u32[s + 1]!, S.u32[s]!, 32, truncate);
    u.res[1] = fToInt(u, true, S.u32[s + 3]!, S.u32[s + 2]!, 32, truncate);
  } else {
    u.res[0] = fToInt(u, false, 0, S.u32[s]!, 32, truncate);
    u.res[1] = fToInt(u, false, 0, S.u32[s + 1]!, 32, truncate);
  }
  return commit(u, D, d, 2);
}

export function cvtpi2f(u: SseState, double: boolean, D: XmmFile, d: number, S: XmmFile, s: number): number {
  if (double) return cvtdq2f(u, true, D, d, S, s);
  begin(u);
  for (let i = 0; i < 2; i++) {
    const a = S.u32[s + i]!;
    u.res[i] = intToF(u, a & 0x80000000 ? 0xffffffff : 0, a, false);
  }
  return commit(u, D, d, 2);
}

// ------------------------------------------------------------------ SSE4.1 rounding and dot products

/** Rounding mode for ROUND* imm8: bit 2 = use MXCSR.RC, else bits 1:0 (SDM Vol. 2 ROUNDPS Table 4-18). */
function roundRc(u: SseState, imm: number): number {
  return imm & 4 ? (u.mxcsr >>> 13) & 3 : imm & 3;
}

function round32(u: SseState, imm: number, a: number): number {
  prepSf(u);
  const sf = u.sf;
  sf.unpackF32(a, false);
  roundX80ToInt(sf, roundRc(u, imm), (imm & 8) !== 0);
  sf.flags &= ~FpExc.DE; // ROUND* signals no DE (SDM Vol. 2 ROUNDPS, SIMD exceptions)
  sf.packF32();
  u.exc |= sf.flags;
  return sf.oLo;
}

function round64(u: SseState, imm: number, hi: number, lo: number): number {
  prepSf(u);
  const sf = u.sf;
  sf.unpackF64(hi, lo, false);
  roundX80ToInt(sf, roundRc(u, imm), (imm & 8) !== 0);
  sf.flags &= ~FpExc.DE;
  sf.packF64();
  u.exc |= sf.flags;
  u.rHi = sf.oHi;
  return sf.oLo;
}

/** ROUNDPS/ROUNDSS (scalar: lane 0 from S, others kept). */
export function roundPs(
  u: SseState,
  imm: number,
  scalar: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  const n = scalar ? 1 : 4;
  for (let i = 0; i < n; i++) u.res[i] = round32(u, imm, S.u32[s + i]!);
  return commit(u, D, d, n);
}

/** ROUNDPD/ROUNDSD. */
export function roundPd(
  u: SseState,
  imm: number,
  scalar: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  begin(u);
  const n = scalar ? 2 : 4;
  for (let i = 0; i < n; i += 2) {
    u.res[i] = round64(u, imm, S.u32[s + i + 1]!, S.u32[s + i]!);
    u.res[i + 1] = u.rHi;
  }
  return commit(u, D, d, n);
}

const POS_ZERO = 0;

/** DPPS/DPPD run in stages (products, then sums); an unmasked exception stops at its stage. */
function stageTrap(u: SseState): boolean {
  return (u.exc & 0x3f & ~(u.mxcsr >>> 7)) !== 0;
}

/**
 * DPPS: products of the lanes selected by imm8[7:4], summed as (p0 + p1) + (p2 + p3) with
 * MXCSR rounding at each step, written to the lanes selected by imm8[3:0] (SDM Vol. 2 DPPS).
 * An unmasked exception is reported at the end of the stage that raised it, and DE is raised
 * for denormal intermediate products. Deviation: with unmasked exceptions the AMD host
 * sometimes reports more flags of the failing stage than this model (e.g. UE with DE); masked
 * behaviour matches the host bit for bit (test/simd-oracle.test.ts).
 */
export function dpps(u: SseState, imm: number, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  const t = u.res;
  for (let i = 0; i < 4; i++)
    t[i] = imm & (16 << i) ? f32Lane(u, FOp.MUL, D.u32[d + i]!, S.u32[s + i]!) : POS_ZERO;
  if (stageTrap(u)) return commit(u, D, d, 0) | SimdStatus.Xm;
  const s01 = f32Lane(u, FOp.ADD, t[0]!, t[1]!);
  const s23 = f32Lane(u, FOp.ADD, t[2]!, t[3]!);
  if (stageTrap(u)) return commit(u, D, d, 0) | SimdStatus.Xm;
  const sum = f32Lane(u, FOp.ADD, s01, s23);
  for (let i = 0; i < 4; i++) t[i] = imm & (1 << i) ? sum : 0;
  return commit(u, D, d, 4);
}

/** DPPD: two lanes, imm8[5:4] select products, imm8[1:0] the destination lanes. */
export function dppd(u: SseState, imm: number, D: XmmFile, d: number, S: XmmFile, s: number): number {
  begin(u);
  let p0lo = 0;
  let p0hi = 0;
  let p1lo = 0;
  let p1hi = 0;
  if (imm & 16) {
    p0lo = f64Lane(u, FOp.MUL, D.u32[d + 1]!, D.u32[d]!, S.u32[s + 1]!, S.u32[s]!);
    p0hi = u.rHi;
  }
  if (imm & 32) {
    p1lo = f64Lane(u, FOp.MUL, D.u32[d + 3]!, D.u32[d + 2]!, S.u32[s + 3]!, S.u32[s + 2]!);
    p1hi = u.rHi;
  }
  if (stageTrap(u)) return commit(u, D, d, 0) | SimdStatus.Xm;
  const lo = f64Lane(u, FOp.ADD, p0hi, p0lo, p1hi, p1lo);
  const hi = u.rHi;
  u.res[0] = imm & 1 ? lo : 0;
  u.res[1] = imm & 1 ? hi : 0;
  u.res[2] = imm & 2 ? lo : 0;
  u.res[3] = imm & 2 ? hi : 0;
  return commit(u, D, d, 4);
}

// ------------------------------------------------------------------ approximations

/**
 * RCP (rsqrt = false) / RSQRT of one float32 lane. The SDM only bounds the relative error
 * (|err| <= 1.5 * 2^-12) and Intel and AMD tables differ, so no bit-exact model exists; this
 * returns the correctly rounded float32 of 1/x (1/sqrt(x)), which is within the bound.
 * Denormal inputs count as zero and denormal results flush to zero (SDM Vol. 2 RCPPS); no
 * SIMD exceptions are raised; rsqrt of a negative non-zero gives the QNaN indefinite.
 */
function approx32(u: SseState, a: number, rsqrt: boolean): number {
  const e = (a >>> 23) & 0xff;
  const sign = a & 0x80000000;
  if (e === 0xff) {
    if (a & 0x7fffff) return (a | 0x400000) >>> 0; // NaN: quieted
    return rsqrt && sign ? 0xffc00000 : sign >>> 0; // 1/inf = 0
  }
  if (e === 0) return (sign | 0x7f800000) >>> 0; // zero or denormal -> signed infinity
  if (rsqrt && sign) return 0xffc00000;
  u.cu32[0] = a;
  const x = u.cf32[0]!;
  const r = Math.fround(rsqrt ? 1 / Math.sqrt(x) : 1 / x);
  u.cf32[0] = Math.abs(r) < 2 ** -126 ? (sign ? -0 : 0) : r;
  return u.cu32[0]!;
}

/** RCPPS/RCPSS and RSQRTPS/RSQRTSS (scalar: lane 0 only). Never raises. */
export function approxPs(
  u: SseState,
  rsqrt: boolean,
  scalar: boolean,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
): number {
  const n = scalar ? 1 : 4;
  for (let i = 0; i < n; i++) u.res[i] = approx32(u, S.u32[s + i]!, rsqrt);
  for (let i = 0; i < n; i++) D.u32[d + i] = u.res[i]!;
  return SimdStatus.Ok;
}
