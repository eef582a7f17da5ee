/**
 * A 64-bit feature set as two 32-bit halves (features never need BigInt; bit 32 is VERSION_1).
 *
 * @example
 * ```ts
 * import { features, hasFeature, Feature } from "@tskvm/virtio";
 * const f = features(Feature.VERSION_1, Feature.EVENT_IDX);
 * hasFeature(f, Feature.EVENT_IDX); // true
 * ```
 */
export interface Features {
  /** Bits 0..31. */
  lo: number;
  /** Bits 32..63. */
  hi: number;
}

/** Build a feature set from bit numbers (0..63). */
export function features(...bits: number[]): Features {
  const f = { lo: 0, hi: 0 };
  for (const b of bits) setFeature(f, b);
  return f;
}

/** Set one bit (0..63) in place. */
export function setFeature(f: Features, bit: number): void {
  if (bit < 32) f.lo = (f.lo | (1 << bit)) >>> 0;
  else if (bit < 64) f.hi = (f.hi | (1 << (bit - 32))) >>> 0;
}

/** Whether bit (0..63) is set. */
export function hasFeature(f: Features, bit: number): boolean {
  if (bit < 32) return ((f.lo >>> bit) & 1) === 1;
  if (bit < 64) return ((f.hi >>> (bit - 32)) & 1) === 1;
  return false;
}

/** a & b, a new value. */
export function andFeatures(a: Features, b: Features): Features {
  return { lo: (a.lo & b.lo) >>> 0, hi: (a.hi & b.hi) >>> 0 };
}

/** Whether every bit of sub is in sup. */
export function isSubset(sub: Features, sup: Features): boolean {
  return (sub.lo & ~sup.lo) >>> 0 === 0 && (sub.hi & ~sup.hi) >>> 0 === 0;
}
