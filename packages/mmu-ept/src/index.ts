/**
 * @tskvm/mmu-ept: x86 guest paging in every mode, EPT, the two-dimensional walk and a TLB tagged by
 * VPID, PCID and EPT root. Imports no other tskvm package.
 */
export {
  checkEptp,
  DEFAULT_EPT_VPID_CAP,
  EptAccess,
  type EptCaps,
  EptExit,
  type EptOptions,
  type EptpError,
  EptQual,
  EptWalker,
  eptCapsFromMsr,
  eptpRoot,
  MemType,
  physHiMask,
} from "./ept.js";
export {
  InveptType,
  InvpcidType,
  InvvpidType,
  Mmu,
  type MmuOptions,
  type MmuRestoreError,
  type MmuState,
} from "./mmu.js";
export { FlatPhysMem, type PhysMem, type RamPages, RamPagesPhysMem, type RamWindow } from "./phys.js";
export { baseErrorCode, PagingMode, pagingMode, rightsFault } from "./rights.js";
export { ANY, Tlb, TlbInfo } from "./tlb.js";
export {
  Access,
  asGpa,
  asHpa,
  CR0,
  CR4,
  EFER,
  type Gpa,
  type Hpa,
  newTranslateResult,
  type PagingRegs,
  PfErr,
  Pte,
  TranslateFault,
  type TranslateResult,
} from "./types.js";
export { GuestWalker, type PdpteError, type WalkerOptions } from "./walker.js";

/** The npm name of this package. */
export const PACKAGE_NAME = "@tskvm/mmu-ept";
