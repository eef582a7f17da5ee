/**
 * Stack and control-flow instructions (SDM Vol. 2): PUSH/POP in all forms, PUSHA/POPA, ENTER/LEAVE,
 * near JMP/CALL/RET, Jcc, LOOPcc, JrCXZ, plus BCD adjustment and XLAT.
 */
import { LF, PARITY } from "./flags.js";
import { Vec } from "./memory.js";
import type { OpCpu, XInsn } from "./operands.js";
import { F, Seg } from "./state.js";

type C = OpCpu;
type I = XInsn;

/**
 * Sets the next RIP to a near branch target (lo, hi) at operand size `osz`: truncated to 16/32 bits
 * outside 64-bit mode and checked against the CS limit (SDM Vol. 2 JMP: #GP(0)), canonical-checked in
 * 64-bit mode.
 */
export function branchTo(c: C, lo: number, hi: number, osz: number): void {
  if (c.codeMode === 64) {
    if (((hi >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, 0);
    c.nipLo = lo;
    c.nipHi = hi;
    return;
  }
  if (osz === 2) lo &= 0xffff;
  if (lo >>> 0 > c.segLimit[Seg.CS]! >>> 0) c.raise(Vec.GP, 0);
  c.nipLo = lo | 0;
  c.nipHi = 0;
}

/** Relative target: nip + imm (sign-extended). */
function relTarget(c: C, i: I): void {
  const s = (c.nipLo >>> 0) + (i.imm >>> 0);
  const hi = (c.nipHi + (i.imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
  branchTo(c, s | 0, hi, i.opSize);
}

export function jmpRel(c: C, i: I): void {
  relTarget(c, i);
}

export function jcc(c: C, i: I): void {
  if (c.cond(i.k)) relTarget(c, i);
}

/** Fast Jcc for the common "just compared" case: ZF-based (k = 4/5) on a lazy result. */
export function jccZ(c: C, i: I): void {
  let z: boolean;
  if (c.lzOp !== LF.NONE && c.lzSize === 4) z = c.lzRes === 0;
  else z = c.zf();
  if (z === (i.k === 4)) relTarget(c, i);
}

export function jmpE(c: C, i: I): void {
  const sz = i.opSize;
  const lo = c.readRm(i, sz);
  branchTo(c, lo, sz === 8 ? c.opHi : 0, sz);
}

export function callRel(c: C, i: I): void {
  const s = (c.nipLo >>> 0) + (i.imm >>> 0);
  const hi = (c.nipHi + (i.imm >> 31) + (s > 0xffffffff ? 1 : 0)) | 0;
  const retLo = c.nipLo;
  const retHi = c.nipHi;
  branchTo(c, s | 0, hi, i.opSize); // target checked before the push (SDM CALL: #GP before any change)
  c.push(i.opSize, retLo, retHi);
}

export function callE(c: C, i: I): void {
  const sz = i.opSize;
  const lo = c.readRm(i, sz);
  const hi = sz === 8 ? c.opHi : 0;
  const retLo = c.nipLo;
  const retHi = c.nipHi;
  branchTo(c, lo, hi, sz);
  c.push(sz, retLo, retHi);
}

/** RET [imm16] near. */
export function retNear(c: C, i: I): void {
  const sz = i.opSize;
  const lo = c.peek(sz, 0);
  const hi = sz === 8 ? c.hiOut : 0;
  branchTo(c, lo, hi, sz);
  c.addSp(sz + (i.k === 1 ? i.imm & 0xffff : 0));
}

/** Counter register at the address size. */
function counter(c: C, asz: number): boolean {
  const r = c.r;
  if (asz === 2) {
    const v = (r[2]! - 1) & 0xffff;
    r[2] = (r[2]! & ~0xffff) | v;
    return v !== 0;
  }
  if (asz === 4) {
    const v = (r[2]! - 1) | 0;
    r[2] = v;
    r[3] = 0;
    return v !== 0;
  }
  const t = (r[2]! >>> 0) - 1;
  r[2] = t | 0;
  if (t < 0) r[3] = (r[3]! - 1) | 0;
  return (r[2]! | r[3]!) !== 0;
}

/** LOOP (k=0), LOOPE (k=1), LOOPNE (k=2). */
export function loop(c: C, i: I): void {
  const r = c.r;
  const lo = r[2]!;
  const hi = r[3]!;
  const nz = counter(c, i.addrSize);
  if (!nz) return;
  if (i.k === 1 && !c.zf()) return;
  if (i.k === 2 && c.zf()) return;
  // A target outside CS is #GP(0) with rCX as it was (a fault leaves no trace; the 16-bit difftest
  // against the host found this): check it before the new count is committed.
  const nlo = r[2]!;
  const nhi = r[3]!;
  r[2] = lo;
  r[3] = hi;
  relTarget(c, i);
  r[2] = nlo;
  r[3] = nhi;
}

export function jrcxz(c: C, i: I): void {
  const r = c.r;
  const z = i.addrSize === 2 ? (r[2]! & 0xffff) === 0 : i.addrSize === 4 ? r[2] === 0 : (r[2]! | r[3]!) === 0;
  if (z) relTarget(c, i);
}

// ------------------------------------------------------------------ stack

export function pushR(c: C, i: I): void {
  const sz = i.opSize;
  const v = c.getReg(sz, i.rm, i);
  c.push(sz, v, c.opHi);
}

export function popR(c: C, i: I): void {
  const sz = i.opSize;
  const v = c.pop(sz);
  c.setReg(sz, i.rm, v, c.hiOut, i);
}

export function pushE(c: C, i: I): void {
  const sz = i.opSize;
  const v = c.readRm(i, sz);
  c.push(sz, v, c.opHi);
}

/** POP r/m: the address is computed with RSP already incremented (SDM Vol. 2 POP). */
export function popE(c: C, i: I): void {
  const sz = i.opSize;
  const v = c.peek(sz, 0);
  const vh = c.hiOut;
  if (!i.isMem) {
    c.addSp(sz);
    c.setReg(sz, i.rm, v, vh, i);
    return;
  }
  const sp0 = c.r[8]!;
  const sp1 = c.r[9]!;
  c.addSp(sz);
  try {
    c.writeRm(i, sz, v, vh);
  } catch (e) {
    c.r[8] = sp0;
    c.r[9] = sp1;
    throw e;
  }
}

export function pushI(c: C, i: I): void {
  c.push(i.opSize, i.imm, i.immHi);
}

/** PUSH sreg (k = segment); a 32/64-bit push of a selector writes 2 or more bytes (zero-extended). */
export function pushSeg(c: C, i: I): void {
  c.push(i.opSize, c.segSel[i.k]! & 0xffff, 0);
}

export function popSeg(c: C, i: I): void {
  const sz = i.opSize;
  const v = c.peek(sz, 0);
  c.loadSegment(i.k, v & 0xffff);
  c.addSp(sz);
  if (i.k === Seg.SS) {
    // MOV SS / POP SS block interrupts for one instruction (SDM Vol. 3 6.8.3).
    c.interruptShadow = 2;
    c.stopBlock = true;
  }
}

export function pusha(c: C, i: I): void {
  const sz = i.opSize;
  const r = c.r;
  const sp = r[8]!;
  const sph = r[9]!;
  try {
    for (let n = 0; n < 8; n++) c.push(sz, n === 4 ? sp : r[n * 2]!, 0);
  } catch (e) {
    r[8] = sp;
    r[9] = sph;
    throw e;
  }
}

export function popa(c: C, i: I): void {
  const sz = i.opSize;
  // Read all eight first (fault-safe), then commit; SP's slot is skipped.
  let edi = 0;
  let esi = 0;
  let ebp = 0;
  let ebx = 0;
  let edx = 0;
  let ecx = 0;
  let eax = 0;
  edi = c.peek(sz, 0);
  esi = c.peek(sz, sz);
  ebp = c.peek(sz, 2 * sz);
  ebx = c.peek(sz, 4 * sz);
  edx = c.peek(sz, 5 * sz);
  ecx = c.peek(sz, 6 * sz);
  eax = c.peek(sz, 7 * sz);
  c.setReg(sz, 7, edi, 0, i);
  c.setReg(sz, 6, esi, 0, i);
  c.setReg(sz, 5, ebp, 0, i);
  c.setReg(sz, 3, ebx, 0, i);
  c.setReg(sz, 2, edx, 0, i);
  c.setReg(sz, 1, ecx, 0, i);
  c.setReg(sz, 0, eax, 0, i);
  c.addSp(8 * sz);
}

export function leave(c: C, i: I): void {
  const sz = i.opSize;
  const r = c.r;
  const sp0 = r[8]!;
  const sp1 = r[9]!;
  // rSP = rBP at the stack size, then POP rBP.
  c.setSp(r[10]!, r[11]!);
  try {
    const v = c.pop(sz);
    c.setReg(sz, 5, v, c.hiOut, i);
  } catch (e) {
    r[8] = sp0;
    r[9] = sp1;
    throw e;
  }
}

/** ENTER imm16, imm8 (SDM Vol. 2 ENTER); `k` is the nesting level mod 32 (dispatch.ts). */
export function enter(c: C, i: I): void {
  const sz = i.opSize;
  const size = i.imm & 0xffff;
  const level = i.k;
  const r = c.r;
  const sp0 = r[8]!;
  const sp1 = r[9]!;
  try {
    c.push(sz, r[10]!, r[11]!);
    const frameLo = r[8]!;
    const frameHi = r[9]!;
    if (level > 0) {
      let bpLo = r[10]!;
      let bpHi = r[11]!;
      for (let n = 1; n < level; n++) {
        const d = (bpLo >>> 0) - sz;
        bpLo = d | 0;
        if (d < 0 && c.stackSize === 8) bpHi = (bpHi - 1) | 0;
        const a = c.stackSize === 2 ? bpLo & 0xffff : bpLo;
        c.lin(Seg.SS, a, c.stackSize === 8 ? bpHi : 0, sz, false);
        const v = c.readLin(sz);
        c.push(sz, v, c.opHi);
      }
      c.push(sz, frameLo, frameHi);
    }
    // The final stack pointer is checked for a write before RBP/RSP change (hardware probes it).
    const endSp = (frameLo >>> 0) - size;
    const endLo = c.stackSize === 2 ? endSp & 0xffff : endSp | 0;
    const endHi = c.stackSize === 8 ? (frameHi - (endSp < 0 ? 1 : 0)) | 0 : 0;
    if (size !== 0) {
      c.lin(Seg.SS, endLo, endHi, 1, true);
      c.probeWrite(c.la, c.laHi);
    }
    c.setReg(sz, 5, frameLo, frameHi, i);
    c.addSp(-size);
  } catch (e) {
    r[8] = sp0;
    r[9] = sp1;
    throw e;
  }
}

// ------------------------------------------------------------------ BCD and XLAT (legacy modes)

/** DAA (k=0), DAS (k=1) per the SDM pseudo-code. */
export function daaDas(c: C, i: I): void {
  const r = c.r;
  const oldAl = r[0]! & 0xff;
  const oldCf = c.cf();
  const af = c.af();
  let al = oldAl;
  let cf = false;
  let newAf = false;
  if ((al & 0xf) > 9 || af) {
    if (i.k === 0) {
      cf = oldCf || al + 6 > 0xff;
      al = (al + 6) & 0xff;
    } else {
      cf = oldCf || al < 6;
      al = (al - 6) & 0xff;
    }
    newAf = true;
  }
  if (oldAl > 0x99 || oldCf) {
    al = i.k === 0 ? (al + 0x60) & 0xff : (al - 0x60) & 0xff;
    cf = true;
  }
  r[0] = (r[0]! & ~0xff) | al;
  c.setResultFlags(1, al, 0, (cf ? F.CF : 0) | (newAf ? F.AF : 0));
}

/** AAA (k=0), AAS (k=1). */
export function aaaAas(c: C, i: I): void {
  const r = c.r;
  let ax = r[0]! & 0xffff;
  const adjust = (ax & 0xf) > 9 || c.af();
  if (adjust) {
    if (i.k === 0) ax = (ax + 0x106) & 0xffff;
    else {
      // SDM Vol. 2 AAS: AX <- AX - 6 (a 16-bit subtraction: the borrow reaches AH), then AH <- AH - 1.
      ax = (ax - 6) & 0xffff;
      ax = (ax & 0xff) | ((((ax >> 8) - 1) & 0xff) << 8);
    }
  }
  ax &= 0xff0f;
  r[0] = (r[0]! & ~0xffff) | ax;
  c.setArith(F.CF | F.AF, adjust ? F.CF | F.AF : 0);
}

/** AAM imm8 (k=0), AAD imm8 (k=1). */
export function aamAad(c: C, i: I): void {
  const r = c.r;
  const base = i.imm & 0xff;
  let al: number;
  if (i.k === 0) {
    if (base === 0) c.raise(Vec.DE);
    const v = r[0]! & 0xff;
    al = v % base;
    r[0] = (r[0]! & ~0xffff) | (Math.floor(v / base) << 8) | al;
  } else {
    al = ((r[0]! & 0xff) + ((r[0]! >> 8) & 0xff) * base) & 0xff;
    r[0] = (r[0]! & ~0xffff) | al;
  }
  c.setResultFlags(1, al, 0, 0);
}

export function xlat(c: C, i: I): void {
  const r = c.r;
  const al = r[0]! & 0xff;
  let lo: number;
  let hi = 0;
  if (i.addrSize === 8) {
    const s = (r[6]! >>> 0) + al;
    lo = s | 0;
    hi = (r[7]! + (s > 0xffffffff ? 1 : 0)) | 0;
  } else if (i.addrSize === 4) lo = (r[6]! + al) | 0;
  else lo = (r[6]! + al) & 0xffff;
  c.lin(i.sg, lo, hi, 1, false);
  r[0] = (r[0]! & ~0xff) | c.rd8(c.la, c.laHi);
}

/** BOUND r, m (legacy): #BR when the index is outside [lower, upper]. */
export function bound(c: C, i: I): void {
  const sz = i.opSize;
  let v = c.getReg(sz, i.reg, i);
  c.memAddr(i, 0, sz, false);
  let lower = c.readLin(sz);
  c.memAddr(i, sz, sz, false);
  let upper = c.readLin(sz);
  if (sz === 2) {
    v = (v << 16) >> 16;
    lower = (lower << 16) >> 16;
    upper = (upper << 16) >> 16;
  }
  if (v < lower || v > upper) c.raise(Vec.BR);
}

export { PARITY };
