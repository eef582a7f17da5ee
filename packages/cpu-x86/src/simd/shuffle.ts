/**
 * Data-movement SIMD helpers: shuffles, unpacks, packs, blends, extends, masks, PTEST,
 * PHMINPOSUW, MPSADBW (SDM Vol. 2 entries of the same names). Word offsets into XmmFiles; `n` =
 * 2 (MMX) or 4 (XMM) where both forms exist. Results go through `u.res` so D and S may alias.
 */
import type { SseState, XmmFile } from "./state.js";

function flush(u: SseState, D: XmmFile, d: number, n: number): void {
  for (let i = 0; i < n; i++) D.u32[d + i] = u.res[i]!;
}

/** PSHUFD: dword i := S dword imm[2i+1:2i]. */
export function pshufd(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, imm: number): void {
  for (let i = 0; i < 4; i++) u.res[i] = S.u32[s + ((imm >>> (2 * i)) & 3)]!;
  flush(u, D, d, 4);
}

/** PSHUFLW (high = false) / PSHUFHW: shuffle the words of one 64-bit half, copy the other. */
export function pshufw16(
  u: SseState,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  imm: number,
  high: boolean,
): void {
  const x = 2 * s;
  const base = high ? 4 : 0;
  for (let i = 0; i < 8; i++) u.res16[i] = S.u16[x + i]!;
  for (let i = 0; i < 4; i++) u.res16[base + i] = S.u16[x + base + ((imm >>> (2 * i)) & 3)]!;
  flush(u, D, d, 4);
}

/** PSHUFW (MMX). */
export function pshufwMmx(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, imm: number): void {
  const x = 2 * s;
  for (let i = 0; i < 4; i++) u.res16[i] = S.u16[x + ((imm >>> (2 * i)) & 3)]!;
  flush(u, D, d, 2);
}

/** PSHUFB (SSSE3): byte i := bit 7 of S[i] ? 0 : D[S[i] & (bytes - 1)]. */
export function pshufb(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, n: number): void {
  const nb = 4 * n;
  const b = 4 * d;
  const c = 4 * s;
  for (let i = 0; i < nb; i++) {
    const k = S.u8[c + i]!;
    u.res8[i] = k & 0x80 ? 0 : D.u8[b + (k & (nb - 1))]!;
  }
  flush(u, D, d, n);
}

/** PALIGNR (SSSE3): (D:S) >> (imm * 8), low n words. */
export function palignr(
  u: SseState,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  n: number,
  imm: number,
): void {
  const nb = 4 * n;
  for (let i = 0; i < nb; i++) {
    const j = i + imm;
    u.res8[i] = j < nb ? S.u8[4 * s + j]! : j < 2 * nb ? D.u8[4 * d + j - nb]! : 0;
  }
  flush(u, D, d, n);
}

/** SHUFPS. */
export function shufps(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, imm: number): void {
  u.res[0] = D.u32[d + (imm & 3)]!;
  u.res[1] = D.u32[d + ((imm >>> 2) & 3)]!;
  u.res[2] = S.u32[s + ((imm >>> 4) & 3)]!;
  u.res[3] = S.u32[s + ((imm >>> 6) & 3)]!;
  flush(u, D, d, 4);
}

/** SHUFPD. */
export function shufpd(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, imm: number): void {
  const i0 = imm & 1 ? 2 : 0;
  const i1 = imm & 2 ? 2 : 0;
  u.res[0] = D.u32[d + i0]!;
  u.res[1] = D.u32[d + i0 + 1]!;
  u.res[2] = S.u32[s + i1]!;
  u.res[3] = S.u32[s + i1 + 1]!;
  flush(u, D, d, 4);
}

/**
 * PUNPCKL/H BW, WD, DQ, QDQ and UNPCKL/H PS, PD: interleave elements of `elemBytes` from the low
 * (high = false) or high halves of D and S.
 */
export function unpack(
  u: SseState,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  n: number,
  elemBytes: number,
  high: boolean,
): void {
  const nb = 4 * n;
  const start = high ? nb >>> 1 : 0;
  const b = 4 * d;
  const c = 4 * s;
  let o = 0;
  for (let k = start; k < start + (nb >>> 1); k += elemBytes) {
    for (let j = 0; j < elemBytes; j++) u.res8[o + j] = D.u8[b + k + j]!;
    o += elemBytes;
    for (let j = 0; j < elemBytes; j++) u.res8[o + j] = S.u8[c + k + j]!;
    o += elemBytes;
  }
  flush(u, D, d, n);
}

/** Pack kinds. */
export const Pack = { SSWB: 0, SSDW: 1, USWB: 2, USDW: 3 } as const;

/** PACKSSWB, PACKSSDW, PACKUSWB, PACKUSDW (SSE4.1): saturate D's elements then S's. */
export function pack(
  u: SseState,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  n: number,
  kind: number,
): void {
  if (kind === Pack.SSWB || kind === Pack.USWB) {
    const cnt = 2 * n; // words per source
    for (let i = 0; i < 2 * cnt; i++) {
      const v = i < cnt ? D.i16[2 * d + i]! : S.i16[2 * s + i - cnt]!;
      u.res8[i] = kind === Pack.SSWB ? (v > 127 ? 127 : Math.max(v, -128)) : v > 255 ? 255 : Math.max(v, 0);
    }
  } else {
    for (let i = 0; i < 2 * n; i++) {
      const v = i < n ? D.i32[d + i]! : S.i32[s + i - n]!;
      u.res16[i] =
        kind === Pack.SSDW ? (v > 32767 ? 32767 : Math.max(v, -32768)) : v > 65535 ? 65535 : Math.max(v, 0);
    }
  }
  flush(u, D, d, n);
}

/** MOVSLDUP (odd = false) / MOVSHDUP (odd = true). */
export function movsdup(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, odd: boolean): void {
  const k = odd ? 1 : 0;
  u.res[0] = S.u32[s + k]!;
  u.res[1] = S.u32[s + k]!;
  u.res[2] = S.u32[s + 2 + k]!;
  u.res[3] = S.u32[s + 2 + k]!;
  flush(u, D, d, 4);
}

/** MOVDDUP. */
export function movddup(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): void {
  u.res[0] = S.u32[s]!;
  u.res[1] = S.u32[s + 1]!;
  u.res[2] = S.u32[s]!;
  u.res[3] = S.u32[s + 1]!;
  flush(u, D, d, 4);
}

/** INSERTPS (SSE4.1): imm[7:6] source dword (register form; memory: pass the dword at s with imm[7:6]=0), imm[5:4] target, imm[3:0] zero mask. */
export function insertps(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, imm: number): void {
  for (let i = 0; i < 4; i++) u.res[i] = D.u32[d + i]!;
  u.res[(imm >>> 4) & 3] = S.u32[s + ((imm >>> 6) & 3)]!;
  for (let i = 0; i < 4; i++) if (imm & (1 << i)) u.res[i] = 0;
  flush(u, D, d, 4);
}

/** BLENDPS / BLENDPD / PBLENDW (SSE4.1): element i from S when imm bit i is set. */
export function blendImm(
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  elemBytes: 2 | 4 | 8,
  imm: number,
): void {
  if (elemBytes === 2) {
    for (let i = 0; i < 8; i++) if (imm & (1 << i)) D.u16[2 * d + i] = S.u16[2 * s + i]!;
  } else {
    const per = elemBytes >>> 2;
    for (let i = 0; i < 4; i++) if (imm & (1 << Math.floor(i / per))) D.u32[d + i] = S.u32[s + i]!;
  }
}

/** BLENDVPS / BLENDVPD / PBLENDVB (SSE4.1): by the sign bit of each element of the mask (XMM0 at word m). */
export function blendVar(
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  M: XmmFile,
  m: number,
  elemBytes: 1 | 4 | 8,
): void {
  if (elemBytes === 1) {
    for (let i = 0; i < 16; i++) if (M.u8[4 * m + i]! & 0x80) D.u8[4 * d + i] = S.u8[4 * s + i]!;
  } else {
    const per = elemBytes >>> 2;
    for (let i = 0; i < 4; i += per) {
      if (M.u32[m + i + per - 1]! & 0x80000000)
        for (let j = 0; j < per; j++) D.u32[d + i + j] = S.u32[s + i + j]!;
    }
  }
}

/**
 * PMOVSX/PMOVZX (SSE4.1): widen the low elements of S from `fromBytes` to `toBytes`.
 * Memory forms: the executor loads 16/8/4/2 bytes into a scratch register first.
 */
export function pmovx(
  u: SseState,
  D: XmmFile,
  d: number,
  S: XmmFile,
  s: number,
  fromBytes: 1 | 2 | 4,
  toBytes: 2 | 4 | 8,
  signed: boolean,
): void {
  const cnt = 16 / toBytes;
  for (let i = 0; i < cnt; i++) {
    let v: number;
    if (fromBytes === 1) v = signed ? S.i8[4 * s + i]! : S.u8[4 * s + i]!;
    else if (fromBytes === 2) v = signed ? S.i16[2 * s + i]! : S.u16[2 * s + i]!;
    else v = signed ? S.i32[s + i]! : S.u32[s + i]!;
    if (toBytes === 2) u.res16[i] = v;
    else if (toBytes === 4) u.res[i] = v;
    else {
      u.res[2 * i] = v;
      u.res[2 * i + 1] = v < 0 ? 0xffffffff : 0;
    }
  }
  flush(u, D, d, 4);
}

/** PMOVMSKB: the byte sign bits as an integer. */
export function pmovmskb(S: XmmFile, s: number, n: number): number {
  let m = 0;
  for (let i = 0; i < 4 * n; i++) m |= (S.u8[4 * s + i]! >>> 7) << i;
  return m;
}

/** MOVMSKPS (elemBytes 4) / MOVMSKPD (8). */
export function movmsk(S: XmmFile, s: number, elemBytes: 4 | 8): number {
  let m = 0;
  const per = elemBytes >>> 2;
  for (let i = 0, k = 0; i < 4; i += per, k++) m |= (S.u32[s + i + per - 1]! >>> 31) << k;
  return m;
}

/** PTEST (SSE4.1): returns EFLAGS ZF (D & S == 0) | CF (~D & S == 0); OF SF AF PF cleared. */
export function ptest(D: XmmFile, d: number, S: XmmFile, s: number): number {
  let and = 0;
  let andn = 0;
  for (let i = 0; i < 4; i++) {
    and |= D.u32[d + i]! & S.u32[s + i]!;
    andn |= ~D.u32[d + i]! & S.u32[s + i]!;
  }
  return (and === 0 ? 0x40 : 0) | (andn === 0 ? 0x01 : 0);
}

/** PHMINPOSUW (SSE4.1): min unsigned word in bits 15:0, its index in 18:16, rest zero. */
export function phminposuw(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number): void {
  let min = S.u16[2 * s]!;
  let idx = 0;
  for (let i = 1; i < 8; i++) {
    const v = S.u16[2 * s + i]!;
    if (v < min) {
      min = v;
      idx = i;
    }
  }
  u.res[0] = min | (idx << 16);
  u.res[1] = 0;
  u.res[2] = 0;
  u.res[3] = 0;
  flush(u, D, d, 4);
}

/** MPSADBW (SSE4.1): eight sums of absolute differences of 4-byte groups (SDM Vol. 2 MPSADBW). */
export function mpsadbw(u: SseState, D: XmmFile, d: number, S: XmmFile, s: number, imm: number): void {
  const aOff = 4 * d + ((imm >>> 2) & 1) * 4;
  const bOff = 4 * s + (imm & 3) * 4;
  for (let i = 0; i < 8; i++) {
    let sum = 0;
    for (let j = 0; j < 4; j++) sum += Math.abs(D.u8[aOff + i + j]! - S.u8[bOff + j]!);
    u.res16[i] = sum;
  }
  flush(u, D, d, 4);
}
