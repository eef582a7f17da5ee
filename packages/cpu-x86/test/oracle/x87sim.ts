// Vector generation for the x87 oracle and the same sequence run on our X87 unit, both printed
// in the oracle's output format so that lines compare as strings.

import { f2xm1, fPatan, fPrem, fScale, fTrig, fXtract, fYl2x, fYl2xp1 } from "../../src/fpu/transcend.js";
import type { X87 } from "../../src/fpu/x87.js";
import {
  FArith,
  FConst,
  fArithF32,
  fArithF64,
  fArithInt,
  fArithReg,
  fBld,
  fBstp,
  fComi,
  fComMem,
  fComSt,
  fIld,
  fIst,
  fLdConst,
  fLdF32,
  fLdF64,
  fLdF80,
  fRndint,
  fSign,
  fSqrt,
  fStF32,
  fStF64,
  fTst,
  fXam,
  fXch,
} from "../../src/fpu/x87ops.js";
import { hex, Rng } from "./build.js";

/** Ops by test group. */
export const X87_OPS: Record<string, string[]> = {
  arith: ["fadd", "fsub", "fsubr", "fmul", "fdiv", "fdivr", "faddp1", "fsubp1"],
  sqrt_rndint: ["fsqrt", "frndint", "fchs", "fabs", "fxch"],
  compare: ["fcom", "fucom", "fcomi", "fucomi", "ftst", "fxam", "fcom64"],
  exact: ["fprem", "fprem1", "fscale", "fxtract"],
  memarith: ["fadd32", "fadd64", "fdiv32", "fsubr64", "fiadd16", "fimul32"],
  load: [
    "fld32",
    "fld64",
    "fild16",
    "fild32",
    "fild64",
    "fbld",
    "fld1",
    "fldl2t",
    "fldl2e",
    "fldpi",
    "fldlg2",
    "fldln2",
  ],
  store: [
    "fst32",
    "fst64",
    "fstp32",
    "fist16",
    "fist32",
    "fistp64",
    "fisttp16",
    "fisttp32",
    "fisttp64",
    "fbstp",
  ],
};

export interface Vec {
  line: string;
  op: string;
  cw: number;
  a: [number, number, number];
  b: [number, number, number];
  mhi: number;
  mlo: number;
  mask(out: string): string;
}

const EXT_EDGE: [number, number, number][] = [
  [0, 0, 0],
  [0x8000, 0, 0],
  [0x3fff, 0x80000000, 0],
  [0xbfff, 0x80000000, 0],
  [0x3fff, 0xc0000000, 0],
  [0x4000, 0xc0000000, 0],
  [0x7ffe, 0xffffffff, 0xffffffff],
  [0xfffe, 0xffffffff, 0xffffffff],
  [0x0001, 0x80000000, 0],
  [0x0000, 0x00000000, 0x00000001],
  [0x8000, 0x7fffffff, 0xffffffff],
  [0x0000, 0x80000000, 0x00000000], // pseudo-denormal
  [0x7fff, 0x80000000, 0],
  [0xffff, 0x80000000, 0],
  [0x7fff, 0xc0000000, 0],
  [0xffff, 0xc0000000, 0], // real indefinite
  [0x7fff, 0xc0000000, 0x1234],
  [0x7fff, 0xa0000000, 0], // SNaN
  [0xffff, 0x80000000, 1], // SNaN
  [0x4000, 0x40000000, 0], // unnormal
  [0x7fff, 0x00000000, 0], // pseudo-infinity
  [0x7fff, 0x40000000, 0], // pseudo-NaN
  [0x3ffe, 0xffffffff, 0xffffffff],
  [0x403e, 0xffffffff, 0xffffffff], // 2^64 - 1
  [0x403d, 0x80000000, 0x00000001],
  [0x401d, 0xffffffff, 0], // around 2^31
  [0x400e, 0x80000000, 0], // 32768
  [0x407e, 0xffffff80, 0], // f32 max and above
  [0x43fe, 0xfffffffff, 0xfffff800],
  [0x3f81, 0x80000000, 0], // f32 min normal
  [0x3f80, 0xffffff00, 0],
  [0x3c01, 0x80000000, 0], // f64 min normal
  [0x3bcd, 0x80000000, 0], // f64 min denormal
  [0x3fff, 0x80000080, 0], // 24-bit tie
  [0x3fff, 0x80000000, 0x00000400], // 53-bit tie
  [0x3fff, 0x80000000, 0x00000001],
];

function randExt(r: Rng, near?: [number, number, number]): [number, number, number] {
  const k = r.below(10);
  if (k < 4) return r.pick(EXT_EDGE);
  const sign = r.below(2) << 15;
  let e: number;
  if (near && k < 7) e = ((near[0] & 0x7fff) + r.below(80) - 40) & 0x7fff;
  else if (k < 8) e = 0x3fff + r.below(140) - 70;
  else e = r.below(0x8000);
  if (e === 0x7fff) e = 0x7ffe;
  let hi = (r.u32() | 0x80000000) >>> 0;
  let lo = r.u32();
  if (r.below(4) === 0) lo &= 0xfffff800; // exact in 53 bits
  if (r.below(4) === 0) {
    hi &= 0xffffff00;
    lo = 0;
  }
  if (e === 0) hi &= 0x7fffffff;
  return [sign | e, hi >>> 0, lo >>> 0];
}

const F32_EDGE = [
  0, 0x80000000, 0x3f800000, 0x00000001, 0x007fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001,
  0xffc00000, 0x7f7fffff, 0x00800000,
];
const F64_EDGE: [number, number][] = [
  [0, 0],
  [0x80000000, 0],
  [0x3ff00000, 0],
  [0, 1],
  [0x000fffff, 0xffffffff],
  [0x7ff00000, 0],
  [0x7ff80000, 0],
  [0x7ff00000, 1],
  [0x7fefffff, 0xffffffff],
  [0xfff80000, 0],
];

function randMem(r: Rng, op: string): [number, number] {
  const k = r.below(3);
  if (op.endsWith("32") && !op.startsWith("fi")) {
    return [0, k === 0 ? r.pick(F32_EDGE) : r.u32()];
  }
  if (op.endsWith("64") && !op.startsWith("fi")) {
    return k === 0 ? r.pick(F64_EDGE) : [r.u32(), r.u32()];
  }
  if (op === "fbld") {
    // 16 digits in M; digits 17,16 come from A_SE's low byte.
    let hi = 0;
    let lo = 0;
    for (let i = 0; i < 8; i++) lo = lo * 16 + r.below(10);
    for (let i = 0; i < 8; i++) hi = hi * 16 + r.below(10);
    return [hi >>> 0, lo >>> 0];
  }
  const edges: [number, number][] = [
    [0, 0],
    [0xffffffff, 0xffffffff],
    [0x7fffffff, 0xffffffff],
    [0x80000000, 0],
    [0, 0x8000],
    [0, 0x7fff],
  ];
  return k === 0 ? r.pick(edges) : [r.u32(), r.u32()];
}

const ARITH_LIKE = new Set(["fprem", "fprem1", "fcom", "fucom", "fcomi", "fucomi", "ftst", "fxam", "fcom64"]);

export function genVectors(ops: string[], n: number, seed: number): Vec[] {
  const r = new Rng(seed);
  const out: Vec[] = [];
  for (let i = 0; i < n; i++) {
    const op = ops[i % ops.length]!;
    const rc = r.below(4);
    const pc = r.pick([0, 2, 3, 3, 1]);
    const masks = r.below(3) === 0 ? r.below(64) : 0x3f;
    const cw = 0x40 | masks | (pc << 8) | (rc << 10);
    const b: [number, number, number] = [...randExt(r)];
    let a = randExt(r, b);
    if (op === "fscale" && r.below(4) !== 0) b[0] = (b[0] & 0x8000) | (0x3fff + r.below(18));
    if (op === "fbld") a = [(r.below(10) << 4) | r.below(10) | (r.below(2) << 15), a[1], a[2]];
    const [mhi, mlo] = randMem(r, op);
    const line = `${op} ${hex(cw, 4)} ${hex(a[0], 4)} ${hex(a[1], 8)} ${hex(a[2], 8)} ${hex(b[0], 4)} ${hex(b[1], 8)} ${hex(b[2], 8)} ${hex(mhi, 8)} ${hex(mlo, 8)}`;
    const isCmp = ARITH_LIKE.has(op);
    const isComi = op === "fcomi" || op === "fucomi";
    out.push({
      line,
      op,
      cw,
      a,
      b,
      mhi,
      mlo,
      mask(s: string): string {
        const f = s.split(" ");
        let sw = Number.parseInt(f[0]!, 16);
        const tw = Number.parseInt(f[1]!, 16);
        // C0, C2, C3 are undefined for all but compares/FXAM (SDM Vol. 2, each instruction's flags).
        if (!isCmp) sw &= ~0x4500;
        const top = (sw >>> 11) & 7;
        if (((tw >>> (2 * top)) & 3) === 3) f[2] = f[3] = f[4] = "-";
        if (((tw >>> (2 * ((top + 1) & 7))) & 3) === 3) f[5] = f[6] = f[7] = "-";
        f[0] = hex(sw, 4);
        if (!isComi) f[12] = "-";
        // Partial remainders: the reduction step N is implementation-defined (SDM Vol. 2 FPREM).
        if (op.startsWith("fprem") && sw & 0x400) f[1] = f[2] = f[3] = f[4] = f[0] = "partial";
        return f.join(" ");
      },
    });
  }
  return out;
}

const ARITH: Record<string, number> = {
  fadd: FArith.ADD,
  fsub: FArith.SUB,
  fsubr: FArith.SUBR,
  fmul: FArith.MUL,
  fdiv: FArith.DIV,
  fdivr: FArith.DIVR,
};

const mem = new Uint8Array(16);

/** Run the vector on our unit; print in the oracle's format, masked the same way. */
export function simulate(x: X87, v: Vec): string {
  x.init();
  x.setCw(v.cw);
  fLdF80(x, v.b[0], v.b[1], v.b[2]);
  fLdF80(x, v.a[0], v.a[1], v.a[2]);
  let mhi = v.mhi;
  let mlo = v.mlo;
  let mb8 = v.a[0] & 0xff;
  let mb9 = v.a[0] >>> 8;
  let fl = 0;
  const op = v.op;
  const m16 = (mlo << 16) >> 16;
  switch (op) {
    case "fprem":
    case "fprem1":
      fPrem(x, op === "fprem1");
      break;
    case "fscale":
      fScale(x);
      break;
    case "fxtract":
      fXtract(x);
      break;
    case "fsin":
    case "fcos":
    case "fsincos":
    case "fptan":
      fTrig(x, ({ fsin: 0, fcos: 1, fsincos: 2, fptan: 3 } as const)[op]);
      break;
    case "fpatan":
      fPatan(x);
      break;
    case "fyl2x":
      fYl2x(x);
      break;
    case "fyl2xp1":
      fYl2xp1(x);
      break;
    case "f2xm1":
      f2xm1(x);
      break;
    case "faddp1":
      fArithReg(x, FArith.ADD, 1, 0, true);
      break;
    case "fsubp1":
      fArithReg(x, FArith.SUB, 1, 0, true);
      break;
    case "fsqrt":
      fSqrt(x);
      break;
    case "frndint":
      fRndint(x);
      break;
    case "fchs":
      fSign(x, true);
      break;
    case "fabs":
      fSign(x, false);
      break;
    case "fxch":
      fXch(x, 1);
      break;
    case "fcom":
      fComSt(x, 1, false, 0);
      break;
    case "fucom":
      fComSt(x, 1, true, 0);
      break;
    case "fcomi":
    case "fucomi": {
      const f = fComi(x, 1, op === "fucomi", false);
      fl = f < 0 ? -1 : f;
      break;
    }
    case "ftst":
      fTst(x);
      break;
    case "fxam":
      fXam(x);
      break;
    case "fcom64":
      fComMem(x, "f64", mhi, mlo, false);
      break;
    case "fadd32":
      fArithF32(x, FArith.ADD, mlo);
      break;
    case "fdiv32":
      fArithF32(x, FArith.DIV, mlo);
      break;
    case "fadd64":
      fArithF64(x, FArith.ADD, mhi, mlo);
      break;
    case "fsubr64":
      fArithF64(x, FArith.SUBR, mhi, mlo);
      break;
    case "fiadd16":
      fArithInt(x, FArith.ADD, m16);
      break;
    case "fimul32":
      fArithInt(x, FArith.MUL, mlo | 0);
      break;
    case "fld32":
      fLdF32(x, mlo);
      break;
    case "fld64":
      fLdF64(x, mhi, mlo);
      break;
    case "fild16":
      fIld(x, m16 < 0 ? 0xffffffff : 0, m16 >>> 0);
      break;
    case "fild32":
      fIld(x, (mlo | 0) < 0 ? 0xffffffff : 0, mlo);
      break;
    case "fild64":
      fIld(x, mhi, mlo);
      break;
    case "fbld": {
      const dv = new DataView(mem.buffer);
      dv.setUint32(0, mlo, true);
      dv.setUint32(4, mhi, true);
      mem[8] = mb8;
      mem[9] = mb9;
      fBld(x, mem, 0);
      break;
    }
    case "fld1":
    case "fldl2t":
    case "fldl2e":
    case "fldpi":
    case "fldlg2":
    case "fldln2": {
      const k = {
        fld1: FConst.ONE,
        fldl2t: FConst.L2T,
        fldl2e: FConst.L2E,
        fldpi: FConst.PI,
        fldlg2: FConst.LG2,
        fldln2: FConst.LN2,
      }[op];
      fLdConst(x, k);
      break;
    }
    case "fst32":
    case "fstp32":
      if (fStF32(x, op === "fstp32")) mlo = x.oLo;
      break;
    case "fst64":
      if (fStF64(x, false)) {
        mhi = x.oHi;
        mlo = x.oLo;
      }
      break;
    case "fist16":
    case "fisttp16":
      if (fIst(x, 16, op === "fisttp16", op === "fisttp16"))
        mlo = ((mlo & 0xffff0000) | (x.oLo & 0xffff)) >>> 0;
      break;
    case "fist32":
    case "fisttp32":
      if (fIst(x, 32, op === "fisttp32", op === "fisttp32")) mlo = x.oLo;
      break;
    case "fistp64":
    case "fisttp64":
      if (fIst(x, 64, true, op === "fisttp64")) {
        mhi = x.oHi;
        mlo = x.oLo;
      }
      break;
    case "fbstp": {
      const dv = new DataView(mem.buffer);
      dv.setUint32(0, mlo, true);
      dv.setUint32(4, mhi, true);
      mem[8] = mb8;
      mem[9] = mb9;
      fBstp(x, mem, 0);
      mlo = dv.getUint32(0, true);
      mhi = dv.getUint32(4, true);
      mb8 = mem[8]!;
      mb9 = mem[9]!;
      break;
    }
    default: {
      const k = ARITH[op];
      if (k === undefined) throw new Error(`no sim for ${op}`);
      fArithReg(x, k, 0, 1, false);
    }
  }
  const p0 = x.phys(0);
  const p1 = x.phys(1);
  const s = [
    hex(x.getSw(), 4),
    hex(x.tw, 4),
    hex(x.se[p0]!, 4),
    hex(x.mant[2 * p0 + 1]!, 8),
    hex(x.mant[2 * p0]!, 8),
    hex(x.se[p1]!, 4),
    hex(x.mant[2 * p1 + 1]!, 8),
    hex(x.mant[2 * p1]!, 8),
    hex(mhi, 8),
    hex(mlo, 8),
    hex(mb8, 2),
    hex(mb9, 2),
    fl < 0 ? "keep" : hex(fl, 4),
  ].join(" ");
  return v.mask(s);
}
