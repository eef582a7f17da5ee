// Test helpers: page-table builders over a FlatPhysMem. Test code may use BigInt freely.
import { FlatPhysMem, newTranslateResult, type PagingRegs, type TranslateResult } from "../src/index.js";

export const P = 1n;
export const RW = 2n;
export const US = 4n;
export const A = 0x20n;
export const D = 0x40n;
export const PS = 0x80n;
export const G = 0x100n;
export const XD = 1n << 63n;

export class Regs implements PagingRegs {
  cr0 = 0x80010001; // PG | WP | PE
  cr3Lo = 0;
  cr3Hi = 0;
  cr4 = 0x20; // PAE
  efer = 0xd00; // LME | LMA | NXE
  pkru = 0;
  pkrs = 0;
  set cr3(v: bigint) {
    this.cr3Lo = Number(v & 0xffffffffn) | 0;
    this.cr3Hi = Number(v >> 32n) | 0;
  }
}

export class Machine {
  readonly mem: FlatPhysMem;
  private nextPage: number;
  constructor(bytes = 1 << 24, firstTable = 0x100000) {
    this.mem = new FlatPhysMem(new ArrayBuffer(bytes));
    this.nextPage = firstTable;
  }
  alloc(): bigint {
    const p = this.nextPage;
    this.nextPage += 4096;
    return BigInt(p);
  }
  r64(pa: bigint): bigint {
    const lo = BigInt(this.mem.read32(Number(pa)) >>> 0);
    const hi = BigInt(this.mem.read32(Number(pa) + 4) >>> 0);
    return (hi << 32n) | lo;
  }
  w64(pa: bigint, v: bigint): void {
    this.mem.write64(Number(pa), Number(v & 0xffffffffn) | 0, Number((v >> 32n) & 0xffffffffn) | 0);
  }
  r32(pa: bigint): number {
    return this.mem.read32(Number(pa)) >>> 0;
  }
  w32(pa: bigint, v: number): void {
    this.mem.write32(Number(pa), v);
  }
}

/** Index of `lin` at `level` (1 = PT ... 5 = PML5) for 64-bit entries. */
export function idx(lin: bigint, level: number): bigint {
  return (lin >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
}

/**
 * Maps `lin` -> `pa` in 4/5-level (or EPT-format, `ept`) tables rooted at `root`; intermediate entries
 * get `upper` flags; the leaf at level `leafLevel` (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB) gets `leaf`.
 * Returns the addresses of the entries used, top first.
 */
export function map(
  m: Machine,
  root: bigint,
  lin: bigint,
  pa: bigint,
  leaf: bigint,
  opts: { levels?: number; leafLevel?: number; upper?: bigint } = {},
): bigint[] {
  const levels = opts.levels ?? 4;
  const leafLevel = opts.leafLevel ?? 1;
  const upper = opts.upper ?? P | RW | US;
  let table = root;
  const used: bigint[] = [];
  for (let l = levels; l > leafLevel; l--) {
    const ea = table + idx(lin, l) * 8n;
    used.push(ea);
    let e = m.r64(ea);
    if ((e & 0x7n) === 0n) {
      const t = m.alloc();
      e = t | upper;
      m.w64(ea, e);
    } else {
      // keep existing table, refresh flags
      e = (e & 0x000ffffffffff000n) | upper;
      m.w64(ea, e);
    }
    table = e & 0x000ffffffffff000n;
  }
  const ea = table + idx(lin, leafLevel) * 8n;
  used.push(ea);
  m.w64(ea, pa | leaf);
  return used;
}

export function halves(lin: bigint): [number, number] {
  return [Number(lin & 0xffffffffn) | 0, Number((lin >> 32n) & 0xffffffffn) | 0];
}

export function out(): TranslateResult {
  return newTranslateResult();
}
