/**
 * A built-in page walker (SDM Vol. 3 ch. 4) so the CPU runs paged code on its own: 32-bit paging (with
 * CR4.PSE 4 MiB pages), PAE paging and 4-level paging (2 MiB / 1 GiB pages), A/D bit updates, NX,
 * reserved-bit checks on the bits this walker relies on, and the #PF error code (SDM 4.7).
 * `@tskvm/mmu-ept` provides the full walker (EPT, PCID, PKRU); this one keeps the CPU testable alone.
 *
 * SMEP, SMAP and protection keys for user pages (CR4.PKE with `regs.pkru`) are checked as SDM 4.6 says.
 *
 * Deviations: 5-level paging and supervisor protection keys (PKS) are not implemented (neither is
 * exposed in CPUID); PAE PDPTEs are read on every walk instead of being cached at MOV CR3 (SDM 4.4.1).
 */
import {
  Access,
  type PagingRegs,
  type PhysicalMemory,
  type RamView,
  TranslateFault,
  type TranslateResult,
  type Translator,
} from "./interfaces.js";
import { CR0, CR4, EFER } from "./state.js";

const PTE_P = 1;
const PTE_RW = 2;
const PTE_US = 4;
const PTE_A = 0x20;
const PTE_D = 0x40;
const PTE_PS = 0x80;
const PTE_G = 0x100;

/** #PF error-code bits (SDM Vol. 3 Figure 4-12). */
export const PfErr = { P: 1, W: 2, U: 4, RSVD: 8, I: 16, PK: 32 } as const;

export class PageWalker implements Translator {
  private readonly view: RamView = { u8: new Uint8Array(0), offset: 0 };

  constructor(
    private readonly regs: PagingRegs,
    private readonly mem: PhysicalMemory,
    /** Physical-address width (CPUID 80000008h EAX[7:0]). */
    private readonly maxPhysBits = 40,
  ) {}

  /** Reads a 32-bit word of a paging structure; returns -1 >>> 0 style via view, or MMIO. */
  private rd32(pa: number): number {
    const v = this.view;
    if (this.mem.ramPage(Math.floor(pa / 4096), v)) {
      const o = v.offset + (pa % 4096);
      const u = v.u8;
      return u[o]! | (u[o + 1]! << 8) | (u[o + 2]! << 16) | (u[o + 3]! << 24);
    }
    return this.mem.mmioRead(pa, 4);
  }

  private wr32(pa: number, val: number): void {
    const v = this.view;
    if (this.mem.ramPage(Math.floor(pa / 4096), v)) {
      const o = v.offset + (pa % 4096);
      const u = v.u8;
      u[o] = val;
      u[o + 1] = val >> 8;
      u[o + 2] = val >> 16;
      u[o + 3] = val >> 24;
    } else {
      this.mem.mmioWrite(pa, 4, val);
    }
  }

  translate(linLo: number, linHi: number, access: number, out: TranslateResult): boolean {
    const r = this.regs;
    const write = (access & Access.WRITE) !== 0;
    const user = (access & Access.USER) !== 0 && (access & Access.IMPLICIT_SUPERVISOR) === 0;
    const fetch = (access & Access.FETCH) !== 0;
    const nxe = (r.efer & EFER.NXE) !== 0;
    // SDM Vol. 3 4.7: I/D is set for a fetch only when CR4.SMEP = 1, or when both CR4.PAE = 1 and
    // EFER.NXE = 1; a fetch under 32-bit paging or without NXE reports I/D = 0.
    const idBit = fetch && ((nxe && (r.cr4 & CR4.PAE) !== 0) || (r.cr4 & CR4.SMEP) !== 0);
    let ec = (write ? PfErr.W : 0) | (user ? PfErr.U : 0) | (idBit ? PfErr.I : 0);
    let rw = true;
    let us = true;
    let nx = false;
    // Addresses of the entries visited (for A/D updates) and their low words.
    let paddr: number;
    let pageSize: number;
    let global = false;
    /** The leaf's protection key (4-level paging only, SDM 4.6.2), or -1. */
    let pkey = -1;
    const physMask = 2 ** this.maxPhysBits;
    const entries: number[] = [];
    const fail = (rsvd: boolean, present: boolean): boolean => {
      out.fault = TranslateFault.PAGE_FAULT;
      out.errorCode = ec | (present ? PfErr.P : 0) | (rsvd ? PfErr.RSVD | PfErr.P : 0);
      return false;
    };
    if ((r.cr4 & CR4.PAE) === 0) {
      // 32-bit paging (SDM 4.3).
      const pdeA = (r.cr3Lo & 0xfffff000) >>> 0;
      const pdeAddr = pdeA + ((linLo >>> 22) << 2);
      const pde = this.rd32(pdeAddr);
      if ((pde & PTE_P) === 0) return fail(false, false);
      rw = (pde & PTE_RW) !== 0;
      us = (pde & PTE_US) !== 0;
      entries.push(pdeAddr, pde);
      if (pde & PTE_PS && r.cr4 & CR4.PSE) {
        // 4 MiB page: bits 20:13 are PA bits 39:32 (PSE-36).
        paddr = ((pde & 0xffc00000) >>> 0) + ((pde >>> 13) & 0xff) * 4294967296 + (linLo & 0x3fffff);
        pageSize = 0x400000;
        global = (pde & PTE_G) !== 0;
      } else {
        const pteAddr = ((pde & 0xfffff000) >>> 0) + (((linLo >>> 12) & 0x3ff) << 2);
        const pte = this.rd32(pteAddr);
        if ((pte & PTE_P) === 0) return fail(false, false);
        rw = rw && (pte & PTE_RW) !== 0;
        us = us && (pte & PTE_US) !== 0;
        entries.push(pteAddr, pte);
        paddr = ((pte & 0xfffff000) >>> 0) + (linLo & 0xfff);
        pageSize = 4096;
        global = (pte & PTE_G) !== 0;
      }
    } else {
      let table: number;
      let level: number;
      if (r.efer & EFER.LMA) {
        table = (r.cr3Hi >>> 0) * 4294967296 + ((r.cr3Lo & 0xfffff000) >>> 0);
        level = 4;
      } else {
        // PAE: the PDPTE selected by bits 31:30 (SDM 4.4.1).
        const pdpteAddr = ((r.cr3Lo & 0xffffffe0) >>> 0) + ((linLo >>> 30) << 3);
        const lo = this.rd32(pdpteAddr);
        const hi = this.rd32(pdpteAddr + 4);
        if ((lo & PTE_P) === 0) return fail(false, false);
        if ((lo & 0x1e6) !== 0) return fail(true, true);
        table = ((hi & 0xfffff) >>> 0) * 4294967296 + ((lo & 0xfffff000) >>> 0);
        level = 2;
      }
      for (;;) {
        // Index bits for this level: 4 -> 47:39, 3 -> 38:30, 2 -> 29:21, 1 -> 20:12.
        const shift = 12 + 9 * (level - 1);
        // 47:39 sits in the high half; 38:30 straddles the halves.
        const idx =
          shift === 39
            ? (linHi >>> 7) & 0x1ff
            : shift === 30
              ? ((linLo >>> 30) | (linHi << 2)) & 0x1ff
              : (linLo >>> shift) & 0x1ff;
        const ea = table + idx * 8;
        const lo = this.rd32(ea);
        const hi = this.rd32(ea + 4);
        if ((lo & PTE_P) === 0) return fail(false, false);
        const addrHi = hi & 0xfffff;
        if (addrHi * 4294967296 >= physMask) return fail(true, true);
        if (hi < 0) {
          if (!nxe) return fail(true, true);
          nx = true;
        }
        rw = rw && (lo & PTE_RW) !== 0;
        us = us && (lo & PTE_US) !== 0;
        entries.push(ea, lo);
        const base = addrHi * 4294967296;
        if (level === 1 || (lo & PTE_PS && level <= 3)) {
          pageSize = level === 1 ? 4096 : level === 2 ? 0x200000 : 0x40000000;
          if (level > 1 && (lo & (pageSize - 1) & ~0x1fff) !== 0) return fail(true, true);
          const frameLo = (lo & ~(pageSize - 1) & ~0xfff) >>> 0;
          const offLo = (linLo & (pageSize - 1)) >>> 0;
          paddr = base + frameLo + offLo;
          global = (lo & PTE_G) !== 0;
          if (r.efer & EFER.LMA) pkey = (hi >>> 27) & 15;
          break;
        }
        if (level === 4 && lo & PTE_PS) return fail(true, true);
        table = base + ((lo & 0xfffff000) >>> 0);
        level--;
      }
    }
    // Access rights (SDM 4.6): user accesses need U/S everywhere; writes need R/W unless supervisor
    // with CR0.WP=0; fetches need XD clear.
    let bad = (user && !us) || (write && !rw && (user || (r.cr0 & CR0.WP) !== 0)) || (fetch && nx);
    if (!user && us) {
      // SMEP: no supervisor fetch from a user page. SMAP: no supervisor data access to one, unless
      // RFLAGS.AC = 1 and the access is explicit (SDM 4.6.1).
      const implicit = (access & Access.IMPLICIT_SUPERVISOR) !== 0;
      if (fetch && r.cr4 & CR4.SMEP) bad = true;
      if (!fetch && r.cr4 & CR4.SMAP && (implicit || (access & Access.AC) === 0)) bad = true;
    }
    if (pkey >= 0 && us && !fetch && r.cr4 & CR4.PKE) {
      // SDM 4.6.2: PKRU[2k] (AD) forbids data accesses to user pages with key k; PKRU[2k+1] (WD) forbids
      // user writes, and supervisor writes with CR0.WP = 1. SDM 4.7 sets PK whenever this holds,
      // whatever the other rights say.
      const bits = ((r.pkru ?? 0) >>> (pkey * 2)) & 3;
      if (bits & 1 || (bits & 2 && write && (user || r.cr0 & CR0.WP))) {
        ec |= PfErr.PK;
        bad = true;
      }
    }
    if (bad) return fail(false, true);
    // Accessed on every level, dirty on the leaf for writes (SDM 4.8).
    for (let k = 0; k < entries.length; k += 2) {
      const a = entries[k]!;
      const v = entries[k + 1]!;
      const leaf = k === entries.length - 2;
      const nv = v | PTE_A | (leaf && write ? PTE_D : 0);
      if (nv !== v) this.wr32(a, nv);
    }
    ec = 0;
    out.paddr = paddr;
    out.writable = rw;
    out.user = us;
    out.nx = nx;
    out.global = global;
    out.pageSize = pageSize;
    out.fault = TranslateFault.NONE;
    out.errorCode = ec;
    return true;
  }
}
