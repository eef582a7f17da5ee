/**
 * Specialised handlers for the forms that dominate kernel code (register-register ALU and MOV, MOV
 * and ALU with an immediate, INC/DEC, LEA, 64-bit-mode loads, stores and ALU with a memory source,
 * PUSH/POP/CALL/RET in 64-bit mode). `specialise` picks one when the block is built, so the handler
 * needs no operand-kind, size or mode switch; every other form keeps its generic handler. Each does
 * exactly what the generic handler does for that form (the difftest runs both).
 *
 * The 64-bit-mode handlers rely on a block being run only in the mode it was decoded for (blocks are
 * keyed by mode, and links and the jump cache die with a mode change): in 64-bit mode the stack is
 * 64-bit, only FS and GS have bases, and there are no limit checks (SDM Vol. 1 3.3.7, Vol. 3 5.2.1).
 */
import { Prefix } from "../decoder/insn.js";
import { alu, incDec } from "./alu.js";
import * as Fl from "./exec-flow.js";
import * as A from "./exec-int.js";
import { LF } from "./flags.js";
import { Vec } from "./memory.js";
import type { BuildInsn, OpCpu, XInsn } from "./operands.js";
import { Seg } from "./state.js";

type C = OpCpu;
type I = XInsn;

/** MOV r/m32, r32 (89) between registers: zero-extends (SDM Vol. 1 3.4.1.1). */
export function movRR32ToRm(c: C, i: I): void {
  const r = c.r;
  r[i.rm * 2] = r[i.reg * 2]!;
  r[i.rm * 2 + 1] = 0;
}

/** MOV r/m64, r64 (REX.W 89) between registers. */
export function movRR64ToRm(c: C, i: I): void {
  const r = c.r;
  r[i.rm * 2] = r[i.reg * 2]!;
  r[i.rm * 2 + 1] = r[i.reg * 2 + 1]!;
}

/** ALU r/m64, r64 between registers (any of the eight operations; CMP writes nothing). */
export function aluRR64(c: C, i: I): void {
  const r = c.r;
  const d = i.rm * 2;
  const s = i.reg * 2;
  const v = alu(c, i.k, 8, r[d]!, r[d + 1]!, r[s]!, r[s + 1]!);
  if (i.k !== 7) {
    r[d] = v;
    r[d + 1] = c.opHi;
  }
}

/** ALU r32, imm (83 /k, 81 /k, and the accumulator forms rewritten to r/m = rAX). */
export function aluRI32(c: C, i: I): void {
  const r = c.r;
  const d = i.rm * 2;
  const v = alu(c, i.k, 4, r[d]!, 0, i.imm, i.immHi);
  if (i.k !== 7) {
    r[d] = v;
    r[d + 1] = 0;
  }
}

/** ALU r64, imm (the immediate is sign-extended by the decoder into imm/immHi). */
export function aluRI64(c: C, i: I): void {
  const r = c.r;
  const d = i.rm * 2;
  const v = alu(c, i.k, 8, r[d]!, r[d + 1]!, i.imm, i.immHi);
  if (i.k !== 7) {
    r[d] = v;
    r[d + 1] = c.opHi;
  }
}

/** TEST r32, r32: the flags of AND, recorded lazily. */
export function testRR32(c: C, i: I): void {
  const r = c.r;
  const d = r[i.rm * 2]!;
  const s = r[i.reg * 2]!;
  c.lzOp = LF.LOGIC;
  c.lzSize = 4;
  c.lzDst = d;
  c.lzSrc = s;
  c.lzRes = d & s;
}

/** TEST r64, r64. */
export function testRR64(c: C, i: I): void {
  const r = c.r;
  const dl = r[i.rm * 2]!;
  const dh = r[i.rm * 2 + 1]!;
  const sl = r[i.reg * 2]!;
  const sh = r[i.reg * 2 + 1]!;
  c.lzOp = LF.LOGIC;
  c.lzSize = 8;
  c.lzDst = dl;
  c.lzDstHi = dh;
  c.lzSrc = sl;
  c.lzSrcHi = sh;
  c.lzRes = dl & sl;
  c.lzResHi = dh & sh;
}

/** MOV r32, imm32 (B8+r, C7 /0 on a register): zero-extends. */
export function movRI32(c: C, i: I): void {
  c.r[i.rm * 2] = i.imm;
  c.r[i.rm * 2 + 1] = 0;
}

/** MOV r64, imm64 (REX.W B8+r) or sign-extended imm32 (REX.W C7 /0). */
export function movRI64(c: C, i: I): void {
  c.r[i.rm * 2] = i.imm;
  c.r[i.rm * 2 + 1] = i.immHi;
}

/** INC (k = 0) / DEC (k = 1) r32. */
export function incDecR32(c: C, i: I): void {
  const r = c.r;
  const d = i.rm * 2;
  r[d] = incDec(c, i.k === 1, 4, r[d]!, 0);
  r[d + 1] = 0;
}

/** INC / DEC r64. */
export function incDecR64(c: C, i: I): void {
  const r = c.r;
  const d = i.rm * 2;
  r[d] = incDec(c, i.k === 1, 8, r[d]!, r[d + 1]!);
  r[d + 1] = c.opHi;
}

/** LEA r32 (any address size: `ea` truncates to it). */
export function lea32(c: C, i: I): void {
  c.ea(i, 0);
  c.r[i.reg * 2] = c.eaLo;
  c.r[i.reg * 2 + 1] = 0;
}

/** LEA r64. */
export function lea64(c: C, i: I): void {
  c.ea(i, 0);
  c.r[i.reg * 2] = c.eaLo;
  c.r[i.reg * 2 + 1] = c.eaHi;
}

/** 64-bit mode, 64-bit addressing: linear address of `i`'s memory operand into la/laHi (as `memAddr`). */
function addr64(c: C, i: I): void {
  c.ea(i, 0);
  c.lin64(i.sg, c.eaLo, c.eaHi);
}

/** MOV r64, m64 in 64-bit mode. */
export function load64(c: C, i: I): void {
  addr64(c, i);
  const v = c.rd64(c.la, c.laHi);
  const r = c.r;
  r[i.reg * 2] = v;
  r[i.reg * 2 + 1] = c.hiOut;
}

/** MOV r32, m32 in 64-bit mode (zero-extends). */
export function load32(c: C, i: I): void {
  addr64(c, i);
  const v = c.rd32(c.la, c.laHi);
  const r = c.r;
  r[i.reg * 2] = v;
  r[i.reg * 2 + 1] = 0;
}

/** MOV m64, r64 in 64-bit mode. */
export function store64(c: C, i: I): void {
  addr64(c, i);
  const r = c.r;
  c.wr64(c.la, c.laHi, r[i.reg * 2]!, r[i.reg * 2 + 1]!);
}

/** MOV m32, r32 in 64-bit mode. */
export function store32(c: C, i: I): void {
  addr64(c, i);
  c.wr32(c.la, c.laHi, c.r[i.reg * 2]!);
}

/** ALU r64, m64 in 64-bit mode (CMP writes nothing). */
export function aluLoad64(c: C, i: I): void {
  addr64(c, i);
  const v = c.rd64(c.la, c.laHi);
  const r = c.r;
  const d = i.reg * 2;
  const res = alu(c, i.k, 8, r[d]!, r[d + 1]!, v, c.hiOut);
  if (i.k !== 7) {
    r[d] = res;
    r[d + 1] = c.opHi;
  }
}

/** ALU r32, m32 in 64-bit mode. */
export function aluLoad32(c: C, i: I): void {
  addr64(c, i);
  const v = c.rd32(c.la, c.laHi);
  const r = c.r;
  const d = i.reg * 2;
  const res = alu(c, i.k, 4, r[d]!, 0, v, 0);
  if (i.k !== 7) {
    r[d] = res;
    r[d + 1] = 0;
  }
}

/** PUSH r64: the old RSP is what PUSH RSP stores; RSP moves only after the write (fault-safe). */
export function pushR64(c: C, i: I): void {
  const r = c.r;
  push64(c, r[i.rm * 2]!, r[i.rm * 2 + 1]!);
}

/** Pushes a quadword on the 64-bit stack: memory first, RSP after (fault-safe). */
function push64(c: C, lo: number, hi: number): void {
  const r = c.r;
  const sum = (r[8]! >>> 0) - 8;
  const spLo = sum | 0;
  const spHi = (r[9]! - (sum < 0 ? 1 : 0)) | 0;
  c.laSeg = Seg.SS;
  c.wr64(spLo, spHi, lo, hi);
  r[8] = spLo;
  r[9] = spHi;
}

/** POP r64: RSP is incremented before the register is written, so POP RSP loads the popped value. */
export function popR64(c: C, i: I): void {
  const v = peek64(c);
  const vh = c.hiOut;
  drop64(c);
  c.r[i.rm * 2] = v;
  c.r[i.rm * 2 + 1] = vh;
}

/** Reads the quadword at RSP (high half in `hiOut`). */
function peek64(c: C): number {
  c.laSeg = Seg.SS;
  return c.rd64(c.r[8]!, c.r[9]!);
}

/** RSP += 8. */
function drop64(c: C): void {
  const r = c.r;
  const sum = (r[8]! >>> 0) + 8;
  r[8] = sum | 0;
  if (sum > 0xffffffff) r[9] = (r[9]! + 1) | 0;
}

/** CALL rel32 in 64-bit mode with a 64-bit operand size. */
export function callRel64(c: C, i: I): void {
  const retLo = c.nipLo;
  const retHi = c.nipHi;
  const t = (retLo >>> 0) + (i.imm >>> 0);
  const tHi = (retHi + (i.imm >> 31) + (t > 0xffffffff ? 1 : 0)) | 0;
  // The target is checked before the push (SDM Vol. 2 CALL: #GP(0) before any change).
  if (((tHi >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, 0);
  push64(c, retLo, retHi);
  c.nipLo = t | 0;
  c.nipHi = tHi;
}

/** RET (C3) in 64-bit mode with a 64-bit operand size. */
export function retNear64(c: C, _i: I): void {
  const lo = peek64(c);
  const hi = c.hiOut;
  if (((hi >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, 0);
  c.nipLo = lo;
  c.nipHi = hi;
  drop64(c);
}

/**
 * Replaces `i.fn` (chosen by `prepare`) with a specialised handler when `i` is one of the forms
 * above. Runs before LOCK wrapping; with a LOCK prefix (which the decoder already refuses on all of
 * these forms) the generic handler stays.
 */
export function specialise(i: BuildInsn): void {
  if ((i.prefixes & Prefix.LOCK) !== 0) return;
  const fn = i.fn;
  const sz = i.sz;
  if (!i.isMem) {
    if (fn === A.movEG) {
      if (sz === 8) i.fn = movRR64ToRm;
      else if (sz === 4) i.fn = movRR32ToRm;
    } else if (fn === A.aluEG) {
      if (sz === 8) i.fn = aluRR64;
    } else if (fn === A.aluEI) {
      if (sz === 8) i.fn = aluRI64;
      else if (sz === 4) i.fn = aluRI32;
    } else if (fn === A.testEG) {
      if (sz === 8) i.fn = testRR64;
      else if (sz === 4) i.fn = testRR32;
    } else if (fn === A.movEI) {
      if (sz === 8) i.fn = movRI64;
      else if (sz === 4) i.fn = movRI32;
    } else if (fn === A.incDecE) {
      if (sz === 8) i.fn = incDecR64;
      else if (sz === 4) i.fn = incDecR32;
    } else if (i.mode === 64 && i.opSize === 8) {
      if (fn === Fl.pushR) i.fn = pushR64;
      else if (fn === Fl.popR) i.fn = popR64;
      else if (fn === Fl.callRel) i.fn = callRel64;
      else if (fn === Fl.retNear && i.k === 0) i.fn = retNear64;
    }
    return;
  }
  if (fn === A.lea) {
    if (sz === 8) i.fn = lea64;
    else if (sz === 4) i.fn = lea32;
    return;
  }
  if (i.mode !== 64 || i.addrSize !== 8) return;
  if (fn === A.aluGE) {
    if (sz === 8) i.fn = aluLoad64;
    else if (sz === 4) i.fn = aluLoad32;
  } else if (fn === A.movGE) {
    if (sz === 8) i.fn = load64;
    else if (sz === 4) i.fn = load32;
  } else if (fn === A.movEG) {
    if (sz === 8) i.fn = store64;
    else if (sz === 4) i.fn = store32;
  }
}
