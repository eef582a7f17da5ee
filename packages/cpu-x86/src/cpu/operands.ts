/**
 * Operand access for the executor: sized GPR reads and writes (byte registers AH..BH without REX,
 * 32-bit writes zero-extending in 64-bit mode, SDM Vol. 1 3.4.1.1), effective-address computation for
 * 16/32/64-bit addressing with the default segment (SS for rBP/rSP bases, SDM Vol. 1 3.7.5) and
 * ModRM r/m operands that are a register or memory.
 */
import { Insn, NO_REG, NO_SEG } from "../decoder/insn.js";
import type { FpuHandler } from "../fpu/dispatch.js";
import { ExcCpu } from "./exceptions.js";
import { Seg } from "./state.js";

/** A handler: the semantics of one instruction record. */
export type XHandler = (c: OpCpu, i: XInsn) => void;

/**
 * The block builder's record: the decoder's `Insn` plus what `prepare` (dispatch.ts), `specialise`
 * (exec-fast.ts) and `wrapLock` (exec-lock.ts) choose. One per CPU, reused for every instruction
 * decoded; `newXInsn` then keeps what execution reads.
 */
export class BuildInsn extends Insn {
  /** Semantics, chosen once when the block is built. */
  fn: XHandler = noop;
  /** Operand size in bytes for this form (1, 2, 4, 8). */
  sz = 4;
  /**
   * Sub-kind: ALU operation, condition code, shift kind... (per handler); also what a handler needs
   * of the decode-only fields: ENTER's nesting level, the selector of a far pointer, x87 FOP, the
   * MMX register a SIMD op writes (dispatch.ts, dispatch-units.ts).
   */
  k = 0;
  /** Effective segment of the memory operand (override or default). */
  sg: number = Seg.DS;
  /** An MMX form (fpu-glue.ts: its pre-checks differ from SSE's). */
  mmx = false;
  /**
   * The handler `fn` hands the instruction to: the ordinary handler of a LOCK-prefixed RMW routed
   * through exec-lock.ts, or the x87/SSE/MMX unit's handler (fpu-glue.ts). No op needs both.
   */
  inner: XHandler | FpuHandler | null = null;
}

/**
 * The executor's instruction record, kept in decoded blocks and passed to handlers: the fields of
 * `BuildInsn` (in its order) that something reads while the block runs (handlers, the block compilers, VMX exit
 * information through `Cpu.curInsn`). Decode-only fields (status, form, mode, rex, map, mandatory,
 * mod, hasModrm, imm2, seg, vvvv, vexL) are consumed by `prepare`, which folds what handlers need of
 * them into `k`, `sg` and `mmx`. A Linux boot keeps over 100k of these, so every field costs cache
 * misses (BENCHMARKS.md).
 */
export type XInsn = Pick<
  BuildInsn,
  | "op"
  | "length"
  | "opSize"
  | "addrSize"
  | "prefixes"
  | "opcode"
  | "reg"
  | "rm"
  | "isMem"
  | "base"
  | "index"
  | "scale"
  | "disp"
  | "ripRel"
  | "imm"
  | "immHi"
  | "byteRegsHigh"
  | "fn"
  | "sz"
  | "k"
  | "sg"
  | "inner"
  | "mmx"
>;

function noop(): void {}

/** What sized GPR access needs of an instruction (AH..BH or SPL..DIL for byte registers 4..7). */
type ByteRegs = Pick<Insn, "byteRegsHigh">;

/**
 * The record `b` describes, from one object literal: V8 tracks allocation sites for literals (not
 * for `new`), and pretenures a site whose objects survive, as decoded instructions do: they are
 * then allocated in the old generation instead of being copied out of the young one by every
 * scavenge (V8 decides at a scavenge with the young generation at its maximum size; @tskvm/vmm's
 * CLI grows it there at once, src/heap.ts). Every field is written here in one order, so all
 * records share one map.
 */
export function newXInsn(b: BuildInsn): XInsn {
  // Typed, not cast: a field added to XInsn and missing here is a compile error.
  const i: XInsn = {
    op: b.op,
    length: b.length,
    opSize: b.opSize,
    addrSize: b.addrSize,
    prefixes: b.prefixes,
    opcode: b.opcode,
    reg: b.reg,
    rm: b.rm,
    isMem: b.isMem,
    base: b.base,
    index: b.index,
    scale: b.scale,
    disp: b.disp,
    ripRel: b.ripRel,
    imm: b.imm,
    immHi: b.immHi,
    byteRegsHigh: b.byteRegsHigh,
    fn: b.fn,
    sz: b.sz,
    k: b.k,
    sg: b.sg,
    inner: b.inner,
    mmx: b.mmx,
  };

  return i;
}

/** Overwrites `i` with `b`'s record (the reused record of `Cpu.crossPageBlock`; same fields as `newXInsn`). */
export function loadXInsn(i: XInsn, b: BuildInsn): void {
  i.op = b.op;
  i.length = b.length;
  i.opSize = b.opSize;
  i.addrSize = b.addrSize;
  i.prefixes = b.prefixes;
  i.opcode = b.opcode;
  i.reg = b.reg;
  i.rm = b.rm;
  i.isMem = b.isMem;
  i.base = b.base;
  i.index = b.index;
  i.scale = b.scale;
  i.disp = b.disp;
  i.ripRel = b.ripRel;
  i.imm = b.imm;
  i.immHi = b.immHi;
  i.byteRegsHigh = b.byteRegsHigh;
  i.fn = b.fn;
  i.sz = b.sz;
  i.k = b.k;
  i.sg = b.sg;
  i.inner = b.inner;
  i.mmx = b.mmx;
}

export class OpCpu extends ExcCpu {
  /** High half of the last 64-bit operand read. */
  opHi = 0;
  /** The instruction being executed (intercept hooks read it). */
  curInsn: XInsn | null = null;
  /** Set by a handler to end the block after it (mode change, interrupt shadow, exit). */
  stopBlock = false;

  // ------------------------------------------------------------ registers

  /** Reads GPR `n` at `size`; for size 8 the high half lands in `opHi`. */
  getReg(size: number, n: number, i: ByteRegs): number {
    const r = this.r;
    switch (size) {
      case 1:
        if (n >= 4 && n < 8 && i.byteRegsHigh) return (r[(n - 4) * 2]! >> 8) & 0xff;
        return r[n * 2]! & 0xff;
      case 2:
        return r[n * 2]! & 0xffff;
      case 4:
        return r[n * 2]!;
      default:
        this.opHi = r[n * 2 + 1]!;
        return r[n * 2]!;
    }
  }

  /** Writes GPR `n` at `size` (merging 8/16-bit writes, zero-extending 32-bit ones). */
  setReg(size: number, n: number, lo: number, hi: number, i: ByteRegs): void {
    const r = this.r;
    switch (size) {
      case 1:
        if (n >= 4 && n < 8 && i.byteRegsHigh) {
          const k = (n - 4) * 2;
          r[k] = (r[k]! & ~0xff00) | ((lo & 0xff) << 8);
        } else {
          r[n * 2] = (r[n * 2]! & ~0xff) | (lo & 0xff);
        }
        return;
      case 2:
        r[n * 2] = (r[n * 2]! & ~0xffff) | (lo & 0xffff);
        return;
      case 4:
        r[n * 2] = lo;
        r[n * 2 + 1] = 0;
        return;
      default:
        r[n * 2] = lo;
        r[n * 2 + 1] = hi;
    }
  }

  // ------------------------------------------------------------ effective addresses

  /** Effective segment for a memory operand of `i` (the override, or SS for rBP/rSP-based forms). */
  static defaultSeg(i: Insn): number {
    // 64-bit mode ignores ES/CS/SS/DS overrides (SDM Vol. 1 3.3.7): the default decides #SS vs #GP.
    if (i.seg !== NO_SEG && (i.mode !== 64 || i.seg >= Seg.FS)) return i.seg;
    if (i.addrSize === 2) {
      // 16-bit forms with BP as base (rm=2,3,6 with mod!=0) default to SS.
      return i.base === 5 ? Seg.SS : Seg.DS;
    }
    return i.base === 4 || i.base === 5 ? Seg.SS : Seg.DS;
  }

  /**
   * Effective address of `i`'s memory operand plus `extra` bytes -> `eaLo`/`eaHi` (truncated to the
   * address size).
   */
  eaLo = 0;
  eaHi = 0;
  ea(i: XInsn, extra: number): void {
    const r = this.r;
    let lo = i.disp;
    if (i.addrSize === 8) {
      let hi = lo >> 31;
      if (i.ripRel) {
        const s = (this.nipLo >>> 0) + (lo >>> 0);
        lo = s | 0;
        hi = (hi + this.nipHi + (s > 0xffffffff ? 1 : 0)) | 0;
      } else if (i.base !== NO_REG) {
        const s = (r[i.base * 2]! >>> 0) + (lo >>> 0);
        lo = s | 0;
        hi = (hi + r[i.base * 2 + 1]! + (s > 0xffffffff ? 1 : 0)) | 0;
      }
      if (i.index !== NO_REG) {
        const sc = i.scale;
        const xl = r[i.index * 2]!;
        const xh = r[i.index * 2 + 1]!;
        const il = xl << sc;
        const ih = sc === 0 ? xh : (xh << sc) | (xl >>> (32 - sc));
        const s = (lo >>> 0) + (il >>> 0);
        lo = s | 0;
        hi = (hi + ih + (s > 0xffffffff ? 1 : 0)) | 0;
      }
      if (extra !== 0) {
        const s = (lo >>> 0) + extra;
        lo = s | 0;
        hi = (hi + (s > 0xffffffff ? 1 : s < 0 ? -1 : 0)) | 0;
      }
      this.eaLo = lo;
      this.eaHi = hi;
      return;
    }
    lo += extra;
    if (i.base !== NO_REG) lo += r[i.base * 2]!;
    if (i.index !== NO_REG) lo += r[i.index * 2]! << i.scale;
    if (i.ripRel) lo += this.nipLo;
    this.eaLo = i.addrSize === 2 ? lo & 0xffff : lo | 0;
    this.eaHi = 0;
  }

  /** Linear address of `i`'s memory operand (+extra) for an access of `size` -> la/laHi. */
  memAddr(i: XInsn, extra: number, size: number, write: boolean): void {
    this.ea(i, extra);
    this.lin(i.sg, this.eaLo, this.eaHi, size, write);
  }

  // ------------------------------------------------------------ r/m operands

  /** Reads the r/m operand at `size` (opHi for 8). */
  readRm(i: XInsn, size: number): number {
    if (!i.isMem) return this.getReg(size, i.rm, i);
    this.memAddr(i, 0, size, false);
    return this.readLin(size);
  }

  /** Reads `size` bytes at la/laHi (opHi for 8). */
  readLin(size: number): number {
    switch (size) {
      case 1:
        return this.rd8(this.la, this.laHi);
      case 2:
        return this.rd16(this.la, this.laHi);
      case 4:
        return this.rd32(this.la, this.laHi);
      default: {
        const v = this.rd64(this.la, this.laHi);
        this.opHi = this.hiOut;
        return v;
      }
    }
  }

  /** Writes `size` bytes at la/laHi. */
  writeLin(size: number, lo: number, hi: number): void {
    switch (size) {
      case 1:
        this.wr8(this.la, this.laHi, lo);
        return;
      case 2:
        this.wr16(this.la, this.laHi, lo);
        return;
      case 4:
        this.wr32(this.la, this.laHi, lo);
        return;
      default:
        this.wr64(this.la, this.laHi, lo, hi);
    }
  }

  /** Writes the r/m operand (memory address computed afresh). */
  writeRm(i: XInsn, size: number, lo: number, hi: number): void {
    if (!i.isMem) {
      this.setReg(size, i.rm, lo, hi, i);
      return;
    }
    this.memAddr(i, 0, size, true);
    this.writeLin(size, lo, hi);
  }

  /** For read-modify-write: reads r/m after checking write access; a following `writeBack` reuses la. */
  readRmForWrite(i: XInsn, size: number): number {
    if (!i.isMem) return this.getReg(size, i.rm, i);
    this.memAddr(i, 0, size, true);
    // A read-modify-write faults as a write (W=1 in the #PF error code), before anything is read.
    this.probeWrite(this.la, this.laHi);
    if ((this.la & 0xfff) > 4096 - size) {
      const e = (this.la >>> 0) + size - 1;
      this.probeWrite(e | 0, e > 0xffffffff ? (this.laHi + 1) | 0 : this.laHi);
    }
    return this.readLin(size);
  }

  writeBack(i: XInsn, size: number, lo: number, hi: number): void {
    if (!i.isMem) this.setReg(size, i.rm, lo, hi, i);
    else this.writeLin(size, lo, hi);
  }
}
