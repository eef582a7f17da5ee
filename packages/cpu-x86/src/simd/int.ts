/**
 * MMX/SSE2/SSSE3/SSE4.1/SSE4.2 packed-integer arithmetic, compares, logic and shifts (SDM Vol. 2,
 * the P* entries). One function per family keyed by `IOp`; `n` is the register width in 32-bit
 * words: 2 for MMX (registers are the x87 significands), 4 for XMM. Operands are word offsets
 * into XmmFiles; results are built in `u.res` first, so D and S may be the same register.
 * Integer ops raise no exceptions.
 */
import type { SseState, XmmFile } from "./state.js";

/** Packed-integer binary operations. */
export const IOp = {
  PADDB: 0,
  PADDW: 1,
  PADDD: 2,
  PADDQ: 3,
  PSUBB: 4,
  PSUBW: 5,
  PSUBD: 6,
  PSUBQ: 7,
  PADDSB: 8,
  PADDSW: 9,
  PADDUSB: 10,
  PADDUSW: 11,
  PSUBSB: 12,
  PSUBSW: 13,
  PSUBUSB: 14,
  PSUBUSW: 15,
  PMULLW: 16,
  PMULHW: 17,
  PMULHUW: 18,
  PMULLD: 19,
  PMULUDQ: 20,
  PMULDQ: 21,
  PMADDWD: 22,
  PMADDUBSW: 23,
  PMULHRSW: 24,
  PAVGB: 25,
  PAVGW: 26,
  PMINUB: 27,
  PMAXUB: 28,
  PMINSW: 29,
  PMAXSW: 30,
  PMINSB: 31,
  PMAXSB: 32,
  PMINUW: 33,
  PMAXUW: 34,
  PMINSD: 35,
  PMAXSD: 36,
  PMINUD: 37,
  PMAXUD: 38,
  PSADBW: 39,
  PCMPEQB: 40,
  PCMPEQW: 41,
  PCMPEQD: 42,
  PCMPEQQ: 43,
  PCMPGTB: 44,
  PCMPGTW: 45,
  PCMPGTD: 46,
  PCMPGTQ: 47,
  PAND: 48,
  PANDN: 49,
  POR: 50,
  PXOR: 51,
  PSIGNB: 52,
  PSIGNW: 53,
  PSIGND: 54,
  PHADDW: 55,
  PHADDD: 56,
  PHADDSW: 57,
  PHSUBW: 58,
  PHSUBD: 59,
  PHSUBSW: 60,
  PABSB: 61,
  PABSW: 62,
  PABSD: 63,
} as const;

const sat8 = (v: number): number => (v > 127 ? 127 : Math.max(v, -128));
const sat16 = (v: number): number => (v > 32767 ? 32767 : Math.max(v, -32768));
const satU8 = (v: number): number => (v > 255 ? 255 : Math.max(v, 0));
const satU16 = (v: number): number => (v > 65535 ? 65535 : Math.max(v, 0));

/** D := D op S (PABS*: D := op S). */
export function intOp(
  u: SseState,
  op: number,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  n: number,
): void {
  const b = 4 * d; // byte offsets
  const c = 4 * s;
  const nb = 4 * n;
  const a8 = D.u8;
  const b8 = S.u8;
  const sa8 = D.i8;
  const sb8 = S.i8;
  const a16 = D.u16;
  const b16 = S.u16;
  const sa16 = D.i16;
  const sb16 = S.i16;
  const a32 = D.u32;
  const b32 = S.u32;
  const sa32 = D.i32;
  const sb32 = S.i32;
  const r8 = u.res8;
  const r16 = u.res16;
  const r = u.res;
  const w = b >>> 1;
  const x = c >>> 1;
  switch (op) {
    case IOp.PADDB:
      for (let i = 0; i < nb; i++) r8[i] = a8[b + i]! + b8[c + i]!;
      break;
    case IOp.PADDW:
      for (let i = 0; i < 2 * n; i++) r16[i] = a16[w + i]! + b16[x + i]!;
      break;
    case IOp.PADDD:
      for (let i = 0; i < n; i++) r[i] = a32[d + i]! + b32[s + i]!;
      break;
    case IOp.PADDQ:
    case IOp.PSUBQ:
      for (let i = 0; i < n; i += 2) {
        const sub = op === IOp.PSUBQ;
        const lo = sub ? a32[d + i]! - b32[s + i]! : a32[d + i]! + b32[s + i]!;
        const carry = sub ? (lo < 0 ? -1 : 0) : lo > 0xffffffff ? 1 : 0;
        r[i] = lo >>> 0;
        r[i + 1] = (sub ? a32[d + i + 1]! - b32[s + i + 1]! : a32[d + i + 1]! + b32[s + i + 1]!) + carry;
      }
      break;
    case IOp.PSUBB:
      for (let i = 0; i < nb; i++) r8[i] = a8[b + i]! - b8[c + i]!;
      break;
    case IOp.PSUBW:
      for (let i = 0; i < 2 * n; i++) r16[i] = a16[w + i]! - b16[x + i]!;
      break;
    case IOp.PSUBD:
      for (let i = 0; i < n; i++) r[i] = a32[d + i]! - b32[s + i]!;
      break;
    case IOp.PADDSB:
      for (let i = 0; i < nb; i++) r8[i] = sat8(sa8[b + i]! + sb8[c + i]!);
      break;
    case IOp.PADDSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = sat16(sa16[w + i]! + sb16[x + i]!);
      break;
    case IOp.PADDUSB:
      for (let i = 0; i < nb; i++) r8[i] = satU8(a8[b + i]! + b8[c + i]!);
      break;
    case IOp.PADDUSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = satU16(a16[w + i]! + b16[x + i]!);
      break;
    case IOp.PSUBSB:
      for (let i = 0; i < nb; i++) r8[i] = sat8(sa8[b + i]! - sb8[c + i]!);
      break;
    case IOp.PSUBSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = sat16(sa16[w + i]! - sb16[x + i]!);
      break;
    case IOp.PSUBUSB:
      for (let i = 0; i < nb; i++) r8[i] = satU8(a8[b + i]! - b8[c + i]!);
      break;
    case IOp.PSUBUSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = satU16(a16[w + i]! - b16[x + i]!);
      break;
    case IOp.PMULLW:
      for (let i = 0; i < 2 * n; i++) r16[i] = Math.imul(a16[w + i]!, b16[x + i]!);
      break;
    case IOp.PMULHW:
      for (let i = 0; i < 2 * n; i++) r16[i] = (sa16[w + i]! * sb16[x + i]!) >> 16;
      break;
    case IOp.PMULHUW:
      for (let i = 0; i < 2 * n; i++) r16[i] = (a16[w + i]! * b16[x + i]!) >>> 16;
      break;
    case IOp.PMULLD:
      for (let i = 0; i < n; i++) r[i] = Math.imul(a32[d + i]!, b32[s + i]!);
      break;
    case IOp.PMULUDQ:
    case IOp.PMULDQ:
      for (let i = 0; i < n; i += 2) mul32x32(r, i, a32[d + i]!, b32[s + i]!, op === IOp.PMULDQ);
      break;
    case IOp.PMADDWD:
      for (let i = 0; i < n; i++)
        r[i] = sa16[w + 2 * i]! * sb16[x + 2 * i]! + sa16[w + 2 * i + 1]! * sb16[x + 2 * i + 1]!;
      break;
    case IOp.PMADDUBSW:
      // Unsigned bytes of the destination times signed bytes of the source (SDM Vol. 2 PMADDUBSW).
      for (let i = 0; i < 2 * n; i++)
        r16[i] = sat16(a8[b + 2 * i]! * sb8[c + 2 * i]! + a8[b + 2 * i + 1]! * sb8[c + 2 * i + 1]!);
      break;
    case IOp.PMULHRSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = (((sa16[w + i]! * sb16[x + i]!) >> 14) + 1) >> 1;
      break;
    case IOp.PAVGB:
      for (let i = 0; i < nb; i++) r8[i] = (a8[b + i]! + b8[c + i]! + 1) >>> 1;
      break;
    case IOp.PAVGW:
      for (let i = 0; i < 2 * n; i++) r16[i] = (a16[w + i]! + b16[x + i]! + 1) >>> 1;
      break;
    case IOp.PMINUB:
      for (let i = 0; i < nb; i++) r8[i] = Math.min(a8[b + i]!, b8[c + i]!);
      break;
    case IOp.PMAXUB:
      for (let i = 0; i < nb; i++) r8[i] = Math.max(a8[b + i]!, b8[c + i]!);
      break;
    case IOp.PMINSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = Math.min(sa16[w + i]!, sb16[x + i]!);
      break;
    case IOp.PMAXSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = Math.max(sa16[w + i]!, sb16[x + i]!);
      break;
    case IOp.PMINSB:
      for (let i = 0; i < nb; i++) r8[i] = Math.min(sa8[b + i]!, sb8[c + i]!);
      break;
    case IOp.PMAXSB:
      for (let i = 0; i < nb; i++) r8[i] = Math.max(sa8[b + i]!, sb8[c + i]!);
      break;
    case IOp.PMINUW:
      for (let i = 0; i < 2 * n; i++) r16[i] = Math.min(a16[w + i]!, b16[x + i]!);
      break;
    case IOp.PMAXUW:
      for (let i = 0; i < 2 * n; i++) r16[i] = Math.max(a16[w + i]!, b16[x + i]!);
      break;
    case IOp.PMINSD:
      for (let i = 0; i < n; i++) r[i] = Math.min(sa32[d + i]!, sb32[s + i]!);
      break;
    case IOp.PMAXSD:
      for (let i = 0; i < n; i++) r[i] = Math.max(sa32[d + i]!, sb32[s + i]!);
      break;
    case IOp.PMINUD:
      for (let i = 0; i < n; i++) r[i] = Math.min(a32[d + i]!, b32[s + i]!);
      break;
    case IOp.PMAXUD:
      for (let i = 0; i < n; i++) r[i] = Math.max(a32[d + i]!, b32[s + i]!);
      break;
    case IOp.PSADBW:
      // Sum of absolute byte differences per 64-bit half, into the low word of each half.
      for (let h = 0; h < n; h += 2) {
        let sum = 0;
        for (let i = 0; i < 8; i++) sum += Math.abs(a8[b + 4 * h + i]! - b8[c + 4 * h + i]!);
        r[h] = sum;
        r[h + 1] = 0;
      }
      break;
    case IOp.PCMPEQB:
      for (let i = 0; i < nb; i++) r8[i] = a8[b + i] === b8[c + i] ? 0xff : 0;
      break;
    case IOp.PCMPEQW:
      for (let i = 0; i < 2 * n; i++) r16[i] = a16[w + i] === b16[x + i] ? 0xffff : 0;
      break;
    case IOp.PCMPEQD:
      for (let i = 0; i < n; i++) r[i] = a32[d + i] === b32[s + i] ? 0xffffffff : 0;
      break;
    case IOp.PCMPEQQ:
      for (let i = 0; i < n; i += 2) {
        const e = a32[d + i] === b32[s + i] && a32[d + i + 1] === b32[s + i + 1] ? 0xffffffff : 0;
        r[i] = e;
        r[i + 1] = e;
      }
      break;
    case IOp.PCMPGTB:
      for (let i = 0; i < nb; i++) r8[i] = sa8[b + i]! > sb8[c + i]! ? 0xff : 0;
      break;
    case IOp.PCMPGTW:
      for (let i = 0; i < 2 * n; i++) r16[i] = sa16[w + i]! > sb16[x + i]! ? 0xffff : 0;
      break;
    case IOp.PCMPGTD:
      for (let i = 0; i < n; i++) r[i] = sa32[d + i]! > sb32[s + i]! ? 0xffffffff : 0;
      break;
    case IOp.PCMPGTQ:
      for (let i = 0; i < n; i += 2) {
        const ah = sa32[d + i + 1]!;
        const bh = sb32[s + i + 1]!;
        const gt = ah > bh || (ah === bh && a32[d + i]! > b32[s + i]!);
        r[i] = gt ? 0xffffffff : 0;
        r[i + 1] = r[i]!;
      }
      break;
    case IOp.PAND:
      for (let i = 0; i < n; i++) r[i] = a32[d + i]! & b32[s + i]!;
      break;
    case IOp.PANDN:
      for (let i = 0; i < n; i++) r[i] = ~a32[d + i]! & b32[s + i]!;
      break;
    case IOp.POR:
      for (let i = 0; i < n; i++) r[i] = a32[d + i]! | b32[s + i]!;
      break;
    case IOp.PXOR:
      for (let i = 0; i < n; i++) r[i] = a32[d + i]! ^ b32[s + i]!;
      break;
    case IOp.PSIGNB:
      for (let i = 0; i < nb; i++) {
        const t = sb8[c + i]!;
        r8[i] = t < 0 ? -sa8[b + i]! : t === 0 ? 0 : sa8[b + i]!;
      }
      break;
    case IOp.PSIGNW:
      for (let i = 0; i < 2 * n; i++) {
        const t = sb16[x + i]!;
        r16[i] = t < 0 ? -sa16[w + i]! : t === 0 ? 0 : sa16[w + i]!;
      }
      break;
    case IOp.PSIGND:
      for (let i = 0; i < n; i++) {
        const t = sb32[s + i]!;
        r[i] = t < 0 ? -sa32[d + i]! : t === 0 ? 0 : sa32[d + i]!;
      }
      break;
    case IOp.PHADDW:
    case IOp.PHSUBW:
    case IOp.PHADDSW:
    case IOp.PHSUBSW: {
      // Adjacent pairs of D fill the low half, pairs of S the high half (SDM Vol. 2 PHADDW).
      const half = n; // words of 16 bits per source half = n
      for (let i = 0; i < 2 * n; i++) {
        const fromS = i >= half;
        const j = 2 * (fromS ? i - half : i);
        const p = fromS ? sb16[x + j]! : sa16[w + j]!;
        const q = fromS ? sb16[x + j + 1]! : sa16[w + j + 1]!;
        const v = op === IOp.PHADDW || op === IOp.PHADDSW ? p + q : p - q;
        r16[i] = op === IOp.PHADDSW || op === IOp.PHSUBSW ? sat16(v) : v;
      }
      break;
    }
    case IOp.PHADDD:
    case IOp.PHSUBD: {
      const half = n >>> 1;
      for (let i = 0; i < n; i++) {
        const fromS = i >= half;
        const j = 2 * (fromS ? i - half : i);
        const p = fromS ? b32[s + j]! : a32[d + j]!;
        const q = fromS ? b32[s + j + 1]! : a32[d + j + 1]!;
        r[i] = op === IOp.PHADDD ? p + q : p - q;
      }
      break;
    }
    case IOp.PABSB:
      for (let i = 0; i < nb; i++) r8[i] = Math.abs(sb8[c + i]!);
      break;
    case IOp.PABSW:
      for (let i = 0; i < 2 * n; i++) r16[i] = Math.abs(sb16[x + i]!);
      break;
    case IOp.PABSD:
      for (let i = 0; i < n; i++) r[i] = Math.abs(sb32[s + i]!);
      break;
  }
  for (let i = 0; i < n; i++) a32[d + i] = r[i]!;
}

/** r[i], r[i+1] := a * b as a 64-bit product (signed or unsigned 32-bit factors). */
function mul32x32(r: Uint32Array, i: number, a: number, b: number, signed: boolean): void {
  let neg = false;
  if (signed) {
    const sa = a | 0;
    const sb = b | 0;
    neg = sa < 0 !== sb < 0;
    a = Math.abs(sa);
    b = Math.abs(sb);
  }
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const mid = al * bh + ah * bl; // < 2^33
  const lo0 = al * bl + (mid % 65536) * 65536; // < 2^49
  let lo = lo0 % 0x100000000;
  let hi = ah * bh + Math.floor(mid / 65536) + Math.floor(lo0 / 0x100000000);
  if (neg) {
    lo = (~lo + 1) >>> 0;
    hi = ~hi + (lo === 0 ? 1 : 0);
  }
  r[i] = lo;
  r[i + 1] = hi;
}

/** Shift kinds. */
export const Shift = { LL: 0, RL: 1, RA: 2 } as const;

/**
 * PSLL/PSRL/PSRA W/D/Q by `count` (imm8, or the low 64 bits of a register given as countHi:countLo).
 * Counts at or above the element width give 0 (or the sign fill for PSRA) (SDM Vol. 2 PSLLW).
 */
export function shiftOp(
  D: XmmFile,
  d: number,
  n: number,
  kind: number,
  elemBits: 16 | 32 | 64,
  countLo: number,
  countHi: number,
): void {
  const big = countHi !== 0 || countLo >>> 0 >= elemBits;
  const cnt = big ? elemBits : countLo >>> 0;
  if (elemBits === 16) {
    const w = 2 * d;
    for (let i = 0; i < 2 * n; i++) {
      const v = D.u16[w + i]!;
      if (kind === Shift.RA) D.u16[w + i] = (D.i16[w + i]! >> Math.min(cnt, 15)) & 0xffff;
      else if (big) D.u16[w + i] = 0;
      else D.u16[w + i] = kind === Shift.LL ? v << cnt : v >>> cnt;
    }
  } else if (elemBits === 32) {
    for (let i = 0; i < n; i++) {
      const v = D.u32[d + i]!;
      if (kind === Shift.RA) D.i32[d + i] = D.i32[d + i]! >> Math.min(cnt, 31);
      else if (big) D.u32[d + i] = 0;
      else D.u32[d + i] = kind === Shift.LL ? v << cnt : v >>> cnt;
    }
  } else {
    for (let i = 0; i < n; i += 2) {
      const lo = D.u32[d + i]!;
      const hi = D.u32[d + i + 1]!;
      let rl = 0;
      let rh = 0;
      if (!big) {
        if (kind === Shift.LL) {
          if (cnt >= 32) rh = lo << (cnt - 32);
          else if (cnt > 0) {
            rh = (hi << cnt) | (lo >>> (32 - cnt));
            rl = lo << cnt;
          } else {
            rh = hi;
            rl = lo;
          }
        } else if (cnt >= 32) rl = hi >>> (cnt - 32);
        else if (cnt > 0) {
          rl = (lo >>> cnt) | (hi << (32 - cnt));
          rh = hi >>> cnt;
        } else {
          rh = hi;
          rl = lo;
        }
      }
      D.u32[d + i] = rl;
      D.u32[d + i + 1] = rh;
    }
  }
}

/** PSLLDQ (left = true) / PSRLDQ by imm8 bytes (> 15 clears), XMM only. */
export function shiftBytes(u: SseState, D: XmmFile, d: number, left: boolean, imm: number): void {
  const b = 4 * d;
  const r8 = u.res8;
  for (let i = 0; i < 16; i++) {
    const j = left ? i - imm : i + imm;
    r8[i] = j >= 0 && j < 16 ? D.u8[b + j]! : 0;
  }
  for (let i = 0; i < 4; i++) D.u32[d + i] = u.res[i]!;
}
