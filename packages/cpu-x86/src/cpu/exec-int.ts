/**
 * Integer data instructions (SDM Vol. 2): ALU, TEST, INC/DEC/NOT/NEG, MUL/IMUL/DIV/IDIV, MOV family,
 * XCHG/XADD/CMPXCHG, shifts and rotates, SHLD/SHRD, bit tests and scans, SETcc/CMOVcc, sign
 * extensions. Handlers are `(c, i) => void` over the precomputed `XInsn`.
 */
import {
  alu,
  div128,
  divS,
  divU,
  incDec,
  mask,
  mulS64,
  mulU32,
  mulU32Hi,
  mulU64,
  prod,
  shift,
} from "./alu.js";
import { LF, PARITY } from "./flags.js";
import { Vec } from "./memory.js";
import type { OpCpu, XInsn } from "./operands.js";
import { F } from "./state.js";

type C = OpCpu;
type I = XInsn;

/** ALU r/m, reg (k = ALU index; CMP writes nothing). */
export function aluEG(c: C, i: I): void {
  const sz = i.sz;
  const s = c.getReg(sz, i.reg, i);
  const sh = c.opHi;
  if (i.k === 7) {
    const d = c.readRm(i, sz);
    alu(c, 7, sz, d, c.opHi, s, sh);
    return;
  }
  const d = c.readRmForWrite(i, sz);
  const r = alu(c, i.k, sz, d, c.opHi, s, sh);
  c.writeBack(i, sz, r, c.opHi);
}

/** ALU reg, r/m. */
export function aluGE(c: C, i: I): void {
  const sz = i.sz;
  const s = c.readRm(i, sz);
  const sh = c.opHi;
  const d = c.getReg(sz, i.reg, i);
  const r = alu(c, i.k, sz, d, c.opHi, s, sh);
  if (i.k !== 7) c.setReg(sz, i.reg, r, c.opHi, i);
}

/** ALU r/m, imm (the accumulator forms are rewritten to r/m = register 0). */
export function aluEI(c: C, i: I): void {
  const sz = i.sz;
  if (i.k === 7) {
    const d = c.readRm(i, sz);
    alu(c, 7, sz, d, c.opHi, i.imm & mask(sz), i.immHi);
    return;
  }
  const d = c.readRmForWrite(i, sz);
  const r = alu(c, i.k, sz, d, c.opHi, i.imm & mask(sz), i.immHi);
  c.writeBack(i, sz, r, c.opHi);
}

/** Fast path: 32-bit ALU between registers (no memory, no flags read). */
export function aluRR32(c: C, i: I): void {
  const r = c.r;
  const d = r[i.rm * 2]!;
  const s = r[i.reg * 2]!;
  const k = i.k;
  let v: number;
  if (k === 0) {
    v = (d + s) | 0;
    c.lzOp = LF.ADD;
  } else if (k === 5 || k === 7) {
    v = (d - s) | 0;
    c.lzOp = LF.SUB;
  } else if (k === 6) {
    v = d ^ s;
    c.lzOp = LF.LOGIC;
  } else if (k === 4) {
    v = d & s;
    c.lzOp = LF.LOGIC;
  } else {
    v = d | s;
    c.lzOp = LF.LOGIC;
  }
  c.lzSize = 4;
  c.lzDst = d;
  c.lzSrc = s;
  c.lzRes = v;
  if (k !== 7) {
    r[i.rm * 2] = v;
    r[i.rm * 2 + 1] = 0;
  }
}

export function testEG(c: C, i: I): void {
  const sz = i.sz;
  const s = c.getReg(sz, i.reg, i);
  const sh = c.opHi;
  const d = c.readRm(i, sz);
  alu(c, 4, sz, d, c.opHi, s, sh);
}

export function testEI(c: C, i: I): void {
  const d = c.readRm(i, i.sz);
  alu(c, 4, i.sz, d, c.opHi, i.imm & mask(i.sz), i.immHi);
}

/** INC (k=0) / DEC (k=1) r/m. */
export function incDecE(c: C, i: I): void {
  const sz = i.sz;
  const d = c.readRmForWrite(i, sz);
  const r = incDec(c, i.k === 1, sz, d, c.opHi);
  c.writeBack(i, sz, r, c.opHi);
}

export function notE(c: C, i: I): void {
  const sz = i.sz;
  const d = c.readRmForWrite(i, sz);
  c.writeBack(i, sz, ~d & mask(sz), ~c.opHi);
}

export function negE(c: C, i: I): void {
  const sz = i.sz;
  const d = c.readRmForWrite(i, sz);
  const r = alu(c, 5, sz, 0, 0, d, c.opHi);
  c.writeBack(i, sz, r, c.opHi);
}

/** Sets CF=OF from `over`; SF/ZF/PF from the low result (AMD behaviour; the SDM leaves them undefined). */
function mulFlags(c: C, sz: number, lo: number, hi: number, over: boolean): void {
  c.setResultFlags(sz, lo, hi, over ? F.CF | F.OF : 0);
}

/** MUL (k=0) / IMUL (k=1) one-operand forms: rDX:rAX = rAX * r/m (SDM Vol. 2 MUL, IMUL). */
export function mulE(c: C, i: I): void {
  const sz = i.sz;
  const signed = i.k === 1;
  const s = c.readRm(i, sz);
  const sh = c.opHi;
  const r = c.r;
  if (sz === 1) {
    const a = r[0]! & 0xff;
    const p = signed ? ((a << 24) >> 24) * ((s << 24) >> 24) : a * s;
    r[0] = (r[0]! & ~0xffff) | (p & 0xffff);
    mulFlags(c, 1, p, 0, signed ? p !== (p << 24) >> 24 : p > 0xff);
  } else if (sz === 2) {
    const a = r[0]! & 0xffff;
    const p = signed ? ((a << 16) >> 16) * ((s << 16) >> 16) : a * s;
    r[0] = (r[0]! & ~0xffff) | (p & 0xffff);
    r[4] = (r[4]! & ~0xffff) | ((p >> 16) & 0xffff);
    mulFlags(c, 2, p, 0, signed ? p !== (p << 16) >> 16 : p > 0xffff);
  } else if (sz === 4) {
    const a = r[0]!;
    let lo = mulU32(a, s);
    let hi = mulU32Hi();
    if (signed) {
      if (a < 0) hi = (hi - s) | 0;
      if (s < 0) hi = (hi - a) | 0;
    }
    lo |= 0;
    r[0] = lo;
    r[1] = 0;
    r[4] = hi;
    r[5] = 0;
    mulFlags(c, 4, lo, 0, signed ? hi !== lo >> 31 : hi !== 0);
  } else {
    if (signed) mulS64(r[0]!, r[1]!, s, sh);
    else mulU64(r[0]!, r[1]!, s, sh);
    r[0] = prod[0]!;
    r[1] = prod[1]!;
    r[4] = prod[2]!;
    r[5] = prod[3]!;
    const over = signed
      ? prod[2] !== prod[1]! >> 31 || prod[3] !== prod[1]! >> 31
      : (prod[2]! | prod[3]!) !== 0;
    mulFlags(c, 8, prod[0]!, prod[1]!, over);
  }
}

/** IMUL reg, r/m[, imm] (two- and three-operand forms; k=1 has an immediate). */
export function imulGE(c: C, i: I): void {
  const sz = i.sz;
  let a: number;
  let ah: number;
  const b = c.readRm(i, sz);
  const bh = c.opHi;
  if (i.k === 1) {
    a = i.imm;
    ah = i.immHi;
  } else {
    a = c.getReg(sz, i.reg, i);
    ah = c.opHi;
  }
  if (sz === 2) {
    const p = ((a << 16) >> 16) * ((b << 16) >> 16);
    c.setReg(2, i.reg, p, 0, i);
    mulFlags(c, 2, p, 0, p !== (p << 16) >> 16);
  } else if (sz === 4) {
    let lo = mulU32(a, b);
    let hi = mulU32Hi();
    if (a < 0) hi = (hi - b) | 0;
    if (b < 0) hi = (hi - a) | 0;
    lo |= 0;
    c.setReg(4, i.reg, lo, 0, i);
    mulFlags(c, 4, lo, 0, hi !== lo >> 31);
  } else {
    mulS64(a, ah, b, bh);
    c.setReg(8, i.reg, prod[0]!, prod[1]!, i);
    mulFlags(c, 8, prod[0]!, prod[1]!, prod[2] !== prod[1]! >> 31 || prod[3] !== prod[1]! >> 31);
  }
}

/** DIV (k=0) / IDIV (k=1) r/m (SDM Vol. 2 DIV, IDIV); #DE on zero or overflow. */
export function divE(c: C, i: I): void {
  const sz = i.sz;
  const signed = i.k === 1;
  const d = c.readRm(i, sz);
  const dh = c.opHi;
  const r = c.r;
  if (sz === 1) {
    const n = r[0]! & 0xffff;
    const q = signed ? divS(c, 1, (n << 16) >> 16, 0, (d << 24) >> 24) : divU(c, 1, n, 0, d);
    r[0] = (r[0]! & ~0xffff) | (q & 0xff) | ((c.opHi & 0xff) << 8);
  } else if (sz === 2) {
    const n = (r[0]! & 0xffff) | ((r[4]! & 0xffff) << 16);
    const q = signed ? divS(c, 2, n | 0, 0, (d << 16) >> 16) : divU(c, 2, n >>> 0, 0, d);
    r[0] = (r[0]! & ~0xffff) | (q & 0xffff);
    r[4] = (r[4]! & ~0xffff) | (c.opHi & 0xffff);
  } else if (sz === 4) {
    const q = signed ? divS(c, 4, r[0]!, r[4]!, d) : divU(c, 4, r[0]!, r[4]!, d);
    r[0] = q;
    r[1] = 0;
    r[4] = c.opHi;
    r[5] = 0;
  } else {
    div128(c, signed, r[0]!, r[1]!, r[4]!, r[5]!, d, dh);
    r[0] = prod[0]!;
    r[1] = prod[1]!;
    r[4] = prod[2]!;
    r[5] = prod[3]!;
  }
  // Flags are undefined after DIV/IDIV; hardware leaves them as a function of the operands. We keep them.
}

// ------------------------------------------------------------------ moves

export function movEG(c: C, i: I): void {
  const v = c.getReg(i.sz, i.reg, i);
  c.writeRm(i, i.sz, v, c.opHi);
}

export function movGE(c: C, i: I): void {
  const v = c.readRm(i, i.sz);
  c.setReg(i.sz, i.reg, v, c.opHi, i);
}

export function movRR32(c: C, i: I): void {
  const r = c.r;
  r[i.reg * 2] = r[i.rm * 2]!;
  r[i.reg * 2 + 1] = 0;
}

export function movRR64(c: C, i: I): void {
  const r = c.r;
  r[i.reg * 2] = r[i.rm * 2]!;
  r[i.reg * 2 + 1] = r[i.rm * 2 + 1]!;
}

/** MOV r/m, imm and MOV reg, imm (reg forms rewritten to r/m = register). */
export function movEI(c: C, i: I): void {
  c.writeRm(i, i.sz, i.imm, i.immHi);
}

/** MOV AL/rAX, moffs (k=0) and MOV moffs, AL/rAX (k=1): the offset is the immediate. */
export function movMoffs(c: C, i: I): void {
  let lo = i.imm;
  let hi = i.immHi;
  if (i.addrSize === 4) hi = 0;
  else if (i.addrSize === 2) {
    lo &= 0xffff;
    hi = 0;
  }
  c.lin(i.sg, lo, hi, i.sz, i.k === 1);
  if (i.k === 1) c.writeLin(i.sz, c.getReg(i.sz, 0, i), c.opHi);
  else {
    const v = c.readLin(i.sz);
    c.setReg(i.sz, 0, v, c.opHi, i);
  }
}

/** MOVZX (k=0) / MOVSX (k=1) / MOVSXD (k=2) reg, r/m of size `imm2`-less source: source size in i.immHi-free field `k>>2`. */
export function movExt(c: C, i: I): void {
  const src = i.k >> 2;
  let v = c.readRm(i, src);
  if ((i.k & 3) !== 0) {
    v = src === 1 ? (v << 24) >> 24 : src === 2 ? (v << 16) >> 16 : v | 0;
    c.setReg(i.sz, i.reg, v, v >> 31, i);
  } else {
    c.setReg(i.sz, i.reg, v, 0, i);
  }
}

export function lea(c: C, i: I): void {
  c.ea(i, 0);
  c.setReg(i.sz, i.reg, c.eaLo, c.eaHi, i);
}

/** XCHG r/m, reg (memory first so a fault leaves the register unchanged). */
export function xchgEG(c: C, i: I): void {
  const sz = i.sz;
  const a = c.getReg(sz, i.reg, i);
  const ah = c.opHi;
  const b = c.readRmForWrite(i, sz);
  const bh = c.opHi;
  c.writeBack(i, sz, a, ah);
  c.setReg(sz, i.reg, b, bh, i);
}

export function xaddEG(c: C, i: I): void {
  const sz = i.sz;
  const s = c.getReg(sz, i.reg, i);
  const sh = c.opHi;
  const d = c.readRmForWrite(i, sz);
  const dh = c.opHi;
  const r = alu(c, 0, sz, d, dh, s, sh);
  const rh = c.opHi;
  // SRC <- DEST, then DEST <- SUM (SDM Vol. 2 XADD): with one register for both, the sum wins.
  c.setReg(sz, i.reg, d, dh, i);
  c.writeBack(i, sz, r, rh);
}

/** CMPXCHG r/m, reg (SDM Vol. 2): compares with rAX; the destination is always written for memory. */
export function cmpxchg(c: C, i: I): void {
  const sz = i.sz;
  const d = c.readRmForWrite(i, sz);
  const dh = c.opHi;
  const a = c.getReg(sz, 0, i);
  const ah = c.opHi;
  alu(c, 7, sz, a, ah, d, dh);
  if (c.zf()) {
    const s = c.getReg(sz, i.reg, i);
    c.writeBack(i, sz, s, c.opHi);
  } else {
    if (i.isMem) c.writeLin(sz, d, dh);
    c.setReg(sz, 0, d, dh, i);
  }
}

/** CMPXCHG8B (k=0) / CMPXCHG16B (k=1) m64/m128. */
export function cmpxchg8b(c: C, i: I): void {
  const r = c.r;
  if (i.k === 0) {
    c.memAddr(i, 0, 8, true);
    if (c.acCheck) c.checkAlign(c.la, 8);
    const lo = c.rd32(c.la, c.laHi);
    const a2 = (c.la + 4) | 0;
    const hi = c.rd32(a2, c.laHi);
    if (lo === r[0] && hi === r[4]) {
      c.wr32(c.la, c.laHi, r[6]!);
      c.wr32(a2, c.laHi, r[2]!);
      c.setArith(F.ZF, F.ZF);
    } else {
      c.wr32(c.la, c.laHi, lo);
      c.wr32(a2, c.laHi, hi);
      c.setReg(4, 0, lo, 0, i);
      c.setReg(4, 2, hi, 0, i);
      c.setArith(F.ZF, 0);
    }
    return;
  }
  c.ea(i, 0);
  if ((c.eaLo & 15) !== 0) c.raise(Vec.GP, 0); // CMPXCHG16B needs a 16-byte aligned operand
  c.lin(i.sg, c.eaLo, c.eaHi, 16, true);
  const la = c.la;
  const lh = c.laHi;
  const a8 = (la + 8) | 0;
  const l0 = c.rd64(la, lh);
  const l1 = c.hiOut;
  const h0 = c.rd64(a8, lh);
  const h1 = c.hiOut;
  if (l0 === r[0] && l1 === r[1] && h0 === r[4] && h1 === r[5]) {
    c.wr64(la, lh, r[6]!, r[7]!);
    c.wr64(a8, lh, r[2]!, r[3]!);
    c.setArith(F.ZF, F.ZF);
  } else {
    c.wr64(la, lh, l0, l1);
    c.wr64(a8, lh, h0, h1);
    r[0] = l0;
    r[1] = l1;
    r[4] = h0;
    r[5] = h1;
    c.setArith(F.ZF, 0);
  }
}

function sw(v: number): number {
  return (v >>> 24) | ((v >> 8) & 0xff00) | ((v & 0xff00) << 8) | (v << 24);
}

export function bswap(c: C, i: I): void {
  const r = c.r;
  const n = i.rm;
  if (i.sz === 8) {
    const lo = r[n * 2]!;
    r[n * 2] = sw(r[n * 2 + 1]!);
    r[n * 2 + 1] = sw(lo);
  } else if (i.sz === 4) {
    r[n * 2] = sw(r[n * 2]!);
    r[n * 2 + 1] = 0;
  } else {
    // BSWAP with a 16-bit operand is undefined (SDM); hardware clears the low word.
    r[n * 2] = r[n * 2]! & ~0xffff;
  }
}

/** MOVBE reg, m (k=0) / m, reg (k=1). */
export function movbe(c: C, i: I): void {
  const sz = i.sz;
  if (i.k === 0) {
    const v = c.readRm(i, sz);
    if (sz === 2) c.setReg(2, i.reg, ((v >> 8) & 0xff) | ((v & 0xff) << 8), 0, i);
    else if (sz === 4) c.setReg(4, i.reg, sw(v), 0, i);
    else c.setReg(8, i.reg, sw(c.opHi), sw(v), i);
  } else {
    const v = c.getReg(sz, i.reg, i);
    if (sz === 2) c.writeRm(i, 2, ((v >> 8) & 0xff) | ((v & 0xff) << 8), 0);
    else if (sz === 4) c.writeRm(i, 4, sw(v), 0);
    else c.writeRm(i, 8, sw(c.opHi), sw(v));
  }
}

// ------------------------------------------------------------------ shifts

/** Group 2: count from imm (k bit 3 clear -> imm, set -> CL, k bit 4 -> 1). Low 3 bits = kind. */
export function shiftE(c: C, i: I): void {
  const sz = i.sz;
  const mode = i.k >> 3;
  const count = mode === 0 ? i.imm : mode === 1 ? c.r[2]! & 0xff : 1;
  const d = c.readRmForWrite(i, sz);
  const r = shift(c, i.k & 7, sz, d, c.opHi, count);
  c.writeBack(i, sz, r, c.opHi);
}

/** SHLD (k bit0 = 0) / SHRD (bit0 = 1), count imm (bit1 = 0) or CL (bit1 = 1). */
export function shiftDouble(c: C, i: I): void {
  const sz = i.sz;
  const right = (i.k & 1) !== 0;
  const n = ((i.k & 2) !== 0 ? c.r[2]! : i.imm) & (sz === 8 ? 63 : 31);
  const s = c.getReg(sz, i.reg, i);
  const sh = c.opHi;
  const d = c.readRmForWrite(i, sz);
  const dh = c.opHi;
  if (n === 0) {
    c.writeBack(i, sz, d, dh);
    return;
  }
  const bits = sz * 8;
  let r: number;
  let rh = 0;
  let cf: number;
  if (sz === 8) {
    if (right) {
      r = shr64(d, dh, n);
      rh = t64Hi;
      const sl = shl64(s, sh, 64 - n);
      r |= sl;
      rh |= t64Hi;
      cf = bit64(d, dh, n - 1);
    } else {
      r = shl64(d, dh, n);
      rh = t64Hi;
      const sr = shr64(s, sh, 64 - n);
      r |= sr;
      rh |= t64Hi;
      cf = bit64(d, dh, 64 - n);
    }
  } else {
    const m = mask(sz);
    const dd = d & m;
    const ss = s & m;
    if (sz === 2 && n > 16) {
      // Undefined result for counts > 16 (SDM); match hardware's 32-bit funnel: (d:s:d).
      const big = right
        ? BigInt(dd) | (BigInt(ss) << 16n) | (BigInt(dd) << 32n)
        : (BigInt(dd) << 32n) | (BigInt(ss) << 16n) | BigInt(dd);
      const v = right ? big >> BigInt(n) : big << BigInt(n);
      r = Number(right ? v & 0xffffn : (v >> 32n) & 0xffffn);
      cf = Number(right ? (big >> BigInt(n - 1)) & 1n : (big >> BigInt(48 - n)) & 1n);
    } else if (right) {
      r = ((dd >>> n) | (n === bits ? 0 : ss << (bits - n))) & m;
      if (n === bits) r = ss;
      cf = (dd >>> (n - 1)) & 1;
      if (n > bits) cf = (ss >>> (n - 1 - bits)) & 1;
    } else {
      r = n === bits ? ss : ((dd << n) | (ss >>> (bits - n))) & m;
      cf = n === bits ? dd & 1 : (dd >>> (bits - n)) & 1;
    }
  }
  const of = msb(sz, r, rh) ^ msb(sz, d, dh);
  c.writeBack(i, sz, r, rh);
  c.setResultFlags(sz, r, rh, (cf ? F.CF : 0) | (of ? F.OF : 0));
}

let t64Hi = 0;
/** 64-bit shift left by n (0..63) on halves; high half in t64Hi. */
function shl64(lo: number, hi: number, n: number): number {
  if (n === 0) {
    t64Hi = hi;
    return lo;
  }
  if (n >= 32) {
    t64Hi = lo << (n - 32);
    return 0;
  }
  t64Hi = (hi << n) | (lo >>> (32 - n));
  return lo << n;
}
function shr64(lo: number, hi: number, n: number): number {
  if (n === 0) {
    t64Hi = hi;
    return lo;
  }
  if (n >= 32) {
    t64Hi = 0;
    return hi >>> (n - 32);
  }
  t64Hi = hi >>> n;
  return (lo >>> n) | (hi << (32 - n));
}
function bit64(lo: number, hi: number, k: number): number {
  return k >= 32 ? (hi >>> (k - 32)) & 1 : (lo >>> k) & 1;
}

function msb(sz: number, lo: number, hi: number): number {
  return sz === 1 ? (lo >> 7) & 1 : sz === 2 ? (lo >> 15) & 1 : sz === 4 ? lo >>> 31 : hi >>> 31;
}

// ------------------------------------------------------------------ bit instructions

/** BT/BTS/BTR/BTC (k = 0..3) with register offset (bit0 of k>>2 = 0) or immediate (1). */
export function bitTest(c: C, i: I): void {
  const sz = i.sz;
  const bits = sz * 8;
  const op = i.k & 3;
  const immForm = (i.k & 4) !== 0;
  let off: number;
  let offHi = 0;
  if (immForm) off = i.imm & (bits - 1);
  else {
    off = c.getReg(sz, i.reg, i);
    offHi = sz === 8 ? c.opHi : sz === 4 ? off >> 31 : sz === 2 ? (off << 16) >> 31 : 0;
    if (sz === 2) off = (off << 16) >> 16;
  }
  let v: number;
  let vh = 0;
  let bit: number;
  if (!i.isMem) {
    bit = off & (bits - 1);
    v = c.getReg(sz, i.rm, i);
    vh = c.opHi;
  } else {
    // A register bit offset addresses memory beyond the operand (SDM Vol. 2 BT: signed, in operand-size units).
    let byteOffLo = 0;
    let byteOffHi = 0;
    if (!immForm) {
      const unitShift = sz === 2 ? 4 : sz === 4 ? 5 : 6;
      if (sz === 8) {
        byteOffLo = ((off >>> unitShift) | (offHi << (32 - unitShift))) << 3;
        byteOffHi = (offHi >> unitShift) * 8 + (((off >>> unitShift) | (offHi << (32 - unitShift))) >>> 29);
      } else {
        const units = off >> unitShift;
        byteOffLo = units * sz;
        byteOffHi = byteOffLo < 0 ? -1 : 0;
      }
    }
    bit = off & (bits - 1);
    c.ea(i, 0);
    let lo = c.eaLo;
    let hi = c.eaHi;
    if (byteOffLo !== 0 || byteOffHi !== 0) {
      const s = (lo >>> 0) + (byteOffLo >>> 0);
      lo = s | 0;
      hi = (hi + byteOffHi + (s > 0xffffffff ? 1 : 0)) | 0;
      if (i.addrSize === 4) hi = 0;
      else if (i.addrSize === 2) {
        lo &= 0xffff;
        hi = 0;
      }
    }
    c.lin(i.sg, lo, hi, sz, op !== 0);
    if (op !== 0) {
      // BTS/BTR/BTC fault as writes, on either page of a page-crossing operand (16-bit difftest).
      c.probeWrite(c.la, c.laHi);
      const e = (c.la >>> 0) + sz - 1;
      c.probeWrite(e | 0, e > 0xffffffff ? (c.laHi + 1) | 0 : c.laHi);
    }
    v = c.readLin(sz);
    vh = c.opHi;
  }
  const set = bit >= 32 ? (vh >>> (bit - 32)) & 1 : (v >>> bit) & 1;
  if (op !== 0) {
    let nv = v;
    let nh = vh;
    const m = 1 << (bit & 31);
    if (bit >= 32) nh = op === 1 ? nh | m : op === 2 ? nh & ~m : nh ^ m;
    else nv = op === 1 ? nv | m : op === 2 ? nv & ~m : nv ^ m;
    if (i.isMem) c.writeLin(sz, nv, nh);
    else c.setReg(sz, i.rm, nv, nh, i);
  }
  c.setArith(F.CF, set ? F.CF : 0);
}

/** BSF (k=0) / BSR (k=1): ZF=1 and destination unchanged for a zero source (AMD-documented). */
export function bitScan(c: C, i: I): void {
  const sz = i.sz;
  const v = c.readRm(i, sz);
  const vh = sz === 8 ? c.opHi : 0;
  const lo = sz === 8 ? v : v & mask(sz);
  if ((lo | vh) === 0) {
    c.setArith(F.ZF, F.ZF);
    return;
  }
  let n: number;
  if (i.k === 0) n = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 63 - Math.clz32(vh & -vh);
  else n = vh !== 0 ? 63 - Math.clz32(vh) : 31 - Math.clz32(lo);
  c.setReg(sz, i.reg, n, 0, i);
  c.setArith(F.ZF | F.CF | F.OF | F.SF | F.AF | F.PF, 0);
}

function popcnt32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** POPCNT (k=0), LZCNT (k=1), TZCNT (k=2). */
export function countBits(c: C, i: I): void {
  const sz = i.sz;
  const v = c.readRm(i, sz);
  const vh = sz === 8 ? c.opHi : 0;
  const lo = sz === 8 ? v : v & mask(sz);
  const bits = sz * 8;
  let n: number;
  if (i.k === 0) {
    n = popcnt32(lo) + popcnt32(vh);
    c.setReg(sz, i.reg, n, 0, i);
    c.setArith(F.ZF | F.CF | F.OF | F.SF | F.AF | F.PF, n === 0 ? F.ZF : 0);
    return;
  }
  if (i.k === 1) {
    n = sz === 8 ? (vh !== 0 ? Math.clz32(vh) : 32 + Math.clz32(lo)) : Math.clz32(lo) - (32 - bits);
  } else if ((lo | vh) === 0) n = bits;
  else n = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 63 - Math.clz32(vh & -vh);
  c.setReg(sz, i.reg, n, 0, i);
  c.setArith(F.ZF | F.CF, (n === 0 ? F.ZF : 0) | (n === bits ? F.CF : 0));
}

// ------------------------------------------------------------------ conditional

export function setcc(c: C, i: I): void {
  c.writeRm(i, 1, c.cond(i.k) ? 1 : 0, 0);
}

/** CMOVcc: the source is read (and may fault) whatever the condition; a 32-bit form always zero-extends. */
export function cmovcc(c: C, i: I): void {
  const sz = i.sz;
  const v = c.readRm(i, sz);
  if (c.cond(i.k)) c.setReg(sz, i.reg, v, c.opHi, i);
  else if (sz === 4) c.r[i.reg * 2 + 1] = 0;
}

/** CBW/CWDE/CDQE (k=0) and CWD/CDQ/CQO (k=1). */
export function signExtendAcc(c: C, i: I): void {
  const r = c.r;
  const sz = i.sz;
  if (i.k === 0) {
    if (sz === 2) r[0] = (r[0]! & ~0xffff) | (((r[0]! << 24) >> 24) & 0xffff);
    else if (sz === 4) {
      r[0] = (r[0]! << 16) >> 16;
      r[1] = 0;
    } else r[1] = r[0]! >> 31;
  } else if (sz === 2) r[4] = (r[4]! & ~0xffff) | (((r[0]! << 16) >> 31) & 0xffff);
  else if (sz === 4) {
    r[4] = r[0]! >> 31;
    r[5] = 0;
  } else {
    r[4] = r[1]! >> 31;
    r[5] = r[4]!;
  }
}

// ------------------------------------------------------------------ flags instructions

/** CLC STC CMC CLD STD (k = 0..4). CLI/STI live with the system instructions. */
export function flagOp(c: C, i: I): void {
  switch (i.k) {
    case 0:
      c.setArith(F.CF, 0);
      return;
    case 1:
      c.setArith(F.CF, F.CF);
      return;
    case 2:
      c.setArith(F.CF, c.cf() ? 0 : F.CF);
      return;
    case 3:
      c.flags &= ~F.DF;
      return;
    default:
      c.flags |= F.DF;
  }
}

export function lahf(c: C, _i: I): void {
  c.materialize();
  const r = c.r;
  r[0] = (r[0]! & ~0xff00) | ((c.flags & 0xd5) << 8) | 0x200;
}

export function sahf(c: C, _i: I): void {
  const ah = (c.r[0]! >> 8) & 0xff;
  c.setArith(F.CF | F.PF | F.AF | F.ZF | F.SF, ah);
}

/** SALC (undocumented, legacy modes): AL = CF ? 0xFF : 0. */
export function salc(c: C, _i: I): void {
  c.r[0] = (c.r[0]! & ~0xff) | (c.cf() ? 0xff : 0);
}

export { PARITY };
