/**
 * String instructions with REP/REPE/REPNE (SDM Vol. 2 MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS; Vol. 1
 * 7.3.9). Each execution runs at most `CHUNK` iterations, then leaves RIP on the instruction so the run
 * loop can take interrupts and count budget between chunks (as hardware does between iterations).
 * Source is seg:rSI (DS by default, overridable), destination ES:rDI (never overridable).
 */

import { Prefix } from "../decoder/insn.js";
import { alu } from "./alu.js";
import type { Cpu } from "./cpu.js";
import type { XInsn } from "./operands.js";
import { F, Seg } from "./state.js";

const CHUNK = 4096;

export const StrK = { MOVS: 0, CMPS: 1, STOS: 2, LODS: 3, SCAS: 4, INS: 5, OUTS: 6 } as const;

/** Reads index register `n` (rSI=6, rDI=7) at address size into (lo, hi) via c.eaLo/eaHi. */
function idx(c: Cpu, n: number, asz: number): void {
  const r = c.r;
  if (asz === 8) {
    c.eaLo = r[n * 2]!;
    c.eaHi = r[n * 2 + 1]!;
  } else {
    c.eaLo = asz === 4 ? r[n * 2]! : r[n * 2]! & 0xffff;
    c.eaHi = 0;
  }
}

function advance(c: Cpu, n: number, asz: number, delta: number): void {
  const r = c.r;
  if (asz === 8) {
    const s = (r[n * 2]! >>> 0) + delta;
    r[n * 2] = s | 0;
    if (s > 0xffffffff) r[n * 2 + 1] = (r[n * 2 + 1]! + 1) | 0;
    else if (s < 0) r[n * 2 + 1] = (r[n * 2 + 1]! - 1) | 0;
  } else if (asz === 4) {
    r[n * 2] = (r[n * 2]! + delta) | 0;
    r[n * 2 + 1] = 0;
  } else {
    r[n * 2] = (r[n * 2]! & ~0xffff) | ((r[n * 2]! + delta) & 0xffff);
  }
}

function countZero(c: Cpu, asz: number): boolean {
  const r = c.r;
  return asz === 8 ? (r[2]! | r[3]!) === 0 : asz === 4 ? r[2] === 0 : (r[2]! & 0xffff) === 0;
}

function decCount(c: Cpu, asz: number): void {
  advance(c, 1, asz, -1);
}

/** One string instruction; `i.k` = kind, `i.sz` = element size. */
export function stringOp(c: Cpu, i: XInsn): void {
  const rep = (i.prefixes & (Prefix.REP | Prefix.REPNE)) !== 0;
  const asz = i.addrSize;
  const sz = i.sz;
  const delta = c.flags & F.DF ? -sz : sz;
  const k = i.k;
  const srcSeg = i.sg;
  if (!rep) {
    once(c, k, sz, asz, srcSeg, delta, i);
    return;
  }
  // Under RFLAGS.TF each iteration is one step with its own single-step trap (RIP stays on the
  // instruction while iterations remain), as hardware does. Under data breakpoints every element
  // goes through the checked accesses, and the iteration that hits one ends the step, so that its
  // trap comes before the next iteration (SDM Vol. 3 18.3.1.2).
  const traced = (c.flags & F.TF) !== 0;
  const whole = !traced && !c.dbData;
  if (whole && (k === 0 || k === 2) && delta > 0 && asz !== 2 && fastRep(c, i, k, sz, asz, srcSeg)) return;
  const cond = k === 1 || k === 4; // REPE/REPNE apply to CMPS and SCAS only
  const repne = (i.prefixes & Prefix.REPNE) !== 0;
  const chunk = traced ? 1 : CHUNK;
  for (let n = 0; n < chunk; n++) {
    if (countZero(c, asz)) return;
    once(c, k, sz, asz, srcSeg, delta, i);
    // An intercepted iteration (an INS/OUTS VM exit) did nothing: RCX stays for its re-execution.
    if (c.exitReason === 3 /* RunExit.INTERCEPT */) return;
    decCount(c, asz);
    if (cond && c.zf() === repne) return;
    if (c.stopBlock) return; // an I/O intercept stopped in the middle
    if (c.dbDataHits !== 0) break;
  }
  if (!countZero(c, asz)) {
    // Not finished: re-execute this instruction next time round.
    c.nipLo = c.ripLo;
    c.nipHi = c.ripHi;
  }
}

/**
 * REP MOVS / REP STOS with DF=0 over RAM: whole page-bounded chunks at a time (the architectural
 * result of a forward element-by-element copy, including overlap). Returns false to fall back to the
 * element loop (MMIO, tiny remainders). Leaves RIP on the instruction if the count is not exhausted.
 */
function fastRep(c: Cpu, i: XInsn, k: number, sz: number, asz: number, srcSeg: number): boolean {
  // Alignment checking (#AC) applies per element: the element loop does it.
  if (c.acCheck && sz > 1) return false;
  const r = c.r;
  let budget = 65536;
  while (budget > 0) {
    if (countZero(c, asz)) return true;
    const cntLo = r[2]! >>> 0;
    const cnt = asz === 8 && r[3] !== 0 ? 0x7fffffff : cntLo;
    idx(c, 7, asz);
    c.lin(Seg.ES, c.eaLo, c.eaHi, sz, true);
    const dLo = c.la;
    const dHi = c.laHi;
    let bytes = Math.min(cnt * sz, 4096 - (dLo & 0xfff), budget);
    let sLo = 0;
    let sHi = 0;
    if (k === 0) {
      idx(c, 6, asz);
      c.lin(srcSeg, c.eaLo, c.eaHi, sz, false);
      sLo = c.la;
      sHi = c.laHi;
      bytes = Math.min(bytes, 4096 - (sLo & 0xfff));
    }
    bytes -= bytes % sz;
    if (bytes < sz) return false;
    // Limit checks for the whole chunk in the legacy modes.
    if (c.codeMode !== 64) {
      idx(c, 7, asz);
      c.lin(Seg.ES, c.eaLo, c.eaHi, bytes, true);
      if (k === 0) {
        idx(c, 6, asz);
        c.lin(srcSeg, c.eaLo, c.eaHi, bytes, false);
      }
    }
    const di = c.tlbLookup(dLo, dHi, 1);
    if (c.tlbIsMmio(di)) return false;
    const dst = c.tlbView[di]!;
    const dOff = c.tlbOff[di]! + (dLo & 0xfff);
    if (k === 0) {
      const si = c.tlbLookup(sLo, sHi, 0);
      if (c.tlbIsMmio(si)) return false;
      // The destination entry may have been evicted by the source lookup (same TLB slot).
      if (c.tlbTagLo[di] !== (dLo & ~0xfff) || c.tlbTagHi[di] !== dHi) return false;
      const src = c.tlbView[si]!;
      const sOff = c.tlbOff[si]! + (sLo & 0xfff);
      if (src === dst && dOff > sOff && dOff - sOff < bytes) {
        for (let n = 0; n < bytes; n++) dst[dOff + n] = dst[sOff + n]!;
      } else if (src === dst) dst.copyWithin(dOff, sOff, sOff + bytes);
      else dst.set(src.subarray(sOff, sOff + bytes), dOff);
      advance(c, 6, asz, bytes);
    } else {
      const v = c.getReg(sz, 0, i);
      const vh = c.opHi;
      if (sz === 1) dst.fill(v & 0xff, dOff, dOff + bytes);
      else {
        for (let n = 0; n < bytes; n += sz) {
          for (let b = 0; b < sz; b++) dst[dOff + n + b] = b < 4 ? v >>> (8 * b) : vh >>> (8 * (b - 4));
        }
      }
    }
    advance(c, 7, asz, bytes);
    advance(c, 1, asz, -(bytes / sz));
    budget -= bytes;
  }
  if (!countZero(c, asz)) {
    c.nipLo = c.ripLo;
    c.nipHi = c.ripHi;
  }
  return true;
}

function once(c: Cpu, k: number, sz: number, asz: number, srcSeg: number, delta: number, i: XInsn): void {
  switch (k) {
    case 0: {
      idx(c, 6, asz);
      c.lin(srcSeg, c.eaLo, c.eaHi, sz, false);
      const v = c.readLin(sz);
      const vh = c.opHi;
      idx(c, 7, asz);
      c.lin(Seg.ES, c.eaLo, c.eaHi, sz, true);
      c.writeLin(sz, v, vh);
      advance(c, 6, asz, delta);
      advance(c, 7, asz, delta);
      return;
    }
    case 1: {
      idx(c, 6, asz);
      c.lin(srcSeg, c.eaLo, c.eaHi, sz, false);
      const a = c.readLin(sz);
      const ah = c.opHi;
      idx(c, 7, asz);
      c.lin(Seg.ES, c.eaLo, c.eaHi, sz, false);
      const b = c.readLin(sz);
      alu(c, 7, sz, a, ah, b, c.opHi);
      advance(c, 6, asz, delta);
      advance(c, 7, asz, delta);
      return;
    }
    case 2: {
      idx(c, 7, asz);
      c.lin(Seg.ES, c.eaLo, c.eaHi, sz, true);
      const v = c.getReg(sz, 0, i);
      c.writeLin(sz, v, c.opHi);
      advance(c, 7, asz, delta);
      return;
    }
    case 3: {
      idx(c, 6, asz);
      c.lin(srcSeg, c.eaLo, c.eaHi, sz, false);
      const v = c.readLin(sz);
      c.setReg(sz, 0, v, c.opHi, i);
      advance(c, 6, asz, delta);
      return;
    }
    case 4: {
      idx(c, 7, asz);
      c.lin(Seg.ES, c.eaLo, c.eaHi, sz, false);
      const b = c.readLin(sz);
      const bh = c.opHi;
      const a = c.getReg(sz, 0, i);
      alu(c, 7, sz, a, c.opHi, b, bh);
      advance(c, 7, asz, delta);
      return;
    }
    case 5: {
      const port = c.r[4]! & 0xffff;
      if (!c.ioAllowed(port, sz)) return;
      idx(c, 7, asz);
      c.lin(Seg.ES, c.eaLo, c.eaHi, sz, true);
      c.probeWrite(c.la, c.laHi);
      if (c.intercept(12 /* IO */, port | (sz << 16) | (1 << 24), 1)) return;
      const v = c.io.in(port, sz as 1 | 2 | 4);
      c.writeLin(sz, v, 0);
      if (c.dbData) c.dbPort(port, sz);
      advance(c, 7, asz, delta);
      return;
    }
    default: {
      const port = c.r[4]! & 0xffff;
      if (!c.ioAllowed(port, sz)) return;
      idx(c, 6, asz);
      c.lin(srcSeg, c.eaLo, c.eaHi, sz, false);
      const v = c.readLin(sz);
      if (c.intercept(12 /* IO */, port | (sz << 16), 1)) return;
      c.io.out(port, sz as 1 | 2 | 4, v);
      if (c.dbData) c.dbPort(port, sz);
      advance(c, 6, asz, delta);
    }
  }
}
