/**
 * The linear-memory path: a direct-mapped software TLB (linear page -> RAM view + offset, with separate
 * read, write and execute permission for supervisor and user) in front of the `Translator`, plus the
 * fault mechanism every layer above uses.
 *
 * Faults: `raise` records the vector and error code and throws the preallocated `FAULT` sentinel; the run
 * loop catches it and delivers the exception (exceptions.ts). Nothing is allocated on the hit path.
 *
 * Self-modifying code: pages holding decoded code never get a write-enabled TLB entry, so the first
 * write to such a page goes through `tlbFill`, which drops that page's decoded code.
 */
import { FlagsCpu } from "./flags.js";
import {
  Access,
  type PhysicalMemory,
  type RamView,
  TranslateFault,
  type TranslateResult,
  type Translator,
} from "./interfaces.js";
import { CR0, CR4, EFER, F } from "./state.js";

/** Thrown (and caught by the run loop) when an instruction faults; the details are on the CPU. */
export const FAULT: { readonly tag: "cpu-fault" } = Object.freeze({ tag: "cpu-fault" });
/** Thrown when the translator asks to stop (`TranslateFault.EXIT`). */
export const TRANSLATION_EXIT: { readonly tag: "translation-exit" } = Object.freeze({
  tag: "translation-exit",
});

/** Exception vectors (SDM Vol. 3 Table 6-1). */
export const Vec = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  MC: 18,
  XM: 19,
} as const;

const TLB_BITS = 10;
const TLB_SIZE = 1 << TLB_BITS;
const TLB_MASK = TLB_SIZE - 1;

/** TLB permission bits. MMIO entries keep theirs shifted left by `P_SLOW_SHIFT` so the fast path misses. */
const P_RS = 1;
const P_RU = 2;
const P_WS = 4;
const P_WU = 8;
const P_XS = 16;
const P_XU = 32;
const P_SLOW_SHIFT = 8;
const P_MMIO = 1 << 16;

const ACC_READ = 0;
const ACC_WRITE = 1;
const ACC_FETCH = 2;

/** A decoded block as the memory layer sees it (the run loop owns the details). */
export interface CodePage {
  /** Blocks by (page offset << 2 | mode index). */
  blocks: Map<number, { valid: boolean }>;
}

/** Maps a linear page to the same physical page; for CPUs whose paging is done elsewhere or absent. */
export class IdentityTranslator implements Translator {
  translate(linLo: number, linHi: number, _access: number, out: TranslateResult): boolean {
    out.paddr = (linHi >>> 0) * 4294967296 + (linLo >>> 0);
    out.writable = true;
    out.user = true;
    out.nx = false;
    out.global = false;
    out.pageSize = 4096;
    out.fault = TranslateFault.NONE;
    out.errorCode = 0;
    return true;
  }
}

export function newTranslateResult(): TranslateResult {
  return {
    paddr: 0,
    writable: false,
    user: false,
    nx: false,
    global: false,
    pageSize: 4096,
    fault: 0,
    errorCode: 0,
  };
}

export class MemCpu extends FlagsCpu {
  readonly tlbTagLo = new Int32Array(TLB_SIZE).fill(1);
  readonly tlbTagHi = new Int32Array(TLB_SIZE);
  readonly tlbPerm = new Int32Array(TLB_SIZE);
  readonly tlbOff = new Int32Array(TLB_SIZE);
  readonly tlbPfn = new Float64Array(TLB_SIZE);
  readonly tlbView: Uint8Array[] = new Array(TLB_SIZE).fill(new Uint8Array(0));
  /** Bits of tlbPerm that allow a fast read / write / fetch at the current privilege. */
  rMask = P_RS;
  wMask = P_WS;
  xMask = P_XS;
  /** Set while the CPU makes implicit supervisor accesses (descriptor tables, TSS, IDT). */
  implicitSup = false;

  /** Decoded code per physical page number. */
  readonly codePages = new Map<number, CodePage>();
  /** Physical page of the block being executed, and whether it was just invalidated. */
  curCodePfn = -1;
  codeInvalidated = false;

  /** Segment of the last linear-address computation: non-canonical SS accesses fault with #SS (SDM 3.3.7.1). */
  laSeg = 3;
  /**
   * Linear address of the last page fault. CR2 is written from it only when the #PF is delivered
   * (SDM Vol. 3 27.1: a #PF that causes a VM exit leaves CR2 unchanged).
   */
  pfLo = 0;
  pfHi = 0;
  /** Fault being raised. */
  faultVec = 0;
  faultErr = 0;
  faultHasErr = false;
  /** High half of the last 64-bit read. */
  hiOut = 0;

  private readonly tres = newTranslateResult();
  private readonly ramView: RamView = { u8: new Uint8Array(0), offset: 0 };

  constructor(
    public mem: PhysicalMemory,
    public translator: Translator,
  ) {
    super();
  }

  /** Records an exception and unwinds the current instruction. */
  raise(vec: number, err = -1): never {
    this.faultVec = vec;
    this.faultHasErr = err >= 0;
    this.faultErr = Math.max(err, 0);
    throw FAULT;
  }

  /** Recomputes the fast-path permission masks after a CPL change. */
  updateAccessMasks(): void {
    const user = this.cpl === 3 && !this.implicitSup;
    this.rMask = user ? P_RU : P_RS;
    this.wMask = user ? P_WU : P_WS;
    this.xMask = user ? P_XU : P_XS;
  }

  /** Flushes the whole TLB (MOV CR3 / CR0.PG / CR4 paging bits, SDM Vol. 3 4.10.4). */
  tlbFlushAll(): void {
    this.tlbTagLo.fill(1);
    this.linkEpoch++;
  }

  /** Drops the entry for one linear page (INVLPG). */
  tlbFlushPage(lo: number, hi: number): void {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (this.tlbTagLo[i] === (lo & ~0xfff) && this.tlbTagHi[i] === hi) this.tlbTagLo[i] = 1;
    this.linkEpoch++;
  }

  /** Drops decoded code and write-protection for physical page `pfn` (someone wrote it). */
  invalidateCodePage(pfn: number): void {
    const page = this.codePages.get(pfn);
    if (page === undefined) return;
    // Blocks may still be linked from other pages' blocks: mark them dead.
    for (const b of page.blocks.values()) b.valid = false;
    this.codePages.delete(pfn);
    if (pfn === this.curCodePfn) this.codeInvalidated = true;
  }

  /** For other writers of guest RAM (DMA, the VMM): keeps decoded code coherent. */
  notifyPhysicalWrite(gpa: number, length: number): void {
    if (this.codePages.size === 0) return;
    const first = Math.floor(gpa / 4096);
    const last = Math.floor((gpa + Math.max(length, 1) - 1) / 4096);
    for (let p = first; p <= last; p++) this.invalidateCodePage(p);
  }

  /** Removes write permission from every TLB entry for `pfn` (a page just got decoded code). */
  protectCodePage(pfn: number): void {
    for (let i = 0; i < TLB_SIZE; i++) {
      if (this.tlbPfn[i] === pfn) this.tlbPerm[i]! &= ~(P_WS | P_WU | ((P_WS | P_WU) << P_SLOW_SHIFT));
    }
  }

  /**
   * Returns the TLB index holding linear (lo, hi) with permission for `acc`, translating on a miss.
   * Raises #PF / #GP as the SDM says.
   */
  tlbLookup(lo: number, hi: number, acc: number): number {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    const need = acc === ACC_READ ? this.rMask : acc === ACC_WRITE ? this.wMask : this.xMask;
    if (this.tlbTagLo[i] === (lo & ~0xfff) && this.tlbTagHi[i] === hi) {
      const p = this.tlbPerm[i]!;
      if ((p & need) !== 0 || ((p & P_MMIO) !== 0 && ((p >> P_SLOW_SHIFT) & need) !== 0)) return i;
    }
    return this.tlbFill(i, lo, hi, acc);
  }

  private tlbFill(i: number, lo: number, hi: number, acc: number): number {
    const user = this.cpl === 3 && !this.implicitSup;
    let paddr: number;
    let perm: number;
    if ((this.cr0 & CR0.PG) === 0) {
      // Paging off: linear = physical (SDM Vol. 3 4.1.1); only 32-bit linear addresses exist here.
      paddr = lo >>> 0;
      if (hi !== 0) paddr += (hi >>> 0) * 4294967296;
      perm = P_RS | P_RU | P_WS | P_WU | P_XS | P_XU;
    } else {
      // Non-canonical: #SS(0) for stack-segment references, #GP(0) otherwise (SDM Vol. 1 3.3.7.1).
      if (this.efer & EFER.LMA && ((hi >> 15) + 1) >>> 1 !== 0) this.raise(this.laSeg === 2 ? 12 : 13, 0);
      const t = this.tres;
      let access = acc === ACC_WRITE ? Access.WRITE : acc === ACC_FETCH ? Access.FETCH : 0;
      if (user) access |= Access.USER;
      if (this.implicitSup) access |= Access.IMPLICIT_SUPERVISOR;
      if (this.flags & F.AC) access |= Access.AC;
      t.fault = TranslateFault.NONE;
      if (!this.translator.translate(lo, hi, access, t)) {
        if (t.fault === TranslateFault.EXIT) throw TRANSLATION_EXIT;
        this.pfLo = lo;
        this.pfHi = hi;
        this.raise(14, t.errorCode);
      }
      paddr = t.paddr - (t.paddr % 4096);
      const wp = (this.cr0 & CR0.WP) !== 0;
      const nx = t.nx && (this.efer & EFER.NXE) !== 0;
      perm = P_RS;
      if (t.user) perm |= P_RU;
      // Write permission only after a write translation, so the walker has set the D bit (SDM 4.8).
      if (acc === ACC_WRITE) {
        if (t.writable || !wp) perm |= P_WS;
        if (t.user && t.writable) perm |= P_WU;
      }
      if (!nx) {
        // SMEP (CR4 bit 20) is not exposed in CPUID; supervisor fetches from user pages are allowed.
        perm |= P_XS;
        if (t.user) perm |= P_XU;
      }
      if ((this.cr4 & CR4.SMAP) !== 0 && t.user && !user && (this.flags & F.AC) === 0) perm &= ~(P_RS | P_WS);
    }
    const pfn = Math.floor(paddr / 4096);
    if (acc === ACC_WRITE && this.codePages.size !== 0 && this.codePages.has(pfn))
      this.invalidateCodePage(pfn);
    else if (this.codePages.has(pfn)) perm &= ~(P_WS | P_WU);
    const rv = this.ramView;
    if (this.mem.ramPage(pfn, rv)) {
      this.tlbView[i] = rv.u8;
      this.tlbOff[i] = rv.offset;
    } else {
      perm = (perm << P_SLOW_SHIFT) | P_MMIO;
    }
    this.tlbTagLo[i] = lo & ~0xfff;
    this.tlbTagHi[i] = hi;
    this.tlbPerm[i] = perm;
    this.tlbPfn[i] = pfn;
    // The access must be allowed now, or it is a protection fault.
    const need = acc === ACC_READ ? this.rMask : acc === ACC_WRITE ? this.wMask : this.xMask;
    const eff = perm & P_MMIO ? perm >> P_SLOW_SHIFT : perm;
    if ((eff & need) === 0) {
      this.tlbTagLo[i] = 1;
      if ((this.cr0 & CR0.PG) === 0) this.raise(13, 0);
      // Protection violation: P=1, W/R, U/S, I/D (SDM Vol. 3 4.7).
      let ec = 1;
      if (acc === ACC_WRITE) ec |= 2;
      if (user) ec |= 4;
      if (acc === ACC_FETCH) ec |= 16;
      this.pfLo = lo;
      this.pfHi = hi;
      this.raise(14, ec);
    }
    return i;
  }

  // ---------------------------------------------------------------- reads

  rd8(lo: number, hi: number): number {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.rMask) !== 0
    ) {
      return this.tlbView[i]![this.tlbOff[i]! + (lo & 0xfff)]!;
    }
    return this.rdSlow(lo, hi, 1);
  }

  rd16(lo: number, hi: number): number {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.rMask) !== 0 &&
      (lo & 0xfff) <= 0xffe
    ) {
      const u8 = this.tlbView[i]!;
      const o = this.tlbOff[i]! + (lo & 0xfff);
      return u8[o]! | (u8[o + 1]! << 8);
    }
    return this.rdSlow(lo, hi, 2);
  }

  rd32(lo: number, hi: number): number {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.rMask) !== 0 &&
      (lo & 0xfff) <= 0xffc
    ) {
      const u8 = this.tlbView[i]!;
      const o = this.tlbOff[i]! + (lo & 0xfff);
      return u8[o]! | (u8[o + 1]! << 8) | (u8[o + 2]! << 16) | (u8[o + 3]! << 24);
    }
    return this.rdSlow(lo, hi, 4);
  }

  /** Reads 8 bytes: returns the low half, the high half lands in `hiOut`. */
  rd64(lo: number, hi: number): number {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.rMask) !== 0 &&
      (lo & 0xfff) <= 0xff8
    ) {
      const u8 = this.tlbView[i]!;
      const o = this.tlbOff[i]! + (lo & 0xfff);
      this.hiOut = u8[o + 4]! | (u8[o + 5]! << 8) | (u8[o + 6]! << 16) | (u8[o + 7]! << 24);
      return u8[o]! | (u8[o + 1]! << 8) | (u8[o + 2]! << 16) | (u8[o + 3]! << 24);
    }
    if ((lo & 0xfff) > 0xff8) this.checkCanonicalEnd(lo, hi, 8);
    const l = this.rd32(lo, hi);
    const a = (lo >>> 0) + 4;
    this.hiOut = this.rd32(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi);
    return l;
  }

  /** Reads `size` (1, 2, 4) bytes at a linear address by `size` and width: the size-generic form. */
  rdN(lo: number, hi: number, size: number): number {
    return size === 1 ? this.rd8(lo, hi) : size === 2 ? this.rd16(lo, hi) : this.rd32(lo, hi);
  }

  private rdSlow(lo: number, hi: number, size: number): number {
    const off = lo & 0xfff;
    if (off + size <= 4096) {
      const i = this.tlbLookup(lo, hi, ACC_READ);
      const p = this.tlbPerm[i]!;
      if (p & P_MMIO) {
        return this.mem.mmioRead(this.tlbPfn[i]! * 4096 + off, size as 1 | 2 | 4) | 0;
      }
      const u8 = this.tlbView[i]!;
      const o = this.tlbOff[i]! + off;
      let v = 0;
      for (let k = size - 1; k >= 0; k--) v = (v << 8) | u8[o + k]!;
      return v;
    }
    // Crosses a page: byte by byte, each through the TLB, after checking that the whole access is
    // canonical (a wrap past 0x7fff_ffff_ffff faults as one access, SDM Vol. 1 3.3.7.1).
    this.checkCanonicalEnd(lo, hi, size);
    let v = 0;
    for (let k = 0; k < size; k++) {
      const a = (lo >>> 0) + k;
      v |= this.rd8(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi) << (8 * k);
    }
    return v;
  }

  /** Raises #GP(0)/#SS(0) when the last byte of a page-crossing access is not canonical. */
  private checkCanonicalEnd(lo: number, hi: number, size: number): void {
    if ((this.efer & EFER.LMA) === 0) return;
    const e = (lo >>> 0) + size - 1;
    const eh = e > 0xffffffff ? (hi + 1) | 0 : hi;
    if (((eh >> 15) + 1) >>> 1 !== 0) this.raise(this.laSeg === 2 ? 12 : 13, 0);
  }

  // ---------------------------------------------------------------- writes

  wr8(lo: number, hi: number, v: number): void {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.wMask) !== 0
    ) {
      this.tlbView[i]![this.tlbOff[i]! + (lo & 0xfff)] = v;
      return;
    }
    this.wrSlow(lo, hi, v, 1);
  }

  wr16(lo: number, hi: number, v: number): void {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.wMask) !== 0 &&
      (lo & 0xfff) <= 0xffe
    ) {
      const u8 = this.tlbView[i]!;
      const o = this.tlbOff[i]! + (lo & 0xfff);
      u8[o] = v;
      u8[o + 1] = v >> 8;
      return;
    }
    this.wrSlow(lo, hi, v, 2);
  }

  wr32(lo: number, hi: number, v: number): void {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.wMask) !== 0 &&
      (lo & 0xfff) <= 0xffc
    ) {
      const u8 = this.tlbView[i]!;
      const o = this.tlbOff[i]! + (lo & 0xfff);
      u8[o] = v;
      u8[o + 1] = v >> 8;
      u8[o + 2] = v >> 16;
      u8[o + 3] = v >> 24;
      return;
    }
    this.wrSlow(lo, hi, v, 4);
  }

  wr64(lo: number, hi: number, vlo: number, vhi: number): void {
    if ((lo & 0xfff) > 0xff8) {
      this.checkCanonicalEnd(lo, hi, 8);
      // Check both pages before writing either, so a fault leaves memory unchanged.
      const a = (lo >>> 0) + 7;
      this.probeWrite(lo, hi);
      this.probeWrite(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi);
    }
    this.wr32(lo, hi, vlo);
    const a = (lo >>> 0) + 4;
    this.wr32(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi, vhi);
  }

  wrN(lo: number, hi: number, size: number, v: number): void {
    if (size === 1) this.wr8(lo, hi, v);
    else if (size === 2) this.wr16(lo, hi, v);
    else this.wr32(lo, hi, v);
  }

  /** Faults now if a write to the byte at (lo, hi) would fault. */
  probeWrite(lo: number, hi: number): void {
    this.tlbLookup(lo, hi, ACC_WRITE);
  }

  /** Faults now if a read of the byte at (lo, hi) would fault. */
  probeRead(lo: number, hi: number): void {
    this.tlbLookup(lo, hi, ACC_READ);
  }

  private wrSlow(lo: number, hi: number, v: number, size: number): void {
    const off = lo & 0xfff;
    if (off + size <= 4096) {
      const i = this.tlbLookup(lo, hi, ACC_WRITE);
      const p = this.tlbPerm[i]!;
      if (p & P_MMIO) {
        this.mem.mmioWrite(this.tlbPfn[i]! * 4096 + off, size as 1 | 2 | 4, v);
        return;
      }
      const u8 = this.tlbView[i]!;
      const o = this.tlbOff[i]! + off;
      for (let k = 0; k < size; k++) u8[o + k] = v >> (8 * k);
      return;
    }
    const e = (lo >>> 0) + size - 1;
    this.checkCanonicalEnd(lo, hi, size);
    this.probeWrite(lo, hi);
    this.probeWrite(e | 0, e > 0xffffffff ? (hi + 1) | 0 : hi);
    for (let k = 0; k < size; k++) {
      const a = (lo >>> 0) + k;
      this.wr8(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi, v >> (8 * k));
    }
  }

  // ---------------------------------------------------------------- code fetch

  /**
   * Translates the code page holding linear (lo, hi) for execution. Returns the TLB index; the page's
   * bytes are `tlbView[i]` from `tlbOff[i]`, or MMIO when `tlbIsMmio(i)`.
   */
  fetchLookup(lo: number, hi: number): number {
    return this.tlbLookup(lo, hi, ACC_FETCH);
  }

  tlbIsMmio(i: number): boolean {
    return (this.tlbPerm[i]! & P_MMIO) !== 0;
  }

  /** Reads a byte for instruction fetch (page-crossing instructions and MMIO code). */
  fetch8(lo: number, hi: number): number {
    const i = this.tlbLookup(lo, hi, ACC_FETCH);
    if (this.tlbPerm[i]! & P_MMIO) return this.mem.mmioRead(this.tlbPfn[i]! * 4096 + (lo & 0xfff), 1) & 0xff;
    return this.tlbView[i]![this.tlbOff[i]! + (lo & 0xfff)]!;
  }

  /** Runs `fn` with implicit supervisor accesses (descriptor tables, IDT, TSS; SDM Vol. 3 4.6). */
  beginSupervisor(): void {
    this.implicitSup = true;
    this.updateAccessMasks();
  }

  endSupervisor(): void {
    this.implicitSup = false;
    this.updateAccessMasks();
  }
}
