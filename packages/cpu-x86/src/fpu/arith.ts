/**
 * Exact arithmetic on the SoftFloat operand slots: each function leaves the exact result (or a
 * special value) in Z; the caller then packs it into the destination format, which rounds.
 * Special cases follow SDM Vol. 1 §4.8.3.6, §4.9.1.2 (invalid operations), Table 4-7 (NaNs) and
 * the per-instruction tables of Vol. 2 (FADD, FMUL, FDIV, FSQRT: results for each operand class).
 */
import { Cls, FpExc, RoundMode, type SoftFloat } from "./softfloat.js";

/** Z := A + B (sub=false) or A - B (sub=true). `sse` selects the SSE NaN rule. */
export function sfAdd(sf: SoftFloat, sub: boolean, sse: boolean): void {
  if (sf.propagateNaN2(sse)) return;
  const ac = sf.aCls;
  const bc = sf.bCls;
  if (ac === Cls.Denormal || bc === Cls.Denormal) sf.flags |= FpExc.DE;
  const aSign = sf.aSign;
  const bSign = sf.bSign ^ (sub ? 1 : 0);
  if (ac === Cls.Inf) {
    if (bc === Cls.Inf && aSign !== bSign) sf.invalid();
    else sf.setInf(aSign);
    return;
  }
  if (bc === Cls.Inf) {
    sf.setInf(bSign);
    return;
  }
  if (ac === Cls.Zero) {
    if (bc === Cls.Zero) {
      // +0 + -0 is +0 except when rounding down (IEEE 754 §6.3).
      sf.setZero(aSign === bSign ? aSign : sf.rc === RoundMode.Down ? 1 : 0);
      return;
    }
    sf.zFromSlot(true);
    sf.zSign = bSign;
    return;
  }
  if (bc === Cls.Zero) {
    sf.zFromSlot(false);
    return;
  }
  // Order by magnitude: X is the larger.
  let xE = sf.aExp;
  let xH = sf.aHi;
  let xL = sf.aLo;
  let xS = aSign;
  let yE = sf.bExp;
  let yH = sf.bHi;
  let yL = sf.bLo;
  if (yE > xE || (yE === xE && (yH > xH || (yH === xH && yL > xL)))) {
    xE = sf.bExp;
    xH = sf.bHi;
    xL = sf.bLo;
    xS = bSign;
    yE = sf.aExp;
    yH = sf.aHi;
    yL = sf.aLo;
  }
  // Y aligned to X's exponent, through Z's shifter.
  sf.z2 = yH;
  sf.z1 = yL;
  sf.z0 = 0;
  sf.zSticky = 0;
  sf.shiftRightZ(xE - yE);
  const y2 = sf.z2;
  const y1 = sf.z1;
  const y0 = sf.z0;
  const st = sf.zSticky;
  sf.zCls = Cls.Normal;
  sf.zExp = xE;
  if (aSign === bSign) {
    sf.zSign = aSign;
    let s0 = y0;
    let s1 = xL + y1;
    let s2 = xH + y2;
    if (s1 > 0xffffffff) {
      s1 -= 0x100000000;
      s2 += 1;
    }
    if (s2 > 0xffffffff) {
      // Carry out: shift right by one, the lost bit going to sticky.
      sf.zSticky = st | (s0 & 1);
      s0 = ((s0 >>> 1) | ((s1 & 1) << 31)) >>> 0;
      s1 = ((s1 >>> 1) | ((s2 & 1) << 31)) >>> 0;
      s2 = 0x80000000 + ((s2 - 0x100000000) >>> 1);
      sf.zExp = xE + 1;
    } else sf.zSticky = st;
    sf.z2 = s2 >>> 0;
    sf.z1 = s1 >>> 0;
    sf.z0 = s0 >>> 0;
    return;
  }
  sf.zSign = xS;
  // X - Y - sticky: a sticky Y is a little larger than its 96 bits, so borrow one and keep
  // the result sticky (0 < true remainder < 1 unit of the 96th bit).
  let d0 = 0 - y0 - st;
  let borrow = 0;
  if (d0 < 0) {
    d0 += 0x100000000;
    borrow = 1;
  }
  let d1 = xL - y1 - borrow;
  borrow = 0;
  if (d1 < 0) {
    d1 += 0x100000000;
    borrow = 1;
  }
  const d2 = xH - y2 - borrow;
  sf.z2 = d2 >>> 0;
  sf.z1 = d1 >>> 0;
  sf.z0 = d0 >>> 0;
  sf.zSticky = st;
  sf.normalizeZ();
  if (sf.zCls === Cls.Zero) sf.zSign = sf.rc === RoundMode.Down ? 1 : 0;
}

/** Z := A * B. */
export function sfMul(sf: SoftFloat, sse: boolean): void {
  if (sf.propagateNaN2(sse)) return;
  const ac = sf.aCls;
  const bc = sf.bCls;
  if (ac === Cls.Denormal || bc === Cls.Denormal) sf.flags |= FpExc.DE;
  const sign = sf.aSign ^ sf.bSign;
  if (ac === Cls.Inf || bc === Cls.Inf) {
    if (ac === Cls.Zero || bc === Cls.Zero) sf.invalid();
    else sf.setInf(sign);
    return;
  }
  if (ac === Cls.Zero || bc === Cls.Zero) {
    sf.setZero(sign);
    return;
  }
  mul64(sf, sf.aHi, sf.aLo, sf.bHi, sf.bLo);
  sf.zSign = sign;
  sf.zCls = Cls.Normal;
  sf.zExp = sf.aExp + sf.bExp + 1;
  sf.normalizeZ();
}

/**
 * z2:z1:z0 := top 96 bits of the 128-bit product, zSticky := low 32 bits != 0.
 * The product's bit 127 has weight 2^1 relative to operands in [1,2), hence zExp = eA + eB + 1.
 */
export function mul64(sf: SoftFloat, ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const a2 = ah & 0xffff;
  const a3 = ah >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const b2 = bh & 0xffff;
  const b3 = bh >>> 16;
  // Column sums of 16-bit partial products stay below 2^35: exact in doubles.
  let c = a0 * b0;
  let l0 = c % 65536;
  c = (c - l0) / 65536 + a0 * b1 + a1 * b0;
  let t = c % 65536;
  const w0 = l0 + t * 65536;
  c = (c - t) / 65536 + a0 * b2 + a1 * b1 + a2 * b0;
  l0 = c % 65536;
  c = (c - l0) / 65536 + a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0;
  t = c % 65536;
  const w1 = l0 + t * 65536;
  c = (c - t) / 65536 + a1 * b3 + a2 * b2 + a3 * b1;
  l0 = c % 65536;
  c = (c - l0) / 65536 + a2 * b3 + a3 * b2;
  t = c % 65536;
  const w2 = l0 + t * 65536;
  c = (c - t) / 65536 + a3 * b3;
  const w3 = c; // < 2^32: the product is below 2^128
  sf.z2 = w3 >>> 0;
  sf.z1 = w2 >>> 0;
  sf.z0 = w1 >>> 0;
  sf.zSticky = w0 !== 0 ? 1 : 0;
}

/** Z := A / B. */
export function sfDiv(sf: SoftFloat, sse: boolean): void {
  if (sf.propagateNaN2(sse)) return;
  const ac = sf.aCls;
  const bc = sf.bCls;
  const sign = sf.aSign ^ sf.bSign;
  if (ac === Cls.Inf) {
    if (bc === Cls.Inf) sf.invalid();
    else {
      if (bc === Cls.Denormal) sf.flags |= FpExc.DE;
      sf.setInf(sign);
    }
    return;
  }
  if (bc === Cls.Inf) {
    if (ac === Cls.Denormal) sf.flags |= FpExc.DE;
    sf.setZero(sign);
    return;
  }
  if (bc === Cls.Zero) {
    if (ac === Cls.Zero) sf.invalid();
    else {
      // No DE for a denormal dividend here: the host raises only ZE.
      sf.flags |= FpExc.ZE;
      sf.setInf(sign);
    }
    return;
  }
  if (ac === Cls.Denormal || bc === Cls.Denormal) sf.flags |= FpExc.DE;
  if (ac === Cls.Zero) {
    sf.setZero(sign);
    return;
  }
  // Restoring division, one quotient bit per step: 66 bits (64 + guard + round) and a sticky
  // bit from the final remainder are enough for correct rounding in every mode.
  const bh = sf.bHi;
  const bl = sf.bLo;
  let rh = sf.aHi;
  let rl = sf.aLo;
  let rx = 0; // bits above rh (0..3)
  let e = sf.aExp - sf.bExp;
  if (rh < bh || (rh === bh && rl < bl)) {
    rx = rh >>> 31;
    rh = ((rh << 1) | (rl >>> 31)) >>> 0;
    rl = (rl << 1) >>> 0;
    e -= 1;
  }
  let q2 = 0;
  let q1 = 0;
  let q0 = 0;
  for (let i = 0; i < 66; i++) {
    if (rx > 0 || rh > bh || (rh === bh && rl >= bl)) {
      let l = rl - bl;
      let h = rh - bh;
      if (l < 0) {
        l += 0x100000000;
        h -= 1;
      }
      if (h < 0) {
        h += 0x100000000;
        rx -= 1;
      }
      rh = h;
      rl = l;
      if (i < 32) q2 |= 1 << (31 - i);
      else if (i < 64) q1 |= 1 << (63 - i);
      else q0 |= 1 << (95 - i);
    }
    rx = (rx << 1) | (rh >>> 31);
    rh = ((rh << 1) | (rl >>> 31)) >>> 0;
    rl = (rl << 1) >>> 0;
  }
  sf.zCls = Cls.Normal;
  sf.zSign = sign;
  sf.zExp = e;
  sf.z2 = q2 >>> 0;
  sf.z1 = q1 >>> 0;
  sf.z0 = q0 >>> 0;
  sf.zSticky = rx | rh | rl ? 1 : 0;
}

/** Z := sqrt(A). */
export function sfSqrt(sf: SoftFloat): void {
  if (sf.propagateNaN1()) return;
  const ac = sf.aCls;
  if (ac === Cls.Zero) {
    sf.setZero(sf.aSign); // sqrt(-0) = -0
    return;
  }
  if (sf.aSign === 1) {
    sf.invalid(); // no DE for a negative denormal: IE alone (observed on the host)
    return;
  }
  if (ac === Cls.Inf) {
    sf.setInf(0);
    return;
  }
  if (ac === Cls.Denormal) sf.flags |= FpExc.DE;
  sqrtSig(sf, sf.aExp, sf.aHi, sf.aLo);
}

/**
 * Z := sqrt(M * 2^(e-63)) for a normalized 64-bit M (hi/lo), by the bit-pair method over the
 * radicand N = M * 2^sh (sh = 68 or 67 so that N has an even exponent): the 66-bit integer root
 * plus a sticky bit for a non-zero remainder.
 */
export function sqrtSig(sf: SoftFloat, e: number, mh: number, ml: number): void {
  const k = e - 63;
  const sh = (k & 1) === 0 ? 68 : 67;
  // Radicand bit j (0 = lsb) is bit j - sh of M.
  let r2 = 0;
  let r1 = 0;
  let r0 = 0;
  let q2 = 0;
  let q1 = 0;
  let q0 = 0;
  for (let i = 0; i < 66; i++) {
    const j = 131 - 2 * i; // the higher bit of this pair
    let pair = 0;
    for (let t = 0; t < 2; t++) {
      const m = j - t - sh;
      let bit = 0;
      if (m >= 32 && m < 64) bit = (mh >>> (m - 32)) & 1;
      else if (m >= 0 && m < 32) bit = (ml >>> m) & 1;
      pair = (pair << 1) | bit;
    }
    // R = (R << 2) | pair
    r2 = ((r2 << 2) | (r1 >>> 30)) >>> 0;
    r1 = ((r1 << 2) | (r0 >>> 30)) >>> 0;
    r0 = ((r0 << 2) | pair) >>> 0;
    // T = (Q << 2) | 1
    const t2 = ((q2 << 2) | (q1 >>> 30)) >>> 0;
    const t1 = ((q1 << 2) | (q0 >>> 30)) >>> 0;
    const t0 = ((q0 << 2) | 1) >>> 0;
    const ge = r2 > t2 || (r2 === t2 && (r1 > t1 || (r1 === t1 && r0 >= t0)));
    // Q <<= 1
    q2 = ((q2 << 1) | (q1 >>> 31)) >>> 0;
    q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
    q0 = (q0 << 1) >>> 0;
    if (ge) {
      let d0 = r0 - t0;
      let d1 = r1 - t1;
      let d2 = r2 - t2;
      if (d0 < 0) {
        d0 += 0x100000000;
        d1 -= 1;
      }
      if (d1 < 0) {
        d1 += 0x100000000;
        d2 -= 1;
      }
      r0 = d0 >>> 0;
      r1 = d1 >>> 0;
      r2 = d2 >>> 0;
      q0 = (q0 | 1) >>> 0;
    }
  }
  // Q has 66 bits (bit 65 set): move to the top of the 96-bit Z.
  sf.zCls = Cls.Normal;
  sf.zSign = 0;
  sf.zExp = 65 + (k - sh) / 2;
  sf.z2 = ((q2 << 30) | (q1 >>> 2)) >>> 0;
  sf.z1 = ((q1 << 30) | (q0 >>> 2)) >>> 0;
  sf.z0 = (q0 << 30) >>> 0;
  sf.zSticky = r2 | r1 | r0 ? 1 : 0;
}
