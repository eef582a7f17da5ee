/**
 * x87 instruction semantics over the X87 state (SDM Vol. 2, the F* instructions). Each function
 * takes register numbers and raw memory-operand bits, updates the state, and never throws or
 * touches memory: stores leave their value in `x.oLo/oHi/oSe` and return whether the executor
 * must write it (false after an unmasked exception, SDM Vol. 1 §8.6).
 */
import { sfAdd, sfDiv, sfMul, sfSqrt } from "./arith.js";
import {
  bcdToX80,
  Cmp,
  roundX80ToInt,
  sfCompare,
  slotToBcd,
  slotToInt,
  x80ToF32,
  x80ToF64,
} from "./convert.js";
import { Cls, FpExc, INDEF_HI, INDEF_SE } from "./softfloat.js";
import { Sw, Tag, X87 } from "./x87.js";

/** Arithmetic kinds, numbered like ModRM.reg of opcode D8 (SDM Vol. 2 Table A-7). */
export const FArith = { ADD: 0, MUL: 1, SUB: 4, SUBR: 5, DIV: 6, DIVR: 7 } as const;

const PRE = FpExc.IE | FpExc.DE | FpExc.ZE;

/** Compute A op B into Z (slots already loaded). */
function compute(x: X87, op: number): void {
  const sf = x.sf;
  switch (op) {
    case FArith.ADD:
      sfAdd(sf, false, false);
      break;
    case FArith.MUL:
      sfMul(sf, false);
      break;
    case FArith.SUB:
      sfAdd(sf, true, false);
      break;
    case FArith.SUBR:
      sf.swapSlots();
      sfAdd(sf, true, false);
      break;
    case FArith.DIV:
      sfDiv(sf, false);
      break;
    default:
      sf.swapSlots();
      sfDiv(sf, false);
  }
}

/**
 * Round Z into physical register `p` with the control word's precision, unless a
 * pre-computation exception (IE, DE, ZE) is unmasked: then the destination is unchanged
 * (SDM Vol. 1 §4.9.2, §8.5). Returns true when the result was written.
 */
function finishToReg(x: X87, p: number, bits: number): boolean {
  const sf = x.sf;
  if (sf.flags & PRE & ~sf.masks) {
    x.raise(sf.flags & PRE, 0);
    return false;
  }
  sf.packX(bits, X87.ADJ);
  x.writePhys(p, sf.oSe, sf.oHi, sf.oLo);
  x.raise(sf.flags, sf.flags & FpExc.PE && sf.roundedUp ? Sw.C1 : 0);
  return true;
}

/** Stack underflow on an arithmetic op: masked -> destination = real indefinite. */
function underflowTo(x: X87, p: number): boolean {
  if (!x.underflow()) return false;
  x.writePhys(p, INDEF_SE, INDEF_HI, 0);
  return true;
}

/** FADD/FMUL/FSUB/FSUBR/FDIV/FDIVR ST(dst), ST(src) [and pop]: ST(dst) := ST(dst) op ST(src). */
export function fArithReg(x: X87, op: number, dst: number, src: number, pop: boolean): void {
  const bits = x.prepare();
  const p = x.phys(dst);
  if (x.isEmpty(dst) || x.isEmpty(src)) {
    if (underflowTo(x, p) && pop) x.pop();
    return;
  }
  x.loadSlot(dst, false);
  x.loadSlot(src, true);
  compute(x, op);
  if (finishToReg(x, p, bits) && pop) x.pop();
}

/** Arithmetic with a memory operand already unpacked into slot B: ST(0) := ST(0) op B. */
function arithMem(x: X87, op: number, bits: number): void {
  const p = x.phys(0);
  if (x.isEmpty(0)) {
    underflowTo(x, p);
    return;
  }
  x.loadSlot(0, false);
  compute(x, op);
  finishToReg(x, p, bits);
}

/** FADD..FDIVR m32fp. */
export function fArithF32(x: X87, op: number, bits32: number): void {
  const bits = x.prepare();
  x.sf.unpackF32(bits32, true);
  arithMem(x, op, bits);
}

/** FADD..FDIVR m64fp. */
export function fArithF64(x: X87, op: number, hi: number, lo: number): void {
  const bits = x.prepare();
  x.sf.unpackF64(hi, lo, true);
  arithMem(x, op, bits);
}

/** FIADD..FIDIVR m16int/m32int (value already sign-extended to a JS number). */
export function fArithInt(x: X87, op: number, v: number): void {
  const bits = x.prepare();
  x.sf.unpackI64(v < 0 ? 0xffffffff : 0, v >>> 0);
  x.sf.copyAtoB();
  arithMem(x, op, bits);
}

/** FSQRT. */
export function fSqrt(x: X87): void {
  const bits = x.prepare();
  const p = x.phys(0);
  if (x.isEmpty(0)) {
    underflowTo(x, p);
    return;
  }
  x.loadSlot(0, false);
  sfSqrt(x.sf);
  finishToReg(x, p, bits);
}

/** FRNDINT: round with FCW.RC; precision control does not apply. */
export function fRndint(x: X87): void {
  x.prepare();
  const p = x.phys(0);
  if (x.isEmpty(0)) {
    underflowTo(x, p);
    return;
  }
  x.loadSlot(0, false);
  roundX80ToInt(x.sf, x.sf.rc, false);
  finishToReg(x, p, 64);
}

// ------------------------------------------------------------------------ loads

/**
 * Push the converted value in sf.o* unless IE is unmasked. An unmasked DE still loads: the
 * host does so (FLD m32/m64 of a denormal), and the #MF comes at the next waiting instruction.
 */
function pushConverted(x: X87): void {
  const sf = x.sf;
  if (sf.flags & FpExc.IE & ~sf.masks) {
    x.raise(sf.flags, 0);
    return;
  }
  if (x.push(sf.oSe, sf.oHi, sf.oLo)) x.raise(sf.flags, 0);
}

/** FLD m32fp: exact; DE for a denormal, IE for an SNaN. */
export function fLdF32(x: X87, bits32: number): void {
  x.prepare();
  const sf = x.sf;
  const c = sf.unpackF32(bits32, false);
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packX(64, 0);
  pushConverted(x);
}

/** FLD m64fp. */
export function fLdF64(x: X87, hi: number, lo: number): void {
  x.prepare();
  const sf = x.sf;
  const c = sf.unpackF64(hi, lo, false);
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packX(64, 0);
  pushConverted(x);
}

/** FLD m80fp: raw bits, no exceptions but stack overflow. */
export function fLdF80(x: X87, se: number, hi: number, lo: number): void {
  x.prepare();
  if (x.push(se, hi >>> 0, lo >>> 0)) x.raise(0, 0);
}

/** FLD ST(i). */
export function fLdSt(x: X87, i: number): void {
  x.prepare();
  if (x.isEmpty(i)) {
    // Underflow reports C1 = 0 even when the push of the indefinite also overflows (the host CPU).
    if (x.underflow()) {
      x.push(INDEF_SE, INDEF_HI, 0);
      x.raise(0, 0);
    }
    return;
  }
  if (x.push(x.stSe(i), x.stHi(i), x.stLo(i))) x.raise(0, 0);
}

/** FILD m16/m32/m64int: the integer as signed 32-bit halves (hi = sign extension for m16/m32). */
export function fIld(x: X87, hi: number, lo: number): void {
  x.prepare();
  const sf = x.sf;
  sf.unpackI64(hi, lo);
  sf.zFromSlot(false);
  sf.packX(64, 0);
  if (x.push(sf.oSe, sf.oHi, sf.oLo)) x.raise(0, 0);
}

/** FBLD m80bcd. */
export function fBld(x: X87, bytes: Uint8Array, off: number): void {
  x.prepare();
  bcdToX80(x.sf, bytes, off);
  if (x.push(x.sf.oSe, x.sf.oHi, x.sf.oLo)) x.raise(0, 0);
}

/**
 * Constants for FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ: exponent and 96 bits of the
 * significand; rounded to 64 bits with FCW.RC (SDM Vol. 2 FLD1/FLDL2T/...: "rounded per RC").
 */
export const FConst = { ONE: 0, L2T: 1, L2E: 2, PI: 3, LG2: 4, LN2: 5, Z: 6 } as const;
const CONSTS: readonly (readonly [number, number, number, number])[] = [
  [0x3fff, 0x80000000, 0, 0],
  [0x4000, 0xd49a784b, 0xcd1b8afe, 0x492bf6ff],
  [0x3fff, 0xb8aa3b29, 0x5c17f0bb, 0xbe87fed0],
  [0x4000, 0xc90fdaa2, 0x2168c234, 0xc4c6628b],
  [0x3ffd, 0x9a209a84, 0xfbcff798, 0x8f8959ac],
  [0x3ffe, 0xb17217f7, 0xd1cf79ab, 0xc9e3b398],
  [0, 0, 0, 0],
];

/** FLD1/FLDL2T/FLDL2E/FLDPI/FLDLG2/FLDLN2/FLDZ. No PE is raised (SDM Vol. 2 FLD1...). */
export function fLdConst(x: X87, which: number): void {
  x.prepare();
  const c = CONSTS[which] ?? CONSTS[0]!;
  const sf = x.sf;
  if (c[1] === 0) {
    if (x.push(0, 0, 0)) x.raise(0, 0);
    return;
  }
  sf.zCls = Cls.Normal;
  sf.zSign = 0;
  sf.zExp = c[0] - 16383;
  sf.z2 = c[1];
  sf.z1 = c[2];
  sf.z0 = c[3];
  sf.zSticky = c[3] !== 0 ? 1 : 0; // irrational constants: more non-zero bits follow
  sf.packX(64, 0);
  if (x.push(sf.oSe, sf.oHi, sf.oLo)) x.raise(0, 0);
}

// ------------------------------------------------------------------------ stores

/** Store kinds for the masked stack-underflow response (which indefinite to store). */
const enum StK {
  F32,
  F64,
  F80,
  I16,
  I32,
  I64,
}

/**
 * Empty ST(0) on a store: stack underflow. Masked: the indefinite of the destination format
 * goes to memory and the pop happens; returns 1 (write) or 2 (unmasked: nothing). 0 = not empty.
 */
function storeUnderflow(x: X87, pop: boolean, k: StK): number {
  if (!x.isEmpty(0)) return 0;
  if (!x.underflow()) return 2;
  x.oSe = INDEF_SE;
  x.oHi = k === StK.F64 ? 0xfff80000 : k === StK.F80 ? INDEF_HI : k === StK.I64 ? 0x80000000 : 0;
  x.oLo = k === StK.F32 ? 0xffc00000 : k === StK.I32 ? 0x80000000 : k === StK.I16 ? 0x8000 : 0;
  if (pop) x.pop();
  return 1;
}

/**
 * Finish a memory store: an unmasked IE, OE or UE leaves memory and the stack unchanged
 * (SDM Vol. 1 §4.9.1.4-5: no result to a memory destination); an unmasked PE still stores.
 */
function finishStore(x: X87, pop: boolean): boolean {
  const sf = x.sf;
  if (sf.flags & ~sf.masks & (FpExc.IE | FpExc.OE | FpExc.UE)) {
    x.raise(sf.flags & 0x3f, 0);
    return false;
  }
  x.raise(sf.flags, sf.flags & FpExc.PE && sf.roundedUp ? Sw.C1 : 0);
  if (pop) x.pop();
  return true;
}

/** FST/FSTP m32fp: value in x.oLo. Returns whether to write memory. */
export function fStF32(x: X87, pop: boolean): boolean {
  x.prepare();
  const u = storeUnderflow(x, pop, StK.F32);
  if (u !== 0) return u === 1;
  x80ToF32(x.sf, x.stSe(0), x.stHi(0), x.stLo(0));
  x.oLo = x.sf.oLo;
  return finishStore(x, pop);
}

/** FST/FSTP m64fp: value in x.oHi:x.oLo. */
export function fStF64(x: X87, pop: boolean): boolean {
  x.prepare();
  const u = storeUnderflow(x, pop, StK.F64);
  if (u !== 0) return u === 1;
  x80ToF64(x.sf, x.stSe(0), x.stHi(0), x.stLo(0));
  x.oHi = x.sf.oHi;
  x.oLo = x.sf.oLo;
  return finishStore(x, pop);
}

/** FSTP m80fp: raw copy, value in x.oSe/oHi/oLo. */
export function fStF80(x: X87): boolean {
  x.prepare();
  const u = storeUnderflow(x, true, StK.F80);
  if (u !== 0) return u === 1;
  x.oSe = x.stSe(0);
  x.oHi = x.stHi(0);
  x.oLo = x.stLo(0);
  x.raise(0, 0);
  x.pop();
  return true;
}

/** FST/FSTP ST(i): raw copy (no exceptions for an SNaN with an extended destination). */
export function fStSt(x: X87, i: number, pop: boolean): void {
  x.prepare();
  if (x.isEmpty(0)) {
    if (x.underflow()) {
      x.writeST(i, INDEF_SE, INDEF_HI, 0);
      if (pop) x.pop();
    }
    return;
  }
  x.writeST(i, x.stSe(0), x.stHi(0), x.stLo(0));
  x.raise(0, 0);
  if (pop) x.pop();
}

/**
 * FIST/FISTP m16/32/64int, and FISTTP (truncate = true): value in x.oHi:x.oLo
 * (m16: low 16 bits of oLo).
 */
export function fIst(x: X87, width: 16 | 32 | 64, pop: boolean, truncate: boolean): boolean {
  x.prepare();
  const u = storeUnderflow(x, pop, width === 64 ? StK.I64 : width === 32 ? StK.I32 : StK.I16);
  if (u !== 0) return u === 1;
  const sf = x.sf;
  x.loadSlot(0, false);
  slotToInt(sf, width, truncate ? 3 : sf.rc);
  x.oHi = sf.oHi;
  x.oLo = sf.oLo;
  return finishStore(x, pop);
}

/** FBSTP m80bcd into `out` at `off`. */
export function fBstp(x: X87, out: Uint8Array, off: number): boolean {
  x.prepare();
  const u = storeUnderflow(x, true, StK.F80);
  if (u === 2) return false;
  if (u === 1) {
    // Packed BCD indefinite: FF FF C0 00 .. 00 (SDM Vol. 1 Table 4-4).
    out.fill(0, off, off + 10);
    out[off + 7] = 0xc0;
    out[off + 8] = 0xff;
    out[off + 9] = 0xff;
    return true;
  }
  const sf = x.sf;
  x.loadSlot(0, false);
  slotToBcd(sf, sf.rc, out, off);
  return finishStore(x, true);
}

// ------------------------------------------------------------------------ compares

/** Set C3 C2 C0 from a compare result; C1 = 0 (SDM Vol. 2 FCOM Table 3-21). */
function setCmpCC(x: X87, r: number): void {
  if (r === Cmp.Unordered) x.setCC(1, 1, 0, 1);
  else x.setCC(r === Cmp.Equal ? 1 : 0, 0, 0, r === Cmp.Less ? 1 : 0);
}

/** FCOM/FCOMP/FCOMPP/FUCOM* with ST(i); `pops` = 0, 1 or 2. */
export function fComSt(x: X87, i: number, quiet: boolean, pops: number): void {
  x.prepare();
  if (x.isEmpty(0) || x.isEmpty(i)) {
    // Unordered even when the stack fault is unmasked (observed on the host, as for IE/DE below).
    const masked = x.underflow();
    x.setCC(1, 1, 0, 1);
    if (masked) for (let k = 0; k < pops; k++) x.pop();
    return;
  }
  x.loadSlot(0, false);
  x.loadSlot(i, true);
  finishCompare(x, quiet, pops);
}

function finishCompare(x: X87, quiet: boolean, pops: number): void {
  const sf = x.sf;
  const r = sfCompare(sf, quiet);
  // The condition codes are written even when IE/DE is unmasked (observed on the host).
  setCmpCC(x, r);
  if (sf.flags & ~sf.masks & 0x3f) {
    x.raise(sf.flags, 0);
    return;
  }
  x.raise(sf.flags, 0);
  for (let k = 0; k < pops; k++) x.pop();
}

/** FCOM/FCOMP m32fp, m64fp, FICOM m16/m32int: the operand already unpacked into slot B by the caller's kind. */
export function fComMem(x: X87, kind: "f32" | "f64" | "int", hi: number, lo: number, pop: boolean): void {
  x.prepare();
  const sf = x.sf;
  if (x.isEmpty(0)) {
    const masked = x.underflow();
    x.setCC(1, 1, 0, 1);
    if (masked && pop) x.pop();
    return;
  }
  if (kind === "f32") sf.unpackF32(lo, true);
  else if (kind === "f64") sf.unpackF64(hi, lo, true);
  else {
    sf.unpackI64(hi, lo);
    sf.copyAtoB();
  }
  x.loadSlot(0, false);
  finishCompare(x, false, pop ? 1 : 0);
}

/** FTST: compare ST(0) with +0.0. */
export function fTst(x: X87): void {
  x.prepare();
  if (x.isEmpty(0)) {
    x.underflow();
    x.setCC(1, 1, 0, 1);
    return;
  }
  x.sf.unpackX(0, 0, 0, true);
  x.loadSlot(0, false);
  finishCompare(x, false, 0);
}

/** EFLAGS bits written by FCOMI/FUCOMI. */
export const EFL_CF = 0x01;
export const EFL_PF = 0x04;
export const EFL_ZF = 0x40;

/**
 * FCOMI/FCOMIP/FUCOMI/FUCOMIP: returns the new ZF|PF|CF bits (OF, SF, AF cleared), or -1 when
 * an unmasked invalid operation leaves EFLAGS unchanged (SDM Vol. 2 FCOMI).
 */
export function fComi(x: X87, i: number, quiet: boolean, pop: boolean): number {
  x.prepare();
  const sf = x.sf;
  if (x.isEmpty(0) || x.isEmpty(i)) {
    // EFLAGS say unordered even when the stack fault is unmasked (observed on the host).
    if (x.underflow() && pop) x.pop();
    return EFL_ZF | EFL_PF | EFL_CF;
  }
  x.loadSlot(0, false);
  x.loadSlot(i, true);
  const r = sfCompare(sf, quiet);
  x.raise(sf.flags, 0);
  // EFLAGS are written even on an unmasked IE/DE (observed on the host); the pop is not done.
  if (pop && (sf.flags & ~sf.masks & 0x3f) === 0) x.pop();
  if (r === Cmp.Unordered) return EFL_ZF | EFL_PF | EFL_CF;
  return r === Cmp.Equal ? EFL_ZF : r === Cmp.Less ? EFL_CF : 0;
}

/** FXAM: classify ST(0) into C3 C2 C0, C1 = sign (SDM Vol. 2 FXAM Table 3-xx). */
export function fXam(x: X87): void {
  const p = x.phys(0);
  const se = x.se[p]!;
  const sign = se >>> 15;
  if (x.tagOf(p) === Tag.Empty) {
    x.setCC(1, 0, sign, 1);
    return;
  }
  const c = x.sf.unpackX(se, x.mant[2 * p + 1]!, x.mant[2 * p]!, false);
  switch (c) {
    case Cls.Unsupported:
      x.setCC(0, 0, sign, 0);
      break;
    case Cls.QNaN:
    case Cls.SNaN:
      x.setCC(0, 0, sign, 1);
      break;
    case Cls.Normal:
      x.setCC(0, 1, sign, 0);
      break;
    case Cls.Inf:
      x.setCC(0, 1, sign, 1);
      break;
    case Cls.Zero:
      x.setCC(1, 0, sign, 0);
      break;
    default:
      x.setCC(1, 1, sign, 0);
  }
}

// ------------------------------------------------------------------------ register moves

/** FXCH ST(i). Underflow (masked): empty registers become the real indefinite. */
export function fXch(x: X87, i: number): void {
  x.prepare();
  if (x.isEmpty(0) || x.isEmpty(i)) {
    if (!x.underflow()) return;
    if (x.isEmpty(0)) x.writeST(0, INDEF_SE, INDEF_HI, 0);
    if (x.isEmpty(i)) x.writeST(i, INDEF_SE, INDEF_HI, 0);
  } else x.raise(0, 0);
  const se = x.stSe(0);
  const hi = x.stHi(0);
  const lo = x.stLo(0);
  x.writeST(0, x.stSe(i), x.stHi(i), x.stLo(i));
  x.writeST(i, se, hi, lo);
}

/** FCHS (flip = true) / FABS: sign manipulation only, never IE for NaNs. */
export function fSign(x: X87, flip: boolean): void {
  x.prepare();
  const p = x.phys(0);
  if (x.isEmpty(0)) {
    underflowTo(x, p);
    return;
  }
  const se = x.se[p]!;
  x.se[p] = flip ? se ^ 0x8000 : se & 0x7fff;
  x.raise(0, 0);
}

/** FCMOVcc ST(0), ST(i): `cond` evaluated by the executor from EFLAGS. */
export function fCmov(x: X87, i: number, cond: boolean): void {
  x.prepare();
  if (x.isEmpty(0) || x.isEmpty(i)) {
    if (x.underflow()) x.writeST(0, INDEF_SE, INDEF_HI, 0);
    return;
  }
  // C1 is set to 0 only on a stack underflow (SDM Vol. 2 FCMOVcc); otherwise it stays (the host CPU).
  if (cond) x.writeST(0, x.stSe(i), x.stHi(i), x.stLo(i));
}

/** FFREE ST(i). C0..C3 are undefined (SDM Vol. 2 FFREE); the host CPU clears C1, so does this. */
export function fFree(x: X87, i: number): void {
  x.setTag(x.phys(i), Tag.Empty);
  x.sw &= ~Sw.C1;
}

/** FINCSTP / FDECSTP: C1 cleared. */
export function fIncDecStp(x: X87, inc: boolean): void {
  x.top = (x.top + (inc ? 1 : 7)) & 7;
  x.setCC(x.sw & Sw.C3 ? 1 : 0, x.sw & Sw.C2 ? 1 : 0, 0, x.sw & Sw.C0 ? 1 : 0);
}
