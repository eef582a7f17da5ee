/**
 * `Mmu`: the guest walker, EPT and the tagged TLB put together, with the invalidation operations of the
 * SDM (Vol. 3A 4.10.4, Vol. 3C 29.4.3). Its `translate` has the shape of cpu-x86's `Translator`.
 *
 * TLB hits re-check the cached rights against the current CR0.WP, CR4.SMEP/SMAP/PKE/PKS, PKRU and
 * RFLAGS.AC, and a write through an entry whose D flag is clear walks again so D gets set (SDM 4.8).
 * A hit that would fault walks again instead (a #PF invalidates the TLB entries for its address,
 * SDM 4.10.4.1, so the fault always reflects the tables in memory).
 */
import { checkEptp, type EptCaps, type EptOptions, type EptpError, EptWalker, eptpRoot } from "./ept.js";
import type { PhysMem } from "./phys.js";
import { PagingMode, pagingMode, rightsFault } from "./rights.js";
import { ANY, Tlb, TlbInfo } from "./tlb.js";
import { Access, CR0, CR4, EFER, type PagingRegs, TranslateFault, type TranslateResult } from "./types.js";
import { GuestWalker, type PdpteError, type WalkerOptions } from "./walker.js";

/** Options of an `Mmu`. */
export interface MmuOptions extends WalkerOptions {
  /** TLB geometry (default 256 sets x 4 ways); `tlb: false` disables the TLB model. */
  tlbSets?: number;
  tlbWays?: number;
  tlb?: boolean;
  /** EPT options (MAXPHYADDR defaults to the walker's). */
  ept?: EptOptions;
}

/** INVPCID types (SDM Vol. 2B INVPCID). */
export const InvpcidType = { ADDRESS: 0, SINGLE: 1, ALL_INCL_GLOBAL: 2, ALL: 3 } as const;
/** INVVPID types (SDM Vol. 3C 31.3 INVVPID). */
export const InvvpidType = { ADDRESS: 0, SINGLE: 1, ALL: 2, SINGLE_KEEP_GLOBAL: 3 } as const;
/** INVEPT types (SDM Vol. 3C 31.3 INVEPT). */
export const InveptType = { SINGLE: 1, ALL: 2 } as const;

/**
 * What `Mmu.save` keeps: the architectural state (VPID, EPTP, the PAE PDPTE registers). The TLB is not
 * saved: a processor may drop cached translations at any time (SDM 4.10.4.1), so a restored MMU starts
 * empty.
 */
export interface MmuState {
  vpid: number;
  eptp: { lo: number; hi: number } | null;
  /** The four PDPTEs as (lo, hi) pairs when loaded, else null. */
  pdptes: number[] | null;
  pdpteCr3: number;
}

/** Why `Mmu.restore` rejected a state. */
export type MmuRestoreError = { kind: "BadField"; field: string };

/** EPT contexts the TLB tells apart at once; the oldest is dropped to make room. */
const MAX_CTX = 16;

/**
 * Translates linear addresses as a guest CPU does, with an optional EPT and a TLB tagged by VPID, PCID
 * and EPT root.
 *
 * @example
 * const mem = new FlatPhysMem(new ArrayBuffer(1 << 22));
 * const regs = { cr0: CR0.PG | CR0.PE, cr3Lo: 0x1000, cr3Hi: 0, cr4: CR4.PAE, efer: EFER.LME | EFER.LMA };
 * const mmu = new Mmu(regs, mem);
 * const out = newTranslateResult();
 * if (!mmu.translate(0x400000, 0, Access.WRITE, out)) console.log("#PF", out.errorCode);
 */
export class Mmu {
  readonly walker: GuestWalker;
  readonly ept: EptWalker;
  readonly tlb: Tlb | null;
  /** The current VPID (0 outside VMX non-root operation or without "enable VPID"). */
  vpid = 0;
  private eptOn = false;
  private ctx = 0;
  /** EP4TA of each context (index 1..MAX_CTX); context 0 is "EPT off". */
  private readonly ctxRoot = new Float64Array(MAX_CTX + 1).fill(-1);
  private ctxNext = 1;
  /** The registers the memoised rights checks in the TLB were made under. */
  private kCr0 = 0;
  private kCr4 = 0;
  private kEfer = 0;
  private kPkru = 0;
  private kPkrs = 0;

  constructor(
    readonly regs: PagingRegs,
    readonly mem: PhysMem,
    opts: MmuOptions = {},
  ) {
    this.walker = new GuestWalker(regs, mem, opts);
    this.ept = new EptWalker(mem, { maxPhyAddr: this.walker.maxPhyAddr, ...opts.ept });
    this.tlb = opts.tlb === false ? null : new Tlb(opts.tlbSets, opts.tlbWays);
  }

  /** Exit details of the last `translate` that returned EXIT: basic reason 48 or 49. */
  get exitReason(): number {
    return this.walker.exitReason;
  }
  /** Its exit qualification (SDM Vol. 3C Table 28-7; 0 for a misconfiguration). */
  get exitQual(): number {
    return this.walker.exitQual;
  }
  /** Its guest-physical address. */
  get exitGpa(): number {
    return this.walker.exitGpa;
  }

  /** Its guest linear address as halves (valid when `exitQual` bit 7 is set). */
  get exitLinLo(): number {
    return this.walker.exitLinLo;
  }
  get exitLinHi(): number {
    return this.walker.exitLinHi;
  }

  /** Whether EPT is on (VMX non-root with "enable EPT"). */
  get eptEnabled(): boolean {
    return this.eptOn;
  }

  /**
   * Turns EPT on with the given EPTP, or off (`null`). Does not check the EPTP: VM entry does that
   * with `checkEptp` first. Cached combined mappings of other EPT roots stay tagged apart.
   */
  setEptp(eptp: { lo: number; hi: number } | null): void {
    if (eptp === null) {
      this.eptOn = false;
      this.walker.ept = null;
      this.ctx = 0;
      return;
    }
    this.ept.setEptp(eptp.lo, eptp.hi);
    this.eptOn = true;
    this.walker.ept = this.ept;
    this.ctx = this.ctxFor(this.ept.ep4ta, true);
  }

  /** The context index tagging combined mappings for an EP4TA (allocating one when `create`). */
  private ctxFor(ep4ta: number, create: boolean): number {
    for (let c = 1; c <= MAX_CTX; c++) if (this.ctxRoot[c] === ep4ta) return c;
    if (!create) return -1;
    const c = this.ctxNext;
    this.ctxNext = c === MAX_CTX ? 1 : c + 1;
    if (this.ctxRoot[c]! >= 0) this.tlb?.flush(ANY, ANY, c, false);
    this.ctxRoot[c] = ep4ta;
    return c;
  }

  /**
   * A VMX transition: switches to `vpid` (the guest's on VM entry, 0 on VM exit) and to `eptp` (null
   * when EPT is off). `vpidEnabled` is the "enable VPID" control of the VMCS involved; when it is 0 the
   * entry or exit also drops every linear and combined mapping of VPID 0000H (SDM Vol. 3C 29.4.3.1).
   */
  vmTransition(vpid: number, vpidEnabled: boolean, eptp: { lo: number; hi: number } | null): void {
    this.vpid = vpidEnabled ? vpid & 0xffff : 0;
    this.setEptp(eptp);
    if (!vpidEnabled) this.tlb?.flush(0, ANY, ANY, false);
  }

  /** The VM-entry check of an EPTP against these capabilities and MAXPHYADDR (null when valid). */
  checkEptp(lo: number, hi: number, caps: EptCaps = this.ept.caps): EptpError | null {
    return checkEptp(lo, hi, caps, this.ept.maxPhyAddr);
  }

  /**
   * Linear -> physical for one access (`Access` bits). Returns true with `out` filled, or false with
   * `out.fault` = PAGE_FAULT (error code in `out.errorCode`, CR2 = the linear address) or EXIT (an EPT
   * violation or misconfiguration: `exitReason`, `exitQual`, `exitGpa`).
   */
  translate(linLo: number, linHi: number, access: number, out: TranslateResult): boolean {
    const r = this.regs;
    const cr0 = r.cr0;
    const cr4 = r.cr4;
    const efer = r.efer;
    const tlb = this.tlb;
    // Translations with paging off are not cached: they are not linear mappings (SDM 4.10.2).
    if (tlb === null || (cr0 & CR0.PG) === 0) return this.walker.translate(linLo, linHi, access, out);
    // Memoised rights checks hold while the registers they read stay the same.
    const pkru = r.pkru ?? 0;
    const pkrs = r.pkrs ?? 0;
    if (
      cr0 !== this.kCr0 ||
      cr4 !== this.kCr4 ||
      efer !== this.kEfer ||
      pkru !== this.kPkru ||
      pkrs !== this.kPkrs
    ) {
      this.kCr0 = cr0;
      this.kCr4 = cr4;
      this.kEfer = efer;
      this.kPkru = pkru;
      this.kPkrs = pkrs;
      tlb.forgetRights();
    }
    // 32-bit and PAE paging translate 32-bit linear addresses.
    const hi = cr4 & CR4.PAE && efer & EFER.LMA ? linHi : 0;
    const vpnLo = (linLo >>> 12) | (hi << 20);
    const vpnHi = hi >>> 12;
    const pcid = cr4 & CR4.PCIDE ? r.cr3Lo & 0xfff : 0;
    const i = tlb.lookup(vpnLo, vpnHi, this.vpid, pcid, this.ctx);
    if (i >= 0) {
      const info = tlb.info[i]!;
      const bit = 1 << (access & 31);
      let ok = (tlb.allow[i]! & bit) !== 0;
      if ((tlb.known[i]! & bit) === 0) {
        // SDM 4.8: a write through an entry whose D flag is clear walks (never memoised as allowed).
        ok =
          ((access & Access.WRITE) === 0 || (info & TlbInfo.DIRTY) !== 0) &&
          rightsFault(
            cr0,
            cr4,
            efer,
            pkru,
            pkrs,
            access,
            (info & TlbInfo.WRITABLE) !== 0,
            (info & TlbInfo.USER) !== 0,
            (info & TlbInfo.NX) !== 0,
            ((info >>> TlbInfo.PKEY_SHIFT) & 31) - 1,
          ) === 0;
        tlb.known[i]! |= bit;
        if (ok) tlb.allow[i]! |= bit;
      }
      if (ok) {
        out.paddr = tlb.frame[i]! + (linLo & 0xfff);
        out.writable = (info & TlbInfo.WRITABLE) !== 0;
        out.user = (info & TlbInfo.USER) !== 0;
        out.nx = (info & TlbInfo.NX) !== 0;
        out.global = (info & TlbInfo.GLOBAL) !== 0;
        out.pageSize = 1 << ((info >>> TlbInfo.SIZE_SHIFT) & 31);
        out.fault = TranslateFault.NONE;
        out.errorCode = 0;
        return true;
      }
      tlb.drop(i);
    }
    if (!this.walker.translate(linLo, hi, access, out)) {
      // SDM 4.10.4.1: a #PF invalidates the TLB entries for the faulting page in the current PCID.
      if (out.fault === TranslateFault.PAGE_FAULT) {
        tlb.flushPage(vpnLo, vpnHi, this.vpid, pcid, this.ctx, false, true);
      } else {
        // SDM Vol. 3C 29.4.3.1: an EPT violation (or misconfiguration) met while translating a linear
        // address invalidates the combined mappings for it under the current VPID and EP4TA.
        tlb.flushPage(vpnLo, vpnHi, this.vpid, ANY, this.ctx, false, true);
      }
      return false;
    }
    const w = this.walker;
    let info = (Math.log2(out.pageSize) | 0) << TlbInfo.SIZE_SHIFT;
    if (out.writable) info |= TlbInfo.WRITABLE;
    if (out.user) info |= TlbInfo.USER;
    if (out.nx) info |= TlbInfo.NX;
    if (out.global) info |= TlbInfo.GLOBAL;
    if (w.dirty) info |= TlbInfo.DIRTY;
    if (w.pkey >= 0) info |= (w.pkey + 1) << TlbInfo.PKEY_SHIFT;
    const frame = out.paddr - (out.paddr % 4096);
    tlb.insert(vpnLo, vpnHi, this.vpid, pcid, this.ctx, info, frame);
    return true;
  }

  /**
   * Loads the PAE PDPTEs (SDM 4.4.1). Call after MOV to CR3 in PAE mode and after a CR0/CR4 write
   * that enters PAE paging; "PdpteReservedBits" means #GP(0). The walker also loads them itself when
   * CR3 changed without this call.
   */
  loadPdptes(): PdpteError | null {
    return this.walker.loadPdptes();
  }

  /**
   * Sets the PDPTE registers directly, as VM entry does from the VMCS guest-PDPTE fields when EPT is on
   * (SDM Vol. 3C 27.3.2.4): `lohi` holds the four entries as (lo, hi) pairs. They stay in use until the
   * next PDPTE load (MOV to CR3 in PAE mode, or a CR3 change the walker notices).
   */
  setPdptes(lohi: ArrayLike<number>): void {
    const w = this.walker;
    for (let i = 0; i < 8; i++) w.pdpte[i] = lohi[i] ?? 0;
    w.pdpteValid = true;
    w.pdpteCr3 = this.regs.cr3Lo;
  }

  // ------------------------------------------------------------ invalidation (SDM Vol. 3A 4.10.4.1)

  /**
   * After MOV to CR3 (and task switches that load CR3, with `noFlush` false): without CR4.PCIDE, drops
   * the non-global entries of PCID 0; with it, those of the new PCID unless bit 63 of the source
   * (`noFlush`) was set. Only the current VPID, every EPT root (SDM Vol. 3C 29.4.3.1). In PAE mode it also
   * reloads the PDPTEs and returns the result of `loadPdptes`.
   */
  movCr3(noFlush = false): PdpteError | null {
    const r = this.regs;
    const pcide = (r.cr4 & CR4.PCIDE) !== 0;
    if (!(pcide && noFlush)) this.tlb?.flush(this.vpid, pcide ? r.cr3Lo & 0xfff : 0, ANY, true);
    this.walker.pdpteValid = false;
    if (pagingMode(r.cr0, r.cr4, r.efer) === PagingMode.PAE) return this.walker.loadPdptes();
    return null;
  }

  /**
   * After MOV to CR4: a change of PGE, or PCIDE going 1 -> 0, drops everything for the current VPID
   * including global entries; a change of PAE or PSE, or SMEP going 0 -> 1, drops the current VPID's
   * entries too (the SDM names the current PCID; dropping more is always allowed).
   */
  movCr4(oldCr4: number, newCr4: number): void {
    const d = oldCr4 ^ newCr4;
    const smepOn = (newCr4 & ~oldCr4 & CR4.SMEP) !== 0;
    const pcideOff = (oldCr4 & ~newCr4 & CR4.PCIDE) !== 0;
    if (d & (CR4.PGE | CR4.PAE | CR4.PSE | CR4.LA57) || pcideOff || smepOn) {
      this.tlb?.flush(this.vpid, ANY, ANY, false);
    }
    if (d & (CR4.PAE | CR4.PSE | CR4.LA57)) this.walker.pdpteValid = false;
  }

  /** After MOV to CR0: CR0.PG going 1 -> 0 drops everything for the current VPID (SDM 4.10.4.1). */
  movCr0(oldCr0: number, newCr0: number): void {
    if (oldCr0 & ~newCr0 & CR0.PG) this.tlb?.flush(this.vpid, ANY, ANY, false);
    if ((oldCr0 ^ newCr0) & CR0.PG) this.walker.pdpteValid = false;
  }

  /**
   * One entry point for a CPU that reports control-register writes after performing them: `cr` is 0, 3
   * or 4, `oldLo` the register's previous low half, `noFlush` bit 63 of a MOV to CR3 source. Returns
   * the PDPTE-load result for writes that (re)load PAE PDPTEs ("PdpteReservedBits" means #GP(0)).
   */
  afterCrWrite(cr: number, oldLo: number, noFlush = false): PdpteError | null {
    const r = this.regs;
    if (cr === 3) return this.movCr3(noFlush);
    if (cr === 0) this.movCr0(oldLo, r.cr0);
    else if (cr === 4) this.movCr4(oldLo, r.cr4);
    else return null;
    // SDM 4.4.1: with PAE paging in use afterwards, changing CR0.CD/NW/PG or CR4.PAE/PGE/PSE/SMEP reloads them.
    const paging = CR0.PG | CR0.CD | CR0.NW;
    const bits =
      cr === 0 ? (oldLo ^ r.cr0) & paging : (oldLo ^ r.cr4) & (CR4.PAE | CR4.PGE | CR4.PSE | CR4.SMEP);
    if (bits !== 0 && pagingMode(r.cr0, r.cr4, r.efer) === PagingMode.PAE) return this.walker.loadPdptes();
    return null;
  }

  /** INVLPG: the page's entries for the current PCID and its global entries, current VPID. */
  invlpg(linLo: number, linHi: number): void {
    const tlb = this.tlb;
    if (tlb === null) return;
    const r = this.regs;
    const hi = pagingMode(r.cr0, r.cr4, r.efer) >= PagingMode.LEVEL4 ? linHi : 0;
    const pcid = r.cr4 & CR4.PCIDE ? r.cr3Lo & 0xfff : 0;
    tlb.flushPage((linLo >>> 12) | (hi << 20), hi >>> 12, this.vpid, pcid, ANY, false, true);
  }

  /**
   * INVPCID (types 0-3) in the current VPID. The instruction's #GP checks (type > 3, a PCID above 0 with
   * CR4.PCIDE = 0 for type 0 / 1, a non-canonical address) are the CPU's; this returns false for an
   * unknown type and does nothing.
   */
  invpcid(type: number, pcid: number, linLo: number, linHi: number): boolean {
    const tlb = this.tlb;
    if (type < 0 || type > 3) return false;
    if (tlb === null) return true;
    if (type === InvpcidType.ADDRESS) {
      tlb.flushPage((linLo >>> 12) | (linHi << 20), linHi >>> 12, this.vpid, pcid & 0xfff, ANY, true, false);
    } else if (type === InvpcidType.SINGLE) {
      tlb.flush(this.vpid, pcid & 0xfff, ANY, true);
    } else {
      tlb.flush(this.vpid, ANY, ANY, type === InvpcidType.ALL);
    }
    return true;
  }

  /**
   * INVVPID (types 0-3): linear and combined mappings of `vpid` (type 2: of every VPID but 0), every
   * PCID and EPT root; type 3 keeps global entries. VMX checks the operands (VMfailValid cases).
   */
  invvpid(type: number, vpid: number, linLo = 0, linHi = 0): boolean {
    const tlb = this.tlb;
    if (type < 0 || type > 3) return false;
    if (tlb === null) return true;
    if (type === InvvpidType.ADDRESS) {
      tlb.flushPage((linLo >>> 12) | (linHi << 20), linHi >>> 12, vpid, ANY, ANY, false, true);
    } else if (type === InvvpidType.ALL) {
      tlb.flush(-2, ANY, ANY, false);
    } else {
      tlb.flush(vpid, ANY, ANY, type === InvvpidType.SINGLE_KEEP_GLOBAL);
    }
    return true;
  }

  /**
   * INVEPT (types 1, 2): combined mappings of the EP4TA in the given EPTP (type 1) or of every EP4TA
   * (type 2), across VPIDs and PCIDs. Linear mappings (made with EPT off) stay.
   */
  invept(type: number, eptpLo = 0, eptpHi = 0): boolean {
    const tlb = this.tlb;
    if (type !== InveptType.SINGLE && type !== InveptType.ALL) return false;
    if (tlb === null) return true;
    if (type === InveptType.ALL) {
      for (let c = 1; c <= MAX_CTX; c++) tlb.flush(ANY, ANY, c, false);
      return true;
    }
    const c = this.ctxFor(eptpRoot(eptpLo, eptpHi, this.ept.maxPhyAddr), false);
    if (c > 0) tlb.flush(ANY, ANY, c, false);
    return true;
  }

  /** The architectural state, as plain JSON-able data. */
  save(): MmuState {
    const w = this.walker;
    return {
      vpid: this.vpid,
      eptp: this.eptOn ? { lo: this.ept.eptpLo, hi: this.ept.eptpHi } : null,
      pdptes: w.pdpteValid ? Array.from(w.pdpte) : null,
      pdpteCr3: w.pdpteCr3,
    };
  }

  /**
   * Builds an MMU from `save()` output, validating every field; returns the error instead of throwing.
   */
  static restore(
    regs: PagingRegs,
    mem: PhysMem,
    state: MmuState,
    opts: MmuOptions = {},
  ): Mmu | MmuRestoreError {
    const int = (v: unknown, lo: number, hi: number): boolean =>
      typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;
    if (!int(state.vpid, 0, 0xffff)) return { kind: "BadField", field: "vpid" };
    if (
      state.eptp !== null &&
      (!int(state.eptp?.lo, -(2 ** 31), 2 ** 32) || !int(state.eptp?.hi, -(2 ** 31), 2 ** 32))
    ) {
      return { kind: "BadField", field: "eptp" };
    }
    if (
      state.pdptes !== null &&
      !(
        Array.isArray(state.pdptes) &&
        state.pdptes.length === 8 &&
        state.pdptes.every((v) => int(v, -(2 ** 31), 2 ** 32))
      )
    ) {
      return { kind: "BadField", field: "pdptes" };
    }
    if (!int(state.pdpteCr3, -(2 ** 31), 2 ** 32)) return { kind: "BadField", field: "pdpteCr3" };
    const mmu = new Mmu(regs, mem, opts);
    mmu.vpid = state.vpid;
    mmu.setEptp(state.eptp);
    if (state.pdptes !== null) {
      mmu.walker.pdpte.set(state.pdptes);
      mmu.walker.pdpteValid = true;
    }
    mmu.walker.pdpteCr3 = state.pdpteCr3 | 0;
    return mmu;
  }

  /**
   * INVEPT / INVVPID in the shape `@tskvm/vmx` declares (`VmxTlbHooks`): 64-bit operands as bigint, a
   * cold path. `invept(null)` is all-context, `invept(eptp)` single-context.
   */
  readonly vmxHooks = {
    invept: (eptp: bigint | null): void => {
      if (eptp === null) this.invept(InveptType.ALL);
      else
        this.invept(
          InveptType.SINGLE,
          Number(BigInt.asUintN(32, eptp)) | 0,
          Number(BigInt.asUintN(32, eptp >> 32n)) | 0,
        );
    },
    invvpid: (type: number, vpid: number, linear: bigint): void => {
      this.invvpid(
        type,
        vpid,
        Number(BigInt.asUintN(32, linear)) | 0,
        Number(BigInt.asUintN(32, linear >> 32n)) | 0,
      );
    },
  };

  /** Drops every cached translation of every VPID, PCID and EPT root. */
  flushAll(): void {
    this.tlb?.flushAll();
    this.walker.pdpteValid = false;
  }
}
