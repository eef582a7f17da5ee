// Integer/shuffle/string SIMD vectors for the SSE oracle and the same ops on our helpers.
import { IOp, intOp, Shift, shiftBytes, shiftOp } from "../../src/simd/int.js";
import {
  blendImm,
  insertps,
  movddup,
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
  ptest,
  shufpd,
  shufps,
  unpack,
} from "../../src/simd/shuffle.js";
import type { SseState } from "../../src/simd/state.js";
import {
  crc32c,
  explicitLength,
  lzcnt,
  pcmpstr,
  pcmpstrIndex,
  pcmpstrMask,
  popcnt,
  tzcnt,
} from "../../src/simd/string.js";
import { hex, Rng } from "./build.js";

const BIN = Object.keys(IOp).map((k) => k.toLowerCase());
const STR_IMMS = ["00", "04", "08", "0c", "14", "3a", "44", "70", "01", "0d", "4e"];
export const INT_OPS: Record<string, string[]> = {
  arith: BIN,
  shift: [
    "psllw",
    "pslld",
    "psllq",
    "psrlw",
    "psrld",
    "psrlq",
    "psraw",
    "psrad",
    "pslldq_3",
    "psrldq_7",
    "psllw_i5",
    "psrad_i31",
    "psrlq_i40",
  ],
  shuffle: [
    "pshufb",
    "punpcklbw",
    "punpckhbw",
    "punpcklwd",
    "punpckhwd",
    "punpckldq",
    "punpckhdq",
    "punpcklqdq",
    "punpckhqdq",
    "unpcklps",
    "unpckhps",
    "unpcklpd",
    "unpckhpd",
    "packsswb",
    "packssdw",
    "packuswb",
    "packusdw",
    "movsldup",
    "movshdup",
    "movddup",
    "phminposuw",
    "pmovsxbw",
    "pmovzxbw",
    "pmovsxbd",
    "pmovzxbd",
    "pmovsxbq",
    "pmovzxwq",
    "pmovsxwd",
    "pmovzxdq",
    "pmovsxdq",
    "pshufd_1b",
    "pshuflw_4e",
    "pshufhw_b1",
    "palignr_5",
    "palignr_19",
    "shufps_9c",
    "shufpd_1",
    "insertps_9a",
    "blendps_5",
    "blendpd_2",
    "pblendw_a5",
    "mpsadbw_5",
    "mpsadbw_2",
    "ptest",
    "pmovmskb",
  ],
  string: [
    ...STR_IMMS.flatMap((i) => [`pcmpistri_${i}`, `pcmpestri_${i}`, `pcmpistrm_${i}`]),
    "crc32q",
    "crc32b",
    "popcnt",
    "lzcnt",
    "tzcnt",
  ],
};

const FLAG_OPS = /^(ptest|pcmp[ei]str|popcnt|lzcnt|tzcnt)/;

function word(r: Rng): number {
  const k = r.below(6);
  if (k === 0) return r.pick([0, 0xffffffff, 0x80000000, 0x7fffffff, 0x00ff00ff, 0x80008000, 0x7fff7fff]);
  if (k === 1) return (r.u32() & 0x0f0f0f0f) >>> 0; // small bytes, many equal
  return r.u32();
}

export function genInt(
  ops: string[],
  n: number,
  seed: number,
): { line: string; op: string; a: number[]; b: number[] }[] {
  const r = new Rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    const op = ops[i % ops.length]!;
    const a = [word(r), word(r), word(r), word(r)];
    const b = [word(r), word(r), word(r), word(r)];
    if (op.startsWith("pcmp")) {
      // Short alphabets make matches likely; an occasional NUL ends the implicit strings.
      for (let j = 0; j < 4; j++) {
        let x = 0;
        let y = 0;
        for (let k = 0; k < 4; k++) {
          x |= (r.below(12) === 0 ? 0 : 0x61 + r.below(4)) << (8 * k);
          y |= (r.below(12) === 0 ? 0 : 0x61 + r.below(4)) << (8 * k);
        }
        a[j] = x >>> 0;
        b[j] = y >>> 0;
      }
      if (r.below(3) === 0) b[3] = r.u32(); // length fields for the explicit forms
    }
    if (/^ps(ll|rl|ra)[wdq]$/.test(op)) {
      b[0] = r.below(3) === 0 ? r.u32() : r.below(70);
      b[1] = r.below(8) === 0 ? 1 : 0;
    }
    const line = `${op} 1f80 ${a.map((w) => hex(w, 8)).join(" ")} ${b.map((w) => hex(w, 8)).join(" ")}`;
    out.push({ line, op, a, b });
  }
  return out;
}

/** Mask the oracle's EFLAGS for ops that leave them alone. */
export function maskInt(op: string, line: string): string {
  if (FLAG_OPS.test(op)) return line;
  return line.replace(/ [0-9a-f]{4}$/, " -");
}

const PMOV: Record<string, [1 | 2 | 4, 2 | 4 | 8, boolean]> = {
  pmovsxbw: [1, 2, true],
  pmovzxbw: [1, 2, false],
  pmovsxbd: [1, 4, true],
  pmovzxbd: [1, 4, false],
  pmovsxbq: [1, 8, true],
  pmovzxwq: [2, 8, false],
  pmovsxwd: [2, 4, true],
  pmovzxdq: [4, 8, false],
  pmovsxdq: [4, 8, true],
};

export function simulateInt(u: SseState, v: { op: string; a: number[]; b: number[] }): string {
  u.mxcsr = 0x1f80;
  u.u32.set(v.a, 0);
  u.u32.set(v.b, 4);
  const op = v.op;
  let fl = 0;
  const iop = (IOp as Record<string, number>)[op.toUpperCase()];
  const un = /^(p?unpck)([lh])(bw|wd|dq|qdq|ps|pd)$/.exec(op);
  const sh = /^ps(ll|rl|ra)([wdq])(?:_i(\d+))?$/.exec(op);
  const st = /^pcmp([ei])str([im])_([0-9a-f]{2})$/.exec(op);
  if (iop !== undefined) intOp(u, iop, u, 0, u, 4, 4);
  else if (sh) {
    const kind = sh[1] === "ll" ? Shift.LL : sh[1] === "rl" ? Shift.RL : Shift.RA;
    const bits = sh[2] === "w" ? 16 : sh[2] === "d" ? 32 : 64;
    if (sh[3] !== undefined) {
      u.u32.set(v.b, 0);
      shiftOp(u, 0, 4, kind, bits, Number(sh[3]), 0);
    } else shiftOp(u, 0, 4, kind, bits, v.b[0]!, v.b[1]!);
  } else if (un) {
    const size = { bw: 1, wd: 2, dq: 4, qdq: 8, ps: 4, pd: 8 }[un[3] as "bw"];
    unpack(u, u, 0, u, 4, 4, size, un[2] === "h");
  } else if (st) {
    const imm = Number.parseInt(st[3]!, 16);
    const n = imm & 1 ? 8 : 16;
    let la = -1;
    let lb = -1;
    if (st[1] === "e") {
      la = explicitLength(((v.b[3]! & 31) - 8) | 0, 0, false, n);
      lb = explicitLength(((v.a[3]! & 31) - 8) | 0, 0, false, n);
    }
    fl = pcmpstr(u, u, 0, u, 4, imm, la, lb);
    if (st[2] === "i") u.u32.set([pcmpstrIndex(u, imm), 0, 0, 0], 0);
    else pcmpstrMask(u, imm, u, 0);
  } else {
    switch (op) {
      case "pshufb":
        pshufb(u, u, 0, u, 4, 4);
        break;
      case "packsswb":
      case "packssdw":
      case "packuswb":
      case "packusdw":
        pack(
          u,
          u,
          0,
          u,
          4,
          4,
          { packsswb: Pack.SSWB, packssdw: Pack.SSDW, packuswb: Pack.USWB, packusdw: Pack.USDW }[op],
        );
        break;
      case "movsldup":
      case "movshdup":
        movsdup(u, u, 0, u, 4, op === "movshdup");
        break;
      case "movddup":
        movddup(u, u, 0, u, 4);
        break;
      case "phminposuw":
        phminposuw(u, u, 0, u, 4);
        break;
      case "pshufd_1b":
        pshufd(u, u, 0, u, 4, 0x1b);
        break;
      case "pshuflw_4e":
        pshufw16(u, u, 0, u, 4, 0x4e, false);
        break;
      case "pshufhw_b1":
        pshufw16(u, u, 0, u, 4, 0xb1, true);
        break;
      case "palignr_5":
        palignr(u, u, 0, u, 4, 4, 5);
        break;
      case "palignr_19":
        palignr(u, u, 0, u, 4, 4, 19);
        break;
      case "shufps_9c":
        shufps(u, u, 0, u, 4, 0x9c);
        break;
      case "shufpd_1":
        shufpd(u, u, 0, u, 4, 1);
        break;
      case "pslldq_3":
      case "psrldq_7":
        u.u32.set(v.b, 0);
        shiftBytes(u, u, 0, op === "pslldq_3", op === "pslldq_3" ? 3 : 7);
        break;
      case "insertps_9a":
        insertps(u, u, 0, u, 4, 0x9a);
        break;
      case "blendps_5":
        blendImm(u, 0, u, 4, 4, 5);
        break;
      case "blendpd_2":
        blendImm(u, 0, u, 4, 8, 2);
        break;
      case "pblendw_a5":
        blendImm(u, 0, u, 4, 2, 0xa5);
        break;
      case "mpsadbw_5":
      case "mpsadbw_2":
        mpsadbw(u, u, 0, u, 4, op === "mpsadbw_5" ? 5 : 2);
        break;
      case "ptest":
        fl = ptest(u, 0, u, 4);
        u.u32.fill(0, 0, 4); // the oracle prints no register for PTEST
        break;
      case "pmovmskb":
        u.u32.set([pmovmskb(u, 4, 4), 0, 0, 0], 0);
        break;
      case "crc32q":
        u.u32.set([crc32c(v.a[0]!, v.b[0]!, v.b[1]!, 8), 0, 0, 0], 0);
        break;
      case "crc32b":
        u.u32.set([crc32c(v.a[0]!, v.b[0]!, 0, 1), 0, 0, 0], 0);
        break;
      case "popcnt":
        fl = popcnt(u, v.b[0]!, v.b[1]!, 64);
        u.u32.set([u.res[0]!, 0, 0, 0], 0);
        break;
      case "lzcnt":
        fl = lzcnt(u, v.b[0]!, 0, 32);
        u.u32.set([u.res[0]!, 0, 0, 0], 0);
        break;
      case "tzcnt":
        fl = tzcnt(u, v.b[0]!, v.b[1]!, 64);
        u.u32.set([u.res[0]!, 0, 0, 0], 0);
        break;
      default: {
        const p = PMOV[op];
        if (!p) throw new Error(`no sim for ${op}`);
        pmovx(u, u, 0, u, 4, p[0], p[1], p[2]);
      }
    }
  }
  const s = `${hex(u.mxcsr, 8)} ${Array.from(u.u32.subarray(0, 4), (w) => hex(w, 8)).join(" ")} ${hex(fl, 4)}`;
  return maskInt(op, s);
}
