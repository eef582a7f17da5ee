/**
 * SSE4.2 string compares (PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM, SDM Vol. 2 §4.1), CRC32 and
 * the bit-count helpers POPCNT, LZCNT, TZCNT (returning their EFLAGS).
 */
import type { SseState, XmmFile } from "./state.js";

/** EFLAGS bits. */
const CF = 0x001;
const ZF = 0x040;
const SF = 0x080;
const OF = 0x800;

function elem(F: XmmFile, w: number, i: number, words: boolean, signed: boolean): number {
  if (words) return signed ? F.i16[2 * w + i]! : F.u16[2 * w + i]!;
  return signed ? F.i8[4 * w + i]! : F.u8[4 * w + i]!;
}

/** Explicit length from EAX/EDX (RAX/RDX with REX.W, hi:lo): |value| saturated to the element count n. */
export function explicitLength(lo: number, hi: number, wide: boolean, n: number): number {
  if (!wide) return Math.min(Math.abs(lo | 0), n);
  if (hi === 0) return Math.min(lo >>> 0, n);
  if (hi === 0xffffffff && lo >>> 0 !== 0) return Math.min(0x100000000 - (lo >>> 0), n);
  return n;
}

/** Implicit length: index of the first zero element. */
function implicitLength(F: XmmFile, w: number, words: boolean, n: number): number {
  for (let i = 0; i < n; i++) if (elem(F, w, i, words, false) === 0) return i;
  return n;
}

/**
 * The core of PCMPxSTRx: compares A (xmm1, word offset a) with B (xmm2/m128) by imm8 and leaves
 * IntRes2 in u.res[0] (bit j for element j) and the element count in u.res[1]. `la`/`lb` are
 * the explicit lengths (from explicitLength), or -1 for the implicit (NUL-terminated) forms.
 * Returns EFLAGS CF, ZF, SF, OF (AF and PF cleared).
 */
export function pcmpstr(
  u: SseState,
  A: XmmFile,
  a: number,
  B: XmmFile,
  b: number,
  imm: number,
  la: number,
  lb: number,
): number {
  const words = (imm & 1) !== 0;
  const signed = (imm & 2) !== 0;
  const n = words ? 8 : 16;
  if (la < 0) la = implicitLength(A, a, words, n);
  if (lb < 0) lb = implicitLength(B, b, words, n);
  const agg = (imm >>> 2) & 3;
  let res = 0;
  for (let j = 0; j < n; j++) {
    const bj = elem(B, b, j, words, signed);
    const bValid = j < lb;
    let bit = false;
    switch (agg) {
      case 0: // equal any
        if (bValid) for (let i = 0; i < la && !bit; i++) bit = elem(A, a, i, words, signed) === bj;
        break;
      case 1: // ranges: pairs (a[i], a[i+1]) as [low, high]
        if (bValid)
          for (let i = 0; i + 1 < n && !bit; i += 2) {
            if (i >= la) break;
            const lo = elem(A, a, i, words, signed);
            const hiValid = i + 1 < la;
            bit = lo <= bj && hiValid && bj <= elem(A, a, i + 1, words, signed);
          }
        break;
      case 2: {
        // equal each: both invalid -> true, one invalid -> false
        const aValid = j < la;
        bit = aValid && bValid ? elem(A, a, j, words, signed) === bj : !aValid && !bValid;
        break;
      }
      default: {
        // equal ordered: substring A starting at B[j]
        bit = true;
        for (let k = 0; k < n - j && bit; k++) {
          if (k >= la) break; // A invalid: true
          if (j + k >= lb)
            bit = false; // A valid, B invalid
          else bit = elem(A, a, k, words, signed) === elem(B, b, j + k, words, signed);
        }
      }
    }
    if (bit) res |= 1 << j;
  }
  const full = (1 << n) - 1;
  switch ((imm >>> 4) & 3) {
    case 1:
      res = ~res & full;
      break;
    case 3:
      res = (res ^ ((1 << lb) - 1)) & full;
      break;
  }
  u.res[0] = res;
  u.res[1] = n;
  return (res !== 0 ? CF : 0) | (lb < n ? ZF : 0) | (la < n ? SF : 0) | (res & 1 ? OF : 0);
}

/** PCMP?STRI: the index for ECX after `pcmpstr` (imm8 bit 6: most significant). */
export function pcmpstrIndex(u: SseState, imm: number): number {
  const res = u.res[0]!;
  const n = u.res[1]!;
  if (res === 0) return n;
  return imm & 0x40 ? 31 - Math.clz32(res) : 31 - Math.clz32(res & -res);
}

/** PCMP?STRM: write the mask to XMM0 (word offset m) after `pcmpstr` (imm8 bit 6: expanded). */
export function pcmpstrMask(u: SseState, imm: number, M: XmmFile, m: number): void {
  const res = u.res[0]!;
  const n = u.res[1]!;
  if (imm & 0x40) {
    for (let i = 0; i < n; i++) {
      if (n === 8) M.u16[2 * m + i] = res & (1 << i) ? 0xffff : 0;
      else M.u8[4 * m + i] = res & (1 << i) ? 0xff : 0;
    }
  } else {
    M.u32[m] = res;
    M.u32[m + 1] = 0;
    M.u32[m + 2] = 0;
    M.u32[m + 3] = 0;
  }
}

/** CRC-32C (Castagnoli, reflected 0x82F63B78) byte table for CRC32 (SDM Vol. 2 CRC32). */
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32 r32, r/m{8,16,32,64}: `bytes` of the source (lo, then hi for 8 bytes) into crc. */
export function crc32c(crc: number, lo: number, hi: number, bytes: 1 | 2 | 4 | 8): number {
  let c = crc >>> 0;
  for (let i = 0; i < bytes; i++) {
    const byte = i < 4 ? (lo >>> (8 * i)) & 0xff : (hi >>> (8 * (i - 4))) & 0xff;
    c = CRC32C_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  }
  return c >>> 0;
}

/** Population count of a 32-bit value. */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** POPCNT: count in u.res[0]; returns EFLAGS (ZF when the source is zero, others cleared). */
export function popcnt(u: SseState, lo: number, hi: number, bits: 16 | 32 | 64): number {
  const l = bits === 16 ? lo & 0xffff : lo;
  const c = popcount32(l) + (bits === 64 ? popcount32(hi) : 0);
  u.res[0] = c;
  return c === 0 ? ZF : 0;
}

/** LZCNT: count in u.res[0]; CF = source zero, ZF = result zero. */
export function lzcnt(u: SseState, lo: number, hi: number, bits: 16 | 32 | 64): number {
  let c: number;
  if (bits === 64) c = hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
  else if (bits === 32) c = Math.clz32(lo);
  else c = Math.clz32(lo & 0xffff) - 16;
  u.res[0] = c;
  return (c === bits ? CF : 0) | (c === 0 ? ZF : 0);
}

/** TZCNT: count in u.res[0]; CF = source zero, ZF = result zero. */
export function tzcnt(u: SseState, lo: number, hi: number, bits: 16 | 32 | 64): number {
  const l = bits === 16 ? lo & 0xffff : lo >>> 0;
  let c: number;
  if (l !== 0) c = 31 - Math.clz32(l & -l);
  else if (bits === 64 && hi !== 0) c = 32 + 31 - Math.clz32(hi & -hi);
  else c = bits;
  u.res[0] = c;
  return (c === bits ? CF : 0) | (c === 0 ? ZF : 0);
}
