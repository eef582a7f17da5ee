/**
 * Code generator for 64-bit-mode blocks: the block becomes one JS function whose common
 * instructions are inline JS, not handler calls.
 *
 * - Guest registers live in JS locals (`a<n>` low half, `b<n>` high half) for the whole block,
 *   loaded on first use and written back to `c.r` only where something else may look: before a
 *   handler call, on a memory slow path (it may fault or reach MMIO), and when the block ends.
 * - Arithmetic flags stay lazy, in locals (`fD fS fR`, `fDh fSh fRh` for 64-bit operands, `fC` for
 *   the CF that INC/DEC keep), with the operation and size known here, at generation time. A Jcc
 *   reads them as one comparison (`dec ecx; jnz` tests `fR !== 0`), and V8 drops the stores of
 *   flags nobody reads. They reach `c.lz*` (flags.ts) at the same points as the registers.
 * - Loads and stores look the software TLB up inline, with exactly the fast-path tests of
 *   `MemCpu.rd32` and friends; a miss writes the guest state back and calls the slow path, so a
 *   fault sees the state before the instruction (RIP, registers, flags, retired count).
 * - A block whose last instruction branches back to its own start (a loop of one block) loops
 *   inside the function while the instruction budget lasts, re-checking `mustLeave` only after
 *   something that may have raised an event (a handler call or a memory slow path).
 *
 * Anything else calls its handler with the interpreter's bookkeeping (`jit.ts` does the same for
 * the whole block in the other modes). The generated code must give exactly the interpreter's
 * results: the differential test runs every generated snippet compiled (`difftest --jit`) against
 * the host CPU, and `test/cpu-jit.test.ts` runs loops, faults and self-modifying code both ways.
 */

import { NO_REG } from "../decoder/insn.js";
import { CODE64, DATA, DPL3, FMASK, STAR_HI, SYSRET_FLAGS, syscall, sysret } from "./exec-far.js";
import * as X from "./exec-fast.js";
import * as Fl from "./exec-flow.js";
import * as A from "./exec-int.js";
import { LF, PARITY, ult64 } from "./flags.js";
import { P_RS, P_RU, P_WS, P_WU, P_XS, P_XU } from "./memory.js";
import type { OpCpu, XInsn } from "./operands.js";
import { SA_BIG, SA_READ, SA_WRITE } from "./segments.js";
import { AR, F, M64, Seg } from "./state.js";

/** IA32_LSTAR's low half in `msr64`. */
const LSTAR = M64.lstar * 2;

/** Runs the block from its first instruction; `end` bounds the retired count when it loops. */
export type GeneratedBlock = (c: OpCpu, end: number) => void;

/** Register lives: 0 = only in `c.r`, 1 = local equals `c.r`, 2 = local is newer. */
const STALE = 0;
const CLEAN = 1;
const DIRTY = 2;

/** `LocalFlags.op` for flags computed eagerly into the local `fF` (RFLAGS bit positions). */
const EAGER = -1;
/** CF PF AF ZF SF OF. */
const ARITH = 0x8d5;

/**
 * Flags as the generator knows them: in the CPU (`c.lz*`/`c.flags`), or in locals: lazy with the
 * op/size known here, or eager in `fF` (op EAGER).
 */
interface LocalFlags {
  op: number;
  sz: 4 | 8;
}

/** Per-instruction generator context. */
class Gen {
  out = "";
  /** Register lives, low and high halves. */
  readonly lo = new Uint8Array(16);
  readonly hi = new Uint8Array(16);
  flags: LocalFlags | null = null;
  /** Byte offset of the instruction being generated from the block start, and its index. */
  off = 0;
  k = 0;
  len = 0;
  /** `<block>_<instruction>`: names the instruction's handler and record parameters. */
  tag = "";
  readonly params: string[] = [];
  readonly args: unknown[] = [];

  emit(s: string): void {
    this.out += s;
    this.out += "\n";
  }

  // -------------------------------------------------------------- registers

  rl(n: number): string {
    if (this.lo[n] === STALE) {
      this.emit(`a${n} = r[${n * 2}];`);
      this.lo[n] = CLEAN;
    }
    return `a${n}`;
  }

  rh(n: number): string {
    if (this.hi[n] === STALE) {
      this.emit(`b${n} = r[${n * 2 + 1}];`);
      this.hi[n] = CLEAN;
    }
    return `b${n}`;
  }

  setLo(n: number, expr: string): void {
    this.emit(`a${n} = ${expr};`);
    this.lo[n] = DIRTY;
  }

  setHi(n: number, expr: string): void {
    this.emit(`b${n} = ${expr};`);
    this.hi[n] = DIRTY;
  }

  /** Code writing dirty locals back to `c.r` (state unchanged: used inside branches too). */
  spillRegsCode(): string {
    let s = "";
    for (let n = 0; n < 16; n++) {
      if (this.lo[n] === DIRTY) s += `r[${n * 2}] = a${n}; `;
      if (this.hi[n] === DIRTY) s += `r[${n * 2 + 1}] = b${n}; `;
    }
    return s;
  }

  /** Code writing local flags to the CPU's lazy record. */
  spillFlagsCode(): string {
    const f = this.flags;
    if (f === null) return "";
    if (f.op === EAGER) return `c.flags = (c.flags & ${~ARITH}) | fF; c.lzOp = 0; `;
    let s = `c.lzOp = ${f.op}; c.lzSize = ${f.sz}; c.lzRes = fR; `;
    if (f.sz === 8) s += "c.lzResHi = fRh; ";
    if (f.op !== LF.LOGIC) {
      s += "c.lzDst = fD; c.lzSrc = fS; ";
      if (f.sz === 8) s += "c.lzDstHi = fDh; c.lzSrcHi = fSh; ";
    }
    if (f.op === LF.INC || f.op === LF.DEC) s += "c.flags = (c.flags & -2) | fC; ";
    return s;
  }

  /**
   * Code folding the local flags into `c.flags` (lzOp 0), as `materialize` would from the lazy
   * record `spillFlagsCode` writes: for a block that reads all of RFLAGS first (SYSCALL's R11).
   */
  eagerFlagsCode(): string {
    const f = this.flags;
    if (f === null) return "";
    if (f.op === EAGER) return this.spillFlagsCode();
    const w = f.sz === 8;
    let e = `P[fR & 255] | ${w ? "((fR | fRh) === 0 ? 64 : 0)" : "(fR === 0 ? 64 : 0)"} | ((${w ? "fRh" : "fR"} >>> 31) << 7)`;
    if (f.op !== LF.LOGIC) {
      const add = f.op === LF.ADD || f.op === LF.INC;
      const ofw = add
        ? w
          ? "(fDh ^ fRh) & (fSh ^ fRh)"
          : "(fD ^ fR) & (fS ^ fR)"
        : w
          ? "(fDh ^ fSh) & (fDh ^ fRh)"
          : "(fD ^ fS) & (fD ^ fR)";
      e += ` | ${this.cfExpr()} | ((fD ^ fS ^ fR) & 16) | (((${ofw}) >>> 31) << 11)`;
    }
    return `c.flags = (c.flags & ${~ARITH}) | ${e}; c.lzOp = 0; `;
  }

  /** Guest state to the CPU as before instruction `k` at byte offset `off`, for a slow path or fault. */
  syncBeforeCode(): string {
    return this.spillRegsCode() + this.spillFlagsCode() + this.insnStateCode();
  }

  /** RIP, next RIP, the instruction record and the retired count as the interpreter sets them before a handler. */
  insnStateCode(): string {
    return `${ripCode("c.ripLo", "c.ripHi", this.off)}${ripCode("c.nipLo", "c.nipHi", this.off + this.len)}c.curInsn = i${this.tag}; c.executed = ex + ${this.k}; `;
  }

  /**
   * After a memory instruction: when its slow path ran (`sw`), note it for the loop's event check
   * and leave after the instruction if the access stopped the block or dropped decoded code.
   */
  slowPathCheckCode(): string {
    return `if (sw !== 0) { sw = 0; sl = 1; vx = 0; if (c.stopBlock || c.codeInvalidated) { ${this.leaveCode(this.off + this.len, this.k + 1)} } }`;
  }

  /** Code leaving the block with RIP at byte offset `off` after `count` instructions retired. */
  leaveCode(off: number, count: number): string {
    return `${this.spillRegsCode()}${this.spillFlagsCode()}${ripCode("c.ripLo", "c.ripHi", off)}c.executed = ex + ${count}; return;`;
  }

  /** Main-path write-back before a handler call; afterwards everything must be reloaded. */
  spillAll(): void {
    const s = this.spillRegsCode() + this.spillFlagsCode();
    if (s !== "") this.emit(s);
    for (let n = 0; n < 16; n++) {
      if (this.lo[n] === DIRTY) this.lo[n] = CLEAN;
      if (this.hi[n] === DIRTY) this.hi[n] = CLEAN;
    }
  }

  forgetAll(): void {
    this.lo.fill(STALE);
    this.hi.fill(STALE);
    this.flags = null;
  }

  // -------------------------------------------------------------- flags

  /** JS expression (0/1) for CF under the current flag knowledge. */
  cfExpr(): string {
    const f = this.flags;
    // Unknown at compile time: concrete flags (lzOp 0, as after SYSRET, IRET or POPF) inline.
    if (f === null) return "(c.lzOp === 0 ? c.flags & 1 : c.cf() ? 1 : 0)";
    switch (f.op) {
      case EAGER:
        return "(fF & 1)";
      case LF.LOGIC:
        return "0";
      case LF.INC:
      case LF.DEC:
        return "fC";
      case LF.ADD:
        return f.sz === 8 ? "(ult(fR, fRh, fD, fDh) ? 1 : 0)" : "((fR >>> 0) < (fD >>> 0) ? 1 : 0)";
      default: // SUB
        return f.sz === 8 ? "(ult(fD, fDh, fS, fSh) ? 1 : 0)" : "((fD >>> 0) < (fS >>> 0) ? 1 : 0)";
    }
  }

  /** JS boolean expression for condition code `cc` (SDM Vol. 1 Table B-1 order). */
  condExpr(cc: number): string {
    const f = this.flags;
    if (f === null) return `c.cond(${cc})`;
    if (f.op === EAGER) {
      const bit = (m: number): string => `((fF & ${m}) !== 0)`;
      const e = [
        bit(0x800),
        bit(1),
        bit(0x40),
        bit(0x41),
        bit(0x80),
        bit(4),
        `(${bit(0x80)} !== ${bit(0x800)})`,
      ];
      const v = cc >> 1 === 7 ? `(${bit(0x40)} || ${bit(0x80)} !== ${bit(0x800)})` : e[cc >> 1]!;
      return (cc & 1) === 0 ? v : `!${v}`;
    }
    const w = f.sz === 8;
    const zf = w ? "((fR | fRh) === 0)" : "(fR === 0)";
    const sf = w ? "(fRh < 0)" : "(fR < 0)";
    let of: string;
    if (f.op === LF.LOGIC) of = "false";
    else if (f.op === LF.ADD || f.op === LF.INC)
      of = w ? "(((fDh ^ fRh) & (fSh ^ fRh)) < 0)" : "(((fD ^ fR) & (fS ^ fR)) < 0)";
    else of = w ? "(((fDh ^ fSh) & (fDh ^ fRh)) < 0)" : "(((fD ^ fS) & (fD ^ fR)) < 0)";
    const cf = `(${this.cfExpr()} !== 0)`;
    let v: string;
    switch (cc >> 1) {
      case 0:
        v = of;
        break;
      case 1:
        v = cf;
        break;
      case 2:
        v = zf;
        break;
      case 3:
        v = `(${cf} || ${zf})`;
        break;
      case 4:
        v = sf;
        break;
      case 5:
        v = "(P[fR & 255] !== 0)";
        break;
      case 6:
        v = `(${sf} !== ${of})`;
        break;
      default:
        v = `(${zf} || ${sf} !== ${of})`;
    }
    return (cc & 1) === 0 ? v : `!${v}`;
  }
}

/** `lo = rip0 + off` (64-bit, carry into the high half) as statements. */
function ripCode(lo: string, hi: string, off: number): string {
  if (off === 0) return `${lo} = rip0; ${hi} = rip0h; `;
  return `t = (rip0 >>> 0) + ${off}; ${lo} = t | 0; ${hi} = (rip0h + Math.floor(t / 4294967296)) | 0; `;
}

/** Handlers that, on register operands only, never raise an exception and never read RIP. */
export const NO_FAULT_ON_REGISTERS = new Set<unknown>([
  A.aluEG,
  A.aluGE,
  A.aluEI,
  A.aluRR32,
  A.testEG,
  A.testEI,
  A.incDecE,
  A.notE,
  A.negE,
  A.mulE,
  A.imulGE,
  A.movEG,
  A.movGE,
  A.movRR32,
  A.movRR64,
  A.movEI,
  A.movExt,
  A.xchgEG,
  A.xaddEG,
  A.shiftE,
  A.shiftDouble,
  A.bitScan,
  A.countBits,
  A.setcc,
  A.cmovcc,
  A.signExtendAcc,
  A.flagOp,
  A.lahf,
  A.sahf,
  A.bswap,
  X.movRR32ToRm,
  X.movRR64ToRm,
  X.aluRR64,
  X.aluRI32,
  X.aluRI64,
  X.testRR32,
  X.testRR64,
  X.movRI32,
  X.movRI64,
  X.incDecR32,
  X.incDecR64,
]);

/** Handlers `genInline` may emit inline (some only for some operand forms). */
const INLINE_PLAIN = new Set<unknown>([
  X.movRR32ToRm,
  X.movRR64ToRm,
  A.movRR32,
  A.movRR64,
  X.movRI32,
  X.movRI64,
  A.aluRR32,
  X.aluRR64,
  X.aluRI32,
  X.aluRI64,
  X.testRR32,
  X.testRR64,
  X.incDecR32,
  X.incDecR64,
  X.lea32,
  X.lea64,
  X.load32,
  X.load64,
  X.store32,
  X.store64,
  X.aluLoad32,
  X.aluLoad64,
  A.movExt,
  A.setcc,
  A.cmovcc,
  A.testEI,
]);

/** Handlers that neither read nor write RFLAGS (moves, loads, stores, LEA). */
const FLAG_NEUTRAL = new Set<unknown>([
  X.movRR32ToRm,
  X.movRR64ToRm,
  A.movRR32,
  A.movRR64,
  X.movRI32,
  X.movRI64,
  X.lea32,
  X.lea64,
  X.load32,
  X.load64,
  X.store32,
  X.store64,
  A.movExt,
]);

const ALU_JS: Record<number, string> = { 1: "|", 4: "&", 6: "^" };

/**
 * Effective address of a 64-bit-addressing memory operand into locals `lo`/`hi` (then the FS/GS
 * base for `sg`), as `OpCpu.ea` + `lin64` compute it. Returns false for forms left to the handler.
 */
function addrInline(i: XInsn): boolean {
  return (
    i.addrSize === 8 &&
    (i.ripRel || i.base === NO_REG || (i.base >= 0 && i.base < 16)) &&
    (i.index === NO_REG || (i.index >= 0 && i.index < 16))
  );
}

function genAddr(g: Gen, i: XInsn, withSeg: boolean): boolean {
  if (!addrInline(i)) return false;
  const d = i.disp | 0;
  if (i.ripRel) {
    // next RIP + disp: a constant distance from the block's start.
    const dist = g.off + g.len + d;
    g.emit(`t = (rip0 >>> 0) + ${dist}; lo = t | 0; hi = (rip0h + Math.floor(t / 4294967296)) | 0;`);
  } else if (i.base !== NO_REG && i.base >= 0 && i.base < 16) {
    const bl = g.rl(i.base);
    const bh = g.rh(i.base);
    if (d === 0) g.emit(`lo = ${bl}; hi = ${bh};`);
    else
      g.emit(
        `t = (${bl} >>> 0) + ${d >>> 0}; lo = t | 0; hi = (${bh} + ${d >> 31} + (t > 4294967295 ? 1 : 0)) | 0;`,
      );
  } else if (i.base !== NO_REG) {
    return false;
  } else {
    g.emit(`lo = ${d}; hi = ${d >> 31};`);
  }
  if (i.index !== NO_REG) {
    if (i.index < 0 || i.index >= 16) return false;
    const xl = g.rl(i.index);
    const xh = g.rh(i.index);
    const sc = i.scale;
    const il = sc === 0 ? xl : `(${xl} << ${sc})`;
    const ih = sc === 0 ? xh : `((${xh} << ${sc}) | (${xl} >>> ${32 - sc}))`;
    g.emit(`t = (lo >>> 0) + (${il} >>> 0); hi = (hi + ${ih} + (t > 4294967295 ? 1 : 0)) | 0; lo = t | 0;`);
  }
  if (withSeg && i.sg >= Seg.FS) {
    g.emit(
      `t = (lo >>> 0) + (c.segBaseLo[${i.sg}] >>> 0); hi = (hi + c.segBaseHi[${i.sg}] + (t > 4294967295 ? 1 : 0)) | 0; lo = t | 0;`,
    );
  }
  return true;
}

/** Inline TLB read of `size` bytes at lo/hi into `vl` (and `vh`), slow path through `c.rdN`. */
function genRead(g: Gen, size: 1 | 2 | 4 | 8, sg: number): void {
  // Wider than a byte: one DataView access per 32 bits (the CPU's `tlbDv`), as the CPU's own rd16..rd64.
  const at = "o = to[ti] + (lo & 4095);";
  const fast =
    size === 1
      ? `${at} vl = tv[ti][o];`
      : size === 2
        ? `${at} vl = td[ti].getUint16(o, true);`
        : size === 4
          ? `${at} vl = td[ti].getInt32(o, true);`
          : `${at} dv = td[ti]; vl = dv.getInt32(o, true); vh = dv.getInt32(o + 4, true);`;
  const slow = size === 8 ? "vl = c.rd64(lo, hi); vh = c.hiOut;" : `vl = c.rd${size * 8}(lo, hi);`;
  const inPage = size === 1 ? "" : ` && (lo & 4095) <= ${4096 - size}`;
  g.emit(
    `ti = ((lo >>> 12) ^ hi) & TM; if (tl[ti] === (lo & -4096) && th[ti] === hi && (tp[ti] & c.rMask) !== 0${inPage}) { ${fast} } else { ${g.syncBeforeCode()}c.laSeg = ${sg}; ${slow} sw = 1; }`,
  );
}

/**
 * MOVZX/MOVSX/MOVSXD (`A.movExt`: k = sign | source size << 2) into a 32- or 64-bit register from
 * the value in `vl` (the source's low `src` bytes, zero-extended).
 */
function genExtend(g: Gen, i: XInsn): void {
  const src = i.k >> 2;
  if ((i.k & 3) === 0) {
    g.setLo(i.reg, "vl");
  } else {
    g.emit(src === 1 ? "vl = (vl << 24) >> 24;" : src === 2 ? "vl = (vl << 16) >> 16;" : "vl = vl | 0;");
    g.setLo(i.reg, "vl");
    if (i.sz === 8) {
      g.setHi(i.reg, "vl >> 31");
      return;
    }
  }
  g.setHi(i.reg, "0");
}

/** The low byte of register `n` as an 8-bit operand (AH..BH for 4-7 without REX). */
function byteReg(g: Gen, i: XInsn, n: number): string {
  if (n >= 4 && n < 8 && i.byteRegsHigh) return `((${g.rl(n - 4)} >> 8) & 255)`;
  return `(${g.rl(n)} & 255)`;
}

/** Inline TLB write of `size` bytes (values in the given expressions) at lo/hi. */
function genWrite(g: Gen, size: 4 | 8, sg: number, vlo: string, vhi: string): void {
  const last = 4096 - size;
  let fast = `dv = td[ti]; o = to[ti] + (lo & 4095); dv.setInt32(o, ${vlo}, true);`;
  if (size === 8) fast += ` dv.setInt32(o + 4, ${vhi}, true);`;
  const slow = size === 8 ? `c.wr64(lo, hi, ${vlo}, ${vhi});` : `c.wr32(lo, hi, ${vlo});`;
  g.emit(
    `ti = ((lo >>> 12) ^ hi) & TM; if (tl[ti] === (lo & -4096) && th[ti] === hi && (tp[ti] & c.wMask) !== 0 && (lo & 4095) <= ${last}) { ${fast} } else { ${g.syncBeforeCode()}c.laSeg = ${sg}; ${slow} sw = 1; }`,
  );
}

/**
 * ALU op `k` (not ADC/SBB) of `sz` bytes on register `d` with source expressions (sl, sh); the
 * result is written back unless `k` is CMP or `write` is false (TEST).
 */
function genAlu(g: Gen, k: number, sz: 4 | 8, d: number, sl: string, sh: string, write = true): void {
  const dl = g.rl(d);
  const logic = ALU_JS[k];
  if (sz === 4) {
    if (logic !== undefined) {
      g.emit(`fR = ${dl} ${logic} ${sl};`);
      g.flags = { op: LF.LOGIC, sz: 4 };
    } else {
      g.emit(`fD = ${dl}; fS = ${sl}; fR = (fD ${k === 0 ? "+" : "-"} fS) | 0;`);
      g.flags = { op: k === 0 ? LF.ADD : LF.SUB, sz: 4 };
    }
    if (k !== 7 && write) {
      g.setLo(d, "fR");
      g.setHi(d, "0");
    }
    return;
  }
  const dh = g.rh(d);
  if (logic !== undefined) {
    g.emit(`fR = ${dl} ${logic} ${sl}; fRh = ${dh} ${logic} ${sh};`);
    g.flags = { op: LF.LOGIC, sz: 8 };
  } else if (k === 0) {
    g.emit(
      `fD = ${dl}; fDh = ${dh}; fS = ${sl}; fSh = ${sh}; t = (fD >>> 0) + (fS >>> 0); fR = t | 0; fRh = (fDh + fSh + (t > 4294967295 ? 1 : 0)) | 0;`,
    );
    g.flags = { op: LF.ADD, sz: 8 };
  } else {
    g.emit(
      `fD = ${dl}; fDh = ${dh}; fS = ${sl}; fSh = ${sh}; t = (fD >>> 0) - (fS >>> 0); fR = t | 0; fRh = (fDh - fSh - (t < 0 ? 1 : 0)) | 0;`,
    );
    g.flags = { op: LF.SUB, sz: 8 };
  }
  if (k !== 7 && write) {
    g.setLo(d, "fR");
    g.setHi(d, "fRh");
  }
}

/**
 * SHL/SAL (k 4, 6), SHR (5), SAR (7) of a 32-bit register by a constant count (already masked to
 * 0..31): the result zero-extends even for count 0, which leaves the flags alone; otherwise the
 * flags are the interpreter's (`shift` in alu.ts: CF the last bit out, OF as for a count of 1, AF
 * clear), computed eagerly into `fF`.
 */
function genShift32(g: Gen, k: number, n: number, d: number): void {
  const dl = g.rl(d);
  if (n === 0) {
    g.setHi(d, "0");
    return;
  }
  g.emit(`vl = ${dl};`);
  let cf: string;
  let of: string;
  if (k === 5) {
    g.emit(`fR = (vl >>> ${n}) | 0;`);
    cf = `((vl >>> ${n - 1}) & 1)`;
    of = "((vl >>> 31) << 11)";
  } else if (k === 7) {
    g.emit(`fR = vl >> ${n};`);
    cf = `((vl >> ${n - 1}) & 1)`;
    of = "0";
  } else {
    g.emit(`fR = vl << ${n};`);
    cf = `((vl >>> ${32 - n}) & 1)`;
    of = `(((fR >>> 31) ^ ${cf}) << 11)`;
  }
  g.emit(`fF = ${cf} | ${of} | P[fR & 255] | (fR === 0 ? 64 : 0) | (fR < 0 ? 128 : 0);`);
  g.flags = { op: EAGER, sz: 4 };
  g.setLo(d, "fR");
  g.setHi(d, "0");
}

/** INC/DEC of register `d`: CF is kept (fC), the rest recorded as LF.INC/LF.DEC. */
function genIncDec(g: Gen, dec: boolean, sz: 4 | 8, d: number): void {
  g.emit(`fC = ${g.cfExpr()};`);
  const dl = g.rl(d);
  if (sz === 4) {
    g.emit(`fD = ${dl}; fS = 1; fR = (fD ${dec ? "-" : "+"} 1) | 0;`);
    g.setLo(d, "fR");
    g.setHi(d, "0");
  } else {
    const dh = g.rh(d);
    g.emit(
      `fD = ${dl}; fDh = ${dh}; fS = 1; fSh = 0; t = (fD >>> 0) ${dec ? "-" : "+"} 1; fR = t | 0; fRh = (fDh + (t > 4294967295 ? 1 : t < 0 ? -1 : 0)) | 0;`,
    );
    g.setLo(d, "fR");
    g.setHi(d, "fRh");
  }
  g.flags = { op: dec ? LF.DEC : LF.INC, sz };
}

/**
 * Emits instruction `i` inline when it is one of the covered forms. Returns false (nothing
 * emitted) otherwise. Memory forms set `sw` on their slow path; the caller checks it.
 */
function genInline(g: Gen, i: XInsn): boolean {
  const fn = i.fn;
  if (!i.isMem) {
    if (fn === X.movRR32ToRm || fn === A.movRR32) {
      // movRR32 is the 8B form (reg <- rm); movRR32ToRm the 89 form (rm <- reg).
      const [dst, src] = fn === X.movRR32ToRm ? [i.rm, i.reg] : [i.reg, i.rm];
      g.emit(`vl = ${g.rl(src)};`);
      g.setLo(dst, "vl");
      g.setHi(dst, "0");
      return true;
    }
    if (fn === X.movRR64ToRm || fn === A.movRR64) {
      const [dst, src] = fn === X.movRR64ToRm ? [i.rm, i.reg] : [i.reg, i.rm];
      g.emit(`vl = ${g.rl(src)}; vh = ${g.rh(src)};`);
      g.setLo(dst, "vl");
      g.setHi(dst, "vh");
      return true;
    }
    if (fn === X.movRI32) {
      g.setLo(i.rm, String(i.imm | 0));
      g.setHi(i.rm, "0");
      return true;
    }
    if (fn === X.movRI64) {
      g.setLo(i.rm, String(i.imm | 0));
      g.setHi(i.rm, String(i.immHi | 0));
      return true;
    }
    if (fn === A.aluRR32) {
      g.emit(`vl = ${g.rl(i.reg)};`);
      genAlu(g, i.k, 4, i.rm, "vl", "0");
      return true;
    }
    if (fn === X.aluRR64 && i.k !== 2 && i.k !== 3) {
      g.emit(`vl = ${g.rl(i.reg)}; vh = ${g.rh(i.reg)};`);
      genAlu(g, i.k, 8, i.rm, "vl", "vh");
      return true;
    }
    if (fn === X.aluRI32 && i.k !== 2 && i.k !== 3) {
      genAlu(g, i.k, 4, i.rm, String(i.imm | 0), "0");
      return true;
    }
    if (fn === X.aluRI64 && i.k !== 2 && i.k !== 3) {
      genAlu(g, i.k, 8, i.rm, String(i.imm | 0), String(i.immHi | 0));
      return true;
    }
    if (fn === X.testRR32) {
      g.emit(`vl = ${g.rl(i.reg)};`);
      genAlu(g, 4, 4, i.rm, "vl", "0", false);
      return true;
    }
    if (fn === X.testRR64) {
      g.emit(`vl = ${g.rl(i.reg)}; vh = ${g.rh(i.reg)};`);
      genAlu(g, 4, 8, i.rm, "vl", "vh", false);
      return true;
    }
    if (fn === A.shiftE && i.sz === 4 && (i.k & 7) >= 4 && i.k >> 3 !== 1) {
      genShift32(g, i.k & 7, (i.k >> 3 === 0 ? i.imm : 1) & 31, i.rm);
      return true;
    }
    if (fn === A.movExt && (i.sz === 4 || i.sz === 8)) {
      const src = i.k >> 2;
      g.emit(`vl = ${src === 1 ? byteReg(g, i, i.rm) : src === 2 ? `(${g.rl(i.rm)} & 65535)` : g.rl(i.rm)};`);
      genExtend(g, i);
      return true;
    }
    if (fn === A.setcc) {
      // SETcc r/m8 on a register: the low byte (or AH..BH) takes 0/1, the rest of the register stays.
      const cond = g.condExpr(i.k);
      if (i.rm >= 4 && i.rm < 8 && i.byteRegsHigh) {
        const n = i.rm - 4;
        g.emit(`vl = ${cond} ? 256 : 0;`);
        g.setLo(n, `(${g.rl(n)} & -65281) | vl`);
      } else {
        g.emit(`vl = ${cond} ? 1 : 0;`);
        g.setLo(i.rm, `(${g.rl(i.rm)} & -256) | vl`);
      }
      return true;
    }
    if (fn === A.cmovcc && (i.sz === 4 || i.sz === 8)) {
      // Both registers in locals before the branch, so either path leaves the same state.
      const sl = g.rl(i.rm);
      const sh = g.rh(i.rm);
      const dl = g.rl(i.reg);
      const dh = g.rh(i.reg);
      const cond = g.condExpr(i.k);
      if (i.sz === 8) g.emit(`if (${cond}) { ${dl} = ${sl}; ${dh} = ${sh}; }`);
      else g.emit(`if (${cond}) ${dl} = ${sl}; ${dh} = 0;`);
      g.lo[i.reg] = DIRTY;
      g.hi[i.reg] = DIRTY;
      return true;
    }
    if (fn === A.testEI && (i.sz === 4 || i.sz === 8)) {
      g.emit(`vl = ${g.rl(i.rm)};`);
      if (i.sz === 4) genAlu(g, 4, 4, i.rm, String(i.imm | 0), "0", false);
      else genAlu(g, 4, 8, i.rm, String(i.imm | 0), String(i.immHi | 0), false);
      return true;
    }
    if (fn === X.incDecR32) {
      genIncDec(g, i.k === 1, 4, i.rm);
      return true;
    }
    if (fn === X.incDecR64) {
      genIncDec(g, i.k === 1, 8, i.rm);
      return true;
    }
    return false;
  }
  if (fn === X.lea64 || fn === X.lea32) {
    if (!genAddr(g, i, false)) return false;
    g.setLo(i.reg, "lo");
    g.setHi(i.reg, fn === X.lea64 ? "hi" : "0");
    return true;
  }
  // 64-bit mode only (`generateRegion64`): a 32-bit destination zero-extends.
  if (fn === A.movExt && (i.sz === 4 || i.sz === 8)) {
    if (!genAddr(g, i, true)) return false;
    genRead(g, (i.k >> 2) as 1 | 2 | 4, i.sg);
    genExtend(g, i);
    return true;
  }
  const load = fn === X.load64 || fn === X.load32;
  const aluLoad = (fn === X.aluLoad64 || fn === X.aluLoad32) && i.k !== 2 && i.k !== 3;
  const store = fn === X.store64 || fn === X.store32;
  if (!load && !aluLoad && !store) return false;
  const sz: 4 | 8 = fn === X.load64 || fn === X.aluLoad64 || fn === X.store64 ? 8 : 4;
  if (!genAddr(g, i, true)) return false;
  if (store) {
    // Source read before the address registers may change: none change here, read it now.
    const vlo = g.rl(i.reg);
    const vhi = sz === 8 ? g.rh(i.reg) : "0";
    genWrite(g, sz, i.sg, vlo, vhi);
    return true;
  }
  genRead(g, sz, i.sg);
  if (load) {
    g.setLo(i.reg, "vl");
    g.setHi(i.reg, sz === 8 ? "vh" : "0");
  } else {
    genAlu(g, i.k, sz, i.reg, "vl", sz === 8 ? "vh" : "0");
  }
  return true;
}

/** Handler call with the interpreter's bookkeeping for instruction k (not the block's last). */
function genCall(g: Gen, simple: boolean): void {
  g.spillAll();
  const k = g.k;
  const h = `h${g.tag}(c, i${g.tag});`;
  if (simple) {
    g.emit(h);
  } else {
    g.emit(g.insnStateCode());
    g.emit(
      `${h} c.ripLo = c.nipLo; c.ripHi = c.nipHi; c.executed++; ex = c.executed - ${k + 1}; sl = 1; vx = 0; if (c.stopBlock || c.codeInvalidated) return;`,
    );
  }
  g.forgetAll();
}

/** True for handlers that are pure on register operands (their RIP/count updates can be folded). */
function isSimple(i: XInsn): boolean {
  return !i.isMem && NO_FAULT_ON_REGISTERS.has(i.fn);
}

/** A block of a region: its instructions and its offset in the code page. */
export interface RegionBlock {
  insns: readonly XInsn[];
  off: number;
}

/** Most blocks one region function takes. */
export const REGION_MAX = 16;

/**
 * Generates the function for a region of blocks decoded in 64-bit mode from one code page: the
 * entry block first, then blocks its branches reach in the same page. Control moves between the
 * region's blocks inside the function (`pc`, a block index) while the instruction budget lasts;
 * any other target leaves with RIP set. Returns null when no instruction is covered (the caller
 * then uses the handler-call compiler).
 */
export function generateRegion64(blocks: readonly RegionBlock[], tlbMask: number): GeneratedBlock | null {
  const g = new Gen();
  const off0 = blocks[0]!.off;
  const index = new Map<number, number>();
  for (let j = 0; j < blocks.length; j++) index.set(blocks[j]!.off, j);
  const totals = blocks.map((b) => b.insns.reduce((s, i) => s + i.length, 0));
  // One block that does not come back to itself: straight-line code, registers loaded lazily.
  const straight = blocks.length === 1 && !succs(blocks[0]!, totals[0]!).includes(off0);
  const headLo = new Uint8Array(16);
  const headHi = new Uint8Array(16);
  let inlined = 0;
  let sys = false;
  for (let pass = 0; pass < (straight ? 1 : 2); pass++) {
    g.out = straight ? "" : "for (;;) {\nswitch (pc) {\n";
    g.params.length = 0;
    g.args.length = 0;
    inlined = 0;
    for (let j = 0; j < blocks.length; j++) {
      const blk = blocks[j]!;
      const insns = blk.insns;
      const n = insns.length;
      const rel = blk.off - off0;
      const total = totals[j]!;
      g.lo.set(headLo);
      g.hi.set(headHi);
      g.flags = null;
      if (!straight) g.emit(`case ${j}: {`);
      /** Leaves block j for the block at relative offset `to` (in the region or not). */
      const goto = (to: number): string => {
        const m = index.get(off0 + to);
        if (m === undefined || straight) return g.leaveCode(to, n);
        const nm = blocks[m]!.insns.length;
        // (`settle` already moved the flags to the CPU, so leaving here writes the registers and RIP.)
        return `ex += ${n}; pc = ${m}; if (ex + ${nm} > end || (sl !== 0 && ((sl = 0), (c.executed = ex), c.mustLeave(end)))) { ${g.leaveCode(to, 0)} } continue;`;
      };
      /**
       * Registers back in locals and flags to the CPU, as every block of a region starts: computed
       * (`eager`) when a block the jump may reach reads all of RFLAGS first, else as the lazy record.
       */
      const settle = (eager: boolean): void => {
        if (straight) return;
        for (let r = 0; r < 16; r++) {
          if (headLo[r] !== STALE && g.lo[r] === STALE) g.rl(r);
          if (headHi[r] !== STALE && g.hi[r] === STALE) g.rh(r);
        }
        const fl = eager ? g.eagerFlagsCode() : g.spillFlagsCode();
        if (fl !== "") g.emit(fl);
        g.flags = null;
      };
      /** Whether the region's block at relative offset `to` (if any) reads all of RFLAGS first. */
      const wants = (to: number): boolean => {
        const m = index.get(off0 + to);
        return m !== undefined && !straight && readsRflagsFirst(blocks[m]!);
      };
      let off = rel;
      const last = insns[n - 1]!;
      const lf = last.fn;
      const branch = lf === Fl.jcc || lf === Fl.jccZ || lf === Fl.jmpRel;
      for (let k = 0; k < n; k++) {
        const i = insns[k]!;
        g.k = k;
        g.off = off;
        g.len = i.length;
        g.params.push(`h${j}_${k}`, `i${j}_${k}`);
        g.args.push(i.fn, i);
        g.tag = `${j}_${k}`;
        if (k === n - 1) break;
        if (genInline(g, i)) {
          inlined++;
          if (i.isMem) {
            g.emit(g.slowPathCheckCode());
          }
        } else {
          genCall(g, isSimple(i));
        }
        off += i.length;
      }
      // The last instruction.
      if (branch) {
        const cond = lf === Fl.jmpRel ? "true" : g.condExpr(last.k);
        const taken = rel + total + (last.imm | 0);
        const fall = rel + total;
        g.emit(`tk = ${cond};`);
        settle(wants(taken) || (lf !== Fl.jmpRel && wants(fall)));
        const takenIn = index.has(off0 + taken) && !straight;
        // A target outside the page may be non-canonical: #GP(0) at the branch (SDM Vol. 2 Jcc).
        const check = takenIn
          ? ""
          : `t = (rip0 >>> 0) + ${taken}; if (((((rip0h + Math.floor(t / 4294967296)) | 0) >> 15) + 1) >>> 1 !== 0) { ${g.syncBeforeCode()}c.raise(13, 0); } `;
        g.emit(`if (tk) { ${check}${goto(taken)} }`);
        if (lf !== Fl.jmpRel) g.emit(goto(fall));
        inlined++;
      } else if (!straight && isSysTransfer(last) && (lf === syscall || last.opSize === 8)) {
        genSysTransfer(g, last, blocks, n);
        settle(false);
        g.emit("continue;");
        sys = true;
      } else if (genLastInline(g, last)) {
        inlined++;
        if (!isExit(last)) {
          settle(wants(rel + total));
          g.emit(goto(rel + total));
        }
      } else {
        genLastCall(g);
      }
      if (!straight) g.emit("}");
    }
    if (!straight) g.out += "}\n}\n";
    if (pass === 0 && !straight) {
      // Head state for the real pass: every register the region reads or writes is in a local.
      for (let r = 0; r < 16; r++) {
        headLo[r] = usedLo(g.out, r) ? DIRTY : STALE;
        headHi[r] = usedHi(g.out, r) ? DIRTY : STALE;
      }
    }
  }
  if (inlined === 0) return null;
  let pre = "";
  for (let r = 0; r < 16; r++) {
    if (headLo[r] !== STALE) pre += `a${r} = r[${r * 2}]; `;
    if (headHi[r] !== STALE) pre += `b${r} = r[${r * 2 + 1}]; `;
  }
  const decl =
    "const r = c.r, tl = c.tlbTagLo, th = c.tlbTagHi, tp = c.tlbPerm, tv = c.tlbView, td = c.tlbDv, to = c.tlbOff; " +
    "const rip0 = c.ripLo, rip0h = c.ripHi; let ex = c.executed, t = 0, lo = 0, hi = 0, vl = 0, vh = 0, ti = 0, o = 0, dv = null, sw = 0, sl = 0, ql = 0, qh = 0, tk = false, pc = 0; " +
    "let fD = 0, fS = 0, fR = 0, fDh = 0, fSh = 0, fRh = 0, fC = 0, fF = 0, vx = 0, vm = 0; " +
    `let ${Array.from({ length: 16 }, (_, r) => `a${r} = 0, b${r} = 0`).join(", ")};` +
    (sys
      ? " const ti0 = ((rip0 >>> 12) ^ rip0h) & TM, ms = c.msr64, sS = c.segSel, sB = c.segBaseLo, sH = c.segBaseHi, sL = c.segLimit, sA = c.segAttr, sC = c.segAcc;"
      : "");
  const src = `"use strict"; return function block(c, end) {\n${decl}\n${pre}\n${g.out}};`;
  const factory = new Function("P", "ult", "TM", ...g.params, src);
  return factory(PARITY, ult64, tlbMask, ...g.args) as GeneratedBlock;
}

/** Page offsets a block may continue at without leaving through a handler (branch targets, fall-through). */
export function succs(b: RegionBlock, total: number): number[] {
  const last = b.insns[b.insns.length - 1]!;
  const lf = last.fn;
  const end = b.off + total;
  if (lf === Fl.jmpRel) return [end + (last.imm | 0)];
  if (lf === Fl.jcc || lf === Fl.jccZ) return [end + (last.imm | 0), end];
  if (isExit(last) || !isPlainLast(last)) return [];
  return [end];
}

/**
 * SYSCALL and SYSRET: their targets (IA32_LSTAR, RCX) are known only when they run, but a loop of
 * system calls often has both ends in one page, so the region goes on at whichever of its blocks
 * the new RIP names (cpu.ts `regionAt` adds the likely ones).
 */
export function isSysTransfer(i: XInsn): boolean {
  return i.fn === syscall || i.fn === sysret;
}

/**
 * SYSCALL, or SYSRET to 64-bit mode, as the block's last instruction (k = n - 1), inline: the checks
 * (64-bit mode is given), RCX and R11 in locals, and the handlers' state change (exec-far.ts
 * `syscall`, `sysret`) written out (`genFlatCsSs`); then on to the region's block at the
 * new RIP (IA32_LSTAR, RCX) with `pc` set, when the region may run it: the same linear page, that
 * page's translation still in the TLB for the code page being run and executable at the new CPL (a
 * supervisor page at CPL 3, a user page at CPL 0 under SMEP: the runner then takes the fetch fault),
 * the block within the budget, and nothing for `run` to see (`mustLeave`, after a handler in the
 * block or a SYSRET that sets IF: a held interrupt or an interrupt window may now be taken; a TF that
 * SYSRET sets stops the block). Otherwise it leaves with RIP at the target.
 *
 * `vx` holds what an earlier system call of this invocation established: `VX_FLAT`, and the execute
 * masks (P_XS, P_XU) the code page's TLB entry (index ti0) was found good for. A handler call or a
 * memory slow path clears it: the handlers that load CS or SS, change the mode or flush the TLB end
 * their block and so leave the function, but one in mid-block may still refill the code page's TLB
 * entry, so nothing is assumed across them.
 */
function genSysTransfer(g: Gen, i: XInsn, blocks: readonly RegionBlock[], n: number): void {
  if (i.fn === syscall) {
    g.emit(`if ((c.efer & 1025) !== 1025) { ${g.syncBeforeCode()}c.raise(6); }`); // EFER.SCE | EFER.LMA
    // R11 takes RFLAGS: flags in locals fold straight into c.flags, lazy ones in the CPU materialize.
    const fl = g.eagerFlagsCode();
    if (fl !== "") g.emit(fl);
    g.flags = null;
    g.emit("if (c.lzOp !== 0) c.materialize(); vl = c.flags & -65537;");
    g.emit(ripCode("lo", "hi", g.off + g.len));
    g.setLo(1, "lo");
    g.setHi(1, "hi");
    g.setLo(11, "vl");
    g.setHi(11, "0");
    // As `syscall`: RFLAGS masked by IA32_FMASK (it only clears bits: TF cannot become set), CS and
    // SS from IA32_STAR[47:32].
    g.emit(`vh = vl & ~ms[${FMASK}]; c.flags = vh; c.lzOp = 0; t = ms[${STAR_HI}] & 65532;`);
    genFlatCsSs(g, "t", CODE64, "(t + 8) & 65535", DATA, 0);
    g.emit(`lo = ms[${LSTAR}]; hi = ms[${LSTAR + 1}];`);
  } else {
    // #UD without EFER.SCE, else #GP(0) at CPL > 0 or for a non-canonical RCX: one fault path (a
    // smaller function reaches V8's optimising tier sooner).
    const rcxHi = g.rh(1);
    g.emit(
      `if ((c.efer & 1) === 0 || c.cpl !== 0 || ((${rcxHi} >> 15) + 1) >>> 1 !== 0) { ${g.syncBeforeCode()}if ((c.efer & 1) === 0) c.raise(6); c.raise(13, 0); }`,
    );
    // As `sysret`: RFLAGS from R11 (the flags in locals are dropped, not written back); a TF it sets
    // ends the block. CS and SS from IA32_STAR[63:48], RPL 3.
    g.flags = null;
    g.emit(
      `vl = c.flags; vh = (${g.rl(11)} & ${SYSRET_FLAGS}) | 2; c.flags = vh; c.lzOp = 0; if ((vh & ~vl & 256) !== 0) c.stopBlock = true; t = (ms[${STAR_HI}] >>> 16) & 65535;`,
    );
    genFlatCsSs(g, "((t + 16) | 3) & 65535", CODE64 | DPL3, "((t + 8) | 3) & 65535", DATA | DPL3, 3);
    g.emit(`lo = ${g.rl(1)}; hi = ${rcxHi};`);
  }
  const leave = `${g.spillRegsCode()}c.ripLo = lo; c.ripHi = hi; c.executed = ex; return;`;
  // SYSCALL only clears RFLAGS bits (IF, TF among them) and changes nothing else `mustLeave` reads:
  // it is checked only after a handler in the block (`sl`), as at a jump between the region's blocks.
  // SYSRET may also set TF (then c.stopBlock is set: leave) or IF (vl: RFLAGS before, vh: after),
  // which lets a held interrupt in. (c.stopBlock is false before: a handler or slow path that set it
  // left the function.)
  const events =
    i.fn === syscall
      ? " || (sl !== 0 && ((sl = 0), (c.executed = ex), c.mustLeave(end)))"
      : " || (vh & ~vl & 256) !== 0 || ((sl !== 0 || (vh & ~vl & 512) !== 0) && ((sl = 0), (c.executed = ex), c.mustLeave(end)))";
  // The region's block at the target's page offset (`pc`) and its length (`t`; -1: none), then one
  // exit for every reason to leave (the block past the budget among them).
  let cases = "";
  for (let m = 0; m < blocks.length; m++)
    cases += `case ${blocks[m]!.off}: pc = ${m}; t = ${blocks[m]!.insns.length}; break; `;
  g.emit(`ex += ${n}; switch (lo & 4095) { ${cases}default: t = -1; }`);
  g.emit(
    `if (t < 0 || ex + t > end || hi !== rip0h || ((lo ^ rip0) & -4096) !== 0 || ((vx & vm) === 0 && (tl[ti0] !== (rip0 & -4096) || th[ti0] !== rip0h || (tp[ti0] & vm) === 0 || c.tlbPfn[ti0] !== c.curCodePfn || ((vx |= vm), false)))${events}) { ${leave} }`,
  );
}

/**
 * `vx` bit: CS and SS have the flat base, limit and access summary, the link epoch was last moved
 * for 64-bit mode with that CS, and no implicit supervisor access or data breakpoint step is under
 * way (so `updateAccessMasks` has its common case unless RFLAGS.AC is set).
 */
const VX_FLAT = 1;

/**
 * `SegCpu.loadFlatCsSs` (segments.ts) for a SYSCALL or SYSRET in 64-bit mode, written out in the
 * generated code so that it needs no call V8 may decline to inline (selectors as expressions, the
 * rest known here); `vh` holds the new RFLAGS. `codeMode` (64) and `stackSize` (8) stay: the code
 * runs in 64-bit mode, so EFER.LMA = 1, and both CS descriptors have L = 1. Then `moveLinkEpoch`
 * (its CPL-only case written out) and `updateAccessMasks` (its common case written out, the
 * execute mask also into the local `vm`). What every system call writes the same (base, limit and
 * access summary: the two directions differ in DPL only) and what only a handler changes are done
 * once per invocation (`VX_FLAT`). cpu-jit-syscall.test.ts compares the state with the interpreter's.
 */
function genFlatCsSs(g: Gen, csSel: string, csAttr: number, ssSel: string, ssAttr: number, cpl: 0 | 3): void {
  const csAcc = SA_READ | (csAttr & AR.DB ? SA_BIG : 0);
  const ssAcc = SA_READ | SA_WRITE | (ssAttr & AR.DB ? SA_BIG : 0);
  g.emit(`sS[1] = ${csSel}; sA[1] = ${csAttr}; sS[2] = ${ssSel}; sA[2] = ${ssAttr}; c.cpl = ${cpl};`);
  g.emit(
    `if ((vx & ${VX_FLAT}) === 0) { sB[1] = 0; sH[1] = 0; sL[1] = -1; sC[1] = ${csAcc}; sB[2] = 0; sH[2] = 0; sL[2] = -1; sC[2] = ${ssAcc}; ` +
      `if (c.linkMode !== 64 || c.linkCsBase !== 0 || c.linkCsLimit !== -1) c.moveLinkEpoch(64, 0, -1, ${cpl}); ` +
      `if (!c.implicitSup && !c.dbData) vx |= ${VX_FLAT}; }`,
  );
  g.emit(
    `if (c.linkCpl !== ${cpl}) { c.linkCpl = ${cpl}; c.linkEpoch = (c.linkEpoch & -4) | ${cpl}; c.globalLinkEpoch = (c.globalLinkEpoch & -4) | ${cpl}; }`,
  );
  const [rd, wr, x] = cpl === 3 ? [P_RU, P_WU, P_XU] : [P_RS, P_WS, P_XS];
  g.emit(
    `if ((vx & ${VX_FLAT}) === 0 || (vh & ${F.AC}) !== 0) { c.updateAccessMasks(); vm = c.xMask; } ` +
      `else { c.rNeed = ${rd}; c.wNeed = ${wr}; c.xMask = ${x}; c.acCheck = false; c.rMask = ${rd}; c.wMask = ${wr}; vm = ${x}; }`,
  );
}

/** Whether a block reads all of RFLAGS before it writes any flag: a SYSCALL after flag-neutral moves. */
function readsRflagsFirst(b: RegionBlock): boolean {
  for (const i of b.insns) {
    if (i.fn === syscall) return true;
    if (!FLAG_NEUTRAL.has(i.fn)) return false;
  }
  return false;
}

/** Last instructions the generator always leaves the function after (RIP from the instruction). */
function isExit(i: XInsn): boolean {
  return i.fn === X.callRel64 || i.fn === X.retNear64;
}

/** A last instruction the generator emits inline, after which the block falls through. */
function isPlainLast(i: XInsn): boolean {
  return INLINE_PLAIN.has(i.fn) || (i.fn === A.shiftE && i.sz === 4 && !i.isMem);
}

function usedLo(code: string, r: number): boolean {
  return new RegExp(`\\ba${r}\\b`).test(code);
}

function usedHi(code: string, r: number): boolean {
  return new RegExp(`\\bb${r}\\b`).test(code);
}

/** The block's last instruction through its handler; RIP from the handler's next RIP. */
function genLastCall(g: Gen): void {
  g.spillAll();
  g.emit(g.insnStateCode());
  g.emit(`h${g.tag}(c, i${g.tag}); c.ripLo = c.nipLo; c.ripHi = c.nipHi; c.executed++; return;`);
  g.forgetAll();
}

/**
 * CALL rel32 / RET (which leave the function) or a plain last instruction inline at the block's
 * end (the caller then continues at the fall-through).
 */
function genLastInline(g: Gen, i: XInsn): boolean {
  const fn = i.fn;
  const k = g.k;
  if (fn === X.callRel64) {
    // Target checked before the push (#GP(0) with nothing changed), then the push, then RIP.
    const next = g.off + g.len;
    const dist = next + (i.imm | 0);
    g.emit(`t = (rip0 >>> 0) + ${dist}; vl = t | 0; vh = (rip0h + Math.floor(t / 4294967296)) | 0;`);
    g.emit(`if (((vh >> 15) + 1) >>> 1 !== 0) { ${g.syncBeforeCode()}c.raise(13, 0); }`);
    g.emit(`t = (rip0 >>> 0) + ${next}; ql = t | 0; qh = (rip0h + Math.floor(t / 4294967296)) | 0;`);
    const sp = 4;
    g.emit(`t = (${g.rl(sp)} >>> 0) - 8; lo = t | 0; hi = (${g.rh(sp)} - (t < 0 ? 1 : 0)) | 0;`);
    genWrite(g, 8, Seg.SS, "ql", "qh");
    g.setLo(sp, "lo");
    g.setHi(sp, "hi");
    g.emit(
      `${g.spillRegsCode()}${g.spillFlagsCode()}c.ripLo = vl; c.ripHi = vh; c.executed = ex + ${k + 1}; return;`,
    );
    return true;
  }
  if (fn === X.retNear64) {
    const sp = 4;
    g.emit(`lo = ${g.rl(sp)}; hi = ${g.rh(sp)};`);
    genRead(g, 8, Seg.SS);
    g.emit(`if (((vh >> 15) + 1) >>> 1 !== 0) { ${g.syncBeforeCode()}c.raise(13, 0); }`);
    g.emit(`t = (${g.rl(sp)} >>> 0) + 8;`);
    g.setLo(sp, "t | 0");
    g.setHi(sp, `t > 4294967295 ? (${g.rh(sp)} + 1) | 0 : ${g.rh(sp)}`);
    g.emit(
      `${g.spillRegsCode()}${g.spillFlagsCode()}c.ripLo = vl; c.ripHi = vh; c.executed = ex + ${k + 1}; return;`,
    );
    return true;
  }
  if (genInline(g, i)) {
    if (i.isMem) {
      g.emit(g.slowPathCheckCode());
    }
    return true;
  }
  return false;
}
