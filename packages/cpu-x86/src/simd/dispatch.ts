/**
 * Dispatch from the decoder's `Op` ids to the SSE..SSE4.2 and MMX helpers (data/03-sse.txt,
 * data/04-sse4.txt). Register operands: `insn.reg` is the destination (XMM 0..15 or MM 0..7),
 * `insn.rm` the source register; a memory source is read through `FpuHost.readMem` into
 * `sse.tmp`. Dual MMX/SSE2 forms pick XMM when a 66 prefix is present. Not here (executor):
 * data moves (MOV*, PINSR*, PEXTR*, EXTRACTPS, MASKMOV*), the string forms of CMPSD (map 0),
 * and the pre-checks listed in src/fpu/host.ts.
 */
import { Prefix } from "../decoder/insn.js";
import { type FpUnits, type FpuHost, FpuVector, type UnitInsn } from "../fpu/host.js";
import {
  fxrstor,
  fxsave,
  ImageStatus,
  pkruSlot,
  XCOMP_PKRU,
  XSAVE_LEGACY_BYTES,
  XSAVE_PKRU_BYTES,
  xrstor,
  xrstorCheck,
  xsave,
} from "../fpu/image.js";
import { Op } from "../generated/ops.js";
import {
  addsubPd,
  addsubPs,
  approxPs,
  arithPd,
  arithPs,
  arithSd,
  arithSs,
  cmpPd,
  cmpPs,
  comi,
  cvtdq2f,
  cvtf2dq,
  cvtf2pi,
  cvtf2si,
  cvtpd2ps,
  cvtpi2f,
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
} from "./float.js";
import { IOp, intOp, Shift, shiftBytes, shiftOp } from "./int.js";
import { FOp } from "./lanes.js";
import {
  blendImm,
  blendVar,
  insertps,
  movddup,
  movmsk,
  movsdup,
  mpsadbw,
  Pack,
  pack,
  palignr,
  phminposuw,
  pmovmskb,
  pmovx,
  pshufb,
  pshufd,
  pshufw16,
  pshufwMmx,
  ptest,
  shufpd,
  shufps,
  unpack,
} from "./shuffle.js";
import { SimdStatus, type XmmFile } from "./state.js";
import {
  crc32c,
  explicitLength,
  lzcnt,
  pcmpstr,
  pcmpstrIndex,
  pcmpstrMask,
  popcnt,
  tzcnt,
} from "./string.js";

/**
 * A handler. REX.W shows as `opSize` 8: none of these forms defaults to a 64-bit operand size
 * (decode.ts: 8 only with REX.W, 4 for the forms whose 66 is a mandatory prefix).
 */
export type SimdHandler = (u: FpUnits, h: FpuHost, i: UnitInsn) => void;

const STATUS = 0x8d5;

/** Source operand file of the current instruction (register file, or `sse.tmp` after a memory load). */
function src(u: FpUnits, h: FpuHost, i: UnitInsn, bytes: number, mmx: boolean): XmmFile | null {
  if (!i.isMem) return mmx ? u.mmx : u.sse;
  if (!h.readMem(bytes, u.buf)) return null;
  u.sse.tmp.u8.set(u.buf.subarray(0, bytes), 0);
  return u.sse.tmp;
}
const srcOff = (i: UnitInsn, mmx: boolean): number => (i.isMem ? 0 : mmx ? 2 * (i.rm & 7) : 4 * i.rm);

function xm(_u: FpUnits, h: FpuHost, st: number): void {
  if (st === SimdStatus.Xm) h.raise(FpuVector.XM, 0);
}

type FloatKind = "ps" | "ss" | "pd" | "sd";
const MEM_BYTES: Record<FloatKind, number> = { ps: 16, ss: 4, pd: 16, sd: 8 };
const ARITH = { ps: arithPs, ss: arithSs, pd: arithPd, sd: arithSd };

function fa(kind: FloatKind, op: number): SimdHandler {
  const f = ARITH[kind];
  return (u, h, i) => {
    const S = src(u, h, i, MEM_BYTES[kind], false);
    if (S) xm(u, h, f(u.sse, op, u.sse, 4 * i.reg, S, srcOff(i, false)));
  };
}

/** Packed-integer op on MMX (no 66) or XMM (66). */
function ip(op: number): SimdHandler {
  return (u, h, i) => {
    const x = (i.prefixes & Prefix.OPSIZE) !== 0;
    if (!x) u.x87.mmxEnter();
    const S = src(u, h, i, x ? 16 : 8, !x);
    if (S) intOp(u.sse, op, x ? u.sse : u.mmx, x ? 4 * i.reg : 2 * (i.reg & 7), S, srcOff(i, !x), x ? 4 : 2);
  };
}

/** Packed-integer op that exists only on XMM (logic on PS/PD, SSE4.1). */
function ix(op: number): SimdHandler {
  return (u, h, i) => {
    const S = src(u, h, i, 16, false);
    if (S) intOp(u.sse, op, u.sse, 4 * i.reg, S, srcOff(i, false), 4);
  };
}

/** Shifts: 0F 71/72/73 /n ib act on rm by imm8; the other forms shift reg by a register/memory count. */
function sh(kind: number, bits: 16 | 32 | 64): SimdHandler {
  return (u, h, i) => {
    const x = (i.prefixes & Prefix.OPSIZE) !== 0;
    if (!x) u.x87.mmxEnter();
    const D = x ? u.sse : u.mmx;
    if (i.opcode >= 0x71 && i.opcode <= 0x73) {
      shiftOp(D, x ? 4 * i.rm : 2 * (i.rm & 7), x ? 4 : 2, kind, bits, i.imm & 0xff, 0);
      return;
    }
    const S = src(u, h, i, x ? 16 : 8, !x);
    if (!S) return;
    const o = srcOff(i, !x);
    shiftOp(D, x ? 4 * i.reg : 2 * (i.reg & 7), x ? 4 : 2, kind, bits, S.u32[o]!, S.u32[o + 1]!);
  };
}

/** Two-XMM-operand helper with an optional imm8: f(u, D, d, S, s, imm). */
function x2(
  bytes: number,
  f: (u: FpUnits, D: XmmFile, d: number, S: XmmFile, s: number, imm: number) => unknown,
): SimdHandler {
  return (u, h, i) => {
    const S = src(u, h, i, bytes, false);
    if (!S) return;
    const st = f(u, u.sse, 4 * i.reg, S, srcOff(i, false), i.imm & 0xff);
    if (typeof st === "number") xm(u, h, st);
  };
}

function gprInt(h: FpuHost, i: UnitInsn, u: FpUnits, w64: boolean): [number, number] | null {
  if (!i.isMem) return [h.gprLo(i.rm), w64 ? h.gprHi(i.rm) : 0];
  if (!h.readMem(w64 ? 8 : 4, u.buf)) return null;
  return [u.dv.getUint32(0, true), w64 ? u.dv.getUint32(4, true) : 0];
}

function cvt2si(double: boolean, truncate: boolean): SimdHandler {
  return (u, h, i) => {
    const w64 = i.opSize === 8;
    const S = src(u, h, i, double ? 8 : 4, false);
    if (!S) return;
    const st = cvtf2si(u.sse, double, w64 ? 64 : 32, truncate, S, srcOff(i, false));
    if (st === SimdStatus.Xm) return h.raise(FpuVector.XM, 0);
    h.setGpr(i.reg, w64 ? 8 : 4, u.sse.res[0]!, u.sse.res[1]!);
  };
}

function pcmp(explicit: boolean, index: boolean): SimdHandler {
  return (u, h, i) => {
    const S = src(u, h, i, 16, false);
    if (!S) return;
    const imm = i.imm & 0xff;
    const n = imm & 1 ? 8 : 16;
    const wide = i.opSize === 8;
    const la = explicit ? explicitLength(h.gprLo(0), h.gprHi(0), wide, n) : -1;
    const lb = explicit ? explicitLength(h.gprLo(2), h.gprHi(2), wide, n) : -1;
    const fl = pcmpstr(u.sse, u.sse, 4 * i.reg, S, srcOff(i, false), imm, la, lb);
    if (index) h.setGpr(1, 4, pcmpstrIndex(u.sse, imm), 0);
    else pcmpstrMask(u.sse, imm, u.sse, 0);
    h.setFlags(STATUS, fl);
  };
}

function bitcount(f: typeof popcnt): SimdHandler {
  return (u, h, i) => {
    const bytes = i.opSize;
    let lo: number;
    let hi = 0;
    if (i.isMem) {
      if (!h.readMem(bytes, u.buf)) return;
      lo = bytes === 2 ? u.dv.getUint16(0, true) : u.dv.getUint32(0, true);
      if (bytes === 8) hi = u.dv.getUint32(4, true);
    } else {
      lo = h.gprLo(i.rm);
      hi = bytes === 8 ? h.gprHi(i.rm) : 0;
    }
    const fl = f(u.sse, lo, hi, (bytes * 8) as 16 | 32 | 64);
    h.setGpr(i.reg, bytes as 2 | 4 | 8, u.sse.res[0]!, 0);
    h.setFlags(STATUS, fl);
  };
}

const PMOVX: [number, 1 | 2 | 4, 2 | 4 | 8, boolean][] = [
  [Op.PMOVSXBW, 1, 2, true],
  [Op.PMOVZXBW, 1, 2, false],
  [Op.PMOVSXBD, 1, 4, true],
  [Op.PMOVZXBD, 1, 4, false],
  [Op.PMOVSXBQ, 1, 8, true],
  [Op.PMOVZXBQ, 1, 8, false],
  [Op.PMOVSXWD, 2, 4, true],
  [Op.PMOVZXWD, 2, 4, false],
  [Op.PMOVSXWQ, 2, 8, true],
  [Op.PMOVZXWQ, 2, 8, false],
  [Op.PMOVSXDQ, 4, 8, true],
  [Op.PMOVZXDQ, 4, 8, false],
];

const table: Partial<Record<number, SimdHandler>> = {};
const FK: [string, number][] = [
  ["ADD", FOp.ADD],
  ["SUB", FOp.SUB],
  ["MUL", FOp.MUL],
  ["DIV", FOp.DIV],
  ["SQRT", FOp.SQRT],
  ["MIN", FOp.MIN],
  ["MAX", FOp.MAX],
];
const OPS = Op as Record<string, number>;
for (const [name, fop] of FK)
  for (const k of ["ps", "ss", "pd", "sd"] as const) table[OPS[`${name}${k.toUpperCase()}`]!] = fa(k, fop);
for (const name of Object.keys(IOp)) {
  const id = OPS[name];
  if (id === undefined) continue;
  const v = (IOp as Record<string, number>)[name]!;
  const sse41 =
    v === IOp.PMULLD ||
    v === IOp.PMULDQ ||
    v === IOp.PCMPEQQ ||
    v === IOp.PCMPGTQ ||
    (v >= IOp.PMINSB && v <= IOp.PMAXUD);
  table[id] = sse41 ? ix(v) : ip(v);
}
for (const [id, from, to, signed] of PMOVX)
  table[id] = x2(16 / (to / from), (u, D, d, S, s) => pmovx(u.sse, D, d, S, s, from, to, signed));

/** Handlers by Op id (SSE..SSE4.2, MMX, POPCNT/LZCNT/TZCNT, CRC32, MXCSR and save images). */
export const SIMD_HANDLERS: Partial<Record<number, SimdHandler>> = {
  ...table,
  [Op.ANDPS]: ix(IOp.PAND),
  [Op.ANDPD]: ix(IOp.PAND),
  [Op.ANDNPS]: ix(IOp.PANDN),
  [Op.ANDNPD]: ix(IOp.PANDN),
  [Op.ORPS]: ix(IOp.POR),
  [Op.ORPD]: ix(IOp.POR),
  [Op.XORPS]: ix(IOp.PXOR),
  [Op.XORPD]: ix(IOp.PXOR),
  [Op.ADDSUBPS]: x2(16, (u, D, d, S, s) => addsubPs(u.sse, D, d, S, s)),
  [Op.ADDSUBPD]: x2(16, (u, D, d, S, s) => addsubPd(u.sse, D, d, S, s)),
  [Op.HADDPS]: x2(16, (u, D, d, S, s) => hPs(u.sse, false, D, d, S, s)),
  [Op.HSUBPS]: x2(16, (u, D, d, S, s) => hPs(u.sse, true, D, d, S, s)),
  [Op.HADDPD]: x2(16, (u, D, d, S, s) => hPd(u.sse, false, D, d, S, s)),
  [Op.HSUBPD]: x2(16, (u, D, d, S, s) => hPd(u.sse, true, D, d, S, s)),
  [Op.CMPPS]: x2(16, (u, D, d, S, s, imm) => cmpPs(u.sse, imm, false, D, d, S, s)),
  [Op.CMPSS]: x2(4, (u, D, d, S, s, imm) => cmpPs(u.sse, imm, true, D, d, S, s)),
  [Op.CMPPD]: x2(16, (u, D, d, S, s, imm) => cmpPd(u.sse, imm, false, D, d, S, s)),
  [Op.CMPSD]: x2(8, (u, D, d, S, s, imm) => cmpPd(u.sse, imm, true, D, d, S, s)),
  [Op.COMISS]: comiH(false, false),
  [Op.UCOMISS]: comiH(false, true),
  [Op.COMISD]: comiH(true, false),
  [Op.UCOMISD]: comiH(true, true),
  [Op.CVTSS2SD]: x2(4, (u, D, d, S, s) => cvtss2sd(u.sse, D, d, S, s)),
  [Op.CVTSD2SS]: x2(8, (u, D, d, S, s) => cvtsd2ss(u.sse, D, d, S, s)),
  [Op.CVTPS2PD]: x2(8, (u, D, d, S, s) => cvtps2pd(u.sse, D, d, S, s)),
  [Op.CVTPD2PS]: x2(16, (u, D, d, S, s) => cvtpd2ps(u.sse, D, d, S, s)),
  [Op.CVTDQ2PS]: x2(16, (u, D, d, S, s) => cvtdq2f(u.sse, false, D, d, S, s)),
  [Op.CVTDQ2PD]: x2(8, (u, D, d, S, s) => cvtdq2f(u.sse, true, D, d, S, s)),
  [Op.CVTPS2DQ]: x2(16, (u, D, d, S, s) => cvtf2dq(u.sse, false, false, D, d, S, s)),
  [Op.CVTTPS2DQ]: x2(16, (u, D, d, S, s) => cvtf2dq(u.sse, false, true, D, d, S, s)),
  [Op.CVTPD2DQ]: x2(16, (u, D, d, S, s) => cvtf2dq(u.sse, true, false, D, d, S, s)),
  [Op.CVTTPD2DQ]: x2(16, (u, D, d, S, s) => cvtf2dq(u.sse, true, true, D, d, S, s)),
  [Op.CVTSS2SI]: cvt2si(false, false),
  [Op.CVTTSS2SI]: cvt2si(false, true),
  [Op.CVTSD2SI]: cvt2si(true, false),
  [Op.CVTTSD2SI]: cvt2si(true, true),
  [Op.CVTSI2SS]: cvtsi(false),
  [Op.CVTSI2SD]: cvtsi(true),
  [Op.CVTPS2PI]: cvtToPi(false, false),
  [Op.CVTTPS2PI]: cvtToPi(false, true),
  [Op.CVTPD2PI]: cvtToPi(true, false),
  [Op.CVTTPD2PI]: cvtToPi(true, true),
  [Op.CVTPI2PS]: cvtFromPi(false),
  [Op.CVTPI2PD]: cvtFromPi(true),
  [Op.ROUNDPS]: x2(16, (u, D, d, S, s, imm) => roundPs(u.sse, imm, false, D, d, S, s)),
  [Op.ROUNDSS]: x2(4, (u, D, d, S, s, imm) => roundPs(u.sse, imm, true, D, d, S, s)),
  [Op.ROUNDPD]: x2(16, (u, D, d, S, s, imm) => roundPd(u.sse, imm, false, D, d, S, s)),
  [Op.ROUNDSD]: x2(8, (u, D, d, S, s, imm) => roundPd(u.sse, imm, true, D, d, S, s)),
  [Op.RCPPS]: x2(16, (u, D, d, S, s) => approxPs(u.sse, false, false, D, d, S, s)),
  [Op.RCPSS]: x2(4, (u, D, d, S, s) => approxPs(u.sse, false, true, D, d, S, s)),
  [Op.RSQRTPS]: x2(16, (u, D, d, S, s) => approxPs(u.sse, true, false, D, d, S, s)),
  [Op.RSQRTSS]: x2(4, (u, D, d, S, s) => approxPs(u.sse, true, true, D, d, S, s)),
  [Op.DPPS]: x2(16, (u, D, d, S, s, imm) => dpps(u.sse, imm, D, d, S, s)),
  [Op.DPPD]: x2(16, (u, D, d, S, s, imm) => dppd(u.sse, imm, D, d, S, s)),
  [Op.PSLLW]: sh(Shift.LL, 16),
  [Op.PSLLD]: sh(Shift.LL, 32),
  [Op.PSLLQ]: sh(Shift.LL, 64),
  [Op.PSRLW]: sh(Shift.RL, 16),
  [Op.PSRLD]: sh(Shift.RL, 32),
  [Op.PSRLQ]: sh(Shift.RL, 64),
  [Op.PSRAW]: sh(Shift.RA, 16),
  [Op.PSRAD]: sh(Shift.RA, 32),
  [Op.PSLLDQ]: (u, _h, i) => shiftBytes(u.sse, u.sse, 4 * i.rm, true, i.imm & 0xff),
  [Op.PSRLDQ]: (u, _h, i) => shiftBytes(u.sse, u.sse, 4 * i.rm, false, i.imm & 0xff),
  [Op.PSHUFD]: x2(16, (u, D, d, S, s, imm) => pshufd(u.sse, D, d, S, s, imm)),
  [Op.PSHUFLW]: x2(16, (u, D, d, S, s, imm) => pshufw16(u.sse, D, d, S, s, imm, false)),
  [Op.PSHUFHW]: x2(16, (u, D, d, S, s, imm) => pshufw16(u.sse, D, d, S, s, imm, true)),
  [Op.PSHUFW]: (u, h, i) => {
    u.x87.mmxEnter();
    const S = src(u, h, i, 8, true);
    if (S) pshufwMmx(u.sse, u.mmx, 2 * (i.reg & 7), S, srcOff(i, true), i.imm & 0xff);
  },
  [Op.PSHUFB]: dual((u, D, d, S, s, n) => pshufb(u.sse, D, d, S, s, n)),
  [Op.PALIGNR]: dual((u, D, d, S, s, n, imm) => palignr(u.sse, D, d, S, s, n, imm)),
  [Op.SHUFPS]: x2(16, (u, D, d, S, s, imm) => shufps(u.sse, D, d, S, s, imm)),
  [Op.SHUFPD]: x2(16, (u, D, d, S, s, imm) => shufpd(u.sse, D, d, S, s, imm)),
  [Op.PUNPCKLBW]: dual((u, D, d, S, s, n) => unpack(u.sse, D, d, S, s, n, 1, false), true),
  [Op.PUNPCKHBW]: dual((u, D, d, S, s, n) => unpack(u.sse, D, d, S, s, n, 1, true)),
  [Op.PUNPCKLWD]: dual((u, D, d, S, s, n) => unpack(u.sse, D, d, S, s, n, 2, false), true),
  [Op.PUNPCKHWD]: dual((u, D, d, S, s, n) => unpack(u.sse, D, d, S, s, n, 2, true)),
  [Op.PUNPCKLDQ]: dual((u, D, d, S, s, n) => unpack(u.sse, D, d, S, s, n, 4, false), true),
  [Op.PUNPCKHDQ]: dual((u, D, d, S, s, n) => unpack(u.sse, D, d, S, s, n, 4, true)),
  [Op.PUNPCKLQDQ]: x2(16, (u, D, d, S, s) => unpack(u.sse, D, d, S, s, 4, 8, false)),
  [Op.PUNPCKHQDQ]: x2(16, (u, D, d, S, s) => unpack(u.sse, D, d, S, s, 4, 8, true)),
  [Op.UNPCKLPS]: x2(16, (u, D, d, S, s) => unpack(u.sse, D, d, S, s, 4, 4, false)),
  [Op.UNPCKHPS]: x2(16, (u, D, d, S, s) => unpack(u.sse, D, d, S, s, 4, 4, true)),
  [Op.UNPCKLPD]: x2(16, (u, D, d, S, s) => unpack(u.sse, D, d, S, s, 4, 8, false)),
  [Op.UNPCKHPD]: x2(16, (u, D, d, S, s) => unpack(u.sse, D, d, S, s, 4, 8, true)),
  [Op.PACKSSWB]: dual((u, D, d, S, s, n) => pack(u.sse, D, d, S, s, n, Pack.SSWB)),
  [Op.PACKSSDW]: dual((u, D, d, S, s, n) => pack(u.sse, D, d, S, s, n, Pack.SSDW)),
  [Op.PACKUSWB]: dual((u, D, d, S, s, n) => pack(u.sse, D, d, S, s, n, Pack.USWB)),
  [Op.PACKUSDW]: x2(16, (u, D, d, S, s) => pack(u.sse, D, d, S, s, 4, Pack.USDW)),
  [Op.MOVSLDUP]: x2(16, (u, D, d, S, s) => movsdup(u.sse, D, d, S, s, false)),
  [Op.MOVSHDUP]: x2(16, (u, D, d, S, s) => movsdup(u.sse, D, d, S, s, true)),
  [Op.MOVDDUP]: x2(8, (u, D, d, S, s) => movddup(u.sse, D, d, S, s)),
  [Op.INSERTPS]: (u, h, i) => {
    const S = src(u, h, i, 4, false);
    if (S) insertps(u.sse, u.sse, 4 * i.reg, S, srcOff(i, false), i.isMem ? i.imm & 0x3f : i.imm & 0xff);
  },
  [Op.BLENDPS]: x2(16, (_u, D, d, S, s, imm) => blendImm(D, d, S, s, 4, imm)),
  [Op.BLENDPD]: x2(16, (_u, D, d, S, s, imm) => blendImm(D, d, S, s, 8, imm)),
  [Op.PBLENDW]: x2(16, (_u, D, d, S, s, imm) => blendImm(D, d, S, s, 2, imm)),
  [Op.BLENDVPS]: x2(16, (u, D, d, S, s) => blendVar(D, d, S, s, u.sse, 0, 4)),
  [Op.BLENDVPD]: x2(16, (u, D, d, S, s) => blendVar(D, d, S, s, u.sse, 0, 8)),
  [Op.PBLENDVB]: x2(16, (u, D, d, S, s) => blendVar(D, d, S, s, u.sse, 0, 1)),
  [Op.PHMINPOSUW]: x2(16, (u, D, d, S, s) => phminposuw(u.sse, D, d, S, s)),
  [Op.MPSADBW]: x2(16, (u, D, d, S, s, imm) => mpsadbw(u.sse, D, d, S, s, imm)),
  [Op.PTEST]: (u, h, i) => {
    const S = src(u, h, i, 16, false);
    if (S) h.setFlags(STATUS, ptest(u.sse, 4 * i.reg, S, srcOff(i, false)));
  },
  [Op.PCMPESTRI]: pcmp(true, true),
  [Op.PCMPESTRM]: pcmp(true, false),
  [Op.PCMPISTRI]: pcmp(false, true),
  [Op.PCMPISTRM]: pcmp(false, false),
  [Op.PCMPESTRI64]: pcmp(true, true),
  [Op.PCMPESTRM64]: pcmp(true, false),
  [Op.PMOVMSKB]: (u, h, i) => {
    const x = (i.prefixes & Prefix.OPSIZE) !== 0;
    if (!x) u.x87.mmxEnter();
    h.setGpr(i.reg, 4, pmovmskb(x ? u.sse : u.mmx, x ? 4 * i.rm : 2 * (i.rm & 7), x ? 4 : 2), 0);
  },
  [Op.MOVMSKPS]: (u, h, i) => h.setGpr(i.reg, 4, movmsk(u.sse, 4 * i.rm, 4), 0),
  [Op.MOVMSKPD]: (u, h, i) => h.setGpr(i.reg, 4, movmsk(u.sse, 4 * i.rm, 8), 0),
  [Op.POPCNT]: bitcount(popcnt),
  [Op.LZCNT]: bitcount(lzcnt),
  [Op.TZCNT]: bitcount(tzcnt),
  [Op.CRC32]: (u, h, i) => {
    // F2 0F 38 F0 (byte source) / F1 (16/32/64-bit source); REX.W selects the 64-bit forms.
    const bytes = i.opcode === 0xf0 ? 1 : i.opSize;
    let lo: number;
    let hi = 0;
    if (i.isMem) {
      if (!h.readMem(bytes, u.buf)) return;
      lo = u.dv.getUint32(0, true);
      hi = u.dv.getUint32(4, true);
    } else if (bytes === 1 && i.byteRegsHigh && i.rm >= 4 && i.rm < 8) lo = h.gprLo(i.rm - 4) >>> 8;
    else {
      lo = h.gprLo(i.rm);
      hi = h.gprHi(i.rm);
    }
    const c = crc32c(h.gprLo(i.reg), lo, hi, bytes as 1 | 2 | 4 | 8);
    h.setGpr(i.reg, i.opSize === 8 ? 8 : 4, c, 0);
  },
  [Op.EMMS]: (u) => u.x87.emms(),
  [Op.LDMXCSR]: (u, h) => {
    if (!h.readMem(4, u.buf)) return;
    if (!u.sse.setMxcsr(u.dv.getUint32(0, true))) h.raise(FpuVector.GP, 0);
  },
  [Op.STMXCSR]: (u, h) => {
    u.dv.setUint32(0, u.sse.mxcsr, true);
    h.writeMem(4, u.buf);
  },
  [Op.FXSAVE]: fxs(false),
  [Op.FXSAVE64]: fxs(true),
  [Op.FXRSTOR]: fxr(false),
  [Op.FXRSTOR64]: fxr(true),
  [Op.XSAVE]: xs(false),
  [Op.XSAVE64]: xs(true),
  // XSAVEOPT without the init/modified optimizations is XSAVE (SDM Vol. 1 §13.9 lets it write more).
  [Op.XSAVEOPT]: xs(false),
  [Op.XSAVEOPT64]: xs(true),
  [Op.XSAVEC]: xs(false, true),
  [Op.XSAVEC64]: xs(true, true),
  [Op.XRSTOR]: xr(false),
  [Op.XRSTOR64]: xr(true),
  [Op.XSAVES]: xs(false, true, true),
  [Op.XSAVES64]: xs(true, true, true),
  [Op.XRSTORS]: xr(false, true),
  [Op.XRSTORS64]: xr(true, true),
};

function dual(
  f: (u: FpUnits, D: XmmFile, d: number, S: XmmFile, s: number, n: number, imm: number) => void,
  lowHalf = false,
): SimdHandler {
  return (u, h, i) => {
    const x = (i.prefixes & Prefix.OPSIZE) !== 0;
    if (!x) u.x87.mmxEnter();
    // MMX PUNPCKL* read only 32 bits of a memory operand (SDM Vol. 2 PUNPCKLBW).
    const S = src(u, h, i, x ? 16 : lowHalf ? 4 : 8, !x);
    if (S)
      f(u, x ? u.sse : u.mmx, x ? 4 * i.reg : 2 * (i.reg & 7), S, srcOff(i, !x), x ? 4 : 2, i.imm & 0xff);
  };
}

function comiH(double: boolean, quiet: boolean): SimdHandler {
  return (u, h, i) => {
    const S = src(u, h, i, double ? 8 : 4, false);
    if (!S) return;
    const f = comi(u.sse, double, quiet, u.sse, 4 * i.reg, S, srcOff(i, false));
    if (f < 0) h.raise(FpuVector.XM, 0);
    else h.setFlags(STATUS, f);
  };
}

function cvtsi(double: boolean): SimdHandler {
  return (u, h, i) => {
    const w64 = i.opSize === 8;
    const v = gprInt(h, i, u, w64);
    if (!v) return;
    const hi = w64 ? v[1] : v[0] & 0x80000000 ? 0xffffffff : 0;
    xm(u, h, cvtsi2f(u.sse, double, hi, v[0], u.sse, 4 * i.reg));
  };
}

function cvtToPi(double: boolean, truncate: boolean): SimdHandler {
  return (u, h, i) => {
    u.x87.mmxEnter();
    const S = src(u, h, i, double ? 16 : 8, false);
    if (S) xm(u, h, cvtf2pi(u.sse, double, truncate, u.mmx, 2 * (i.reg & 7), S, srcOff(i, false)));
  };
}

function cvtFromPi(double: boolean): SimdHandler {
  return (u, h, i) => {
    const S = src(u, h, i, 8, true);
    if (!i.isMem) u.x87.mmxEnter(); // only the MMX-register form is an MMX access (SDM Vol. 2 CVTPI2PS)
    if (S) xm(u, h, cvtpi2f(u.sse, double, u.sse, 4 * i.reg, S, srcOff(i, true)));
  };
}

/** XMM registers in an FXSAVE/XSAVE image: XMM8-15 only in 64-bit mode (SDM Vol. 1 10.5.1). */
const nXmm = (h: FpuHost): number => (h.longMode() ? 16 : 8);

function fxs(w: boolean): SimdHandler {
  return (u, h) => {
    fxsave(u.x87, u.sse, u.buf, 0, w, nXmm(h));
    h.writeMem(512, u.buf);
  };
}

function fxr(w: boolean): SimdHandler {
  return (u, h) => {
    if (!h.readMem(512, u.buf)) return;
    if (fxrstor(u.x87, u.sse, u.buf, 0, w, nXmm(h)) !== ImageStatus.Ok) h.raise(FpuVector.GP, 0);
  };
}

/** The components XSAVES/XRSTORS (`supervisor`) or the others may name: XCR0, or XCR0 | IA32_XSS. */
function xAllowed(h: FpuHost, supervisor: boolean): number {
  return h.xcr0Lo() | (supervisor ? (h.xssLo?.() ?? 0) : 0);
}

/**
 * XSAVE/XSAVEOPT (standard), XSAVEC (`compacted`) or XSAVES (`supervisor`: compacted, RFBM adds
 * IA32_XSS; SDM Vol. 1 13.11). The legacy region and header are read first and merged (XSAVE keeps
 * the header bytes and components it does not write, XSAVEC leaves unsaved components alone); PKRU's
 * 8 bytes are a separate access at its slot, written only when saved and before the header.
 */
function xs(w: boolean, compacted = false, supervisor = false): SimdHandler {
  return (u, h) => {
    const ext = h.xext?.() ?? null;
    const rfbm = h.gprLo(0) & xAllowed(h, supervisor);
    if (!h.readMem(XSAVE_LEGACY_BYTES, u.buf)) return;
    xsave(u.x87, u.sse, u.buf, 0, rfbm, w, nXmm(h), compacted, ext);
    if (ext !== null && rfbm & XCOMP_PKRU && (!compacted || ext.pkru !== 0))
      if (!h.writeMem(XSAVE_PKRU_BYTES, u.buf, pkruSlot(ext, compacted))) return;
    h.writeMem(XSAVE_LEGACY_BYTES, u.buf);
  };
}

/**
 * XRSTOR, or XRSTORS (`supervisor`: the compacted form only, XCOMP_BV within XCR0 | IA32_XSS; SDM
 * Vol. 1 13.12). The header is checked before PKRU's slot is read, so a bad header is #GP(0) even when
 * the slot would fault.
 */
function xr(w: boolean, supervisor = false): SimdHandler {
  return (u, h) => {
    if (!h.readMem(XSAVE_LEGACY_BYTES, u.buf)) return;
    const allowed = xAllowed(h, supervisor);
    const rfbm = h.gprLo(0) & allowed;
    const comp = h.xsaveCompaction?.() ?? false;
    if (xrstorCheck(u.buf, 0, allowed, h.xcr0Hi(), comp, supervisor) !== ImageStatus.Ok) {
      h.raise(FpuVector.GP, 0);
      return;
    }
    const ext = h.xext?.() ?? null;
    const loadPkru = ext !== null && (rfbm & XCOMP_PKRU) !== 0;
    // XSTATE_BV[9] is bit 1 of header byte 1; the compacted form has XCOMP_BV[63] (byte 15, bit 7).
    if (loadPkru && u.buf[513]! & 2) {
      const slot = pkruSlot(ext, u.buf[527]! >= 0x80);
      if (!h.readMem(XSAVE_PKRU_BYTES, u.buf, slot)) return;
    }
    const st = xrstor(u.x87, u.sse, u.buf, 0, rfbm, allowed, h.xcr0Hi(), w, nXmm(h), comp, ext, supervisor);
    if (st !== ImageStatus.Ok) h.raise(FpuVector.GP, 0);
    else if (loadPkru) h.xextLoaded?.();
  };
}
