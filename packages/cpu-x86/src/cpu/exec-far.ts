/**
 * Far transfers and segment loads (SDM Vol. 2 JMP, CALL, RET, IRET, MOV Sreg, LDS..LSS, SYSCALL,
 * SYSRET, SYSENTER, SYSEXIT; Vol. 3 5.8). Call gates are in exec-gates.ts. Deviations, written down
 * here: task gates and TSS selectors as far-transfer targets raise #GP(selector), and IRET with NT=1
 * (task return) raises #GP(0); the task switch is not implemented.
 */
import type { Cpu } from "./cpu.js";
import { viaCallGate } from "./exec-gates.js";
import { writeFlags } from "./exec-system.js";
import { TaskSource, taskSwitch } from "./exec-task.js";
import { Vec } from "./memory.js";
import type { XInsn } from "./operands.js";
import { AR, CR0, EFER, F, M64, Seg } from "./state.js";

type C = Cpu;
type I = XInsn;

function pe(c: C): boolean {
  return (c.cr0 & CR0.PE) !== 0 && (c.flags & F.VM) === 0;
}

/** MOV Sreg, r/m16 (k = segment); MOV to CS is #UD. */
export function movToSeg(c: C, i: I): void {
  if (i.k === Seg.CS || i.k > Seg.GS) c.raise(Vec.UD);
  const v = c.readRm(i, 2);
  c.loadSegment(i.k, v);
  if (i.k === Seg.SS) {
    c.interruptShadow = 2;
    c.stopBlock = true;
  }
}

/** MOV r/m, Sreg: a register destination gets the zero-extended selector at operand size. */
export function movFromSeg(c: C, i: I): void {
  if (i.k > Seg.GS) c.raise(Vec.UD);
  const sel = c.segSel[i.k]! & 0xffff;
  if (i.isMem) c.writeRm(i, 2, sel, 0);
  else c.setReg(i.opSize === 2 ? 2 : 4, i.rm, sel, 0, i);
}

/** LDS/LES/LFS/LGS/LSS r, m16:16/32/64 (k = segment). */
export function loadFarPtr(c: C, i: I): void {
  const sz = i.opSize;
  c.memAddr(i, 0, sz, false);
  const off = c.readLin(sz);
  const offHi = c.opHi;
  c.memAddr(i, sz, 2, false);
  const sel = c.readLin(2);
  c.loadSegment(i.k, sel);
  c.setReg(sz, i.reg, off, offHi, i);
  if (i.k === Seg.SS) c.stopBlock = true;
}

/**
 * Checks a code-segment target for far JMP/CALL (SDM Vol. 3 5.8.1) and returns the new CS selector,
 * or -1 after a transfer through a call gate (exec-gates.ts). TSS and task-gate targets (task
 * switches) are not implemented: #GP(selector).
 */
function checkFarCode(c: C, i: I, sel: number, isCall: boolean): number {
  if ((sel & 0xfffc) === 0) c.raise(Vec.GP, 0);
  c.readDescriptor(sel);
  const hi = c.descHi;
  if ((hi & 0x1000) === 0) {
    const type = (hi >> 8) & 0x1f;
    if (type === 0x0c || type === 0x04) {
      viaCallGate(c, i, sel, isCall);
      return -1;
    }
    const long = (c.efer & EFER.LMA) !== 0;
    if (!long && (type === 0x09 || type === 0x05)) {
      // A TSS or a task gate: a task switch (SDM Vol. 3 8.3), privilege-checked against the descriptor.
      const dpl = (hi >> 13) & 3;
      if (dpl < c.cpl || dpl < (sel & 3)) c.raise(Vec.GP, sel & 0xfffc);
      if ((hi & 0x8000) === 0) c.raise(Vec.NP, sel & 0xfffc);
      const tss = type === 0x05 ? c.descLo >>> 16 : sel;
      taskSwitch(c, tss, isCall ? TaskSource.CALL : TaskSource.JMP, c.nipLo, -1);
      return -1;
    }
    c.raise(Vec.GP, sel & 0xfffc);
  }
  if ((hi & 0x800) === 0) c.raise(Vec.GP, sel & 0xfffc);
  const dpl = (hi >> 13) & 3;
  const conforming = (hi & 0x400) !== 0;
  if (conforming ? dpl > c.cpl : (sel & 3) > c.cpl || dpl !== c.cpl) c.raise(Vec.GP, sel & 0xfffc);
  if ((hi & 0x8000) === 0) c.raise(Vec.NP, sel & 0xfffc);
  if (c.efer & EFER.LMA && hi & 0x200000 && hi & 0x400000) c.raise(Vec.GP, sel & 0xfffc);
  return (sel & 0xfffc) | c.cpl;
}

function commitCs(c: C, sel: number, offLo: number, offHi: number): void {
  c.markDescriptor(0x100);
  c.loadFromDescriptor(Seg.CS, sel);
  c.updateModeKeepCpl(c.cpl);
  if (c.codeMode !== 64) {
    if (offLo >>> 0 > c.segLimit[Seg.CS]! >>> 0) c.raise(Vec.GP, 0);
    offHi = 0;
  }
  c.nipLo = offLo;
  c.nipHi = offHi;
  c.stopBlock = true;
}

/** Reads a far pointer operand: ptr16:16/32 immediate (opcode EA/9A; `k` holds its selector) or m16:16/32/64 (`k` = -1). */
function farOperand(c: C, i: I): void {
  if (i.k >= 0) {
    c.farOff = i.imm;
    c.farOffHi = 0;
    c.farSel = i.k;
    return;
  }
  if (!i.isMem) c.raise(Vec.UD);
  const sz = i.opSize;
  c.memAddr(i, 0, sz, false);
  c.farOff = c.readLin(sz);
  c.farOffHi = sz === 8 ? c.opHi : 0;
  c.memAddr(i, sz, 2, false);
  c.farSel = c.readLin(2);
}

export function jmpFar(c: C, i: I): void {
  farOperand(c, i);
  const off = i.opSize === 2 ? c.farOff & 0xffff : c.farOff;
  if (!pe(c)) {
    c.loadReal(Seg.CS, c.farSel);
    c.updateMode();
    c.nipLo = off;
    c.nipHi = 0;
    c.stopBlock = true;
    return;
  }
  const sel = checkFarCode(c, i, c.farSel, false);
  if (sel >= 0) commitCs(c, sel, off, c.farOffHi);
}

export function callFar(c: C, i: I): void {
  farOperand(c, i);
  const sz = i.opSize;
  const off = sz === 2 ? c.farOff & 0xffff : c.farOff;
  const oldCs = c.segSel[Seg.CS]!;
  if (!pe(c)) {
    c.push(sz, oldCs, 0);
    c.push(sz, c.nipLo, 0);
    c.loadReal(Seg.CS, c.farSel);
    c.updateMode();
    c.nipLo = off;
    c.nipHi = 0;
    c.stopBlock = true;
    return;
  }
  const sel = checkFarCode(c, i, c.farSel, true);
  if (sel < 0) return;
  const sp0 = c.r[8]!;
  const sp1 = c.r[9]!;
  try {
    c.push(sz, oldCs, 0);
    c.push(sz, c.nipLo, c.nipHi);
  } catch (e) {
    c.r[8] = sp0;
    c.r[9] = sp1;
    throw e;
  }
  commitCs(c, sel, off, c.farOffHi);
}

/** RETF [imm16] (k=1 with immediate), SDM Vol. 2 RET "far return" operation. */
export function retFar(c: C, i: I): void {
  const sz = i.opSize;
  const imm = i.k === 1 ? i.imm & 0xffff : 0;
  const off = c.peek(sz, 0);
  const offHi = sz === 8 ? c.hiOut : 0;
  const sel = c.peek(sz, sz) & 0xffff;
  if (!pe(c)) {
    c.loadReal(Seg.CS, sel);
    c.updateMode();
    c.nipLo = sz === 2 ? off & 0xffff : off;
    c.nipHi = 0;
    c.addSp(2 * sz + imm);
    c.stopBlock = true;
    return;
  }
  const rpl = sel & 3;
  if ((sel & 0xfffc) === 0) c.raise(Vec.GP, 0);
  if (rpl < c.cpl) c.raise(Vec.GP, sel & 0xfffc);
  c.readDescriptor(sel);
  const hi = c.descHi;
  const dpl = (hi >> 13) & 3;
  if ((hi & 0x1800) !== 0x1800) c.raise(Vec.GP, sel & 0xfffc);
  if (hi & 0x400 ? dpl > rpl : dpl !== rpl) c.raise(Vec.GP, sel & 0xfffc);
  if ((hi & 0x8000) === 0) c.raise(Vec.NP, sel & 0xfffc);
  if (rpl === c.cpl) {
    c.addSp(2 * sz + imm);
    commitCs(c, sel, sz === 2 ? off & 0xffff : off, offHi);
    return;
  }
  // Return to an outer privilege level: SS:rSP follow the return address.
  const csLo = c.descLo;
  const csHi = c.descHi;
  const newSp = c.peek(sz, 2 * sz + imm);
  const newSpHi = sz === 8 ? c.hiOut : 0;
  const newSs = c.peek(sz, 3 * sz + imm) & 0xffff;
  returnToOuter(c, sel, csLo, csHi, sz === 2 ? off & 0xffff : off, offHi, newSs, newSp, newSpHi, sz, imm);
}

/** Loads CS, SS, rSP for a return to privilege `sel & 3` and nulls data segments it may not use. */
function returnToOuter(
  c: C,
  sel: number,
  csLo: number,
  csHi: number,
  off: number,
  offHi: number,
  ss: number,
  spLo: number,
  spHi: number,
  sz: number,
  imm: number,
): void {
  const rpl = sel & 3;
  const long64 = c.efer & EFER.LMA && csHi & 0x200000;
  if ((ss & 0xfffc) === 0) {
    if (!(long64 && rpl !== 3)) c.raise(Vec.GP, 0);
  } else {
    if ((ss & 3) !== rpl) c.raise(Vec.GP, ss & 0xfffc);
    c.readDescriptor(ss);
    const h = c.descHi;
    if (((h >> 13) & 3) !== rpl || (h & 0x1a00) !== 0x1200) c.raise(Vec.GP, ss & 0xfffc);
    if ((h & 0x8000) === 0) c.raise(Vec.SS, ss & 0xfffc);
  }
  const ssLo = c.descLo;
  const ssHi = c.descHi;
  // Commit.
  c.descLo = csLo;
  c.descHi = csHi;
  c.loadFromDescriptor(Seg.CS, sel);
  c.cpl = rpl;
  if ((ss & 0xfffc) === 0) {
    c.loadNull(Seg.SS, ss);
    c.segAttr[Seg.SS] = AR.UNUSABLE | (rpl << AR.DPL_SHIFT) | AR.DB;
  } else {
    c.descLo = ssLo;
    c.descHi = ssHi;
    c.loadFromDescriptor(Seg.SS, ss);
  }
  c.updateModeKeepCpl(rpl);
  c.r[8] = spLo;
  c.r[9] = c.stackSize === 8 ? spHi : 0;
  if (c.stackSize === 2) c.r[8] = spLo & 0xffff;
  if (imm) c.addSp(imm);
  void sz;
  for (const s of [Seg.ES, Seg.DS, Seg.FS, Seg.GS]) {
    const a = c.segAttr[s]!;
    const dataOrNc = (a & AR.CODE) === 0 || (a & AR.CE) === 0;
    if (dataOrNc && ((a >> AR.DPL_SHIFT) & 3) < rpl && (a & AR.UNUSABLE) === 0) c.loadNull(s, 0);
  }
  c.nipLo = off;
  c.nipHi = c.codeMode === 64 ? offHi : 0;
  c.stopBlock = true;
}

/** IRET/IRETD/IRETQ (SDM Vol. 2 IRET). */
export function iret(c: C, i: I): void {
  const sz = i.opSize;
  c.nmiBlocked = false; // IRET ends NMI blocking (SDM Vol. 3 6.7.1)
  if ((c.cr0 & CR0.PE) === 0 || c.flags & F.VM) {
    if (c.flags & F.VM && ((c.flags >> 12) & 3) < 3) c.raise(Vec.GP, 0);
    const ip = c.peek(sz, 0);
    const cs = c.peek(sz, sz) & 0xffff;
    const fl = c.peek(sz, 2 * sz);
    if (c.flags & F.VM) {
      // Virtual-8086: IOPL is kept.
      const keep = c.getRflags() & (F.IOPL | F.VM);
      c.setRflags((fl & ~(F.IOPL | F.VM | F.VIF | F.VIP)) | keep);
    } else writeFlags(c, fl, sz, true);
    c.loadReal(Seg.CS, cs);
    c.updateMode();
    c.addSp(3 * sz);
    c.nipLo = sz === 2 ? ip & 0xffff : ip;
    c.nipHi = 0;
    c.stopBlock = true;
    return;
  }
  if (c.flags & F.NT) {
    // Task return (SDM Vol. 2 IRET): to the task in the current TSS's back link; #GP(0) in IA-32e mode.
    if (c.efer & EFER.LMA) c.raise(Vec.GP, 0);
    const link = c.tssRead(0, 2);
    taskSwitch(c, link, TaskSource.IRET, c.nipLo, -1);
    return;
  }
  const ip = c.peek(sz, 0);
  const ipHi = sz === 8 ? c.hiOut : 0;
  const cs = c.peek(sz, sz) & 0xffff;
  const fl = c.peek(sz, 2 * sz);
  if (fl & F.VM && c.cpl === 0 && (c.efer & EFER.LMA) === 0) {
    iretToV86(c, ip, cs, fl);
    return;
  }
  const rpl = cs & 3;
  if ((cs & 0xfffc) === 0) c.raise(Vec.GP, 0);
  if (rpl < c.cpl) c.raise(Vec.GP, cs & 0xfffc);
  c.readDescriptor(cs);
  const hi = c.descHi;
  const dpl = (hi >> 13) & 3;
  if ((hi & 0x1800) !== 0x1800) c.raise(Vec.GP, cs & 0xfffc);
  if (hi & 0x400 ? dpl > rpl : dpl !== rpl) c.raise(Vec.GP, cs & 0xfffc);
  if ((hi & 0x8000) === 0) c.raise(Vec.NP, cs & 0xfffc);
  if (c.efer & EFER.LMA && hi & 0x200000 && hi & 0x400000) c.raise(Vec.GP, cs & 0xfffc);
  const csLo = c.descLo;
  const toLong = (c.efer & EFER.LMA) !== 0 && (hi & 0x200000) !== 0;
  if (toLong && ((ipHi >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, 0);
  if (rpl === c.cpl && c.codeMode !== 64) {
    writeFlags(c, fl, sz, true);
    c.addSp(3 * sz);
    c.descLo = csLo;
    c.descHi = hi;
    commitCs(c, cs, sz === 2 ? ip & 0xffff : ip, ipHi);
    return;
  }
  // Outer privilege, or any IRET in 64-bit mode: SS:rSP are popped too.
  const sp = c.peek(sz, 3 * sz);
  const spHi = sz === 8 ? c.hiOut : 0;
  const ss = c.peek(sz, 4 * sz) & 0xffff;
  writeFlags(c, fl, sz, true);
  if (rpl === c.cpl) {
    // Same privilege in 64-bit mode: SS may be null at CPL < 3.
    c.descLo = csLo;
    c.descHi = hi;
    returnToOuter(c, cs, csLo, hi, sz === 2 ? ip & 0xffff : ip, ipHi, ss, sp, spHi, sz, 0);
    return;
  }
  returnToOuter(c, cs, csLo, hi, sz === 2 ? ip & 0xffff : ip, ipHi, ss, sp, spHi, sz, 0);
}

function iretToV86(c: C, ip: number, cs: number, fl: number): void {
  const sp = c.peek(4, 12);
  const ss = c.peek(4, 16);
  const es = c.peek(4, 20);
  const ds = c.peek(4, 24);
  const fs = c.peek(4, 28);
  const gs = c.peek(4, 32);
  c.setRflags(fl);
  c.cpl = 3;
  c.loadReal(Seg.CS, cs);
  c.loadReal(Seg.SS, ss);
  c.loadReal(Seg.ES, es);
  c.loadReal(Seg.DS, ds);
  c.loadReal(Seg.FS, fs);
  c.loadReal(Seg.GS, gs);
  c.updateMode();
  c.updateAccessMasks();
  c.r[8] = sp;
  c.nipLo = ip & 0xffff;
  c.nipHi = 0;
  c.stopBlock = true;
}

// ------------------------------------------------------------------ fast system calls

/** The flat hidden parts SYSCALL and SYSRET load (also written out by jit-gen.ts `genFlatCsSs`). */
export const CODE64 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.L | AR.G;
const CODE32 = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G;
export const DATA = AR.P | AR.S | AR.RW | AR.ACCESSED | AR.DB | AR.G;
export const DPL3 = 3 << AR.DPL_SHIFT;
/*
 * SYSCALL and SYSRET run twice per system call, so they read plain numbers: a field of a constant
 * object (F.RF, M64.star) costs V8 a load and a map check on every use.
 */
const SCE_LMA = EFER.SCE | EFER.LMA;
const RF = F.RF;
const TF = F.TF;
export const STAR_HI = M64.star * 2 + 1;
const LSTAR = M64.lstar * 2;
export const FMASK = M64.fmask * 2;
/** RFLAGS bits SYSRET takes from R11 (SDM Vol. 2 SYSRET: "R11 AND 3C7FD7H"), with bit 1 set. */
export const SYSRET_FLAGS = 0x3c7fd7;

/**
 * SYSCALL (SDM Vol. 2 SYSCALL). #UD outside 64-bit mode, as on Intel processors (the CPUID vendor
 * here): the SDM's "IF (CS.L != 1) or (IA32_EFER.LMA != 1) or (IA32_EFER.SCE != 1)"; IA32_CSTAR,
 * the compatibility-mode target of AMD processors, is never used. Generated code (jit-gen.ts
 * `genSysTransfer`) writes the same steps out; a change here goes there too.
 */
export function syscall(c: C, _i: I): void {
  if ((c.efer & SCE_LMA) !== SCE_LMA || c.codeMode !== 64) c.raise(Vec.UD);
  const r = c.r;
  r[2] = c.nipLo;
  r[3] = c.nipHi;
  if (c.lzOp !== 0) c.materialize();
  const fl = c.flags & ~RF;
  r[22] = fl;
  r[23] = 0;
  // RFLAGS masked by IA32_FMASK, `setRflags` written out: masking only clears bits, so TF cannot
  // become set (no stopBlock), and `loadFlatCsSs` recomputes the access masks that AC selects.
  c.flags = fl & ~c.msr64[FMASK]!;
  c.lzOp = 0;
  const sel = c.msr64[STAR_HI]! & 0xfffc;
  c.loadFlatCsSs(sel, CODE64, (sel + 8) & 0xffff, DATA, 0);
  c.nipLo = c.msr64[LSTAR]!;
  c.nipHi = c.msr64[LSTAR + 1]!;
  // No stopBlock: SYSCALL ends its block, and the block runner re-checks what `run` would (events,
  // IF, shadows, breakpoints: `mustLeave`) before the next block, looked up under the new mode and
  // CPL (the link epoch moved).
}

/**
 * SYSRET / SYSRETQ (SDM Vol. 2 SYSRET): RFLAGS from R11, CS and SS from IA32_STAR[63:48] for a
 * return to 64-bit or compatibility mode, CPL 3. Generated code (jit-gen.ts `genSysTransfer`)
 * writes the same steps out for SYSRETQ; a change here goes there too.
 */
export function sysret(c: C, i: I): void {
  if ((c.efer & EFER.SCE) === 0 || c.codeMode !== 64) c.raise(Vec.UD);
  if (c.cpl !== 0) c.raise(Vec.GP, 0);
  const r = c.r;
  const to64 = i.opSize === 8;
  if (to64 && ((r[3]! >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, 0);
  // `setRflags` written out: a TF it sets ends the block, so the next instruction runs traced
  // (`Cpu.setRflags`), and `loadFlatCsSs` recomputes the access masks that AC selects.
  const old = c.flags;
  const fl = (r[22]! & SYSRET_FLAGS) | 2;
  c.flags = fl;
  c.lzOp = 0;
  if ((fl & ~old & TF) !== 0) c.stopBlock = true;
  const base = (c.msr64[STAR_HI]! >>> 16) & 0xffff;
  // SS gets a flat writable data descriptor with DPL 3 (SDM: not loaded from the GDT).
  c.loadFlatCsSs(
    ((to64 ? base + 16 : base) | 3) & 0xffff,
    (to64 ? CODE64 : CODE32) | DPL3,
    ((base + 8) | 3) & 0xffff,
    DATA | DPL3,
    3,
  );
  c.nipLo = r[2]!;
  c.nipHi = to64 ? r[3]! : 0;
  // No stopBlock unless TF came back set: the runner's checks before the next block cover the rest.
}

/** SYSENTER (SDM Vol. 2 SYSENTER). */
export function sysenter(c: C, _i: I): void {
  if ((c.cr0 & CR0.PE) === 0) c.raise(Vec.GP, 0);
  const sel = c.sysenterCs & 0xfffc;
  if (sel === 0) c.raise(Vec.GP, 0);
  const long = (c.efer & EFER.LMA) !== 0;
  c.setRflags(c.getRflags() & ~(F.VM | F.IF | F.RF));
  c.loadFlatCsSs(sel, long ? CODE64 : CODE32, (sel + 8) & 0xffff, DATA, 0);
  c.r[8] = c.msr64[M64.sysenterEsp * 2]!;
  c.r[9] = long ? c.msr64[M64.sysenterEsp * 2 + 1]! : 0;
  c.nipLo = c.msr64[M64.sysenterEip * 2]!;
  c.nipHi = long ? c.msr64[M64.sysenterEip * 2 + 1]! : 0;
  c.stopBlock = true;
}

/** SYSEXIT / SYSEXITQ (SDM Vol. 2 SYSEXIT). */
export function sysexit(c: C, i: I): void {
  if ((c.cr0 & CR0.PE) === 0 || c.flags & F.VM) c.raise(Vec.GP, 0);
  const sel = c.sysenterCs & 0xfffc;
  if (sel === 0 || c.cpl !== 0) c.raise(Vec.GP, 0);
  const to64 = i.opSize === 8;
  const r = c.r;
  if (to64 && (((r[5]! >> 15) + 1) >>> 1 !== 0 || ((r[3]! >> 15) + 1) >>> 1 !== 0)) c.raise(Vec.GP, 0);
  c.loadFlatCsSs(
    ((sel + (to64 ? 32 : 16)) | 3) & 0xffff,
    (to64 ? CODE64 : CODE32) | DPL3,
    ((sel + (to64 ? 40 : 24)) | 3) & 0xffff,
    DATA | DPL3,
    3,
  );
  r[8] = r[2]!;
  r[9] = to64 ? r[3]! : 0;
  c.nipLo = r[4]!;
  c.nipHi = to64 ? r[5]! : 0;
  c.stopBlock = true;
}
