/**
 * A TLB model tagged by VPID, PCID and EPT context (SDM Vol. 3A 4.10.2, Vol. 3C 29.4): linear mappings
 * (EPT off, context 0) and combined mappings (EPT on, context = an index standing for the EP4TA).
 *
 * Set-associative, in typed arrays: a lookup compares a few integers and allocates nothing. Translations
 * of pages larger than 4 KiB are cached as 4 KiB fragments that remember the size of their page, so
 * INVLPG anywhere in a large page drops every fragment of it (SDM 4.10.2.3: "INVLPG ... invalidate all
 * TLB entries corresponding to the translation").
 */

/** `info` bits of an entry. */
export const TlbInfo = {
  WRITABLE: 1 << 0,
  USER: 1 << 1,
  /** The XD bit as found in the tables (rights checks combine it with IA32_EFER.NXE). */
  NX: 1 << 2,
  GLOBAL: 1 << 3,
  /** The leaf's D flag was set: a write may use this entry without a walk (SDM 4.8). */
  DIRTY: 1 << 4,
  /** log2(page size) in bits 12:8. */
  SIZE_SHIFT: 8,
  /** protection key + 1 in bits 20:16 (0: keys do not apply). */
  PKEY_SHIFT: 16,
} as const;

/** Any VPID / PCID / context in an invalidation filter. */
export const ANY = -1;

export class Tlb {
  readonly sets: number;
  readonly ways: number;
  private readonly mask: number;
  readonly vpnLo: Int32Array;
  readonly vpnHi: Int32Array;
  /** VPID tag; -1 marks an empty slot. */
  readonly vpid: Int32Array;
  readonly pcid: Int32Array;
  readonly ctx: Int32Array;
  readonly info: Int32Array;
  /** Physical address of the 4 KiB page (after EPT for combined mappings). */
  readonly frame: Float64Array;
  /**
   * Rights memo per entry, one bit per `access` value (0..31): `known` says the check was made under
   * the current CR0/CR4/EFER/PKRU/PKRS, `allow` its result. Cleared by `forgetRights` when those change.
   */
  readonly known: Int32Array;
  readonly allow: Int32Array;
  private readonly victim: Uint8Array;
  /** Entries for large pages inserted since the last full flush (so INVLPG knows to scan). */
  private large = 0;

  constructor(sets = 256, ways = 4) {
    if (sets <= 0 || (sets & (sets - 1)) !== 0) throw new RangeError("TLB sets must be a power of two");
    this.sets = sets;
    this.ways = ways;
    this.mask = sets - 1;
    const n = sets * ways;
    this.vpnLo = new Int32Array(n);
    this.vpnHi = new Int32Array(n);
    this.vpid = new Int32Array(n).fill(-1);
    this.pcid = new Int32Array(n);
    this.ctx = new Int32Array(n);
    this.info = new Int32Array(n);
    this.frame = new Float64Array(n);
    this.known = new Int32Array(n);
    this.allow = new Int32Array(n);
    this.victim = new Uint8Array(sets);
  }

  private setOf(vpnLo: number, vpnHi: number): number {
    return ((vpnLo ^ (vpnLo >>> 16) ^ vpnHi) & this.mask) * this.ways;
  }

  /**
   * Index of the entry for page (vpnLo, vpnHi) under the tags, or -1. Global entries match any PCID
   * (SDM 4.10.2.4).
   */
  lookup(vpnLo: number, vpnHi: number, vpid: number, pcid: number, ctx: number): number {
    const base = this.setOf(vpnLo, vpnHi);
    for (let w = 0; w < this.ways; w++) {
      const i = base + w;
      if (
        this.vpnLo[i] === vpnLo &&
        this.vpnHi[i] === vpnHi &&
        this.vpid[i] === vpid &&
        this.ctx[i] === ctx &&
        (this.pcid[i] === pcid || (this.info[i]! & TlbInfo.GLOBAL) !== 0)
      ) {
        return i;
      }
    }
    return -1;
  }

  /** Inserts (or replaces) the entry for a page; returns its index. */
  insert(
    vpnLo: number,
    vpnHi: number,
    vpid: number,
    pcid: number,
    ctx: number,
    info: number,
    frame: number,
  ): number {
    let i = this.lookup(vpnLo, vpnHi, vpid, pcid, ctx);
    if (i < 0) {
      const set = this.setOf(vpnLo, vpnHi);
      i = -1;
      for (let w = 0; w < this.ways; w++) {
        if (this.vpid[set + w] === -1) {
          i = set + w;
          break;
        }
      }
      if (i < 0) {
        const s = set / this.ways;
        const v = this.victim[s]!;
        this.victim[s] = (v + 1) % this.ways;
        i = set + v;
      }
    }
    this.vpnLo[i] = vpnLo;
    this.vpnHi[i] = vpnHi;
    this.vpid[i] = vpid;
    this.pcid[i] = pcid;
    this.ctx[i] = ctx;
    this.info[i] = info;
    this.frame[i] = frame;
    this.known[i] = 0;
    this.allow[i] = 0;
    if ((info >>> TlbInfo.SIZE_SHIFT) & 31 && ((info >>> TlbInfo.SIZE_SHIFT) & 31) > 12) this.large++;
    return i;
  }

  /** Forgets every memoised rights check (the registers they depend on changed). */
  forgetRights(): void {
    this.known.fill(0);
  }

  /** Drops one entry. */
  drop(i: number): void {
    this.vpid[i] = -1;
  }

  /** Drops every entry. */
  flushAll(): void {
    this.vpid.fill(-1);
    this.large = 0;
  }

  /**
   * Drops entries matching all filters (`ANY` matches everything): VPID (`vpid === -2` means every VPID
   * but 0, for INVVPID all-context), PCID (global entries are kept when `keepGlobal`, and otherwise
   * dropped whatever their PCID when `globalAnyPcid`), context.
   */
  flush(vpid: number, pcid: number, ctx: number, keepGlobal: boolean, globalAnyPcid = false): void {
    const n = this.vpid.length;
    for (let i = 0; i < n; i++) {
      const v = this.vpid[i]!;
      if (v === -1) continue;
      if (vpid === -2 ? v === 0 : vpid !== ANY && v !== vpid) continue;
      if (ctx !== ANY && this.ctx[i] !== ctx) continue;
      const g = (this.info[i]! & TlbInfo.GLOBAL) !== 0;
      if (g && keepGlobal) continue;
      if (pcid !== ANY && this.pcid[i] !== pcid && !(g && globalAnyPcid)) continue;
      this.vpid[i] = -1;
    }
  }

  /**
   * Drops the entries that translate linear page (vpnLo, vpnHi), whatever the size of their page,
   * under the filters of `flush`.
   */
  flushPage(
    vpnLo: number,
    vpnHi: number,
    vpid: number,
    pcid: number,
    ctx: number,
    keepGlobal: boolean,
    globalAnyPcid: boolean,
  ): void {
    if (this.large === 0) {
      const base = this.setOf(vpnLo, vpnHi);
      for (let w = 0; w < this.ways; w++) {
        const i = base + w;
        if (this.vpnLo[i] === vpnLo && this.vpnHi[i] === vpnHi)
          this.dropIf(i, vpid, pcid, ctx, keepGlobal, globalAnyPcid);
      }
      return;
    }
    const n = this.vpid.length;
    for (let i = 0; i < n; i++) {
      if (this.vpid[i] === -1 || this.vpnHi[i] !== vpnHi) continue;
      // Same page when the page numbers agree above the page's size (sizes up to 1 GiB: shift <= 18).
      const shift = ((this.info[i]! >>> TlbInfo.SIZE_SHIFT) & 31) - 12;
      if ((this.vpnLo[i]! ^ vpnLo) >>> Math.max(shift, 0) !== 0) continue;
      this.dropIf(i, vpid, pcid, ctx, keepGlobal, globalAnyPcid);
    }
  }

  private dropIf(
    i: number,
    vpid: number,
    pcid: number,
    ctx: number,
    keepGlobal: boolean,
    gAny: boolean,
  ): void {
    const v = this.vpid[i]!;
    if (v === -1) return;
    if (vpid !== ANY && v !== vpid) return;
    if (ctx !== ANY && this.ctx[i] !== ctx) return;
    const g = (this.info[i]! & TlbInfo.GLOBAL) !== 0;
    if (g && keepGlobal) return;
    if (pcid !== ANY && this.pcid[i] !== pcid && !(g && gAny)) return;
    this.vpid[i] = -1;
  }

  /** Number of valid entries (tests, statistics). */
  count(): number {
    let c = 0;
    for (let i = 0; i < this.vpid.length; i++) if (this.vpid[i] !== -1) c++;
    return c;
  }
}
