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

/** 4096 entries: with 1024, conflict misses cost a Linux boot ~5% more; the flush scans visit only filled entries. */
const TLB_BITS = 12;
const TLB_SIZE = 1 << TLB_BITS;
const TLB_MASK = TLB_SIZE - 1;

/** TLB permission bits. MMIO entries keep theirs shifted left by `P_SLOW_SHIFT` so the fast path misses. */
export const P_RS = 1;
export const P_RU = 2;
export const P_WS = 4;
export const P_WU = 8;
export const P_XS = 16;
export const P_XU = 32;
/**
 * Supervisor read / write with CR4.SMAP = 1 and RFLAGS.AC = 1 (explicit accesses, SDM Vol. 3 4.6.1): set
 * for every page but the ones SMAP would forbid without AC, so STAC/CLAC only switch masks.
 */
const P_RSA = 64;
const P_WSA = 128;
/** In no entry: the fast-path mask while alignment checking is on sends every data access to the slow path. */
const P_NEVER = 1 << 30;
const P_SLOW_SHIFT = 8;
const P_MMIO = 1 << 16;
/** A global translation (G = 1 with CR4.PGE = 1): kept by MOV to CR3 (SDM Vol. 3 4.10.2.4). */
const P_GLOBAL = 1 << 17;

/** `dbMatch` kinds. */
export const DB_READ = 0;
export const DB_WRITE = 1;

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
  /**
   * A DataView over each entry's `tlbView`: the 16-, 32- and 64-bit accesses of the fast paths load
   * and store in one operation each (TurboFan emits one bounds check and one unaligned move, where
   * byte-by-byte assembly took one per byte).
   */
  readonly tlbDv: DataView[] = new Array(TLB_SIZE).fill(new DataView(new ArrayBuffer(0)));
  /** The DataView made for each RAM view seen (a TLB fill allocates none after the first). */
  private readonly dvOf = new WeakMap<Uint8Array, DataView>();
  /** log2 of the size of the page each entry came from (12, 21, 22 or 30): INVLPG drops a whole large page. */
  readonly tlbSpan = new Int8Array(TLB_SIZE);
  /** Upper bounds on the entries from large pages and on the global entries (0: none, skip the scans). */
  private tlbLarge = 0;
  private tlbGlobals = 0;
  /**
   * The indices of the entries filled since the last full flush, each once (`tlbListed`): the scans
   * (MOV CR3 keeping global entries, INVLPG among large pages, write-protecting a new code page) visit
   * these instead of the whole TLB.
   */
  private readonly tlbUsed = new Int32Array(TLB_SIZE);
  private readonly tlbListed = new Uint8Array(TLB_SIZE);
  private tlbUsedN = 0;
  /** Bits of tlbPerm that allow a fast read / write / fetch at the current privilege. */
  rMask = P_RS;
  wMask = P_WS;
  xMask = P_XS;
  /** The bits a read / write needs (`rMask` / `wMask` unless alignment checking diverts the fast path). */
  rNeed = P_RS;
  wNeed = P_WS;
  /** CR0.AM = 1, RFLAGS.AC = 1 and CPL 3: misaligned data accesses raise #AC(0) (SDM Vol. 3 6.15, Interrupt 17). */
  acCheck = false;
  /** Set while the CPU makes implicit supervisor accesses (descriptor tables, TSS, IDT). */
  implicitSup = false;
  /**
   * Set (by the run loop) while one instruction runs under an enabled data or I/O breakpoint: the
   * fast paths' masks are then `P_NEVER`, so every data access reaches `rdSlow` / `wrSlow`, which
   * match it against DR0-DR3. The fast paths never look at breakpoints.
   */
  dbData = false;
  /** DR6 B0-B3 of the enabled data / I/O breakpoints the running instruction matched so far. */
  dbDataHits = 0;

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

  /**
   * Recomputes the permission masks after a change of CPL, CR0.AM, CR4.SMAP, RFLAGS.AC or of the implicit
   * supervisor state. Implicit supervisor accesses ignore AC for SMAP (SDM Vol. 3 4.6.1) and are never
   * alignment-checked.
   */
  updateAccessMasks(): void {
    // Plain numbers (F.AC, CR0.AM, CR4.SMAP; the P_* bits): this runs twice per system call, and each
    // constant read from a module binding costs V8 a load and a check; cpu-jit-syscall.test.ts checks them.
    const ac = (this.flags & 0x40000) !== 0;
    if (this.cpl === 3 && !this.implicitSup) {
      this.rNeed = 2; // P_RU
      this.wNeed = 8; // P_WU
      this.xMask = 32; // P_XU
      this.acCheck = ac && (this.cr0 & 0x40000) !== 0;
    } else {
      const smapAc = ac && !this.implicitSup && (this.cr4 & 0x200000) !== 0;
      this.rNeed = smapAc ? 64 : 1; // P_RSA : P_RS
      this.wNeed = smapAc ? 128 : 4; // P_WSA : P_WS
      this.xMask = 16; // P_XS
      this.acCheck = false;
    }
    const slow = this.acCheck || this.dbData;
    this.rMask = slow ? P_NEVER : this.rNeed;
    this.wMask = slow ? P_NEVER : this.wNeed;
  }

  /** RFLAGS.AC selects the SMAP and alignment-check masks. */
  override setRflags(v: number): void {
    const old = this.flags;
    super.setRflags(v);
    if ((old ^ this.flags) & F.AC) this.updateAccessMasks();
  }

  /** Raises #AC(0) for a misaligned data access of `size` bytes while alignment checking is on. */
  checkAlign(lo: number, size: number): void {
    if (this.acCheck && (lo & (size - 1)) !== 0) this.raise(Vec.AC, 0);
  }

  /** Flushes the whole TLB, global entries included (CR0.PG/WP, CR4.PGE and paging-mode changes, SDM Vol. 3 4.10.4.1). */
  tlbFlushAll(): void {
    this.tlbTagLo.fill(1);
    this.tlbListed.fill(0);
    this.tlbUsedN = 0;
    this.tlbLarge = 0;
    this.tlbGlobals = 0;
    this.newLinkEpoch();
  }

  /**
   * Flushes every entry but the global ones (MOV to CR3, SDM Vol. 3 4.10.4.1). The TLB is not tagged with
   * PCIDs, so this is also what MOV to CR3 with CR4.PCIDE = 1 does, bit 63 set or not: the previous PCID's
   * entries must not serve the new one, and dropping more than the SDM requires is always allowed.
   */
  tlbFlushNonGlobal(): void {
    if (this.tlbGlobals === 0) {
      this.tlbFlushAll();
      return;
    }
    let globals = 0;
    let large = 0;
    const tags = this.tlbTagLo;
    const perm = this.tlbPerm;
    const n = this.liveEntries();
    const used = this.tlbUsed;
    for (let k = 0; k < n; k++) {
      const i = used[k]!;
      if ((perm[i]! & P_GLOBAL) === 0) tags[i] = 1;
      else {
        globals++;
        if (this.tlbSpan[i]! > 12) large++;
      }
    }
    this.tlbGlobals = globals;
    this.tlbLarge = large;
    this.newNonGlobalLinkEpoch();
  }

  /**
   * INVLPG: drops every entry of the page holding linear (lo, hi), global or not, whatever its size: the
   * entries of a 2 MiB / 4 MiB / 1 GiB page are per 4 KiB, so all of them go (SDM Vol. 3 4.10.4.1).
   * Decoded blocks are cached per physical page and stay; only block links (by linear RIP) are dropped.
   */
  tlbFlushPage(lo: number, hi: number): void {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (this.tlbTagLo[i] === (lo & ~0xfff) && this.tlbTagHi[i] === hi) this.tlbTagLo[i] = 1;
    if (this.tlbLarge !== 0) {
      const tags = this.tlbTagLo;
      let large = 0;
      const n = this.liveEntries();
      for (let k = 0; k < n; k++) {
        const e = this.tlbUsed[k]!;
        const span = this.tlbSpan[e]!;
        if (span <= 12) continue;
        if (this.tlbTagHi[e] === hi && (tags[e]! ^ lo) >>> span === 0) tags[e] = 1;
        else large++;
      }
      this.tlbLarge = large;
    }
    this.newLinkEpoch();
  }

  /** Drops every entry for a user-mode page (their rights depend on PKRU, which just changed). */
  tlbFlushUser(): void {
    const perm = this.tlbPerm;
    for (let i = 0; i < TLB_SIZE; i++) {
      const p = perm[i]! & P_MMIO ? perm[i]! >> P_SLOW_SHIFT : perm[i]!;
      if (p & (P_RU | P_XU)) this.tlbTagLo[i] = 1;
    }
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
    const w = P_WS | P_WU | P_WSA;
    const n = this.liveEntries();
    for (let k = 0; k < n; k++) {
      const i = this.tlbUsed[k]!;
      if (this.tlbPfn[i] === pfn) this.tlbPerm[i]! &= ~(w | (w << P_SLOW_SHIFT));
    }
  }

  /** Drops the invalidated entries from `tlbUsed`; returns how many live ones it holds. */
  private liveEntries(): number {
    const used = this.tlbUsed;
    const tags = this.tlbTagLo;
    let n = 0;
    for (let k = 0; k < this.tlbUsedN; k++) {
      const i = used[k]!;
      if (tags[i] === 1) this.tlbListed[i] = 0;
      else used[n++] = i;
    }
    this.tlbUsedN = n;
    return n;
  }

  /**
   * Returns the TLB index holding linear (lo, hi) with permission for `acc`, translating on a miss.
   * Raises #PF / #GP as the SDM says.
   */
  tlbLookup(lo: number, hi: number, acc: number): number {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    const need = acc === ACC_READ ? this.rNeed : acc === ACC_WRITE ? this.wNeed : this.xMask;
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
    let span = 12;
    if ((this.cr0 & CR0.PG) === 0) {
      // Paging off: linear = physical (SDM Vol. 3 4.1.1); only 32-bit linear addresses exist here.
      paddr = lo >>> 0;
      if (hi !== 0) paddr += (hi >>> 0) * 4294967296;
      perm = P_RS | P_RU | P_WS | P_WU | P_XS | P_XU | P_RSA | P_WSA;
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
        // SDM Vol. 3 4.10.4.1: a #PF invalidates the TLB entries for the faulting linear address. Block
        // links and the jump cache stand for fetch translations too: an executable entry drops them.
        if (this.tlbTagLo[i] === (lo & ~0xfff) && this.tlbTagHi[i] === hi) {
          const x = P_XS | P_XU;
          if (this.tlbPerm[i]! & (x | (x << P_SLOW_SHIFT))) this.newLinkEpoch();
          this.tlbTagLo[i] = 1;
        }
        this.pfLo = lo;
        this.pfHi = hi;
        this.raise(14, t.errorCode);
      }
      paddr = t.paddr - (t.paddr % 4096);
      span = 31 - Math.clz32(t.pageSize);
      perm = this.pagePerm(t.writable, t.user, t.nx, acc === ACC_WRITE);
      // G is ignored unless CR4.PGE = 1 (SDM Vol. 3 4.10.2.4).
      if (t.global && this.cr4 & CR4.PGE) {
        perm |= P_GLOBAL;
        this.tlbGlobals++;
      }
      if (span > 12) this.tlbLarge++;
    }
    const pfn = Math.floor(paddr / 4096);
    if (acc === ACC_WRITE && this.codePages.size !== 0 && this.codePages.has(pfn))
      this.invalidateCodePage(pfn);
    else if (this.codePages.has(pfn)) perm &= ~(P_WS | P_WU | P_WSA);
    const rv = this.ramView;
    if (this.mem.ramPage(pfn, rv)) {
      const u8 = rv.u8;
      let dv = this.dvOf.get(u8);
      if (dv === undefined) {
        dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
        this.dvOf.set(u8, dv);
      }
      this.tlbView[i] = u8;
      this.tlbDv[i] = dv;
      this.tlbOff[i] = rv.offset;
    } else {
      perm = ((perm & ~P_GLOBAL) << P_SLOW_SHIFT) | P_MMIO | (perm & P_GLOBAL);
    }
    this.tlbTagLo[i] = lo & ~0xfff;
    this.tlbTagHi[i] = hi;
    this.tlbPerm[i] = perm;
    this.tlbPfn[i] = pfn;
    this.tlbSpan[i] = span;
    if (this.tlbListed[i] === 0) {
      this.tlbListed[i] = 1;
      this.tlbUsed[this.tlbUsedN++] = i;
    }
    // The access must be allowed now, or it is a protection fault (a translator that does not check
    // every right the TLB applies, e.g. SMEP or SMAP).
    const need = acc === ACC_READ ? this.rNeed : acc === ACC_WRITE ? this.wNeed : this.xMask;
    const eff = perm & P_MMIO ? perm >> P_SLOW_SHIFT : perm;
    if ((eff & need) === 0) {
      this.tlbTagLo[i] = 1;
      if ((this.cr0 & CR0.PG) === 0) this.raise(13, 0);
      // Protection violation: P=1, W/R, U/S, and I/D for fetches with SMEP or PAE+NXE (SDM Vol. 3 4.7).
      let ec = 1;
      if (acc === ACC_WRITE) ec |= 2;
      if (user) ec |= 4;
      if (acc === ACC_FETCH && (this.cr4 & CR4.SMEP || (this.cr4 & CR4.PAE && this.efer & EFER.NXE)))
        ec |= 16;
      this.pfLo = lo;
      this.pfHi = hi;
      this.raise(14, ec);
    }
    return i;
  }

  /**
   * TLB rights of a translation (SDM Vol. 3 4.6): reads always; writes only after a write translation
   * (so the walker has set D, SDM 4.8), supervisor writes to read-only pages with CR0.WP = 0; fetches
   * unless XD (with EFER.NXE); SMEP forbids supervisor fetches from user pages, SMAP supervisor data
   * accesses to them unless AC = 1 (the `P_RSA` / `P_WSA` bits).
   */
  private pagePerm(writable: boolean, userPage: boolean, xd: boolean, write: boolean): number {
    let perm = P_RS | P_RSA;
    if (userPage) perm |= P_RU;
    if (write) {
      if (writable || (this.cr0 & CR0.WP) === 0) perm |= P_WS | P_WSA;
      if (userPage && writable) perm |= P_WU;
    }
    if (!xd || (this.efer & EFER.NXE) === 0) {
      if (!userPage || (this.cr4 & CR4.SMEP) === 0) perm |= P_XS;
      if (userPage) perm |= P_XU;
    }
    if (userPage && this.cr4 & CR4.SMAP) perm &= ~(P_RS | P_WS);
    return perm;
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
      return this.tlbDv[i]!.getUint16(this.tlbOff[i]! + (lo & 0xfff), true);
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
      return this.tlbDv[i]!.getInt32(this.tlbOff[i]! + (lo & 0xfff), true);
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
      const dv = this.tlbDv[i]!;
      const o = this.tlbOff[i]! + (lo & 0xfff);
      this.hiOut = dv.getInt32(o + 4, true);
      return dv.getInt32(o, true);
    }
    if (this.acCheck) this.checkAlign(lo, 8);
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
    if (this.acCheck) this.checkAlign(lo, size);
    const off = lo & 0xfff;
    if (off + size <= 4096) {
      const i = this.tlbLookup(lo, hi, ACC_READ);
      const p = this.tlbPerm[i]!;
      if (this.dbData) this.dbMatch(lo, hi, size, DB_READ);
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
      this.tlbDv[i]!.setUint16(this.tlbOff[i]! + (lo & 0xfff), v, true);
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
      this.tlbDv[i]!.setInt32(this.tlbOff[i]! + (lo & 0xfff), v, true);
      return;
    }
    this.wrSlow(lo, hi, v, 4);
  }

  wr64(lo: number, hi: number, vlo: number, vhi: number): void {
    const i = ((lo >>> 12) ^ hi) & TLB_MASK;
    if (
      this.tlbTagLo[i] === (lo & ~0xfff) &&
      this.tlbTagHi[i] === hi &&
      (this.tlbPerm[i]! & this.wMask) !== 0 &&
      (lo & 0xfff) <= 0xff8
    ) {
      const dv = this.tlbDv[i]!;
      const o = this.tlbOff[i]! + (lo & 0xfff);
      dv.setInt32(o, vlo, true);
      dv.setInt32(o + 4, vhi, true);
      return;
    }
    if (this.acCheck) this.checkAlign(lo, 8);
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
    if (this.acCheck) this.checkAlign(lo, size);
    const off = lo & 0xfff;
    if (off + size <= 4096) {
      const i = this.tlbLookup(lo, hi, ACC_WRITE);
      const p = this.tlbPerm[i]!;
      if (this.dbData) this.dbMatch(lo, hi, size, DB_WRITE);
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

  // ---------------------------------------------------------------- data and I/O breakpoints

  /**
   * Matches a data access of `size` bytes at linear (lo, hi), inside one page, against DR0-DR3
   * (`kind`: `DB_READ` or `DB_WRITE`; an RMW makes both) and records the enabled breakpoints it hits
   * in `dbDataHits`. Only while `dbData` is set (the run loop turns the hits into a #DB trap once the
   * instruction completes, SDM Vol. 3 18.3.1.2).
   */
  dbMatch(lo: number, hi: number, size: number, kind: number): void {
    const long = (this.efer & EFER.LMA) !== 0;
    // R/W = 01 breaks on writes, 11 on reads or writes (SDM Vol. 3 18.2.4).
    this.dbRange(lo >>> 0, long ? hi : 0, size, kind === DB_WRITE ? 0b1010 : 0b1000, long);
  }

  /** Matches an IN/OUT/INS/OUTS of `size` bytes at `port` against the I/O breakpoints (R/W = 10). */
  dbPort(port: number, size: number): void {
    // R/W = 10 is an I/O breakpoint only with CR4.DE = 1; without it the encoding is undefined
    // (SDM Vol. 3 18.2.4) and matches nothing here.
    if ((this.cr4 & CR4.DE) !== 0) this.dbRange(port, 0, size, 0b0100, false);
  }

  /**
   * Records in `dbDataHits` the enabled breakpoints whose R/W is in `rwSet` (a bit per R/W value)
   * and whose range overlaps bytes [a, a + size) of the 4 GiB block `hi`. A range is LENn bytes
   * (1, 2, 8, 4 for LEN = 00, 01, 10, 11; 10 is 8 bytes in every mode, SDM Vol. 3 18.2.6) from DRn
   * with its low bits cleared to LENn's alignment, and an access hits it when any byte it touches is
   * inside (SDM Vol. 3 18.2.5). B bits of matching but disabled breakpoints are not set: the SDM
   * leaves them to the implementation (18.2.3) and Linux, the host reference, reports only enabled
   * ones.
   */
  private dbRange(a: number, hi: number, size: number, rwSet: number, long: boolean): void {
    const d7 = this.dr7;
    for (let n = 0; n < 4; n++) {
      if (((d7 >>> (2 * n)) & 3) === 0 || ((rwSet >>> ((d7 >>> (16 + 4 * n)) & 3)) & 1) === 0) continue;
      if ((long ? this.dr[2 * n + 1]! : 0) !== hi) continue;
      const lenBits = (d7 >>> (18 + 4 * n)) & 3;
      const len = lenBits === 2 ? 8 : lenBits + 1;
      const start = (this.dr[2 * n]! & -len) >>> 0;
      if (a < start + len && start < a + size) this.dbDataHits |= 1 << n;
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

  /** True when TLB entry `i` holds a global translation (PTE.G with CR4.PGE = 1). */
  tlbIsGlobal(i: number): boolean {
    return (this.tlbPerm[i]! & P_GLOBAL) !== 0;
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
