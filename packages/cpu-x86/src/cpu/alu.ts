/**
 * Integer arithmetic kernels on 32-bit halves (SDM Vol. 2 instruction pages for ADD..CMP, shifts,
 * rotates, MUL/IMUL/DIV/IDIV). Results return the low half; the high half of 64-bit results lands in
 * `c.opHi`. Flags are recorded lazily where the operation allows (flags.ts), eagerly otherwise.
 */
import { LF } from "./flags.js";
import { Vec } from "./memory.js";
import type { OpCpu } from "./operands.js";
import { F } from "./state.js";

/** Size masks for 1/2/4-byte operands. */
export function mask(sz: number): number {
  return sz === 1 ? 0xff : sz === 2 ? 0xffff : -1;
}

/** Sign bit of a value of `sz` bytes (low half only for sz <= 4). */
export function msb(sz: number, lo: number, hi: number): number {
  return sz === 1 ? (lo >> 7) & 1 : sz === 2 ? (lo >> 15) & 1 : sz === 4 ? lo >>> 31 : hi >>> 31;
}

/** ALU operation index as in group 1 (/0../7): ADD OR ADC SBB AND SUB XOR CMP. */
export const AluK = { ADD: 0, OR: 1, ADC: 2, SBB: 3, AND: 4, SUB: 5, XOR: 6, CMP: 7 } as const;

/** Runs ALU op `k` on d (dst) and s (src) of size `sz`; records flags; returns the result. */
export function alu(c: OpCpu, k: number, sz: number, d: number, dh: number, s: number, sh: number): number {
  if (sz === 8) return alu64(c, k, d, dh, s, sh);
  const m = mask(sz);
  let r: number;
  let op: number;
  switch (k) {
    case 0:
      r = (d + s) & m;
      op = LF.ADD;
      break;
    case 2: {
      const cin = c.cf() ? 1 : 0;
      r = (d + s + cin) & m;
      op = cin ? LF.ADC1 : LF.ADD;
      break;
    }
    case 3: {
      const b = c.cf() ? 1 : 0;
      r = (d - s - b) & m;
      op = b ? LF.SBB1 : LF.SUB;
      break;
    }
    case 5:
    case 7:
      r = (d - s) & m;
      op = LF.SUB;
      break;
    case 1:
      r = d | s;
      op = LF.LOGIC;
      break;
    case 4:
      r = d & s;
      op = LF.LOGIC;
      break;
    default:
      r = d ^ s;
      op = LF.LOGIC;
  }
  c.lzOp = op;
  c.lzSize = sz;
  c.lzDst = d;
  c.lzSrc = s;
  c.lzRes = r;
  return r;
}

function alu64(c: OpCpu, k: number, d: number, dh: number, s: number, sh: number): number {
  let r: number;
  let rh: number;
  let op: number;
  switch (k) {
    case 0:
    case 2: {
      const cin = k === 2 && c.cf() ? 1 : 0;
      const t = (d >>> 0) + (s >>> 0) + cin;
      r = t | 0;
      rh = (dh + sh + (t > 0xffffffff ? 1 : 0)) | 0;
      op = cin ? LF.ADC1 : LF.ADD;
      break;
    }
    case 3:
    case 5:
    case 7: {
      const b = k === 3 && c.cf() ? 1 : 0;
      const t = (d >>> 0) - (s >>> 0) - b;
      r = t | 0;
      rh = (dh - sh - (t < 0 ? 1 : 0)) | 0;
      op = b ? LF.SBB1 : LF.SUB;
      break;
    }
    case 1:
      r = d | s;
      rh = dh | sh;
      op = LF.LOGIC;
      break;
    case 4:
      r = d & s;
      rh = dh & sh;
      op = LF.LOGIC;
      break;
    default:
      r = d ^ s;
      rh = dh ^ sh;
      op = LF.LOGIC;
  }
  c.lzOp = op;
  c.lzSize = 8;
  c.lzDst = d;
  c.lzDstHi = dh;
  c.lzSrc = s;
  c.lzSrcHi = sh;
  c.lzRes = r;
  c.lzResHi = rh;
  c.opHi = rh;
  return r;
}

/** INC (k=0) / DEC (k=1): CF preserved (SDM Vol. 2 INC). */
export function incDec(c: OpCpu, dec: boolean, sz: number, d: number, dh: number): number {
  // Keep CF in `flags` before the lazy record replaces it.
  const cf = c.cf();
  c.lzOp = 0;
  c.flags = cf ? c.flags | F.CF : c.flags & ~F.CF;
  let r: number;
  let rh = 0;
  if (sz === 8) {
    const t = (d >>> 0) + (dec ? -1 : 1);
    r = t | 0;
    rh = (dh + (t > 0xffffffff ? 1 : t < 0 ? -1 : 0)) | 0;
  } else {
    r = (d + (dec ? -1 : 1)) & mask(sz);
  }
  c.lzOp = dec ? LF.DEC : LF.INC;
  c.lzSize = sz;
  c.lzDst = d;
  c.lzDstHi = dh;
  c.lzSrc = 1;
  c.lzSrcHi = 0;
  c.lzRes = r;
  c.lzResHi = rh;
  c.opHi = rh;
  return r;
}

/** Shift/rotate group 2 kinds (/0../7): ROL ROR RCL RCR SHL SHR SAL SAR. */
export function shift(c: OpCpu, k: number, sz: number, d: number, dh: number, count: number): number {
  const bits = sz * 8;
  count &= sz === 8 ? 63 : 31;
  c.opHi = dh;
  if (count === 0) return d; // no flags change (SDM Vol. 2 SAL/SAR/SHL/SHR "Flags Affected")
  if (sz === 8) return shift64(c, k, d, dh, count);
  const m = mask(sz);
  d &= m;
  const top = bits - 1;
  let r: number;
  let cf: number;
  let of: number;
  switch (k) {
    case 0: {
      const n = count % bits;
      r = n === 0 ? d : ((d << n) | (d >>> (bits - n))) & m;
      cf = r & 1;
      of = ((r >>> top) & 1) ^ cf;
      c.setArith(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 1: {
      const n = count % bits;
      r = n === 0 ? d : ((d >>> n) | (d << (bits - n))) & m;
      cf = (r >>> top) & 1;
      of = cf ^ ((r >>> (top - 1)) & 1);
      c.setArith(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r;
    }
    case 2:
    case 3: {
      // RCL/RCR rotate through CF: size+1 bit rotation (SDM: count mod 9 / 17 for 8/16 bits).
      const n = sz === 4 ? count : count % (bits + 1);
      let cin = c.cf() ? 1 : 0;
      r = d;
      for (let t = 0; t < n; t++) {
        if (k === 2) {
          const out = (r >>> top) & 1;
          r = ((r << 1) | cin) & m;
          cin = out;
        } else {
          const out = r & 1;
          r = (r >>> 1) | (cin << top);
          if (sz === 4) r |= 0;
          cin = out;
        }
      }
      cf = cin;
      of = k === 2 ? ((r >>> top) & 1) ^ cf : ((r >>> top) & 1) ^ ((r >>> (top - 1)) & 1);
      c.setArith(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      return r & m;
    }
    case 4:
    case 6: {
      if (count >= bits) {
        r = 0;
        cf = count === bits ? d & 1 : 0;
      } else {
        r = (d << count) & m;
        cf = (d >>> (bits - count)) & 1;
      }
      of = ((r >>> top) & 1) ^ cf;
      break;
    }
    case 5:
      if (count >= bits) {
        r = 0;
        cf = count === bits ? (d >>> top) & 1 : 0;
      } else {
        r = d >>> count;
        cf = (d >>> (count - 1)) & 1;
      }
      of = (d >>> top) & 1;
      break;
    default: {
      const sd = sz === 1 ? (d << 24) >> 24 : sz === 2 ? (d << 16) >> 16 : d | 0;
      const n = count >= bits ? bits - 1 : count;
      r = (sd >> n) & m;
      cf = count >= bits ? (sd >>> 31) & 1 : (sd >> (count - 1)) & 1;
      of = 0;
    }
  }
  c.setResultFlags(sz, r, 0, (cf ? F.CF : 0) | (of ? F.OF : 0));
  return r;
}

function shift64(c: OpCpu, k: number, d: number, dh: number, n: number): number {
  let r = d;
  let rh = dh;
  let cf: number;
  let of: number;
  switch (k) {
    case 0:
    case 1: {
      // Rotate a 64-bit value by n (1..63).
      let lo = d;
      let hi = dh;
      const left = k === 0 ? n : 64 - n;
      if (left >= 32) {
        const t = lo;
        lo = hi;
        hi = t;
      }
      const s = left & 31;
      if (s !== 0) {
        const nl = (lo << s) | (hi >>> (32 - s));
        const nh = (hi << s) | (lo >>> (32 - s));
        lo = nl;
        hi = nh;
      }
      r = lo;
      rh = hi;
      if (k === 0) {
        cf = r & 1;
        of = (rh >>> 31) ^ cf;
      } else {
        cf = rh >>> 31;
        of = cf ^ ((rh >>> 30) & 1);
      }
      c.setArith(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      c.opHi = rh;
      return r;
    }
    case 2:
    case 3: {
      let cin = c.cf() ? 1 : 0;
      for (let t = 0; t < n; t++) {
        if (k === 2) {
          const out = rh >>> 31;
          rh = (rh << 1) | (r >>> 31);
          r = (r << 1) | cin;
          cin = out;
        } else {
          const out = r & 1;
          r = (r >>> 1) | (rh << 31);
          rh = (rh >>> 1) | (cin << 31);
          cin = out;
        }
      }
      cf = cin;
      of = k === 2 ? (rh >>> 31) ^ cf : (rh >>> 31) ^ ((rh >>> 30) & 1);
      c.setArith(F.CF | F.OF, (cf ? F.CF : 0) | (of ? F.OF : 0));
      c.opHi = rh;
      return r;
    }
    case 4:
    case 6:
      if (n >= 32) {
        cf = n === 32 ? dh & 1 : (d >>> (64 - n)) & 1; // last bit out: bit 64-n
        rh = n === 32 ? d : d << (n - 32);
        r = 0;
      } else {
        cf = (dh >>> (32 - n)) & 1;
        rh = (dh << n) | (d >>> (32 - n));
        r = d << n;
      }
      of = (rh >>> 31) ^ cf;
      break;
    case 5:
      if (n >= 32) {
        cf = n === 32 ? d >>> 31 : (dh >>> (n - 33)) & 1; // last bit out: bit n-1
        r = n === 32 ? dh : dh >>> (n - 32);
        rh = 0;
      } else {
        cf = (d >>> (n - 1)) & 1;
        r = (d >>> n) | (dh << (32 - n));
        rh = dh >>> n;
      }
      of = dh >>> 31;
      break;
    default:
      if (n >= 32) {
        cf = n === 32 ? d >>> 31 : (dh >> (n - 33)) & 1;
        r = n === 32 ? dh : dh >> (n - 32);
        rh = dh >> 31;
      } else {
        cf = (d >>> (n - 1)) & 1;
        r = (d >>> n) | (dh << (32 - n));
        rh = dh >> n;
      }
      of = 0;
  }
  r |= 0;
  rh |= 0;
  c.setResultFlags(8, r, rh, (cf ? F.CF : 0) | (of ? F.OF : 0));
  c.opHi = rh;
  return r;
}

// ------------------------------------------------------------------ multiply / divide

/** Unsigned 32x32 -> 64: returns low, high in `mulHi`. */
let mulHi = 0;
export function mulU32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  mulHi = (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
  return (ll & 0xffff) | (mid << 16);
}

/** 64x64 -> 128 unsigned product; words in `prod` (little-endian int32). */
export const prod = new Int32Array(4);
export function mulU64(aL: number, aH: number, bL: number, bH: number): void {
  const p0 = mulU32(aL, bL);
  const p0h = mulU32Hi();
  const p1 = mulU32(aL, bH);
  const p1h = mulU32Hi();
  const p2 = mulU32(aH, bL);
  const p2h = mulU32Hi();
  const p3 = mulU32(aH, bH);
  const p3h = mulU32Hi();
  prod[0] = p0;
  const w1 = (p0h >>> 0) + (p1 >>> 0) + (p2 >>> 0);
  prod[1] = w1 | 0;
  const c1 = Math.floor(w1 / 4294967296);
  const w2 = (p1h >>> 0) + (p2h >>> 0) + (p3 >>> 0) + c1;
  prod[2] = w2 | 0;
  const c2 = Math.floor(w2 / 4294967296);
  prod[3] = (p3h + c2) | 0;
}
function mulU32Hi(): number {
  return mulHi;
}

export { mulU32Hi };

/** Signed 64x64 -> 128 into `prod`. */
export function mulS64(aL: number, aH: number, bL: number, bH: number): void {
  mulU64(aL, aH, bL, bH);
  // Two's-complement correction of the high 64 bits.
  if (aH < 0) sub64Hi(bL, bH);
  if (bH < 0) sub64Hi(aL, aH);
}
function sub64Hi(l: number, h: number): void {
  const t = (prod[2]! >>> 0) - (l >>> 0);
  prod[2] = t | 0;
  prod[3] = (prod[3]! - h - (t < 0 ? 1 : 0)) | 0;
}

const TWO32 = 4294967296;

/**
 * Unsigned divide of the 2*sz-byte value (nHi:nLo words) by d; raises #DE on zero or overflow
 * (SDM Vol. 2 DIV). For sz <= 4 returns the quotient, remainder in `c.opHi`.
 */
export function divU(c: OpCpu, sz: number, nLo: number, nHi: number, d: number): number {
  d >>>= 0;
  if (d === 0) c.raise(Vec.DE);
  let q: number;
  let r: number;
  if (sz === 4) {
    const hiU = nHi >>> 0;
    if (hiU >= d) c.raise(Vec.DE);
    if (hiU < 0x200000) {
      const n = hiU * TWO32 + (nLo >>> 0);
      q = Math.floor(n / d);
      r = n - q * d;
    } else {
      const n = (BigInt(hiU) << 32n) | BigInt(nLo >>> 0);
      q = Number(n / BigInt(d));
      r = Number(n % BigInt(d));
    }
  } else {
    const n = nLo >>> 0; // already combined for 1/2
    q = Math.floor(n / d);
    r = n - q * d;
    if (q > (sz === 1 ? 0xff : 0xffff)) c.raise(Vec.DE);
  }
  c.opHi = r | 0;
  return q | 0;
}

/** Signed counterpart of `divU` for sz <= 4; n given as a signed number for sz 1/2. */
export function divS(c: OpCpu, sz: number, nLo: number, nHi: number, d: number): number {
  if (d === 0) c.raise(Vec.DE);
  let q: number;
  let r: number;
  if (sz === 4) {
    const n = (BigInt(nHi) << 32n) | BigInt(nLo >>> 0);
    const bd = BigInt(d | 0);
    const bq = n / bd;
    if (bq > 0x7fffffffn || bq < -0x80000000n) c.raise(Vec.DE);
    q = Number(bq);
    r = Number(n % bd);
  } else {
    q = Math.trunc(nLo / d);
    r = nLo - q * d;
    const lim = sz === 1 ? 0x80 : 0x8000;
    if (q >= lim || q < -lim) c.raise(Vec.DE);
  }
  c.opHi = r | 0;
  return q | 0;
}

/** 128/64 division (DIV/IDIV r/m64) on BigInt: cold compared to 32-bit division. Quotient -> prod[0..1], remainder -> prod[2..3]. */
export function div128(
  c: OpCpu,
  signed: boolean,
  n0: number,
  n1: number,
  n2: number,
  n3: number,
  dL: number,
  dH: number,
): void {
  const u = (x: number) => BigInt(x >>> 0);
  let n = (u(n3) << 96n) | (u(n2) << 64n) | (u(n1) << 32n) | u(n0);
  let d = (u(dH) << 32n) | u(dL);
  if (d === 0n) c.raise(Vec.DE);
  if (signed) {
    n = BigInt.asIntN(128, n);
    d = BigInt.asIntN(64, d);
  }
  const q = n / d;
  const r = n % d;
  if (signed ? q > 0x7fffffffffffffffn || q < -0x8000000000000000n : q > 0xffffffffffffffffn) c.raise(Vec.DE);
  prod[0] = Number(BigInt.asUintN(32, q)) | 0;
  prod[1] = Number(BigInt.asUintN(32, q >> 32n)) | 0;
  prod[2] = Number(BigInt.asUintN(32, r)) | 0;
  prod[3] = Number(BigInt.asUintN(32, r >> 32n)) | 0;
}
