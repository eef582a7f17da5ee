/** Small helpers shared by the entry checks, VM entry and VM exit. */

/** 48-bit canonical: bits 63:47 all equal (SDM Vol. 1 3.3.7.1; LA57 is not implemented). */
export function canonical(v: bigint): boolean {
  const top = (v >> 47n) & 0x1ffffn;
  return top === 0n || top === 0x1ffffn;
}

/** Read a little-endian 64-bit value from `b` at `off`. */
export function le64(b: Uint8Array, off: number): bigint {
  const lo = (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
  const hi = (b[off + 4]! | (b[off + 5]! << 8) | (b[off + 6]! << 16) | (b[off + 7]! << 24)) >>> 0;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Write a little-endian 64-bit value into `b` at `off`. */
export function putLe64(b: Uint8Array, off: number, v: bigint): void {
  const lo = Number(v & 0xffffffffn);
  const hi = Number((v >> 32n) & 0xffffffffn);
  for (let i = 0; i < 4; i++) {
    b[off + i] = (lo >>> (8 * i)) & 0xff;
    b[off + 4 + i] = (hi >>> (8 * i)) & 0xff;
  }
}

/** Bits 31:0 of a 64-bit value, unsigned. */
export function lo64(v: bigint): number {
  return Number(BigInt.asUintN(32, v));
}

/** Bits 63:32 of a 64-bit value, unsigned. */
export function hi64(v: bigint): number {
  return Number(BigInt.asUintN(32, v >> 32n));
}

/** The unsigned 64-bit value of two unsigned 32-bit halves. */
export function join64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
