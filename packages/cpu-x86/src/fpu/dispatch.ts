/**
 * Dispatch from the decoder's `Op` ids to the x87 semantics (data/02-x87.txt lists the forms).
 * A handler decodes its form from `insn.opcode` (D8..DF), `insn.isMem` and `insn.rm & 7`
 * (= ST(i)), moves memory operands through `FpuHost`, and calls the functions of x87ops.ts,
 * transcend.ts and image.ts. The executor's pre-checks are listed in host.ts.
 */
import { Op } from "../generated/ops.js";
import type { FpUnits, FpuHost, UnitInsn } from "./host.js";
import { FpuVector } from "./host.js";
import { fldenv, frstor, fsave, fstenv } from "./image.js";
import { f2xm1, fPatan, fPrem, fScale, fTrig, fXtract, fYl2x, fYl2xp1 } from "./transcend.js";
import {
  FArith,
  FConst,
  fArithF32,
  fArithF64,
  fArithInt,
  fArithReg,
  fBld,
  fBstp,
  fCmov,
  fComi,
  fComMem,
  fComSt,
  fFree,
  fIld,
  fIncDecStp,
  fIst,
  fLdConst,
  fLdF32,
  fLdF64,
  fLdF80,
  fLdSt,
  fRndint,
  fSign,
  fSqrt,
  fStF32,
  fStF64,
  fStF80,
  fStSt,
  fTst,
  fXam,
  fXch,
} from "./x87ops.js";

/** A dispatch-table entry. */
export type FpuHandler = (u: FpUnits, h: FpuHost, i: UnitInsn) => void;

const CF = 0x01;
const PF = 0x04;
const ZF = 0x40;
const STATUS = 0x8d5; // OF SF ZF AF PF CF

function arith(k: number, pop: boolean): FpuHandler {
  return (u, h, i) => {
    const x = u.x87;
    if (i.isMem) {
      const dv = u.dv;
      if (i.opcode === 0xd8 || i.opcode === 0xdc) {
        const n = i.opcode === 0xd8 ? 4 : 8;
        if (!h.readMem(n, u.buf)) return;
        if (n === 4) fArithF32(x, k, dv.getUint32(0, true));
        else fArithF64(x, k, dv.getUint32(4, true), dv.getUint32(0, true));
      } else {
        // DA: m32int, DE: m16int
        const n = i.opcode === 0xda ? 4 : 2;
        if (!h.readMem(n, u.buf)) return;
        fArithInt(x, k, n === 4 ? dv.getInt32(0, true) : dv.getInt16(0, true));
      }
      return;
    }
    const st = i.rm & 7;
    if (i.opcode === 0xd8) fArithReg(x, k, 0, st, false);
    else fArithReg(x, k, st, 0, pop);
  };
}

function com(quiet: boolean, pops: number): FpuHandler {
  return (u, h, i) => {
    const x = u.x87;
    if (!i.isMem) {
      fComSt(x, i.rm & 7, quiet, pops); // FCOMPP (DE D9) and FUCOMPP (DA E9) have rm = 1
      return;
    }
    const dv = u.dv;
    const op = i.opcode;
    const n = op === 0xd8 || op === 0xda ? 4 : op === 0xdc ? 8 : 2;
    if (!h.readMem(n, u.buf)) return;
    if (op === 0xd8) fComMem(x, "f32", 0, dv.getUint32(0, true), pops > 0);
    else if (op === 0xdc) fComMem(x, "f64", dv.getUint32(4, true), dv.getUint32(0, true), pops > 0);
    else {
      const v = n === 4 ? dv.getInt32(0, true) : dv.getInt16(0, true);
      fComMem(x, "int", v < 0 ? 0xffffffff : 0, v >>> 0, pops > 0);
    }
  };
}

function comi(quiet: boolean, pop: boolean): FpuHandler {
  return (u, h, i) => {
    const f = fComi(u.x87, i.rm & 7, quiet, pop);
    if (f >= 0) h.setFlags(STATUS, f);
  };
}

function store(pop: boolean): FpuHandler {
  return (u, h, i) => {
    const x = u.x87;
    if (!i.isMem) {
      fStSt(x, i.rm & 7, pop);
      return;
    }
    const dv = u.dv;
    let n: number;
    let ok: boolean;
    if (i.opcode === 0xd9) {
      ok = fStF32(x, pop);
      dv.setUint32(0, x.oLo, true);
      n = 4;
    } else if (i.opcode === 0xdd) {
      ok = fStF64(x, pop);
      dv.setUint32(0, x.oLo, true);
      dv.setUint32(4, x.oHi, true);
      n = 8;
    } else {
      ok = fStF80(x);
      dv.setUint32(0, x.oLo, true);
      dv.setUint32(4, x.oHi, true);
      dv.setUint16(8, x.oSe, true);
      n = 10;
    }
    // A fault on the store leaves the x87 state updated; the SDM requires the store to be
    // checked first, which the executor can do by probing the operand before dispatch.
    if (ok) h.writeMem(n, u.buf);
  };
}

function ist(pop: boolean, truncate: boolean): FpuHandler {
  return (u, h, i) => {
    const x = u.x87;
    const dv = u.dv;
    const w =
      i.opcode === 0xdb ? 32 : i.opcode === 0xdd || (i.opcode === 0xdf && (i.reg & 7) === 7) ? 64 : 16;
    if (!fIst(x, w, pop, truncate)) return;
    dv.setUint32(0, x.oLo, true);
    dv.setUint32(4, x.oHi, true);
    h.writeMem(w >>> 3, u.buf);
  };
}

function cmov(test: (f: number) => boolean): FpuHandler {
  return (u, h, i) => fCmov(u.x87, i.rm & 7, test(h.flags()));
}

/** Handlers by Op id (x87 instructions). */
export const X87_HANDLERS: Partial<Record<number, FpuHandler>> = {
  [Op.FADD]: arith(FArith.ADD, false),
  [Op.FMUL]: arith(FArith.MUL, false),
  [Op.FSUB]: arith(FArith.SUB, false),
  [Op.FSUBR]: arith(FArith.SUBR, false),
  [Op.FDIV]: arith(FArith.DIV, false),
  [Op.FDIVR]: arith(FArith.DIVR, false),
  [Op.FADDP]: arith(FArith.ADD, true),
  [Op.FMULP]: arith(FArith.MUL, true),
  [Op.FSUBP]: arith(FArith.SUB, true),
  [Op.FSUBRP]: arith(FArith.SUBR, true),
  [Op.FDIVP]: arith(FArith.DIV, true),
  [Op.FDIVRP]: arith(FArith.DIVR, true),
  [Op.FIADD]: arith(FArith.ADD, false),
  [Op.FIMUL]: arith(FArith.MUL, false),
  [Op.FISUB]: arith(FArith.SUB, false),
  [Op.FISUBR]: arith(FArith.SUBR, false),
  [Op.FIDIV]: arith(FArith.DIV, false),
  [Op.FIDIVR]: arith(FArith.DIVR, false),
  [Op.FCOM]: com(false, 0),
  [Op.FCOMP]: com(false, 1),
  [Op.FCOMPP]: com(false, 2),
  [Op.FICOM]: com(false, 0),
  [Op.FICOMP]: com(false, 1),
  [Op.FUCOM]: com(true, 0),
  [Op.FUCOMP]: com(true, 1),
  [Op.FUCOMPP]: com(true, 2),
  [Op.FCOMI]: comi(false, false),
  [Op.FCOMIP]: comi(false, true),
  [Op.FUCOMI]: comi(true, false),
  [Op.FUCOMIP]: comi(true, true),
  [Op.FTST]: (u) => fTst(u.x87),
  [Op.FXAM]: (u) => fXam(u.x87),
  [Op.FLD]: (u, h, i) => {
    const x = u.x87;
    if (!i.isMem) return fLdSt(x, i.rm & 7);
    const dv = u.dv;
    const n = i.opcode === 0xd9 ? 4 : i.opcode === 0xdd ? 8 : 10;
    if (!h.readMem(n, u.buf)) return;
    if (n === 4) fLdF32(x, dv.getUint32(0, true));
    else if (n === 8) fLdF64(x, dv.getUint32(4, true), dv.getUint32(0, true));
    else fLdF80(x, dv.getUint16(8, true), dv.getUint32(4, true), dv.getUint32(0, true));
  },
  [Op.FILD]: (u, h, i) => {
    const dv = u.dv;
    const n = i.opcode === 0xdb ? 4 : (i.reg & 7) === 5 ? 8 : 2;
    if (!h.readMem(n, u.buf)) return;
    if (n === 8) fIld(u.x87, dv.getUint32(4, true), dv.getUint32(0, true));
    else {
      const v = n === 4 ? dv.getInt32(0, true) : dv.getInt16(0, true);
      fIld(u.x87, v < 0 ? 0xffffffff : 0, v >>> 0);
    }
  },
  [Op.FBLD]: (u, h) => {
    if (h.readMem(10, u.buf)) fBld(u.x87, u.buf, 0);
  },
  [Op.FBSTP]: (u, h) => {
    if (fBstp(u.x87, u.buf, 0)) h.writeMem(10, u.buf);
  },
  [Op.FST]: store(false),
  [Op.FSTP]: store(true),
  [Op.FSTPNCE]: store(true),
  [Op.FIST]: ist(false, false),
  [Op.FISTP]: ist(true, false),
  [Op.FISTTP]: ist(true, true),
  [Op.FLD1]: (u) => fLdConst(u.x87, FConst.ONE),
  [Op.FLDL2T]: (u) => fLdConst(u.x87, FConst.L2T),
  [Op.FLDL2E]: (u) => fLdConst(u.x87, FConst.L2E),
  [Op.FLDPI]: (u) => fLdConst(u.x87, FConst.PI),
  [Op.FLDLG2]: (u) => fLdConst(u.x87, FConst.LG2),
  [Op.FLDLN2]: (u) => fLdConst(u.x87, FConst.LN2),
  [Op.FLDZ]: (u) => fLdConst(u.x87, FConst.Z),
  [Op.FXCH]: (u, _h, i) => fXch(u.x87, i.rm & 7),
  [Op.FCHS]: (u) => fSign(u.x87, true),
  [Op.FABS]: (u) => fSign(u.x87, false),
  [Op.FSQRT]: (u) => fSqrt(u.x87),
  [Op.FRNDINT]: (u) => fRndint(u.x87),
  [Op.FSCALE]: (u) => fScale(u.x87),
  [Op.FXTRACT]: (u) => fXtract(u.x87),
  [Op.FPREM]: (u) => fPrem(u.x87, false),
  [Op.FPREM1]: (u) => fPrem(u.x87, true),
  [Op.FSIN]: (u) => fTrig(u.x87, 0),
  [Op.FCOS]: (u) => fTrig(u.x87, 1),
  [Op.FSINCOS]: (u) => fTrig(u.x87, 2),
  [Op.FPTAN]: (u) => fTrig(u.x87, 3),
  [Op.FPATAN]: (u) => fPatan(u.x87),
  [Op.F2XM1]: (u) => f2xm1(u.x87),
  [Op.FYL2X]: (u) => fYl2x(u.x87),
  [Op.FYL2XP1]: (u) => fYl2xp1(u.x87),
  [Op.FINCSTP]: (u) => fIncDecStp(u.x87, true),
  [Op.FDECSTP]: (u) => fIncDecStp(u.x87, false),
  [Op.FFREE]: (u, _h, i) => fFree(u.x87, i.rm & 7),
  [Op.FFREEP]: (u, _h, i) => {
    fFree(u.x87, i.rm & 7);
    u.x87.pop();
  },
  [Op.FNOP]: () => {},
  // 8087/287 control instructions: no-ops on later FPUs (SDM Vol. 2 FNOP; App. "FENI/FDISI/FSETPM").
  [Op.FNENI]: () => {},
  [Op.FNDISI]: () => {},
  [Op.FNSETPM]: () => {},
  [Op.FNCLEX]: (u) => u.x87.clex(),
  [Op.FNINIT]: (u) => u.x87.init(),
  [Op.FLDCW]: (u, h) => {
    if (h.readMem(2, u.buf)) u.x87.setCw(u.dv.getUint16(0, true));
  },
  [Op.FNSTCW]: (u, h) => {
    u.dv.setUint16(0, u.x87.cw, true);
    h.writeMem(2, u.buf);
  },
  [Op.FNSTSW]: (u, h, i) => {
    const sw = u.x87.getSw();
    if (!i.isMem) return h.setGpr(0, 2, sw, 0); // FNSTSW AX
    u.dv.setUint16(0, sw, true);
    h.writeMem(2, u.buf);
  },
  [Op.FNSTENV]: (u, h, i) => {
    const op32 = i.opSize !== 2;
    fstenv(u.x87, u.buf, 0, op32, h.protectedMode());
    h.writeMem(op32 ? 28 : 14, u.buf);
  },
  [Op.FLDENV]: (u, h, i) => {
    const op32 = i.opSize !== 2;
    if (h.readMem(op32 ? 28 : 14, u.buf)) fldenv(u.x87, u.buf, 0, op32, h.protectedMode());
  },
  [Op.FNSAVE]: (u, h, i) => {
    const op32 = i.opSize !== 2;
    fsave(u.x87, u.buf, 0, op32, h.protectedMode());
    h.writeMem(op32 ? 108 : 94, u.buf);
  },
  [Op.FRSTOR]: (u, h, i) => {
    const op32 = i.opSize !== 2;
    if (h.readMem(op32 ? 108 : 94, u.buf)) frstor(u.x87, u.buf, 0, op32, h.protectedMode());
  },
  [Op.FCMOVB]: cmov((f) => (f & CF) !== 0),
  [Op.FCMOVE]: cmov((f) => (f & ZF) !== 0),
  [Op.FCMOVBE]: cmov((f) => (f & (CF | ZF)) !== 0),
  [Op.FCMOVU]: cmov((f) => (f & PF) !== 0),
  [Op.FCMOVNB]: cmov((f) => (f & CF) === 0),
  [Op.FCMOVNE]: cmov((f) => (f & ZF) === 0),
  [Op.FCMOVNBE]: cmov((f) => (f & (CF | ZF)) === 0),
  [Op.FCMOVNU]: cmov((f) => (f & PF) === 0),
};

/** #UD helper for forms a table does not cover (kept for symmetry with the SIMD table). */
export function fpuUndefined(h: FpuHost): void {
  h.raise(FpuVector.UD, 0);
}
