/**
 * Conversions between extended precision and float32/float64/integers/packed BCD, rounding to
 * an integer, and comparison, all over a SoftFloat engine (results in its o* fields, exceptions
 * OR'ed into `flags`). SDM Vol. 1 §4.8.3 (conversions), §4.7 (BCD), Vol. 2 FLD/FST/FILD/FIST/
 * FISTTP/FBLD/FBSTP/FRNDINT/FCOM/FUCOM.
 */
import { Cls, FpExc, INDEF_HI, INDEF_SE, RoundMode, type SoftFloat, X80_BIAS } from "./softfloat.js";

/** Compare results. */
export const Cmp = { Less: 0, Equal: 1, Greater: 2, Unordered: 3 } as const;

/** Extended -> float64 (FST m64fp): rounds with FCW.RC; SNaN -> IE, quieted. */
export function x80ToF64(sf: SoftFloat, se: number, hi: number, lo: number): void {
  sf.unpackX(se, hi, lo, false);
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packF64();
}

/** Extended -> float32 (FST m32fp). */
export function x80ToF32(sf: SoftFloat, se: number, hi: number, lo: number): void {
  sf.unpackX(se, hi, lo, false);
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packF32();
}

/** float64 -> extended (FLD m64fp): exact; DE for a denormal, IE for an SNaN (quieted). */
export function f64ToX80(sf: SoftFloat, hi: number, lo: number): void {
  const c = sf.unpackF64(hi, lo, false);
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packX(64, 0);
}

/** float32 -> extended (FLD m32fp). */
export function f32ToX80(sf: SoftFloat, bits: number): void {
  const c = sf.unpackF32(bits, false);
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (!sf.propagateNaN1()) sf.zFromSlot(false);
  sf.packX(64, 0);
}

/** Signed 64-bit integer (hi/lo) -> extended (FILD): always exact. */
export function i64ToX80(sf: SoftFloat, hi: number, lo: number): void {
  sf.unpackI64(hi, lo);
  sf.zFromSlot(false);
  sf.packX(64, 0);
}

/** Signed 32-bit integer -> extended. */
export function i32ToX80(sf: SoftFloat, v: number): void {
  i64ToX80(sf, v < 0 || (v | 0) < 0 ? 0xffffffff : 0, v >>> 0);
}

/**
 * Round slot A to an integer with rounding mode `rc`: magnitude in z2:z1 (64 bits), z0 = 1 if the
 * magnitude does not fit in 64 bits. Returns 1 if inexact. A must be finite (Zero/Normal/Denormal).
 */
export function roundSlotToInt(sf: SoftFloat, rc: number): number {
  if (sf.aCls === Cls.Zero) {
    sf.z2 = 0;
    sf.z1 = 0;
    sf.z0 = 0;
    return 0;
  }
  const e = sf.aExp;
  if (e >= 64) {
    sf.z0 = 1;
    return 0;
  }
  sf.z2 = sf.aHi;
  sf.z1 = sf.aLo;
  sf.z0 = 0;
  sf.zSticky = 0;
  sf.shiftRightZ(63 - e);
  const half = sf.z0 >>> 31;
  const rest = (sf.z0 & 0x7fffffff) | sf.zSticky;
  const inexact = half | rest ? 1 : 0;
  let inc = 0;
  switch (rc) {
    case RoundMode.Nearest:
      inc = half && (rest || sf.z1 & 1) ? 1 : 0;
      break;
    case RoundMode.Up:
      inc = inexact && sf.aSign === 0 ? 1 : 0;
      break;
    case RoundMode.Down:
      inc = inexact && sf.aSign === 1 ? 1 : 0;
      break;
  }
  sf.z0 = 0;
  sf.zSticky = 0;
  sf.roundedUp = inc;
  if (inc) {
    const l = sf.z1 + 1;
    if (l > 0xffffffff) {
      sf.z1 = 0;
      const h = sf.z2 + 1;
      if (h > 0xffffffff) {
        sf.z2 = 0;
        sf.z0 = 1;
      } else sf.z2 = h;
    } else sf.z1 = l;
  }
  return inexact;
}

/**
 * FRNDINT: round ST(0) to an integral value with FCW.RC into oSe/oHi/oLo (SDM Vol. 2 FRNDINT).
 * `rc` is passed so SSE ROUNDSS/SD can override it; `suppressPE` for their imm8 bit 3.
 */
export function roundX80ToInt(sf: SoftFloat, rc: number, suppressPE: boolean): void {
  const c = sf.aCls;
  if (sf.propagateNaN1()) return;
  if (c === Cls.Inf || c === Cls.Zero) {
    sf.zFromSlot(false);
    return;
  }
  if (c === Cls.Denormal) sf.flags |= FpExc.DE;
  if (sf.aExp >= 63) {
    sf.zFromSlot(false);
    return;
  }
  const sign = sf.aSign;
  const inexact = roundSlotToInt(sf, rc);
  if (inexact && !suppressPE) sf.flags |= FpExc.PE;
  if (sf.z0 === 1) {
    // 2^64 after rounding up.
    sf.zCls = Cls.Normal;
    sf.zSign = sign;
    sf.zExp = 64;
    sf.z2 = 0x80000000;
    sf.z1 = 0;
    sf.z0 = 0;
    return;
  }
  sf.zSign = sign;
  sf.zExp = 63;
  sf.zCls = Cls.Normal;
  sf.normalizeZ();
  if (sf.zCls === Cls.Zero) sf.zSign = sign;
}

/**
 * Extended in slot A -> signed integer of `width` bits (16, 32, 64) in oHi/oLo (two's complement),
 * rounding with `rc` (FIST) or toward zero (FISTTP, CVTT*). Out of range, NaN, infinity or an
 * unsupported encoding give IE and the integer indefinite (the most negative integer).
 */
export function slotToInt(sf: SoftFloat, width: number, rc: number): void {
  const c = sf.aCls;
  if (c >= Cls.Inf) {
    sf.flags |= FpExc.IE;
    setIntIndefinite(sf, width);
    return;
  }
  // No DE for a denormal source (observed on the host; FIST lists no #D).
  const inexact = roundSlotToInt(sf, rc);
  const neg = sf.aSign === 1;
  let hi = sf.z2;
  let lo = sf.z1;
  // Range: magnitude <= 2^(w-1) - 1, or exactly 2^(w-1) when negative.
  let ok = sf.z0 === 0;
  if (ok) {
    if (width === 64) ok = hi < 0x80000000 || (neg && hi === 0x80000000 && lo === 0);
    else {
      const lim = 2 ** (width - 1);
      ok = hi === 0 && (lo < lim || (neg && lo === lim));
    }
  }
  if (!ok) {
    sf.flags |= FpExc.IE;
    setIntIndefinite(sf, width);
    return;
  }
  if (inexact) sf.flags |= FpExc.PE;
  if (neg) {
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
  }
  if (width === 16) {
    sf.oLo = lo & 0xffff;
    sf.oHi = 0;
  } else {
    sf.oLo = lo >>> 0;
    sf.oHi = width === 64 ? hi >>> 0 : 0;
  }
}

function setIntIndefinite(sf: SoftFloat, width: number): void {
  if (width === 64) {
    sf.oHi = 0x80000000;
    sf.oLo = 0;
  } else {
    sf.oHi = 0;
    sf.oLo = width === 32 ? 0x80000000 : 0x8000;
  }
}

/**
 * FBLD: packed BCD (10 bytes, little-endian; byte 9 bit 7 = sign, 18 digits) -> extended, exact.
 * Invalid digits give an undefined result on hardware (SDM Vol. 2 FBLD); here each nibble is
 * taken at face value (a digit above 9 contributes its binary value), which is what AMD and
 * Intel parts are observed to do.
 */
export function bcdToX80(sf: SoftFloat, bytes: Uint8Array, off: number): void {
  // Accumulate 18 digits in two base-1e9 halves so everything stays exact in doubles.
  let high = 0; // digits 17..9
  let low = 0; // digits 8..0
  for (let i = 8; i >= 0; i--) {
    const b = bytes[off + i]!;
    const dHi = b >>> 4;
    const dLo = b & 15;
    if (i >= 5) high = high * 100 + dHi * 10 + dLo;
    else if (i === 4) {
      high = high * 10 + dHi;
      low = dLo;
    } else low = low * 100 + dHi * 10 + dLo;
  }
  // value = high * 1e9 + low may exceed 2^53: build its 32-bit halves from 16-bit pieces of `high`.
  const h0 = high % 65536;
  const h1 = (high - h0) / 65536;
  const p0 = h0 * 1e9 + low; // < 2^46
  const p1 = h1 * 1e9; // < 2^44, weight 2^16
  const lowWord = (p0 % 0x100000000) + (p1 % 65536) * 65536;
  let vLo = lowWord % 0x100000000;
  let vHi = Math.floor(p0 / 0x100000000) + Math.floor(p1 / 65536) + Math.floor(lowWord / 0x100000000);
  const neg = (bytes[off + 9]! & 0x80) !== 0;
  if (neg && (vHi !== 0 || vLo !== 0)) {
    vLo = (~vLo + 1) >>> 0;
    vHi = (~vHi + (vLo === 0 ? 1 : 0)) >>> 0;
  }
  i64ToX80(sf, vHi >>> 0, vLo >>> 0);
  if (neg && sf.oSe === 0 && sf.oHi === 0) sf.oSe = 0x8000; // -0 stays -0
}

/**
 * FBSTP: extended in slot A -> packed BCD into `out` (10 bytes). Rounds with `rc`; beyond 18
 * digits, NaN, infinity or unsupported: IE and the packed BCD indefinite (FF FF C0 00..00, SDM
 * Vol. 1 Table 4-4). Returns false when IE is unmasked (nothing to store).
 */
export function slotToBcd(sf: SoftFloat, rc: number, out: Uint8Array, off: number): boolean {
  const c = sf.aCls;
  let bad = c >= Cls.Inf;
  let inexact = 0;
  if (!bad) {
    inexact = roundSlotToInt(sf, rc);
    // 10^18 - 1 = 0x0DE0B6B3A763FFFF
    bad = sf.z0 !== 0 || sf.z2 > 0x0de0b6b3 || (sf.z2 === 0x0de0b6b3 && sf.z1 > 0xa763ffff);
  }
  if (bad) {
    sf.flags |= FpExc.IE;
    if ((sf.masks & FpExc.IE) === 0) return false;
    out.fill(0, off, off + 10);
    out[off + 7] = 0xc0;
    out[off + 8] = 0xff;
    out[off + 9] = 0xff;
    return true;
  }
  if (inexact) sf.flags |= FpExc.PE;
  // Split the magnitude into base-1e9 halves exactly: v = hi*2^32 + lo.
  const hi = sf.z2;
  const lo = sf.z1;
  // Long division of (hi:lo) by 1e9 in 16-bit steps keeps intermediates below 2^53.
  let rem = 0;
  let q = 0;
  for (let k = 0; k < 4; k++) {
    const l = k === 0 ? hi >>> 16 : k === 1 ? hi & 0xffff : k === 2 ? lo >>> 16 : lo & 0xffff;
    const cur = rem * 65536 + l;
    const d = Math.floor(cur / 1e9);
    rem = cur - d * 1e9;
    q = q * 65536 + d;
  }
  let high = q; // < 1e9
  let low = rem;
  for (let i = 0; i < 9; i++) {
    let b: number;
    if (i < 4) {
      b = low % 10;
      low = (low - b) / 10;
      const d = low % 10;
      low = (low - d) / 10;
      b |= d << 4;
    } else if (i === 4) {
      b = low % 10;
      const d = high % 10;
      high = (high - d) / 10;
      b |= d << 4;
    } else {
      b = high % 10;
      high = (high - b) / 10;
      const d = high % 10;
      high = (high - d) / 10;
      b |= d << 4;
    }
    out[off + i] = b;
  }
  out[off + 9] = sf.aSign ? 0x80 : 0;
  return true;
}

/**
 * Compare slots A and B. `quiet` (FUCOM, UCOMISS) raises IE only for SNaN; otherwise (FCOM,
 * COMISS) any NaN raises IE. Unsupported encodings always raise IE and compare unordered.
 */
export function sfCompare(sf: SoftFloat, quiet: boolean): number {
  const ac = sf.aCls;
  const bc = sf.bCls;
  if (ac >= Cls.QNaN || bc >= Cls.QNaN) {
    if (!quiet || ac >= Cls.SNaN || bc >= Cls.SNaN) sf.flags |= FpExc.IE;
    return Cmp.Unordered;
  }
  if (ac === Cls.Denormal || bc === Cls.Denormal) sf.flags |= FpExc.DE;
  if (ac === Cls.Zero && bc === Cls.Zero) return Cmp.Equal;
  // Map each to a signed order key: compare signs, then magnitudes.
  const aNeg = ac !== Cls.Zero && sf.aSign === 1;
  const bNeg = bc !== Cls.Zero && sf.bSign === 1;
  if (ac === Cls.Zero) return bNeg ? Cmp.Greater : Cmp.Less;
  if (bc === Cls.Zero) return aNeg ? Cmp.Less : Cmp.Greater;
  if (aNeg !== bNeg) return aNeg ? Cmp.Less : Cmp.Greater;
  const mag = magCompare(sf);
  if (mag === 0) return Cmp.Equal;
  return mag > 0 !== aNeg ? Cmp.Greater : Cmp.Less;
}

/** |A| vs |B| for non-zero, non-NaN slots (infinity compares above every finite). */
function magCompare(sf: SoftFloat): number {
  const aInf = sf.aCls === Cls.Inf;
  const bInf = sf.bCls === Cls.Inf;
  if (aInf || bInf) return aInf === bInf ? 0 : aInf ? 1 : -1;
  if (sf.aExp !== sf.bExp) return sf.aExp > sf.bExp ? 1 : -1;
  if (sf.aHi !== sf.bHi) return sf.aHi > sf.bHi ? 1 : -1;
  if (sf.aLo !== sf.bLo) return sf.aLo > sf.bLo ? 1 : -1;
  return 0;
}

/** The x87 real indefinite, for masked invalid-operation responses. */
export const REAL_INDEFINITE = { se: INDEF_SE, hi: INDEF_HI, lo: 0 } as const;
/** Exponent bias of the extended format, re-exported for callers building values. */
export const EXT_BIAS = X80_BIAS;
