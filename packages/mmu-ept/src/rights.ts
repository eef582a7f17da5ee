/**
 * Access rights of a completed translation (SDM Vol. 3A 4.6) and the #PF error code (4.7). Shared by the
 * walker and by TLB hits, which re-check cached rights against the current CR0/CR4/RFLAGS/PKRU.
 */
import { Access, CR0, CR4, EFER, PfErr } from "./types.js";

/** Paging modes (SDM Vol. 3A 4.1.1, Table 4-1). */
export const PagingMode = { NONE: 0, BIT32: 1, PAE: 2, LEVEL4: 3, LEVEL5: 4 } as const;
export type PagingMode = (typeof PagingMode)[keyof typeof PagingMode];

/** The paging mode selected by CR0.PG, CR4.PAE, IA32_EFER.LMA (LME once paging is on) and CR4.LA57. */
export function pagingMode(cr0: number, cr4: number, efer: number): PagingMode {
  if ((cr0 & CR0.PG) === 0) return PagingMode.NONE;
  if ((cr4 & CR4.PAE) === 0) return PagingMode.BIT32;
  if ((efer & EFER.LMA) === 0) return PagingMode.PAE;
  return (cr4 & CR4.LA57) !== 0 ? PagingMode.LEVEL5 : PagingMode.LEVEL4;
}

/**
 * The error-code bits every #PF of this access carries besides P, RSVD and PK: W/R, U/S and I/D
 * (SDM 4.7: I/D is set for fetches only when CR4.SMEP = 1, or CR4.PAE = 1 and IA32_EFER.NXE = 1).
 */
export function baseErrorCode(cr4: number, efer: number, access: number): number {
  let ec = 0;
  if (access & Access.WRITE) ec |= PfErr.W;
  if (access & Access.USER && (access & Access.IMPLICIT_SUPERVISOR) === 0) ec |= PfErr.U;
  if (access & Access.FETCH && (cr4 & CR4.SMEP || (cr4 & CR4.PAE && efer & EFER.NXE))) ec |= PfErr.I;
  return ec;
}

/**
 * Checks an access against the rights of a translation: `rw`, `us` and `nx` are R/W, U/S and XD combined
 * over all levels, `pkey` the leaf's protection key (-1 when keys do not apply: 32-bit and PAE paging).
 * Returns 0 when the access is allowed, otherwise the full #PF error code (P set).
 */
export function rightsFault(
  cr0: number,
  cr4: number,
  efer: number,
  pkru: number,
  pkrs: number,
  access: number,
  rw: boolean,
  us: boolean,
  nx: boolean,
  pkey: number,
): number {
  const write = (access & Access.WRITE) !== 0;
  const fetch = (access & Access.FETCH) !== 0;
  const implicit = (access & Access.IMPLICIT_SUPERVISOR) !== 0;
  // SDM 4.6: an access is user-mode at CPL 3 unless it is an implicit supervisor-mode access.
  const user = (access & Access.USER) !== 0 && !implicit;
  const wp = (cr0 & CR0.WP) !== 0;
  let bad = false;
  if (user) {
    // SDM 4.6.1: user-mode accesses need U/S=1 everywhere; writes need R/W=1 everywhere.
    if (!us || (write && !rw)) bad = true;
  } else if (write && !rw && wp) {
    // Supervisor writes ignore R/W when CR0.WP = 0.
    bad = true;
  }
  if (fetch) {
    // XD=1 with IA32_EFER.NXE=1 forbids fetches in every mode; SMEP forbids supervisor fetches
    // from user-mode addresses.
    if (nx && efer & EFER.NXE) bad = true;
    if (!user && us && cr4 & CR4.SMEP) bad = true;
  } else if (!user && us && cr4 & CR4.SMAP) {
    // SMAP: supervisor data accesses to user-mode addresses fault unless RFLAGS.AC=1 on an explicit
    // access (implicit supervisor accesses, including every one at CPL 3, ignore AC).
    if ((access & Access.AC) === 0 || implicit) bad = true;
  }
  let ec = 0;
  if (pkey >= 0 && !fetch) {
    // SDM 4.6.2: PKRU guards data accesses to user-mode addresses (CR4.PKE), IA32_PKRS supervisor-mode
    // ones (CR4.PKS). AD forbids every data access; WD forbids user writes, and supervisor writes
    // when CR0.WP = 1. SDM 4.7 sets PK whenever these conditions hold, whatever the other rights say.
    const reg = us ? (cr4 & CR4.PKE ? pkru : 0) : cr4 & CR4.PKS ? pkrs : 0;
    const bits = (reg >>> (pkey * 2)) & 3;
    if (bits & 1 || (bits & 2 && write && (user || wp))) {
      bad = true;
      ec |= PfErr.PK;
    }
  }
  if (!bad) return 0;
  return ec | PfErr.P | baseErrorCode(cr4, efer, access);
}
