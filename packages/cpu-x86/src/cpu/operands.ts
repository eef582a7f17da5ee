/**
 * Operand access for the executor: sized GPR reads and writes (byte registers AH..BH without REX,
 * 32-bit writes zero-extending in 64-bit mode, SDM Vol. 1 3.4.1.1), effective-address computation for
 * 16/32/64-bit addressing with the default segment (SS for rBP/rSP bases, SDM Vol. 1 3.7.5) and
 * ModRM r/m operands that are a register or memory.
 */
import { DecodeStatus, Insn, NO_REG, NO_SEG } from "../decoder/insn.js";
import type { FpuHandler } from "../fpu/dispatch.js";
import { ExcCpu } from "./exceptions.js";
import { Seg } from "./state.js";

/** The executor's instruction record: the decoder's `Insn` plus what the block builder precomputes. */
export class XInsn extends Insn {
  /** Semantics, chosen once when the block is built. */
  fn: (c: OpCpu, i: XInsn) => void = noop;
  /** Operand size in bytes for this form (1, 2, 4, 8). */
  sz = 4;
  /** Sub-kind: ALU operation, condition code, shift kind... (per handler). */
  k = 0;
  /** Effective segment of the memory operand (override or default). */
  sg: number = Seg.DS;
  /** The ordinary handler of a LOCK-prefixed RMW routed through exec-lock.ts. */
  inner: ((c: OpCpu, i: XInsn) => void) | null = null;
  /** x87/SIMD unit handler (fpu-glue.ts) when this is an x87, SSE or MMX instruction. */
  fpu: FpuHandler | null = null;
}

function noop(): void {}

/**
 * A fresh XInsn from one object literal: V8 tracks allocation sites for literals (not for `new`),
 * and pretenures a site whose objects survive, as decoded instructions do: they are then allocated
 * in the old generation instead of being copied out of the young one by every scavenge.
 */
export function newXInsn(): XInsn {
  // Typed, not cast: a field added to Insn or XInsn and missing here is a compile error.
  const i: XInsn = {
    status: DecodeStatus.Invalid,
    op: 0,
    form: 0,
    length: 0,
    mode: 64,
    opSize: 4,
    addrSize: 8,
    prefixes: 0,
    rex: 0,
    seg: NO_SEG,
    opcode: 0,
    map: 0,
    hasModrm: false,
    mod: 0,
    reg: 0,
    rm: 0,
    isMem: false,
    base: NO_REG,
    index: NO_REG,
    scale: 0,
    disp: 0,
    ripRel: false,
    imm: 0,
    immHi: 0,
    imm2: 0,
    vvvv: 0,
    vexL: 0,
    mandatory: 0,
    byteRegsHigh: true,
    fn: noop,
    sz: 4,
    k: 0,
    sg: Seg.DS,
    inner: null,
    fpu: null,
  };
  return i;
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
  getReg(size: number, n: number, i: Insn): number {
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
  setReg(size: number, n: number, lo: number, hi: number, i: Insn): void {
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
