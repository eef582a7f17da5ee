/**
 * The guest page walker: 32-bit paging (4 KiB, 4 MiB with CR4.PSE, PSE-36), PAE paging, 4-level and
 * 5-level paging (SDM Vol. 3A ch. 4), optionally two-dimensional: with an `EptWalker` attached, every
 * guest paging-structure access and the final access are translated through EPT (SDM Vol. 3C 29.3.2).
 *
 * Results go into a caller-provided `TranslateResult` plus a few fields on the walker (`dirty`, `pkey`,
 * the EPT exit details); a walk allocates nothing and ends after at most five levels, whatever the
 * tables hold.
 *
 * Where the SDM leaves room, A/D flags are set only when the translation succeeds, as KVM's walker does
 * (the reference the differential test runs against).
 */
import { EptAccess, EptExit, EptQual, type EptWalker, physHiMask } from "./ept.js";
import type { PhysMem } from "./phys.js";
import { baseErrorCode, PagingMode, pagingMode, rightsFault } from "./rights.js";
import {
  Access,
  CR4,
  EFER,
  type Gpa,
  type PagingRegs,
  PfErr,
  Pte,
  TranslateFault,
  type TranslateResult,
} from "./types.js";

const TWO32 = 4294967296;
const MAX_RESTARTS = 8;

/** Options of a `GuestWalker`. */
export interface WalkerOptions {
  /** Guest physical-address width: bits 51:MAXPHYADDR of entries are reserved (default 46). */
  maxPhyAddr?: number;
  /** 1 GiB pages (CPUID 80000001h EDX bit 26); without them PDPTE.PS is reserved (default true). */
  pages1G?: boolean;
}

/** Why `loadPdptes` failed. */
export type PdpteError = "PdpteReservedBits" | "PdpteEptExit";

export class GuestWalker {
  readonly maxPhyAddr: number;
  readonly pages1G: boolean;
  /** Attach an EPT walker to make every walk two-dimensional; null for one-dimensional paging. */
  ept: EptWalker | null = null;

  /** The four PAE PDPTEs as (lo, hi) pairs, loaded by `loadPdptes` (SDM 4.4.1). */
  readonly pdpte = new Int32Array(8);
  /** Whether `pdpte` holds the PDPTEs for `pdpteCr3`; a PAE walk loads them itself when not. */
  pdpteValid = false;
  pdpteCr3 = 0;

  /** After a successful walk: the leaf's D flag (after any update) and protection key (-1 if none). */
  dirty = false;
  pkey = -1;
  /** After an EPT exit (`fault === TranslateFault.EXIT`): reason 48/49, qualification, the guest-physical address. */
  exitReason = 0;
  exitQual = 0;
  exitGpa = 0 as Gpa;
  /** ... and the guest linear address being translated (the VMCS guest-linear-address field). */
  exitLinLo = 0;
  exitLinHi = 0;

  private readonly rsvdHi64: number;
  private readonly rsvdPse: number;
  private readonly physHi: number;
  private readonly adHpa = new Float64Array(5);
  private readonly adGpa = new Float64Array(5);
  private readonly adOld = new Int32Array(5);
  private adCount = 0;

  constructor(
    readonly regs: PagingRegs,
    readonly mem: PhysMem,
    opts: WalkerOptions = {},
  ) {
    const m = opts.maxPhyAddr ?? 46;
    if (!(m >= 36 && m <= 52)) throw new RangeError(`maxPhyAddr ${m} outside 36..52`);
    this.maxPhyAddr = m;
    this.pages1G = opts.pages1G ?? true;
    this.physHi = physHiMask(m) & 0xfffff;
    // Bits 51:M of a 64-bit entry (high half, bits 19:M-32).
    this.rsvdHi64 = 0xfffff & ~this.physHi;
    // 32-bit paging 4 MiB page: bit 21 reserved and bits 20:13 beyond min(M, 40) (SDM 4.3, Table 4-4).
    const pseBits = Math.min(m, 40) - 32;
    this.rsvdPse = 0x3fe000 & ~(((1 << pseBits) - 1) << 13);
  }

  /**
   * Loads the four PAE PDPTEs from CR3 as MOV to CR3 (and the CR0/CR4 writes that enter PAE paging) do
   * (SDM Vol. 3A 4.4.1). Returns null on success; "PdpteReservedBits" means the instruction raises
   * #GP(0); "PdpteEptExit" means the load caused an EPT violation or misconfiguration (`exitReason`,
   * `exitQual` with the linear-address-valid bit clear).
   */
  loadPdptes(): PdpteError | null {
    const r = this.regs;
    const base = (r.cr3Lo & 0xffffffe0) >>> 0;
    let ok = true;
    for (let i = 0; i < 4; i++) {
      let pa = base + i * 8;
      const ept = this.ept;
      if (ept !== null) {
        const acc = ept.accessDirty ? EptAccess.READ | EptAccess.WRITE : EptAccess.READ;
        if (!ept.translate(pa, acc, false)) {
          this.eptExit(pa, ept.exitReason, ept.qual);
          return "PdpteEptExit";
        }
        pa = ept.hpa;
      }
      const lo = this.mem.read32(pa);
      const hi = this.mem.read32(pa + 4);
      // Table 4-8: bits 2:1, 8:5 and 63:MAXPHYADDR are reserved in a present PDPTE.
      if (lo & Pte.P && ((lo & 0x1e6) !== 0 || (hi & ~this.physHi) !== 0)) ok = false;
      this.pdpte[i * 2] = lo;
      this.pdpte[i * 2 + 1] = hi;
    }
    this.pdpteCr3 = r.cr3Lo;
    this.pdpteValid = ok;
    return ok ? null : "PdpteReservedBits";
  }

  /**
   * Translates the linear address (linLo, linHi) for `access` (`Access` bits). Returns true with `out`
   * filled, or false with `out.fault` = PAGE_FAULT (`out.errorCode`; CR2 is the linear address) or EXIT
   * (an EPT violation or misconfiguration; see `exitReason`, `exitQual`, `exitGpa`).
   */
  translate(linLo: number, linHi: number, access: number, out: TranslateResult): boolean {
    this.exitLinLo = linLo;
    this.exitLinHi = linHi;
    for (let restart = 0; ; restart++) {
      const r = this.walk(linLo, linHi, access, out, restart >= MAX_RESTARTS);
      if (r !== RESTART) return r === DONE;
    }
  }

  private walk(linLo: number, linHi: number, access: number, out: TranslateResult, last: boolean): number {
    const r = this.regs;
    const cr0 = r.cr0;
    const cr4 = r.cr4;
    const efer = r.efer;
    const mode = pagingMode(cr0, cr4, efer);
    const write = (access & Access.WRITE) !== 0;
    this.adCount = 0;
    if (mode === PagingMode.NONE) {
      // SDM 4.1.1: with paging off, linear addresses (32 bits: no long mode without paging) are
      // physical; every address is a user-mode, writable, executable one for EPT's advanced exit
      // information (SDM Vol. 3C Table 28-7).
      const pa = linLo >>> 0;
      this.dirty = true;
      this.pkey = -1;
      return this.finish(pa, TWO32, true, true, false, false, access, out);
    }
    const nxe = (efer & EFER.NXE) !== 0;
    let rw = true;
    let us = true;
    let nx = false;
    let leafLo = 0;
    let leafHi = 0;
    let pa: number;
    let size: number;
    let global = false;
    if (mode === PagingMode.BIT32) {
      // 32-bit paging (SDM 4.3): a 1024-entry page directory at CR3, 32-bit entries.
      const pdeGpa = ((r.cr3Lo & 0xfffff000) >>> 0) + ((linLo >>> 22) << 2);
      const pdeHpa = this.ptHpa(pdeGpa, linLo, linHi);
      if (pdeHpa < 0) return this.exitOut(out);
      const pde = this.mem.read32(pdeHpa);
      if ((pde & Pte.P) === 0) return this.pf(0, cr4, efer, access, out, false);
      rw = (pde & Pte.RW) !== 0;
      us = (pde & Pte.US) !== 0;
      this.record(pdeHpa, pdeGpa, pde);
      if (pde & Pte.PS && cr4 & CR4.PSE) {
        // 4 MiB page: bits 20:13 are physical-address bits 39:32 (PSE-36), bit 21 is reserved.
        if ((pde & this.rsvdPse) !== 0) return this.pf(PfErr.RSVD, cr4, efer, access, out, true);
        size = 0x400000;
        pa = ((pde >>> 13) & 0xff) * TWO32 + ((pde & 0xffc00000) >>> 0) + (linLo & 0x3fffff);
        leafLo = pde;
      } else {
        const pteGpa = ((pde & 0xfffff000) >>> 0) + (((linLo >>> 12) & 0x3ff) << 2);
        const pteHpa = this.ptHpa(pteGpa, linLo, linHi);
        if (pteHpa < 0) return this.exitOut(out);
        const pte = this.mem.read32(pteHpa);
        if ((pte & Pte.P) === 0) return this.pf(0, cr4, efer, access, out, false);
        rw = rw && (pte & Pte.RW) !== 0;
        us = us && (pte & Pte.US) !== 0;
        this.record(pteHpa, pteGpa, pte);
        size = 4096;
        pa = ((pte & 0xfffff000) >>> 0) + (linLo & 0xfff);
        leafLo = pte;
      }
      global = (leafLo & Pte.G) !== 0 && (cr4 & CR4.PGE) !== 0;
      this.pkey = -1;
    } else {
      const ia32e = mode !== PagingMode.PAE;
      // Reserved high bits: 51:M everywhere; 62:52 too under PAE (Tables 4-8..4-11); 63 without NXE.
      const rsvdHi = (ia32e ? this.rsvdHi64 : this.rsvdHi64 | 0x7ff00000) | (nxe ? 0 : 0x80000000);
      let table: number;
      let level: number;
      if (!ia32e) {
        // PAE paging (SDM 4.4): the PDPTE comes from the four loaded at MOV to CR3.
        if (!this.pdpteValid || this.pdpteCr3 !== r.cr3Lo) {
          const e = this.loadPdptes();
          if (e === "PdpteEptExit") return this.exitOut(out);
          // A reserved PDPTE would have made MOV to CR3 fault; a walk that finds one (the CPU never
          // called loadPdptes) reports it as a reserved-bit #PF instead.
          if (e !== null) return this.pf(PfErr.RSVD, cr4, efer, access, out, true);
        }
        const i = (linLo >>> 30) * 2;
        const lo = this.pdpte[i]!;
        const hi = this.pdpte[i + 1]!;
        if ((lo & Pte.P) === 0) return this.pf(0, cr4, efer, access, out, false);
        table = (hi & this.physHi) * TWO32 + ((lo & 0xfffff000) >>> 0);
        level = 2;
      } else {
        table = (r.cr3Hi & this.physHi) * TWO32 + ((r.cr3Lo & 0xfffff000) >>> 0);
        level = mode === PagingMode.LEVEL5 ? 5 : 4;
      }
      for (;;) {
        const idx =
          level === 5
            ? (linHi >>> 16) & 0x1ff
            : level === 4
              ? (linHi >>> 7) & 0x1ff
              : level === 3
                ? ((linLo >>> 30) | (linHi << 2)) & 0x1ff
                : level === 2
                  ? (linLo >>> 21) & 0x1ff
                  : (linLo >>> 12) & 0x1ff;
        const eGpa = table + idx * 8;
        const eHpa = this.ptHpa(eGpa, linLo, linHi);
        if (eHpa < 0) return this.exitOut(out);
        const lo = this.mem.read32(eHpa);
        const hi = this.mem.read32(eHpa + 4);
        if ((lo & Pte.P) === 0) return this.pf(0, cr4, efer, access, out, false);
        if ((hi & rsvdHi) !== 0) return this.pf(PfErr.RSVD, cr4, efer, access, out, true);
        let leaf = level === 1;
        if (!leaf && lo & Pte.PS) {
          // PS is reserved in PML5Es and PML4Es, and in PDPTEs without 1 GiB pages (Tables 4-14..4-16).
          if (level >= 4 || (level === 3 && !this.pages1G)) {
            return this.pf(PfErr.RSVD, cr4, efer, access, out, true);
          }
          // Bits 29:13 (1 GiB) or 20:13 (2 MiB) of a large-page entry are reserved (bit 12 is PAT).
          if ((lo & (level === 3 ? 0x3fffe000 : 0x1fe000)) !== 0) {
            return this.pf(PfErr.RSVD, cr4, efer, access, out, true);
          }
          leaf = true;
        }
        rw = rw && (lo & Pte.RW) !== 0;
        us = us && (lo & Pte.US) !== 0;
        if (hi < 0) nx = true;
        this.record(eHpa, eGpa, lo);
        const base = (hi & this.physHi) * TWO32 + ((lo & 0xfffff000) >>> 0);
        if (leaf) {
          size = level === 3 ? 0x40000000 : level === 2 ? 0x200000 : 4096;
          pa = size === 4096 ? base + (linLo & 0xfff) : base - (base % size) + ((linLo & (size - 1)) >>> 0);
          leafLo = lo;
          leafHi = hi;
          break;
        }
        table = base;
        level--;
      }
      global = (leafLo & Pte.G) !== 0 && (cr4 & CR4.PGE) !== 0;
      // Protection keys exist only with 4-level and 5-level paging (SDM 4.6.2): bits 62:59 of the leaf.
      // Kept even with CR4.PKE/PKS clear, as the TLB caches the key (SDM 4.10.2.2); `rightsFault` only
      // applies it when the matching CR4 bit is set.
      this.pkey = ia32e ? (leafHi >>> 27) & 15 : -1;
    }
    const ec = rightsFault(cr0, cr4, efer, r.pkru ?? 0, r.pkrs ?? 0, access, rw, us, nx, this.pkey);
    if (ec !== 0) {
      out.fault = TranslateFault.PAGE_FAULT;
      out.errorCode = ec;
      return FAILED;
    }
    // SDM 4.8: A in every entry used, D in the leaf on a write; atomically, restarting if an entry changed.
    const ad = this.setAd(write, last);
    if (ad !== DONE) return ad === RESTART ? RESTART : this.exitOut(out);
    this.dirty = write || (leafLo & Pte.D) !== 0;
    return this.finish(pa, size, rw, us, nx && nxe, global, access, out);
  }

  /** Final step: the EPT translation of the final access (when EPT is on), then the result. */
  private finish(
    pa: number,
    size: number,
    rw: boolean,
    us: boolean,
    nx: boolean,
    global: boolean,
    access: number,
    out: TranslateResult,
  ): number {
    const ept = this.ept;
    if (ept !== null) {
      const acc =
        access & Access.FETCH ? EptAccess.FETCH : access & Access.WRITE ? EptAccess.WRITE : EptAccess.READ;
      if (!ept.translate(pa, acc, us)) {
        let q = ept.qual;
        if (ept.exitReason === EptExit.VIOLATION) {
          q |= EptQual.LINEAR_VALID | EptQual.FINAL_ACCESS;
          if (ept.caps.advancedExitInfo) {
            if (us) q |= EptQual.LINEAR_USER;
            if (rw) q |= EptQual.LINEAR_WRITABLE;
            if (nx) q |= EptQual.LINEAR_NX;
          }
        }
        this.exitReason = ept.exitReason;
        this.exitQual = q;
        this.exitGpa = pa as Gpa;
        return this.exitOut(out);
      }
      pa = ept.hpa;
      if (ept.pageSize < size) size = ept.pageSize;
    }
    out.paddr = pa;
    out.writable = rw;
    out.user = us;
    out.nx = nx;
    out.global = global;
    out.pageSize = size;
    out.fault = TranslateFault.NONE;
    out.errorCode = 0;
    return DONE;
  }

  /** Host address of a guest paging-structure entry, or -1 after recording an EPT exit. */
  private ptHpa(gpa: number, _linLo: number, _linHi: number): number {
    const ept = this.ept;
    if (ept === null) return gpa;
    // SDM 29.3.3.2: with EPT A/D enabled, guest paging-structure accesses count as writes.
    const acc = ept.accessDirty ? EptAccess.READ | EptAccess.WRITE : EptAccess.READ;
    if (ept.translate(gpa, acc, false)) return ept.hpa;
    this.eptExit(
      gpa,
      ept.exitReason,
      ept.qual | (ept.exitReason === EptExit.VIOLATION ? EptQual.LINEAR_VALID : 0),
    );
    return -1;
  }

  private eptExit(gpa: number, reason: number, qual: number): void {
    this.exitReason = reason;
    this.exitQual = reason === EptExit.VIOLATION ? qual : 0;
    this.exitGpa = gpa as Gpa;
  }

  private exitOut(out: TranslateResult): number {
    out.fault = TranslateFault.EXIT;
    out.errorCode = 0;
    return FAILED;
  }

  private record(hpa: number, gpa: number, lo: number): void {
    const n = this.adCount++;
    this.adHpa[n] = hpa;
    this.adGpa[n] = gpa;
    this.adOld[n] = lo;
  }

  /** #PF with P set for `present` (protection or reserved bit), plus W/R, U/S, I/D for the access. */
  private pf(
    bits: number,
    cr4: number,
    efer: number,
    access: number,
    out: TranslateResult,
    present: boolean,
  ): number {
    out.fault = TranslateFault.PAGE_FAULT;
    out.errorCode = bits | (present ? PfErr.P : 0) | baseErrorCode(cr4, efer, access);
    return FAILED;
  }

  /**
   * Sets A on each entry recorded and D on the last one for a write. With EPT, writing a guest entry is
   * a write to its guest-physical address: without EPT A/D the entry was read with read access only, so
   * the update is translated again for write and may itself cause an EPT violation (reported as
   * read+write, the access being a locked read-modify-write).
   */
  private setAd(write: boolean, last: boolean): number {
    const n = this.adCount;
    const mem = this.mem;
    const ept = this.ept;
    for (let k = 0; k < n; k++) {
      const old = this.adOld[k]!;
      const nv = old | Pte.A | (write && k === n - 1 ? Pte.D : 0);
      if (nv === old) continue;
      let hpa = this.adHpa[k]!;
      if (ept !== null && !ept.accessDirty) {
        const gpa = this.adGpa[k]!;
        if (!ept.translate(gpa, EptAccess.READ | EptAccess.WRITE, false)) {
          const q = ept.exitReason === EptExit.VIOLATION ? ept.qual | EptQual.LINEAR_VALID : 0;
          this.eptExit(gpa, ept.exitReason, q);
          return FAILED;
        }
        hpa = ept.hpa;
      }
      if (!mem.cmpxchg32) {
        mem.write32(hpa, nv);
      } else if (!last) {
        if (mem.cmpxchg32(hpa, old, nv) !== old) return RESTART;
      } else {
        // Out of restarts: a plain atomic OR, as a locked OR instruction would do.
        const bits = nv & ~old;
        let cur = mem.read32(hpa);
        for (
          let seen = mem.cmpxchg32(hpa, cur, cur | bits);
          seen !== cur;
          seen = mem.cmpxchg32(hpa, cur, cur | bits)
        ) {
          cur = seen;
        }
      }
    }
    return DONE;
  }
}

const DONE = 0;
const FAILED = 1;
const RESTART = 2;
