/**
 * System instructions (SDM Vol. 2 and Vol. 3 ch. 2, 5): HLT, CLI/STI, PUSHF/POPF, INT n/INT3/INTO/INT1,
 * IN/OUT, MOV CR/DR, CPUID, RDTSC(P), RDMSR/WRMSR, descriptor-table loads and stores, CLTS, LMSW/SMSW,
 * INVLPG, SWAPGS, RD/WR FS/GS BASE, RDRAND/RDSEED, XGETBV/XSETBV, LAR/LSL/VERR/VERW/ARPL. Every
 * interceptable one offers itself to `cpu.intercept` first.
 */
import type { Cpu } from "./cpu.js";
import { CPUID_7_EBX_SMAP } from "./cpuid.js";
import { EventType } from "./exceptions.js";
import { InterceptKind as IK } from "./interfaces.js";
import { Vec } from "./memory.js";
import type { XInsn } from "./operands.js";
import { CR0, CR4, DR7_GD, EFER, F, M64, Msr, Seg } from "./state.js";

type C = Cpu;
type I = XInsn;

function requireCpl0(c: C): void {
  if (c.cpl !== 0) c.raise(Vec.GP, 0);
}

function iopl(c: C): number {
  return (c.flags >> 12) & 3;
}

export function hlt(c: C, _i: I): void {
  requireCpl0(c);
  if (c.intercept(IK.HLT, 0, 0)) return;
  c.halted = true;
  c.stopBlock = true;
}

/** CLI (k=0) / STI (k=1); IOPL-sensitive outside real mode (SDM Vol. 2 CLI, STI; VME/PVI not exposed). */
export function cliSti(c: C, i: I): void {
  if ((c.cr0 & CR0.PE) !== 0 && c.cpl > iopl(c)) c.raise(Vec.GP, 0);
  if (i.k === 0) c.flags &= ~F.IF;
  else {
    if ((c.flags & F.IF) === 0) {
      c.interruptShadow = 1; // STI shadow (SDM Vol. 3 6.8.3)
      c.stopBlock = true;
    }
    c.flags |= F.IF;
  }
}

export function pushf(c: C, i: I): void {
  if (c.flags & F.VM && iopl(c) < 3) c.raise(Vec.GP, 0);
  // The pushed image has VM and RF clear (SDM Vol. 2 PUSHF).
  const v = c.getRflags() & ~(F.VM | F.RF);
  c.push(i.opSize, i.opSize === 2 ? v & 0xffff : v, 0);
}

/** POPF with the privilege rules of SDM Vol. 2 POPF. */
export function popf(c: C, i: I): void {
  const sz = i.opSize;
  if (c.flags & F.VM && iopl(c) < 3) c.raise(Vec.GP, 0);
  const v = c.pop(sz);
  writeFlags(c, v, sz, false);
}

/** Writes RFLAGS from POPF/IRET honouring CPL/IOPL; `iret` allows VM/VIF/VIP changes at CPL 0. */
export function writeFlags(c: C, v: number, sz: number, iret: boolean): void {
  const old = c.getRflags();
  let m = F.CF | F.PF | F.AF | F.ZF | F.SF | F.TF | F.DF | F.OF | F.NT | F.AC | F.ID;
  const pe = (c.cr0 & CR0.PE) !== 0;
  if (!pe || c.cpl === 0) m |= F.IOPL | F.IF;
  else if (c.cpl <= iopl(c)) m |= F.IF;
  if (iret && pe && c.cpl === 0) m |= F.VIF | F.VIP | F.RF | F.VM;
  if (c.flags & F.VM) m = (m | F.IF) & ~F.IOPL;
  if (sz === 2) m &= 0xffff;
  c.setRflags((old & ~m) | (v & m));
}

/** INT imm8 (k=0), INT3 (k=1), INTO (k=2), INT1 (k=3). */
export function intN(c: C, i: I): void {
  let vec: number;
  let type: number;
  switch (i.k) {
    case 0:
      vec = i.imm & 0xff;
      type = EventType.SOFT_INT;
      // Virtual-8086 mode with IOPL < 3: #GP(0) (SDM Vol. 3 20.3.3, VME not exposed).
      if (c.flags & F.VM && iopl(c) < 3) c.raise(Vec.GP, 0);
      break;
    case 1:
      vec = Vec.BP;
      type = EventType.SOFT_EXCEPTION;
      if (c.intercept(IK.EXCEPTION, vec, -1)) return;
      break;
    case 2:
      if (!c.of()) return;
      vec = Vec.OF;
      type = EventType.SOFT_EXCEPTION;
      if (c.intercept(IK.EXCEPTION, vec, -1)) return;
      break;
    default:
      vec = Vec.DB;
      type = EventType.PRIV_SOFT_EXCEPTION;
      if (c.intercept(IK.EXCEPTION, vec, -1)) return;
  }
  c.deliverEvent(vec, type, false, 0, c.nipLo, c.nipHi);
  c.nipLo = c.ripLo;
  c.nipHi = c.ripHi;
  c.stopBlock = true;
}

// ------------------------------------------------------------------ port I/O

/** IN (k=0) / OUT (k=1); port from imm8 (opcode E4-E7) or DX. */
export function inOut(c: C, i: I): void {
  const sz = i.sz;
  const port = (i.opcode & 8) === 0 ? i.imm & 0xff : c.r[4]! & 0xffff;
  c.ioAllowed(port, sz);
  if (c.intercept(IK.IO, port | (sz << 16) | (i.k === 0 ? 1 << 24 : 0), 0)) return;
  if (i.k === 0) c.setReg(sz, 0, c.io.in(port, sz as 1 | 2 | 4), 0, i);
  else c.io.out(port, sz as 1 | 2 | 4, c.getReg(sz, 0, i));
  if (c.dbData) c.dbPort(port, sz);
}

// ------------------------------------------------------------------ CPUID, TSC, MSRs

export function cpuid(c: C, _i: I): void {
  if (c.intercept(IK.CPUID, c.r[0]!, c.r[2]!)) return;
  const o = c.cpuidOut;
  c.cpuidModel.query(
    c.r[0]!,
    c.r[2]!,
    o,
    (c.cr4 & CR4.OSXSAVE) !== 0,
    (c.cr4 & CR4.PKE) !== 0,
    c.xcr0Lo | c.xssLo,
  );
  c.setReg(4, 0, o.eax, 0, _i);
  c.setReg(4, 3, o.ebx, 0, _i);
  c.setReg(4, 1, o.ecx, 0, _i);
  c.setReg(4, 2, o.edx, 0, _i);
}

/** RDTSC (k=0) / RDTSCP (k=1): CR4.TSD makes them privileged (SDM Vol. 2 RDTSC). */
export function rdtsc(c: C, i: I): void {
  if (c.cr4 & CR4.TSD && c.cpl !== 0) c.raise(Vec.GP, 0);
  if (c.intercept(i.k === 0 ? IK.RDTSC : IK.RDTSCP, 0, 0)) return;
  const t = c.readTsc();
  c.setReg(4, 0, (t % 4294967296) | 0, 0, i);
  c.setReg(4, 2, Math.floor(t / 4294967296) | 0, 0, i);
  if (i.k === 1) c.setReg(4, 1, c.msr64[M64.tscAux * 2]!, 0, i);
}

export function rdmsr(c: C, i: I): void {
  requireCpl0(c);
  const idx = c.r[2]! >>> 0;
  if (c.intercept(IK.RDMSR, idx, 0)) return;
  if (!c.readMsr(idx)) c.raise(Vec.GP, 0);
  c.setReg(4, 0, c.msrLo, 0, i);
  c.setReg(4, 2, c.msrHi, 0, i);
}

export function wrmsr(c: C, _i: I): void {
  requireCpl0(c);
  const idx = c.r[2]! >>> 0;
  if (c.intercept(IK.WRMSR, idx, 0)) return;
  if (!c.writeMsr(idx, c.r[0]!, c.r[4]!)) c.raise(Vec.GP, 0);
  c.stopBlock = true;
}

export function rdpmc(c: C, _i: I): void {
  if (c.intercept(IK.RDPMC, c.r[2]!, 0)) return;
  // No performance counters are exposed (CPUID leaf 0Ah absent): every index is invalid.
  c.raise(Vec.GP, 0);
}

// ------------------------------------------------------------------ control and debug registers

/** MOV r, CRn (k=0) / MOV CRn, r (k=1). The register operand is always 64-bit in 64-bit mode. */
export function movCr(c: C, i: I): void {
  requireCpl0(c);
  const cr = i.reg;
  const gpr = i.rm;
  const sz = c.codeMode === 64 ? 8 : 4;
  if (cr !== 0 && cr !== 2 && cr !== 3 && cr !== 4 && cr !== 8) c.raise(Vec.UD);
  if (c.intercept(IK.MOV_CR, cr | (i.k << 4) | (gpr << 8), 0)) return;
  if (i.k === 0) {
    let lo = 0;
    let hi = 0;
    if (cr === 0) lo = c.cr0;
    else if (cr === 2) {
      lo = c.cr2Lo;
      hi = c.cr2Hi;
    } else if (cr === 3) {
      lo = c.cr3Lo;
      hi = c.cr3Hi;
    } else if (cr === 4) lo = c.cr4;
    else lo = c.cr8;
    c.setReg(sz, gpr, lo, hi, i);
    return;
  }
  const lo = c.r[gpr * 2]!;
  const hi = sz === 8 ? c.r[gpr * 2 + 1]! : 0;
  c.writeCr(cr, lo, hi);
  c.stopBlock = true;
}

/** DR6.BD: the #DB is a general-detect fault (SDM Vol. 3 18.2.3). */
const DR6_BD = 1 << 13;

/** MOV r, DRn (k=0) / MOV DRn, r (k=1). */
export function movDr(c: C, i: I): void {
  requireCpl0(c);
  let dr = i.reg;
  if (dr > 7) c.raise(Vec.UD);
  if ((dr === 4 || dr === 5) && c.cr4 & CR4.DE) c.raise(Vec.UD);
  if (dr === 4) dr = 6;
  if (dr === 5) dr = 7;
  if (c.intercept(IK.MOV_DR, dr | (i.k << 4) | (i.rm << 8), 0)) return;
  // DR7.GD: any access to a debug register is a #DB fault with DR6.BD, before the move (SDM Vol. 3
  // 18.2.4). A MOV-DR VM exit comes first (KVM's handle_dr emulates the #DB for that reason).
  if ((c.dr7 & DR7_GD) !== 0) {
    c.dbHits = DR6_BD;
    c.raise(Vec.DB);
  }
  const sz = c.codeMode === 64 ? 8 : 4;
  if (i.k === 0) {
    if (dr < 4) c.setReg(sz, i.rm, c.dr[dr * 2]!, c.dr[dr * 2 + 1]!, i);
    else c.setReg(sz, i.rm, dr === 6 ? c.dr6 : c.dr7, 0, i);
    return;
  }
  const lo = c.r[i.rm * 2]!;
  const hi = sz === 8 ? c.r[i.rm * 2 + 1]! : 0;
  if (dr >= 6 && hi !== 0) c.raise(Vec.GP, 0);
  if (dr < 4) {
    c.dr[dr * 2] = lo;
    c.dr[dr * 2 + 1] = hi;
  } else if (dr === 6) c.dr6 = (lo | 0xffff0ff0) & ~0x1000;
  else c.dr7 = (lo | 0x400) & ~0xd800;
}

export function clts(c: C, _i: I): void {
  requireCpl0(c);
  if (c.intercept(IK.CLTS, 0, 0)) return;
  c.cr0 &= ~CR0.TS;
}

/** LMSW r/m16: loads PE, MP, EM, TS; cannot clear PE (SDM Vol. 2 LMSW). */
export function lmsw(c: C, i: I): void {
  requireCpl0(c);
  const v = c.readRm(i, 2);
  if (c.intercept(IK.LMSW, v, 0)) return;
  const nv = (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & CR0.PE);
  c.writeCr(0, nv, 0);
  c.stopBlock = true;
}

export function smsw(c: C, i: I): void {
  if (c.cr4 & CR4.UMIP && c.cpl > 0) c.raise(Vec.GP, 0);
  if (i.isMem) c.writeRm(i, 2, c.cr0 & 0xffff, 0);
  else c.setReg(i.opSize, i.rm, c.cr0, 0, i);
}

export function invlpg(c: C, i: I): void {
  requireCpl0(c);
  c.ea(i, 0);
  // No segment checks (SDM Vol. 2 INVLPG lists none): the linear address is offset + base.
  let lo = c.eaLo;
  let hi = c.eaHi;
  if (c.codeMode === 64) {
    c.lin(i.sg, lo, hi, 1, false);
    lo = c.la;
    hi = c.laHi;
  } else {
    lo = (lo + c.segBaseLo[i.sg]!) | 0;
    hi = 0;
  }
  if (c.intercept(IK.INVLPG, lo, hi)) return;
  // A non-canonical address is a no-op in 64-bit mode (SDM Vol. 2 INVLPG).
  if (c.codeMode === 64 && ((hi >> 15) + 1) >>> 1 !== 0) return;
  c.tlbFlushPage(lo, hi);
}

/**
 * INVPCID (SDM Vol. 2): type 0 one address, 1 one PCID, 2 everything, 3 everything but globals. The TLB is
 * not tagged with PCIDs, so types 0 and 1 drop more than the SDM asks for (always allowed).
 */
export function invpcid(c: C, i: I): void {
  requireCpl0(c);
  if (c.intercept(IK.INVPCID, 0, 0)) return;
  const typeHi = c.codeMode === 64 ? c.r[i.reg * 2 + 1]! : 0;
  const type = c.r[i.reg * 2]! >>> 0;
  c.memAddr(i, 0, 16, false);
  const pcid = c.rd64(c.la, c.laHi);
  const rsvd = c.hiOut;
  const a = (c.la >>> 0) + 8;
  const linLo = c.rd64(a | 0, c.codeMode === 64 && a > 0xffffffff ? (c.laHi + 1) | 0 : c.laHi);
  const linHi = c.hiOut;
  // #GP(0): type above 3, descriptor bits 63:12 set, a PCID other than 0 with CR4.PCIDE = 0 (types 0, 1),
  // a non-canonical address (type 0).
  if (typeHi !== 0 || type > 3 || (pcid & ~0xfff) !== 0 || rsvd !== 0) c.raise(Vec.GP, 0);
  if (type <= 1 && (pcid & 0xfff) !== 0 && (c.cr4 & CR4.PCIDE) === 0) c.raise(Vec.GP, 0);
  if (type === 0) {
    if (((linHi >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, 0);
    c.tlbFlushPage(linLo, linHi);
  } else if (type === 2) c.tlbFlushAll();
  else c.tlbFlushNonGlobal();
}

export function wbinvd(c: C, i: I): void {
  requireCpl0(c);
  if (c.intercept(i.k === 0 ? IK.WBINVD : IK.INVD, 0, 0)) return;
}

// ------------------------------------------------------------------ descriptor tables

/** LGDT (k=0) / LIDT (k=1): m16&32 (m16&64 in 64-bit mode). */
export function lgdt(c: C, i: I): void {
  requireCpl0(c);
  if (c.intercept(IK.DESCRIPTOR_TABLE, i.k, 0)) return;
  c.memAddr(i, 0, 2, false);
  const limit = c.readLin(2);
  c.memAddr(i, 2, c.codeMode === 64 ? 8 : 4, false);
  let lo: number;
  let hi = 0;
  if (c.codeMode === 64) {
    lo = c.rd64(c.la, c.laHi);
    hi = c.hiOut;
  } else {
    lo = c.rd32(c.la, c.laHi);
    if (i.opSize === 2) lo &= 0xffffff;
  }
  if (i.k === 0) {
    c.gdtrLimit = limit;
    c.gdtrBaseLo = lo;
    c.gdtrBaseHi = hi;
  } else {
    c.idtrLimit = limit;
    c.idtrBaseLo = lo;
    c.idtrBaseHi = hi;
  }
}

/** SGDT (k=0) / SIDT (k=1). */
export function sgdt(c: C, i: I): void {
  if (c.cr4 & CR4.UMIP && c.cpl > 0) c.raise(Vec.GP, 0);
  if (c.intercept(IK.DESCRIPTOR_TABLE, 2 + i.k, 0)) return;
  const limit = i.k === 0 ? c.gdtrLimit : c.idtrLimit;
  const lo = i.k === 0 ? c.gdtrBaseLo : c.idtrBaseLo;
  const hi = i.k === 0 ? c.gdtrBaseHi : c.idtrBaseHi;
  c.memAddr(i, 0, c.codeMode === 64 ? 10 : 6, true);
  c.memAddr(i, 0, 2, true);
  c.wr16(c.la, c.laHi, limit);
  c.memAddr(i, 2, 4, true);
  if (c.codeMode === 64) c.wr64(c.la, c.laHi, lo, hi);
  else c.wr32(c.la, c.laHi, lo);
}

/** SLDT (k=0) / STR (k=1). */
export function sldt(c: C, i: I): void {
  if ((c.cr0 & CR0.PE) === 0 || c.flags & F.VM) c.raise(Vec.UD);
  if (c.cr4 & CR4.UMIP && c.cpl > 0) c.raise(Vec.GP, 0);
  if (c.intercept(IK.DESCRIPTOR_TABLE, 4 + i.k, 0)) return;
  const sel = c.segSel[i.k === 0 ? Seg.LDTR : Seg.TR]! & 0xffff;
  if (i.isMem) c.writeRm(i, 2, sel, 0);
  else c.setReg(i.opSize, i.rm, sel, 0, i);
}

/** LLDT (k=0) / LTR (k=1) (SDM Vol. 2 LLDT, LTR). */
export function lldt(c: C, i: I): void {
  if ((c.cr0 & CR0.PE) === 0 || c.flags & F.VM) c.raise(Vec.UD);
  requireCpl0(c);
  if (c.intercept(IK.DESCRIPTOR_TABLE, 6 + i.k, 0)) return;
  const sel = c.readRm(i, 2);
  const s = i.k === 0 ? Seg.LDTR : Seg.TR;
  if ((sel & 0xfffc) === 0) {
    if (i.k === 1) c.raise(Vec.GP, 0);
    c.loadNull(Seg.LDTR, sel);
    return;
  }
  if (sel & 4) c.raise(Vec.GP, sel & 0xfffc);
  const long = (c.efer & EFER.LMA) !== 0;
  c.readDescriptor(sel, long);
  const type = (c.descHi >> 8) & 0x1f;
  // LDT: system type 2; TSS: available 16-bit (1) or 32/64-bit (9).
  const ok = i.k === 0 ? type === 2 : long ? type === 9 : type === 1 || type === 9;
  if (!ok) c.raise(Vec.GP, sel & 0xfffc);
  if ((c.descHi & 0x8000) === 0) c.raise(Vec.NP, sel & 0xfffc);
  if (long && c.descHi2 >> 15 !== 0 && ((c.descHi2 >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, sel & 0xfffc);
  if (i.k === 1) c.markDescriptor(0x200); // busy
  c.loadFromDescriptor(s, sel);
  if (!long) c.segBaseHi[s] = 0;
}

/** LAR (k=0) / LSL (k=1) / VERR (k=2) / VERW (k=3): ZF reports whether the selector passes. */
export function lar(c: C, i: I): void {
  if ((c.cr0 & CR0.PE) === 0 || c.flags & F.VM) c.raise(Vec.UD);
  const sel = c.readRm(i, 2);
  let ok = false;
  let lo = 0;
  let hi = 0;
  if ((sel & 0xfffc) !== 0) {
    const limit = sel & 4 ? c.segLimit[Seg.LDTR]! >>> 0 : c.gdtrLimit;
    if ((sel & 0xfff8) + 7 <= limit) {
      c.readDescriptor(sel);
      lo = c.descLo;
      hi = c.descHi;
      const dpl = (hi >> 13) & 3;
      const type = (hi >> 8) & 0x1f;
      const conformingCode = (type & 0x1c) === 0x1c;
      const privOk = conformingCode || (dpl >= c.cpl && dpl >= (sel & 3));
      if (i.k < 2) {
        const long = (c.efer & EFER.LMA) !== 0;
        // Valid system types for LAR/LSL (SDM Vol. 2 LAR Table 3-56).
        const sysOk =
          i.k === 0
            ? long
              ? type === 2 || type === 9 || type === 0xb || type === 0xc
              : [1, 2, 3, 4, 5, 9, 0xb, 0xc].includes(type)
            : long
              ? type === 2 || type === 9 || type === 0xb
              : [1, 2, 3, 9, 0xb].includes(type);
        ok = privOk && ((type & 0x10) !== 0 || sysOk);
      } else if ((type & 0x10) !== 0) {
        const code = (type & 8) !== 0;
        ok = privOk && (i.k === 2 ? !code || (type & 2) !== 0 : !code && (type & 2) !== 0);
      }
    }
  }
  c.setArith(F.ZF, ok ? F.ZF : 0);
  if (!ok || i.k >= 2) return;
  if (i.k === 0) c.setReg(i.opSize, i.reg, hi & 0xf0ff00, 0, i);
  else {
    let limit = (lo & 0xffff) | (hi & 0xf0000);
    if (hi & 0x800000) limit = (limit << 12) | 0xfff;
    c.setReg(i.opSize, i.reg, limit, 0, i);
  }
}

export function arpl(c: C, i: I): void {
  if ((c.cr0 & CR0.PE) === 0 || c.flags & F.VM) c.raise(Vec.UD);
  const d = c.readRmForWrite(i, 2);
  const s = c.getReg(2, i.reg, i);
  if ((d & 3) < (s & 3)) {
    c.writeBack(i, 2, (d & ~3) | (s & 3), 0);
    c.setArith(F.ZF, F.ZF);
  } else c.setArith(F.ZF, 0);
}

// ------------------------------------------------------------------ 64-bit extras

export function swapgs(c: C, _i: I): void {
  if (c.codeMode !== 64) c.raise(Vec.UD);
  requireCpl0(c);
  const k = M64.kernelGsBase * 2;
  const lo = c.segBaseLo[Seg.GS]!;
  const hi = c.segBaseHi[Seg.GS]!;
  c.segBaseLo[Seg.GS] = c.msr64[k]!;
  c.segBaseHi[Seg.GS] = c.msr64[k + 1]!;
  c.msr64[k] = lo;
  c.msr64[k + 1] = hi;
}

/** RDFSBASE/RDGSBASE (k = 0/1) and WRFSBASE/WRGSBASE (k = 2/3). */
export function fsgsbase(c: C, i: I): void {
  if (c.codeMode !== 64 || (c.cr4 & CR4.FSGSBASE) === 0) c.raise(Vec.UD);
  const s = i.k & 1 ? Seg.GS : Seg.FS;
  const sz = i.opSize;
  if (i.k < 2) {
    c.setReg(sz, i.rm, c.segBaseLo[s]!, c.segBaseHi[s]!, i);
    return;
  }
  const lo = c.r[i.rm * 2]!;
  const hi = sz === 8 ? c.r[i.rm * 2 + 1]! : 0;
  if (((hi >> 15) + 1) >>> 1 !== 0) c.raise(Vec.GP, 0);
  c.segBaseLo[s] = lo;
  c.segBaseHi[s] = hi;
}

/** RDRAND (k=0) / RDSEED (k=1): CF=1 and a random value. */
export function rdrand(c: C, i: I): void {
  if (c.intercept(i.k === 0 ? IK.RDRAND : IK.RDSEED, 0, 0)) return;
  const lo = (Math.random() * 4294967296) | 0;
  const hi = (Math.random() * 4294967296) | 0;
  c.setReg(i.opSize, i.rm, lo, hi, i);
  c.setArith(F.CF | F.OF | F.SF | F.ZF | F.AF | F.PF, F.CF);
}

export function rdpid(c: C, i: I): void {
  c.setReg(c.codeMode === 64 ? 8 : 4, i.rm, c.msr64[M64.tscAux * 2]!, 0, i);
}

export function xgetbv(c: C, _i: I): void {
  if ((c.cr4 & CR4.OSXSAVE) === 0) c.raise(Vec.UD);
  if (c.r[2] !== 0) c.raise(Vec.GP, 0);
  c.setReg(4, 0, c.xcr0Lo, 0, _i);
  c.setReg(4, 2, c.xcr0Hi, 0, _i);
}

export function xsetbv(c: C, _i: I): void {
  if ((c.cr4 & CR4.OSXSAVE) === 0) c.raise(Vec.UD);
  requireCpl0(c);
  if (c.intercept(IK.XSETBV, c.r[2]!, 0)) return;
  const lo = c.r[0]!;
  // XCR0 bit 0 must be set, only supported bits (PKRU, bit 9, with PKU), AVX needs SSE (SDM Vol. 1 13.3).
  if (c.r[2] !== 0 || c.r[4] !== 0 || (lo & 1) === 0 || (lo & ~c.cpuidModel.xcr0Mask) !== 0)
    c.raise(Vec.GP, 0);
  c.xcr0Lo = lo;
  c.xcr0Hi = 0;
}

/** CLAC (k=0) / STAC (k=1): RFLAGS.AC for SMAP; #UD above CPL 0 or without SMAP (SDM Vol. 2 CLAC, STAC). */
export function stac(c: C, i: I): void {
  if ((c.cpuidModel.features7Ebx & CPUID_7_EBX_SMAP) === 0 || c.cpl !== 0) c.raise(Vec.UD);
  c.flags = i.k === 1 ? c.flags | F.AC : c.flags & ~F.AC;
  c.updateAccessMasks();
}

/** RDPKRU: EDX:EAX = 0:PKRU; #UD with CR4.PKE = 0, #GP(0) with ECX != 0 (SDM Vol. 2 RDPKRU). */
export function rdpkru(c: C, i: I): void {
  if ((c.cr4 & CR4.PKE) === 0) c.raise(Vec.UD);
  if (c.r[2] !== 0) c.raise(Vec.GP, 0);
  c.setReg(4, 0, c.pkru, 0, i);
  c.setReg(4, 2, 0, 0, i);
}

/**
 * WRPKRU: PKRU = EAX at any CPL; #UD with CR4.PKE = 0, #GP(0) with ECX or EDX != 0. The TLB keeps rights
 * per entry, so the entries of user pages (the ones PKRU guards) go.
 */
export function wrpkru(c: C, _i: I): void {
  if ((c.cr4 & CR4.PKE) === 0) c.raise(Vec.UD);
  if (c.r[2] !== 0 || c.r[4] !== 0) c.raise(Vec.GP, 0);
  if (c.pkru !== c.r[0]) {
    c.pkru = c.r[0]!;
    c.tlbFlushUser();
  }
}

/** MONITOR (k=0) / MWAIT (k=1): MWAIT behaves as a NOP-like wait point (no monitor hardware). */
export function monitor(c: C, i: I): void {
  requireCpl0(c);
  if (c.intercept(i.k === 0 ? IK.MONITOR : IK.MWAIT, 0, 0)) return;
}

export function pause(c: C, _i: I): void {
  if (c.intercept(IK.PAUSE, 0, 0)) return;
}

/** VMX instructions: #UD unless a hypervisor layer takes them (SDM Vol. 3 ch. 30). */
export function vmxInsn(c: C, i: I): void {
  if (c.intercept(IK.VMX_INSN, i.op, 0)) return;
  c.raise(Vec.UD);
}

export function ud(c: C, _i: I): void {
  c.raise(Vec.UD);
}

export function gp0(c: C, _i: I): void {
  c.raise(Vec.GP, 0);
}

export function nop(_c: C, _i: I): void {}

export { Msr };
