// Vectors for the SSE oracle and the same instruction on our SSE helpers, printed alike.
import {
  addsubPd,
  addsubPs,
  arithPd,
  arithPs,
  arithSd,
  arithSs,
  cmpPd,
  cmpPs,
  comi,
  cvtdq2f,
  cvtf2dq,
  cvtf2si,
  cvtpd2ps,
  cvtps2pd,
  cvtsd2ss,
  cvtsi2f,
  cvtss2sd,
  dppd,
  dpps,
  hPd,
  hPs,
  roundPd,
  roundPs,
} from "../../src/simd/float.js";
import { FOp } from "../../src/simd/lanes.js";
import { SimdStatus, type SseState } from "../../src/simd/state.js";
import { hex, Rng } from "./build.js";

const ARITH = ["add", "sub", "mul", "div", "sqrt", "min", "max"];
const FOPS: Record<string, number> = {
  add: FOp.ADD,
  sub: FOp.SUB,
  mul: FOp.MUL,
  div: FOp.DIV,
  sqrt: FOp.SQRT,
  min: FOp.MIN,
  max: FOp.MAX,
};
const cmp8 = (b: string) => Array.from({ length: 8 }, (_, i) => `${b}${i}`);
const rnd = (b: string) => [0, 1, 2, 3, 4, 8, 9, 12].map((i) => `${b}${i}`);

export const SSE_OPS: Record<string, string[]> = {
  ps: ARITH.map((a) => `${a}ps`),
  ss: ARITH.map((a) => `${a}ss`),
  pd: ARITH.map((a) => `${a}pd`),
  sd: ARITH.map((a) => `${a}sd`),
  sse3: ["addsubps", "addsubpd", "haddps", "hsubps", "haddpd", "hsubpd"],
  cmp: [
    ...cmp8("cmpps"),
    ...cmp8("cmpss"),
    ...cmp8("cmppd"),
    ...cmp8("cmpsd"),
    "comiss",
    "ucomiss",
    "comisd",
    "ucomisd",
  ],
  cvt: [
    "cvtss2sd",
    "cvtsd2ss",
    "cvtps2pd",
    "cvtpd2ps",
    "cvtdq2ps",
    "cvtdq2pd",
    "cvtps2dq",
    "cvttps2dq",
    "cvtpd2dq",
    "cvttpd2dq",
    "cvtsi2ss",
    "cvtsi2ss64",
    "cvtsi2sd",
    "cvtsi2sd64",
    "cvtss2si",
    "cvttss2si",
    "cvtsd2si",
    "cvttsd2si",
    "cvtss2si64",
    "cvttsd2si64",
    "cvtsd2si64",
  ],
  sse41: [
    ...rnd("roundps"),
    ...rnd("roundss"),
    ...rnd("roundpd"),
    ...rnd("roundsd"),
    "dpps_f1",
    "dpps_7e",
    "dppd_33",
    "dppd_12",
  ],
};

const F32_EDGE = [
  0, 0x80000000, 0x3f800000, 0xbf800000, 0x3fc00000, 0x40000000, 0x00000001, 0x807fffff, 0x00800000,
  0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7fa00000, 0xff800001, 0x7fc12345,
  0x4b000001, 0x4effffff, 0x4f000000, 0xcf000000, 0x5f000000, 0x3f000000, 0x3fc00001, 0x40200000,
];
const F64_EDGE: [number, number][] = [
  [0, 0],
  [0x80000000, 0],
  [0x3ff00000, 0],
  [0xbff00000, 0],
  [0x3ff80000, 0],
  [0, 1],
  [0x800fffff, 0xffffffff],
  [0x00100000, 0],
  [0x7fefffff, 0xffffffff],
  [0x7ff00000, 0],
  [0xfff00000, 0],
  [0x7ff80000, 0],
  [0xfff80000, 0],
  [0x7ff40000, 0],
  [0x7ff00000, 1],
  [0x41dfffff, 0xffc00000],
  [0x41e00000, 0],
  [0xc1e00000, 0],
  [0x43e00000, 0],
  [0xc3e00000, 0],
  [0x3fe00000, 0],
  [0x47efffff, 0xe0000000],
  [0x36a00000, 0],
  [0x3ff00000, 0x00000001],
  [0x4330000, 1],
];

function f32(r: Rng, near: number): number {
  const k = r.below(8);
  if (k < 3) return r.pick(F32_EDGE);
  let e: number;
  if (k < 5) e = ((near >>> 23) & 0xff) + r.below(50) - 25;
  else if (k < 7) e = 127 + r.below(60) - 30;
  else e = r.below(256);
  e = Math.max(0, Math.min(254, e));
  let m = r.u32() & 0x7fffff;
  if (r.below(3) === 0) m &= 0x7ff000;
  return ((r.below(2) << 31) | (e << 23) | m) >>> 0;
}

function f64(r: Rng, nearHi: number): [number, number] {
  const k = r.below(8);
  if (k < 3) return r.pick(F64_EDGE);
  let e: number;
  if (k < 5) e = ((nearHi >>> 20) & 0x7ff) + r.below(120) - 60;
  else if (k < 7) e = 1023 + r.below(100) - 50;
  else e = r.below(2048);
  e = Math.max(0, Math.min(2046, e));
  let lo = r.u32();
  if (r.below(3) === 0) lo &= 0xffff0000;
  return [((r.below(2) << 31) | (e << 20) | (r.u32() & 0xfffff)) >>> 0, lo >>> 0];
}

export interface SseVec {
  line: string;
  op: string;
  mx: number;
  a: number[];
  b: number[];
}

const isDouble = (op: string) =>
  /pd|sd|2ps$|2ss$|dq$|si64$|si$/.test(op) && !/^cvt(t?)ss2si|ps2dq|ps2pd|dq2ps|si2ss/.test(op);

export function genSse(ops: string[], n: number, seed: number): SseVec[] {
  const r = new Rng(seed);
  const out: SseVec[] = [];
  for (let i = 0; i < n; i++) {
    const op = ops[i % ops.length]!;
    let mx = 0x1f80 | (r.below(4) << 13);
    if (r.below(4) === 0) mx |= 0x8000; // FTZ
    if (r.below(4) === 0) mx |= 0x40; // DAZ
    // DPPS/DPPD with unmasked exceptions: the host's stage-by-stage flag reporting is only
    // approximated (documented in src/simd/float.ts), so they are compared with all masked.
    if (r.below(6) === 0 && !op.startsWith("dpp")) mx &= ~(r.below(64) << 7); // unmask some
    if (r.below(4) === 0) mx |= r.below(64); // sticky flags already set
    const a: number[] = [];
    const b: number[] = [];
    if (isDouble(op) || op.startsWith("cvtdq2pd") || op.startsWith("cvtsi2sd")) {
      for (let j = 0; j < 2; j++) {
        const y = f64(r, 0x3ff00000);
        const x = f64(r, y[0]);
        a.push(x[1], x[0]);
        b.push(y[1], y[0]);
      }
    } else {
      for (let j = 0; j < 4; j++) {
        const y = f32(r, 0x3f800000);
        b.push(y);
        a.push(f32(r, y));
      }
    }
    if (/^cvt(dq|si)/.test(op) || op === "cvtdq2ps")
      for (let j = 0; j < 4; j++)
        if (r.below(2))
          b[j] =
            r.below(3) === 0
              ? r.pick([0, 0x80000000, 0x7fffffff, 0xffffffff, 1 << 24, (1 << 24) + 1])
              : r.u32();
    const line = `${op} ${hex(mx, 4)} ${a.map((w) => hex(w, 8)).join(" ")} ${b.map((w) => hex(w, 8)).join(" ")}`;
    out.push({ line, op, mx, a, b });
  }
  return out;
}

/** Run on our helpers; print like the oracle. */
export function simulateSse(u: SseState, v: SseVec): string {
  u.mxcsr = v.mx;
  u.u32.set(v.a, 0);
  u.u32.set(v.b, 4);
  const op = v.op;
  let st: number = SimdStatus.Ok;
  let fl = 0x44; // the oracle's EFLAGS when the op does not write them (from its setup)
  const m = /^(add|sub|mul|div|sqrt|min|max)(ps|ss|pd|sd)$/.exec(op);
  const c = /^cmp(ps|ss|pd|sd)(\d)$/.exec(op);
  const rn = /^round(ps|ss|pd|sd)(\d+)$/.exec(op);
  if (m) {
    const k = FOPS[m[1]!]!;
    const f = { ps: arithPs, ss: arithSs, pd: arithPd, sd: arithSd }[m[2] as "ps"]!;
    st = f(u, k, u, 0, u, 4);
  } else if (c) {
    const imm = Number(c[2]);
    st =
      c[1]![1] === "s" ? cmpPs(u, imm, c[1] === "ss", u, 0, u, 4) : cmpPd(u, imm, c[1] === "sd", u, 0, u, 4);
  } else if (rn) {
    const imm = Number(rn[2]);
    st =
      rn[1]![1] === "s"
        ? roundPs(u, imm, rn[1] === "ss", u, 0, u, 4)
        : roundPd(u, imm, rn[1] === "sd", u, 0, u, 4);
  } else {
    const gpr = (w: 32 | 64, dbl: boolean, t: boolean) => {
      st = cvtf2si(u, dbl, w, t, u, 4);
      if (st === SimdStatus.Ok) u.u32.set([u.res[0]!, w === 64 ? u.res[1]! : 0, 0, 0], 0);
    };
    switch (op) {
      case "addsubps":
        st = addsubPs(u, u, 0, u, 4);
        break;
      case "addsubpd":
        st = addsubPd(u, u, 0, u, 4);
        break;
      case "haddps":
      case "hsubps":
        st = hPs(u, op === "hsubps", u, 0, u, 4);
        break;
      case "haddpd":
      case "hsubpd":
        st = hPd(u, op === "hsubpd", u, 0, u, 4);
        break;
      case "comiss":
      case "ucomiss":
      case "comisd":
      case "ucomisd": {
        const r = comi(u, op.endsWith("sd"), op.startsWith("u"), u, 0, u, 4);
        if (r < 0) st = SimdStatus.Xm;
        else fl = r;
        break;
      }
      case "cvtss2sd":
        st = cvtss2sd(u, u, 0, u, 4);
        break;
      case "cvtsd2ss":
        st = cvtsd2ss(u, u, 0, u, 4);
        break;
      case "cvtps2pd":
        st = cvtps2pd(u, u, 0, u, 4);
        break;
      case "cvtpd2ps":
        st = cvtpd2ps(u, u, 0, u, 4);
        break;
      case "cvtdq2ps":
      case "cvtdq2pd":
        st = cvtdq2f(u, op === "cvtdq2pd", u, 0, u, 4);
        break;
      case "cvtps2dq":
      case "cvttps2dq":
        st = cvtf2dq(u, false, op === "cvttps2dq", u, 0, u, 4);
        break;
      case "cvtpd2dq":
      case "cvttpd2dq":
        st = cvtf2dq(u, true, op === "cvttpd2dq", u, 0, u, 4);
        break;
      case "cvtsi2ss":
      case "cvtsi2sd": {
        const lo = v.b[0]!;
        st = cvtsi2f(u, op === "cvtsi2sd", lo & 0x80000000 ? 0xffffffff : 0, lo, u, 0);
        break;
      }
      case "cvtsi2ss64":
      case "cvtsi2sd64":
        st = cvtsi2f(u, op === "cvtsi2sd64", v.b[1]!, v.b[0]!, u, 0);
        break;
      case "cvtss2si":
        gpr(32, false, false);
        break;
      case "cvttss2si":
        gpr(32, false, true);
        break;
      case "cvtsd2si":
        gpr(32, true, false);
        break;
      case "cvttsd2si":
        gpr(32, true, true);
        break;
      case "cvtss2si64":
        gpr(64, false, false);
        break;
      case "cvttsd2si64":
        gpr(64, true, true);
        break;
      case "cvtsd2si64":
        gpr(64, true, false);
        break;
      case "dpps_f1":
      case "dpps_7e":
        st = dpps(u, op === "dpps_f1" ? 0xf1 : 0x7e, u, 0, u, 4);
        break;
      case "dppd_33":
      case "dppd_12":
        st = dppd(u, op === "dppd_33" ? 0x33 : 0x12, u, 0, u, 4);
        break;
      default:
        throw new Error(`no sim for ${op}`);
    }
  }
  if (st === SimdStatus.Xm) return `trap ${hex(u.mxcsr, 8)}`;
  return `${hex(u.mxcsr, 8)} ${Array.from(u.u32.subarray(0, 4), (w) => hex(w, 8)).join(" ")} ${hex(fl, 4)}`;
}
