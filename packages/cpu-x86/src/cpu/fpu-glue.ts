/**
 * Composes the x87 and SSE/MMX units (src/fpu, src/simd) into the executor: the `FpuHost` they call
 * back into (memory operand, GPRs, flags, exceptions), the system pre-checks of SDM Vol. 3 2.5 /
 * Table 2-2 and Vol. 1 13.2 (#NM on CR0.TS, #UD on CR0.EM or CR4.OSFXSR clear, #GP on misaligned
 * 16-byte operands), and the SSE/MMX data moves the units leave to the executor (MOV*, PINSR*,
 * PEXTR*, EXTRACTPS); a pending x87 exception at the next waiting x87 or MMX instruction (#MF, or
 * FERR# with CR0.NE = 0), and #AC for misaligned x87/SSE/MMX operands at CPL 3 with CR0.AM and
 * RFLAGS.AC.
 */
import { Prefix } from "../decoder/insn.js";
import type { FpuHandler } from "../fpu/dispatch.js";
import type { FpuHost } from "../fpu/host.js";
import { XCOMP_PKRU, type XExtState } from "../fpu/image.js";
import { Op } from "../generated/ops.js";
import type { Cpu } from "./cpu.js";
import { CPUID_1_ECX_XSAVE, CPUID_D1_EAX_XSAVEC, CPUID_D1_EAX_XSAVEOPT } from "./cpuid.js";
import { InterceptKind } from "./interfaces.js";
import { Vec } from "./memory.js";
import type { XInsn } from "./operands.js";
import { CR0, CR4, F } from "./state.js";

/** Ops whose 16-byte memory operand may be unaligned (everything else with m128 needs alignment). */
const UNALIGNED = new Set<number>([
  Op.MOVUPS,
  Op.MOVUPD,
  Op.MOVDQU,
  Op.LDDQU,
  Op.PCMPESTRI,
  Op.PCMPESTRM,
  Op.PCMPISTRI,
  Op.PCMPISTRM,
  Op.PCMPESTRI64,
  Op.PCMPESTRM64,
]);

/** The x87 instructions that do not wait: no #MF for a pending exception (SDM Vol. 1 8.3.12). */
const NO_WAIT = new Set<number>([
  Op.FNINIT,
  Op.FNCLEX,
  Op.FNSTSW,
  Op.FNSTCW,
  Op.FNSTENV,
  Op.FNSAVE,
  Op.FNENI,
  Op.FNDISI,
  Op.FNSETPM,
]);

/** The waiting x87 control instructions: they leave FOP, FIP and FDP alone (SDM Vol. 1 8.1.8). */
const CONTROL = new Set<number>([Op.FLDCW, Op.FLDENV, Op.FRSTOR]);

/**
 * Alignment an operand of `bytes` needs for #AC (SDM Vol. 3 Table 6-7): words 2, doublewords and
 * singles 4, quadwords, doubles and extended reals 8, FSTENV/FSAVE images 2 (16-bit) or 4 (32-bit),
 * 16-byte SSE operands 16 (the forms that allow misalignment too, as the host CPU shows; the others
 * take #GP first). FXSAVE/XSAVE images have their own #GP rules and are not checked.
 */
function acAlignment(bytes: number): number {
  switch (bytes) {
    case 2:
    case 14:
    case 94:
      return 2;
    case 4:
    case 28:
    case 108:
      return 4;
    case 8:
    case 10:
      return 8;
    case 16:
      return 16;
    default:
      return 1;
  }
}

/** The executor side of the x87/SIMD handlers' interface, for the instruction in `cur`. */
export class FpuBridge implements FpuHost {
  cur: XInsn | null = null;
  private readonly ext: XExtState = { pkru: 0, pkruOffset: 0 };
  constructor(private readonly c: Cpu) {}

  private addr(bytes: number, write: boolean, at: number): void {
    const c = this.c;
    const i = this.cur!;
    if (at !== 0) {
      // A later part of an XSAVE area (PKRU at its slot): the base was checked with the first part.
      c.memAddr(i, at, bytes, write);
      return;
    }
    c.memAddr(i, 0, Math.min(bytes, 8), write);
    // #GP(0) for a misaligned 16-byte operand of the aligned forms, FXSAVE/FXRSTOR image (16) and
    // XSAVE area (64), before any #AC (SDM Vol. 2 FXSAVE, XSAVE; the host CPU agrees).
    const align = bytes === 16 ? (UNALIGNED.has(i.op) ? 0 : 16) : bytes === 512 ? 16 : bytes >= 576 ? 64 : 0;
    if (align !== 0 && (c.eaLo & (align - 1)) !== 0) c.raise(Vec.GP, 0);
    if (bytes > 8) c.memAddr(i, 0, bytes, write);
    if (c.acCheck) c.checkAlign(c.la, acAlignment(bytes));
  }

  readMem(bytes: number, buf: Uint8Array, at = 0): boolean {
    const c = this.c;
    this.addr(bytes, false, at);
    const lo = c.la;
    const hi = c.laHi;
    let k = 0;
    for (; k + 4 <= bytes; k += 4) {
      const a = (lo >>> 0) + k;
      const v = c.rd32(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi);
      buf[at + k] = v;
      buf[at + k + 1] = v >> 8;
      buf[at + k + 2] = v >> 16;
      buf[at + k + 3] = v >> 24;
    }
    for (; k < bytes; k++) {
      const a = (lo >>> 0) + k;
      buf[at + k] = c.rd8(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi);
    }
    return true;
  }

  writeMem(bytes: number, buf: Uint8Array, at = 0): boolean {
    const c = this.c;
    this.addr(bytes, true, at);
    const lo = c.la;
    const hi = c.laHi;
    // Both ends first, so a fault leaves memory unchanged.
    c.probeWrite(lo, hi);
    const e = (lo >>> 0) + bytes - 1;
    c.probeWrite(e | 0, e > 0xffffffff ? (hi + 1) | 0 : hi);
    for (let k = 0; k < bytes; k++) {
      const a = (lo >>> 0) + k;
      c.wr8(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi, buf[at + k]!);
    }
    return true;
  }

  /** Register halves as unsigned 32-bit numbers (the units compare against constants like 0xffffffff). */
  gprLo(reg: number): number {
    return this.c.r[reg * 2]! >>> 0;
  }
  gprHi(reg: number): number {
    return this.c.r[reg * 2 + 1]! >>> 0;
  }
  setGpr(reg: number, bytes: 2 | 4 | 8, lo: number, hi: number): void {
    this.c.setReg(bytes, reg, lo, hi, this.cur!);
  }
  flags(): number {
    return this.c.getRflags();
  }
  setFlags(mask: number, value: number): void {
    this.c.setArith(mask & 0x8d5, value);
    const other = mask & ~0x8d5;
    if (other) this.c.flags = (this.c.flags & ~other) | (value & other);
  }
  protectedMode(): boolean {
    return (this.c.cr0 & CR0.PE) !== 0 && (this.c.flags & F.VM) === 0;
  }
  longMode(): boolean {
    // Blocks are decoded for the mode they run in (cpu.ts), so this is the instruction's mode.
    return this.c.codeMode === 64;
  }
  xcr0Lo(): number {
    return this.c.xcr0Lo;
  }
  xcr0Hi(): number {
    return this.c.xcr0Hi;
  }
  xsaveCompaction(): boolean {
    return (this.c.cpuidModel.xsaveExtensions & CPUID_D1_EAX_XSAVEC) !== 0;
  }
  xssLo(): number {
    return this.c.xssLo;
  }
  /** PKRU for the XSAVE images, when CPUID.(0DH,0):EAX[9] reports the component. */
  xext(): XExtState | null {
    const m = this.c.cpuidModel;
    if ((m.xcr0Mask & XCOMP_PKRU) === 0) return null;
    const e = this.ext;
    e.pkru = this.c.pkru;
    e.pkruOffset = m.pkruOffset;
    return e;
  }
  /** As WRPKRU: the TLB entries of user pages hold rights PKRU gave. */
  xextLoaded(): void {
    const c = this.c;
    if (c.pkru !== this.ext.pkru) {
      c.pkru = this.ext.pkru;
      c.tlbFlushUser();
    }
  }
  raise(vector: number, errorCode: number): void {
    this.c.raise(vector, vector === Vec.GP ? errorCode : -1);
  }
}

/**
 * A pending unmasked x87 exception (SW.ES) at a waiting x87 or MMX instruction; returns false when that
 * instruction must not run.
 * - CR0.NE = 1: #MF, a fault on that instruction (SDM Vol. 1 8.6, Vol. 3 6.15 Interrupt 16); FIP/FDP
 *   still name the one that caused the exception.
 * - CR0.NE = 0, the PC-compatible ("MS-DOS compatibility") scheme (SDM Vol. 1 8.7, D.2.1): no #MF; the
 *   CPU asserts FERR# (`Cpu.ferr`) and, unless IGNNE# (`Cpu.ignne`) is asserted, waits before the
 *   instruction for an interrupt: the platform turns FERR# into IRQ13, whose handler clears the error
 *   (FNCLEX) or asserts IGNNE# (on a PC by writing port F0H) and returns to the instruction, which then
 *   runs. The wait is the HLT activity state with RIP at the instruction (`run` returns HLT; the
 *   interrupt's return address is the instruction). With IGNNE# asserted the instruction runs as if
 *   nothing were pending. This is the deferred reporting of the Pentium and later processors; the
 *   FERR# pulse that a no-wait instruction gives on the 486 and Pentium (D.2.1.3) is not modelled.
 */
function pendingX87(c: Cpu): boolean {
  if (!c.fpUnits.x87.pendingException()) return true;
  if (c.cr0 & CR0.NE) c.raise(Vec.MF);
  if (!c.ferrAsserted) {
    c.ferrAsserted = true;
    c.ferr.set(true);
  }
  if (c.ignne) return true;
  c.halted = true;
  c.nipLo = c.ripLo;
  c.nipHi = c.ripHi;
  c.stopBlock = true;
  return false;
}

/**
 * FERR# follows SW.ES once asserted: it goes when the exception flags are cleared (FNCLEX, FNINIT,
 * FLDENV/FRSTOR, FXRSTOR/XRSTOR of a clear status word; SDM Vol. 1 8.7). Called after the
 * instructions that can clear them.
 */
function ferrFollow(c: Cpu): void {
  if (c.ferrAsserted && !c.fpUnits.x87.pendingException()) {
    c.ferrAsserted = false;
    c.ferr.set(false);
  }
}

/** x87 instruction (D8-DF): #NM when CR0.EM or CR0.TS (SDM Vol. 3 Table 2-2), then #MF. */
export function x87Exec(c: Cpu, i: XInsn): void {
  if (c.cr0 & (CR0.EM | CR0.TS)) c.raise(Vec.NM);
  if (!NO_WAIT.has(i.op) && !pendingX87(c)) return;
  const b = c.fpuBridge;
  b.cur = i;
  (i.inner as FpuHandler)(c.fpUnits, b, i);
  ferrFollow(c);
  // FOP names the last non-control instruction (SDM Vol. 1 8.1.8).
  if (!NO_WAIT.has(i.op) && !CONTROL.has(i.op)) c.fpUnits.x87.fop = i.k; // dispatch-units.ts
}

/**
 * FWAIT: #NM only when CR0.MP and CR0.TS are both set, then #MF (CR0.NE = 1) or FERR# (CR0.NE = 0);
 * otherwise nothing (SDM Vol. 2 WAIT).
 */
export function fwait(c: Cpu, _i: XInsn): void {
  if ((c.cr0 & (CR0.MP | CR0.TS)) === (CR0.MP | CR0.TS)) c.raise(Vec.NM);
  pendingX87(c);
}

/** SSE/MMX pre-checks (SDM Vol. 3 Table 2-2, Vol. 1 13.2); false when an MMX instruction waits on FERR#. */
function simdChecks(c: Cpu, i: XInsn): boolean {
  if (c.cr0 & CR0.EM) c.raise(Vec.UD);
  if (!i.mmx && (c.cr4 & CR4.OSFXSR) === 0) c.raise(Vec.UD);
  if (c.cr0 & CR0.TS) c.raise(Vec.NM);
  return !i.mmx || pendingX87(c);
}

/**
 * XSAVE, XSAVEOPT, XSAVEC, XRSTOR: #UD unless CPUID reports the instruction and CR4.OSXSAVE = 1, #NM with
 * CR0.TS (CR0.EM and CR4.OSFXSR do not matter; SDM Vol. 1 13.7-13.10); the 64-byte alignment #GP is in
 * `FpuBridge.addr`.
 */
export function xsaveExec(c: Cpu, i: XInsn): void {
  const m = c.cpuidModel;
  const ext =
    i.op === Op.XSAVEOPT || i.op === Op.XSAVEOPT64
      ? CPUID_D1_EAX_XSAVEOPT
      : i.op === Op.XSAVEC || i.op === Op.XSAVEC64
        ? CPUID_D1_EAX_XSAVEC
        : 0;
  if ((m.features1Ecx & CPUID_1_ECX_XSAVE) === 0 || (m.xsaveExtensions & ext) !== ext) c.raise(Vec.UD);
  if ((c.cr4 & CR4.OSXSAVE) === 0) c.raise(Vec.UD);
  if (c.cr0 & CR0.TS) c.raise(Vec.NM);
  const b = c.fpuBridge;
  b.cur = i;
  (i.inner as FpuHandler)(c.fpUnits, b, i);
  ferrFollow(c);
}

/**
 * XSAVES, XRSTORS (SDM Vol. 1 13.11, 13.12; Vol. 2 XSAVES, XRSTORS): #UD unless CPUID.(0DH,1):EAX[3]
 * and CR4.OSXSAVE = 1, #GP(0) above CPL 0, then the VMX intercept, then #NM with CR0.TS. A hook that
 * raises #UD for "enable XSAVES/XRSTORS" = 0 is asked after the CPL check, so at CPL > 0 the #GP(0)
 * comes first (the SDM does not order the two).
 */
export function xsavesExec(c: Cpu, i: XInsn): void {
  if (!c.hasXsaves() || (c.cr4 & CR4.OSXSAVE) === 0) c.raise(Vec.UD);
  if (c.cpl !== 0) c.raise(Vec.GP, 0);
  const restore = i.op === Op.XRSTORS || i.op === Op.XRSTORS64;
  if (c.intercept(InterceptKind.XSAVES, restore ? 1 : 0, c.r[0]! & c.xssLo)) return;
  if (c.cr0 & CR0.TS) c.raise(Vec.NM);
  const b = c.fpuBridge;
  b.cur = i;
  (i.inner as FpuHandler)(c.fpUnits, b, i);
  ferrFollow(c);
}

export function simdExec(c: Cpu, i: XInsn): void {
  if (!simdChecks(c, i)) return;
  const b = c.fpuBridge;
  b.cur = i;
  (i.inner as FpuHandler)(c.fpUnits, b, i);
  ferrFollow(c); // FXRSTOR
  if (i.k >= 0) c.fpUnits.x87.se[i.k] = 0xffff; // the MMX register written (dispatch-units.ts)
}

// ------------------------------------------------------------------ data moves

const tmp = new Uint8Array(16);
const tmp32 = new Uint32Array(tmp.buffer);

/** Full 16-byte moves: k=0 load (xmm <- xmm/m128), k=1 store (xmm/m128 <- xmm). */
export function movX128(c: Cpu, i: XInsn): void {
  if (!simdChecks(c, i)) return;
  const x = c.xmm;
  const b = c.fpuBridge;
  b.cur = i;
  if (i.k === 0) {
    if (!i.isMem) x.copyWithin(i.reg * 4, i.rm * 4, i.rm * 4 + 4);
    else {
      b.readMem(16, tmp);
      x.set(tmp32, i.reg * 4);
    }
  } else if (!i.isMem) x.copyWithin(i.rm * 4, i.reg * 4, i.reg * 4 + 4);
  else {
    tmp32.set(x.subarray(i.reg * 4, i.reg * 4 + 4));
    b.writeMem(16, tmp);
  }
}

/**
 * Partial moves. k: 0 MOVSS load, 1 MOVSS store, 2 MOVSD load, 3 MOVSD store, 4 MOVQ xmm<-xmm/m64
 * (zero upper), 5 MOVQ xmm/m64<-xmm, 6 MOVLPx/MOVHLPS load, 7 MOVLPx store, 8 MOVHPx/MOVLHPS load,
 * 9 MOVHPx store.
 */
export function movXPart(c: Cpu, i: XInsn): void {
  if (!simdChecks(c, i)) return;
  const x = c.xmm;
  const b = c.fpuBridge;
  b.cur = i;
  const d = i.reg * 4;
  const s = i.rm * 4;
  switch (i.k) {
    case 0:
    case 2: {
      const n = i.k === 0 ? 1 : 2;
      if (!i.isMem) for (let k = 0; k < n; k++) x[d + k] = x[s + k]!;
      else {
        b.readMem(n * 4, tmp);
        x.fill(0, d, d + 4);
        for (let k = 0; k < n; k++) x[d + k] = tmp32[k]!;
      }
      return;
    }
    case 1:
    case 3: {
      const n = i.k === 1 ? 1 : 2;
      if (!i.isMem) for (let k = 0; k < n; k++) x[s + k] = x[d + k]!;
      else {
        for (let k = 0; k < n; k++) tmp32[k] = x[d + k]!;
        b.writeMem(n * 4, tmp);
      }
      return;
    }
    case 4: {
      if (!i.isMem) {
        x[d] = x[s]!;
        x[d + 1] = x[s + 1]!;
      } else {
        b.readMem(8, tmp);
        x[d] = tmp32[0]!;
        x[d + 1] = tmp32[1]!;
      }
      x[d + 2] = 0;
      x[d + 3] = 0;
      return;
    }
    case 5:
      if (!i.isMem) {
        x[s] = x[d]!;
        x[s + 1] = x[d + 1]!;
        x[s + 2] = 0;
        x[s + 3] = 0;
      } else {
        tmp32[0] = x[d]!;
        tmp32[1] = x[d + 1]!;
        b.writeMem(8, tmp);
      }
      return;
    case 6:
      if (!i.isMem) {
        // MOVHLPS: low <- source high
        x[d] = x[s + 2]!;
        x[d + 1] = x[s + 3]!;
      } else {
        b.readMem(8, tmp);
        x[d] = tmp32[0]!;
        x[d + 1] = tmp32[1]!;
      }
      return;
    case 7:
      if (!i.isMem) c.raise(Vec.UD);
      tmp32[0] = x[d]!;
      tmp32[1] = x[d + 1]!;
      b.writeMem(8, tmp);
      return;
    case 8:
      if (!i.isMem) {
        // MOVLHPS: high <- source low
        x[d + 2] = x[s]!;
        x[d + 3] = x[s + 1]!;
      } else {
        b.readMem(8, tmp);
        x[d + 2] = tmp32[0]!;
        x[d + 3] = tmp32[1]!;
      }
      return;
    default:
      if (!i.isMem) c.raise(Vec.UD);
      tmp32[0] = x[d + 2]!;
      tmp32[1] = x[d + 3]!;
      b.writeMem(8, tmp);
  }
}

/** MOVD/MOVQ between GPR/memory and XMM (66 prefix) or MMX: k=0 to the vector register, k=1 from it. */
export function movdq(c: Cpu, i: XInsn): void {
  if (!simdChecks(c, i)) return;
  const xmm = (i.prefixes & Prefix.OPSIZE) !== 0;
  const u = c.fpUnits;
  const b = c.fpuBridge;
  b.cur = i;
  const wide = i.opSize === 8;
  const n = wide ? 8 : 4;
  if (!xmm) u.x87.mmxEnter();
  const V = xmm ? c.xmm : u.x87.mant;
  const v = xmm ? i.reg * 4 : (i.reg & 7) * 2;
  if (!xmm && i.k === 0) u.x87.se[i.reg & 7] = 0xffff;
  if (i.k === 0) {
    let lo: number;
    let hi = 0;
    if (i.isMem) {
      b.readMem(n, tmp);
      lo = tmp32[0]!;
      if (wide) hi = tmp32[1]!;
    } else {
      lo = c.r[i.rm * 2]!;
      if (wide) hi = c.r[i.rm * 2 + 1]!;
    }
    V[v] = lo;
    V[v + 1] = hi;
    if (xmm) {
      V[v + 2] = 0;
      V[v + 3] = 0;
    }
    return;
  }
  const lo = V[v]!;
  const hi = wide ? V[v + 1]! : 0;
  if (i.isMem) {
    tmp32[0] = lo;
    tmp32[1] = hi;
    b.writeMem(n, tmp);
  } else c.setReg(wide ? 8 : 4, i.rm, lo, hi, i);
}

/** MMX MOVQ mm, mm/m64 (k=0) and mm/m64, mm (k=1). */
export function movqMmx(c: Cpu, i: XInsn): void {
  if (!simdChecks(c, i)) return;
  const u = c.fpUnits;
  const b = c.fpuBridge;
  b.cur = i;
  u.x87.mmxEnter();
  const m = u.x87.mant;
  const d = (i.reg & 7) * 2;
  const s = (i.rm & 7) * 2;
  if (i.k === 0) {
    u.x87.se[i.reg & 7] = 0xffff;
    if (i.isMem) {
      b.readMem(8, tmp);
      m[d] = tmp32[0]!;
      m[d + 1] = tmp32[1]!;
    } else {
      m[d] = m[s]!;
      m[d + 1] = m[s + 1]!;
    }
  } else if (i.isMem) {
    tmp32[0] = m[d]!;
    tmp32[1] = m[d + 1]!;
    b.writeMem(8, tmp);
  } else {
    u.x87.se[i.rm & 7] = 0xffff;
    m[s] = m[d]!;
    m[s + 1] = m[d + 1]!;
  }
}

/** PINSRB/W/D/Q (k = element bytes) xmm, r/m, imm8. */
export function pinsr(c: Cpu, i: XInsn): void {
  if (!simdChecks(c, i)) return;
  const b = c.fpuBridge;
  b.cur = i;
  const n = i.k;
  let lo: number;
  let hi = 0;
  if (i.isMem) {
    b.readMem(n, tmp);
    lo = n === 1 ? tmp[0]! : n === 2 ? tmp[0]! | (tmp[1]! << 8) : tmp32[0]!;
    if (n === 8) hi = tmp32[1]!;
  } else {
    lo = c.r[i.rm * 2]!;
    hi = c.r[i.rm * 2 + 1]!;
  }
  const mmx = i.opcode === 0xc4 && (i.prefixes & Prefix.OPSIZE) === 0;
  if (mmx) {
    c.fpUnits.x87.mmxEnter();
    c.fpUnits.x87.se[i.reg & 7] = 0xffff;
  }
  const bytes = mmx ? c.mmxU8 : c.xmmU8;
  const base = mmx ? (i.reg & 7) * 8 : i.reg * 16;
  const lanes = (mmx ? 8 : 16) / n;
  const at = base + (i.imm & (lanes - 1)) * n;
  for (let k = 0; k < n; k++) bytes[at + k] = k < 4 ? lo >>> (8 * k) : hi >>> (8 * (k - 4));
}

/** PEXTRB/W/D/Q and EXTRACTPS (k = element bytes) r/m, xmm, imm8. */
export function pextr(c: Cpu, i: XInsn): void {
  if (!simdChecks(c, i)) return;
  const b = c.fpuBridge;
  b.cur = i;
  const n = i.k;
  // 0F C5 (PEXTRW r, xmm/mm, imm8) has the vector in rm and the GPR in reg.
  const legacyW = i.opcode === 0xc5;
  const mmx = legacyW && (i.prefixes & Prefix.OPSIZE) === 0;
  if (mmx) c.fpUnits.x87.mmxEnter();
  const bytes = mmx ? c.mmxU8 : c.xmmU8;
  const vreg = legacyW ? i.rm : i.reg;
  const base = mmx ? (vreg & 7) * 8 : vreg * 16;
  const lanes = (mmx ? 8 : 16) / n;
  const at = base + (i.imm & (lanes - 1)) * n;
  let lo = 0;
  let hi = 0;
  for (let k = 0; k < n; k++) {
    if (k < 4) lo |= bytes[at + k]! << (8 * k);
    else hi |= bytes[at + k]! << (8 * (k - 4));
  }
  if (legacyW) {
    c.setReg(c.codeMode === 64 ? 8 : 4, i.reg, lo & 0xffff, 0, i);
    return;
  }
  if (i.isMem) {
    tmp32[0] = lo;
    tmp32[1] = hi;
    b.writeMem(n, tmp);
  } else c.setReg(n === 8 ? 8 : c.codeMode === 64 ? 8 : 4, i.rm, lo, n === 8 ? hi : 0, i);
}
