/**
 * Far JMP and CALL through call gates (SDM Vol. 3 5.8.3-5.8.6, Vol. 2 JMP/CALL "Operation"): 16- and
 * 32-bit gates with the stack switch and parameter copy of a call to a more privileged level, and
 * 64-bit gates in IA-32e mode (16-byte descriptors, no parameters, a null SS at the new CPL).
 */
import type { Cpu } from "./cpu.js";
import { Vec } from "./memory.js";
import type { XInsn } from "./operands.js";
import { AR, EFER, Seg } from "./state.js";

/**
 * Transfers through the call gate whose descriptor was just read for `sel` (descLo/descHi). `isCall`
 * pushes the return address (and switches stacks when the target is more privileged).
 */
export function viaCallGate(c: Cpu, _i: XInsn, sel: number, isCall: boolean): void {
  const long = (c.efer & EFER.LMA) !== 0;
  let hi = c.descHi;
  const type = (hi >> 8) & 0x1f;
  if (long) {
    if (type !== 0x0c) c.raise(Vec.GP, sel & 0xfffc);
    c.readDescriptor(sel, true);
    hi = c.descHi;
  } else if (type !== 0x0c && type !== 0x04) c.raise(Vec.GP, sel & 0xfffc);
  const gdpl = (hi >> 13) & 3;
  if (gdpl < c.cpl || gdpl < (sel & 3)) c.raise(Vec.GP, sel & 0xfffc);
  if ((hi & 0x8000) === 0) c.raise(Vec.NP, sel & 0xfffc);
  const lo = c.descLo;
  const gate32 = type === 0x0c;
  const tsel = lo >>> 16;
  const offLo = gate32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff;
  const offHi = long ? c.descHi2 : 0;
  const params = long ? 0 : hi & 0x1f;
  // The target code segment.
  if ((tsel & 0xfffc) === 0) c.raise(Vec.GP, 0);
  c.readDescriptor(tsel);
  const th = c.descHi;
  const tdpl = (th >> 13) & 3;
  if ((th & 0x1800) !== 0x1800 || tdpl > c.cpl) c.raise(Vec.GP, tsel & 0xfffc);
  if (long && ((th & 0x200000) === 0 || (th & 0x400000) !== 0)) c.raise(Vec.GP, tsel & 0xfffc);
  if ((th & 0x8000) === 0) c.raise(Vec.NP, tsel & 0xfffc);
  const conforming = (th & 0x400) !== 0;
  const csLo = c.descLo;
  const csHi = th;
  if (!isCall) {
    if (!conforming && tdpl !== c.cpl) c.raise(Vec.GP, tsel & 0xfffc);
    loadTarget(c, csLo, csHi, (tsel & 0xfffc) | c.cpl, offLo, offHi);
    return;
  }
  const psize = long ? 8 : gate32 ? 4 : 2;
  const oldCs = c.segSel[Seg.CS]!;
  const retLo = c.nipLo;
  const retHi = c.nipHi;
  c.snapshotForRollback();
  try {
    if (!conforming && tdpl < c.cpl) {
      const oldSs = c.segSel[Seg.SS]!;
      const oldSpLo = c.r[8]!;
      const oldSpHi = c.r[9]!;
      if (long) {
        const nLo = c.tssRead(4 + tdpl * 8, 8);
        const nHi = c.hiOut;
        c.cpl = tdpl;
        c.loadNull(Seg.SS, tdpl);
        c.segAttr[Seg.SS] = AR.UNUSABLE | (tdpl << AR.DPL_SHIFT) | AR.DB;
        loadCs(c, csLo, csHi, (tsel & 0xfffc) | tdpl);
        c.r[8] = nLo;
        c.r[9] = nHi;
        c.push(8, oldSs, 0);
        c.push(8, oldSpLo, oldSpHi);
      } else {
        // New SS:ESP from the TSS for the target privilege level (SDM 5.8.5).
        const tss32 = (c.segAttr[Seg.TR]! & 8) !== 0;
        const nsp = tss32 ? c.tssRead(4 + tdpl * 8, 4) : c.tssRead(2 + tdpl * 4, 2);
        const nss = tss32 ? c.tssRead(8 + tdpl * 8, 2) : c.tssRead(4 + tdpl * 4, 2);
        if ((nss & 0xfffc) === 0) c.raise(Vec.TS, 0);
        if ((nss & 3) !== tdpl) c.raise(Vec.TS, nss & 0xfffc);
        c.readDescriptor(nss, false, Vec.TS);
        const sh = c.descHi;
        if (((sh >> 13) & 3) !== tdpl || (sh & 0x1a00) !== 0x1200) c.raise(Vec.TS, nss & 0xfffc);
        if ((sh & 0x8000) === 0) c.raise(Vec.SS, nss & 0xfffc);
        // Parameters come from the old stack (read before switching).
        const p = c.paramScratch;
        for (let k = 0; k < params; k++) p[k] = c.peek(psize, k * psize);
        c.cpl = tdpl;
        c.loadFromDescriptor(Seg.SS, nss);
        loadCs(c, csLo, csHi, (tsel & 0xfffc) | tdpl);
        c.r[8] = nsp;
        c.r[9] = 0;
        c.push(psize, oldSs, 0);
        c.push(psize, oldSpLo, 0);
        for (let k = params - 1; k >= 0; k--) c.push(psize, p[k]!, 0);
      }
    } else {
      loadCs(c, csLo, csHi, (tsel & 0xfffc) | c.cpl);
    }
    c.push(psize, oldCs, 0);
    c.push(psize, retLo, retHi);
  } catch (e) {
    c.rollback();
    throw e;
  }
  setTarget(c, offLo, offHi);
}

function loadCs(c: Cpu, lo: number, hi: number, sel: number): void {
  c.descLo = lo;
  c.descHi = hi;
  c.loadFromDescriptor(Seg.CS, sel);
  c.updateModeKeepCpl(c.cpl);
}

function loadTarget(c: Cpu, lo: number, hi: number, sel: number, offLo: number, offHi: number): void {
  loadCs(c, lo, hi, sel);
  setTarget(c, offLo, offHi);
}

function setTarget(c: Cpu, offLo: number, offHi: number): void {
  if (c.codeMode !== 64) {
    if (offLo >>> 0 > c.segLimit[Seg.CS]! >>> 0) c.raise(Vec.GP, 0);
    offHi = 0;
  }
  c.nipLo = offLo;
  c.nipHi = offHi;
  c.stopBlock = true;
}
