/**
 * The shapes this package declares: address brands, the access bits a translation is asked for, the
 * result object a translation writes into, and the paging registers it reads. They match, field for
 * field, what `@tskvm/cpu-x86` declares in `src/cpu/interfaces.ts`, so an `Mmu` can be handed to the
 * CPU as its `Translator` without either package importing the other (ARCHITECTURE.md).
 */

/** A guest-physical address (< 2^52). */
export type Gpa = number & { readonly __brand: "Gpa" };
/** A host-physical address: what the EPT maps a `Gpa` to (< 2^52). */
export type Hpa = number & { readonly __brand: "Hpa" };

/** Brands a number as a guest-physical address. */
export const asGpa = (n: number): Gpa => n as Gpa;
/** Brands a number as a host-physical address. */
export const asHpa = (n: number): Hpa => n as Hpa;

/** Bits of the `access` argument of `translate`. */
export const Access = {
  /** A data write (otherwise a read or a fetch). */
  WRITE: 1 << 0,
  /** The access is made at CPL 3: a user-mode access (SDM Vol. 3A 4.6) unless IMPLICIT_SUPERVISOR. */
  USER: 1 << 1,
  /** An instruction fetch. */
  FETCH: 1 << 2,
  /** An implicit supervisor-mode access (GDT, LDT, IDT, TSS) even at CPL 3 (SDM Vol. 3A 4.6). */
  IMPLICIT_SUPERVISOR: 1 << 3,
  /** RFLAGS.AC at the time of the access (SMAP, SDM Vol. 3A 4.6.1). */
  AC: 1 << 4,
} as const;

/** #PF error-code bits (SDM Vol. 3A 4.7, Figure 4-12). */
export const PfErr = {
  /** 0: not-present page; 1: protection violation (or reserved bit). */
  P: 1 << 0,
  W: 1 << 1,
  U: 1 << 2,
  RSVD: 1 << 3,
  /** Instruction fetch (only when SMEP=1, or PAE=1 and NXE=1). */
  I: 1 << 4,
  /** Protection-key violation. */
  PK: 1 << 5,
} as const;

/** `TranslateResult.fault` values. */
export const TranslateFault = {
  NONE: 0,
  /** #PF: error code in `errorCode`; CR2 is the linear address that was translated. */
  PAGE_FAULT: 14,
  /** An EPT violation or misconfiguration: a VM exit; details in `Mmu.exit`. */
  EXIT: -1,
} as const;

/** One translation's result: a reusable out-object (no allocation per walk). */
export interface TranslateResult {
  /**
   * Physical address of the accessed byte, in the address space the memory reader sees: guest-physical
   * without EPT, host-physical with EPT.
   */
  paddr: number;
  /** R/W, U/S and XD combined over every level of the walk (SDM Vol. 3A 4.6). */
  writable: boolean;
  user: boolean;
  nx: boolean;
  /** The leaf's G bit with CR4.PGE=1 (SDM Vol. 3A 4.10.2.4). */
  global: boolean;
  /** Bytes mapped by the leaf: 4 KiB, 2 MiB, 4 MiB or 1 GiB (the whole address space with paging off). */
  pageSize: number;
  /** A `TranslateFault` value. */
  fault: number;
  /** The #PF error code when `fault` is PAGE_FAULT. */
  errorCode: number;
}

/** Returns a fresh result object for `translate`. */
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

/**
 * The paging registers a translation reads, 64-bit ones as 32-bit halves (a CPU state satisfies it).
 * `pkru` / `pkrs` are read only when CR4.PKE / CR4.PKS are set; absent means 0.
 */
export interface PagingRegs {
  readonly cr0: number;
  readonly cr3Lo: number;
  readonly cr3Hi: number;
  readonly cr4: number;
  /** IA32_EFER low half (LME bit 8, LMA bit 10, NXE bit 11). */
  readonly efer: number;
  readonly pkru?: number;
  readonly pkrs?: number;
}

/** CR0 bits used by paging (SDM Vol. 3A 2.5). */
export const CR0 = { PE: 1 << 0, WP: 1 << 16, NW: 1 << 29, CD: 1 << 30, PG: 1 << 31 } as const;
/** CR4 bits used by paging (SDM Vol. 3A 2.5). */
export const CR4 = {
  PSE: 1 << 4,
  PAE: 1 << 5,
  PGE: 1 << 7,
  LA57: 1 << 12,
  PCIDE: 1 << 17,
  SMEP: 1 << 20,
  SMAP: 1 << 21,
  PKE: 1 << 22,
  PKS: 1 << 24,
} as const;
/** IA32_EFER bits (SDM Vol. 3A 2.2.1). */
export const EFER = { LME: 1 << 8, LMA: 1 << 10, NXE: 1 << 11 } as const;

/** Paging-structure entry bits (SDM Vol. 3A 4.3-4.5, tables 4-4 .. 4-20). */
export const Pte = {
  P: 1 << 0,
  RW: 1 << 1,
  US: 1 << 2,
  PWT: 1 << 3,
  PCD: 1 << 4,
  A: 1 << 5,
  D: 1 << 6,
  PS: 1 << 7,
  G: 1 << 8,
} as const;
