/**
 * EPT: guest-physical -> host-physical translation (SDM Vol. 3C 29.3), the EPTP validity check of VM
 * entry (SDM Vol. 3C 27.2.1.1), EPT violations and misconfigurations (29.3.3) and EPT A/D flags (29.3.5).
 *
 * The walker keeps its results in fields (`hpa`, `exitReason`, `qual`, ...) so a walk allocates nothing.
 */
import type { PhysMem } from "./phys.js";
import type { Gpa, Hpa } from "./types.js";

/** Bits 2:0 of an EPT-violation exit qualification: the kind of access (SDM Vol. 3C Table 28-7). */
export const EptAccess = { READ: 1, WRITE: 2, FETCH: 4 } as const;

/** Basic exit reasons this walker produces (SDM Vol. 3C Appendix C). */
export const EptExit = { NONE: 0, VIOLATION: 48, MISCONFIG: 49 } as const;

/** EPT-violation exit-qualification bits (SDM Vol. 3C 28.2.1, Table 28-7). */
export const EptQual = {
  READ: 1 << 0,
  WRITE: 1 << 1,
  FETCH: 1 << 2,
  /** The guest-physical address was readable: AND of bit 0 over the entries used. */
  READABLE: 1 << 3,
  WRITABLE: 1 << 4,
  /** AND of bit 2 (supervisor-mode executable with mode-based execute control). */
  EXECUTABLE: 1 << 5,
  /** AND of bit 10, with mode-based execute control only. */
  USER_EXECUTABLE: 1 << 6,
  /** The guest linear-address field is valid. */
  LINEAR_VALID: 1 << 7,
  /** With bit 7: 1 = the final access of a linear-address translation, 0 = a guest paging-structure access. */
  FINAL_ACCESS: 1 << 8,
  /** Advanced exit information (bits 9-11, when bits 7 and 8 are set): the linear address was user-mode. */
  LINEAR_USER: 1 << 9,
  /** ... was writable. */
  LINEAR_WRITABLE: 1 << 10,
  /** ... was execute-disabled. */
  LINEAR_NX: 1 << 11,
} as const;

/** EPT memory types (SDM Vol. 3C 29.3.7; bits 5:3 of a leaf, bits 2:0 of EPTP). */
export const MemType = { UC: 0, WC: 1, WT: 4, WP: 5, WB: 6 } as const;

/** What the processor supports for EPT: IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D A.10) as named fields. */
export interface EptCaps {
  /** Bit 0: execute-only translations. */
  executeOnly: boolean;
  /** Bit 6: 4-level EPT walks. */
  walk4: boolean;
  /** Bit 7: 5-level EPT walks. */
  walk5: boolean;
  /** Bit 8: EPTP memory type UC. */
  memTypeUc: boolean;
  /** Bit 14: EPTP memory type WB. */
  memTypeWb: boolean;
  /** Bit 16: 2 MiB pages. */
  pages2M: boolean;
  /** Bit 17: 1 GiB pages. */
  pages1G: boolean;
  /** Bit 21: accessed and dirty flags. */
  accessDirty: boolean;
  /** Bit 22: advanced VM-exit information for EPT violations (qualification bits 9-11). */
  advancedExitInfo: boolean;
  /** Bit 23: supervisor shadow-stack control (EPTP bit 7). */
  supervisorShadowStack: boolean;
}

/** The IA32_VMX_EPT_VPID_CAP value this package models by default, as (lo, hi) halves. */
export const DEFAULT_EPT_VPID_CAP = {
  // Bits 0, 6, 7, 8, 14, 16, 17, 20 (INVEPT), 21, 22, 25 and 26 (INVEPT single / all context).
  lo: 0x067341c1,
  // Bit 32 (INVVPID) and bits 40-43 (INVVPID individual address, single, all, single keeping globals).
  hi: 0x00000f01,
} as const;

/** Decodes IA32_VMX_EPT_VPID_CAP (given as halves) into `EptCaps`. */
export function eptCapsFromMsr(lo: number, _hi = 0): EptCaps {
  const b = (n: number): boolean => ((lo >>> n) & 1) === 1;
  return {
    executeOnly: b(0),
    walk4: b(6),
    walk5: b(7),
    memTypeUc: b(8),
    memTypeWb: b(14),
    pages2M: b(16),
    pages1G: b(17),
    accessDirty: b(21),
    advancedExitInfo: b(22),
    supervisorShadowStack: b(23),
  };
}

/** Why an EPTP fails the VM-entry check (SDM Vol. 3C 27.2.1.1, "enable EPT"). */
export type EptpError =
  | "EptpMemoryType"
  | "EptpWalkLength"
  | "EptpAccessDirty"
  | "EptpShadowStack"
  | "EptpReservedBits";

/**
 * The EPTP checks VM entry makes (SDM Vol. 3C 27.2.1.1): memory type UC or WB as supported, walk length
 * 4 or 5 as supported, bit 6 only with A/D support, bit 7 only with supervisor shadow-stack support,
 * bits 11:8 and 63:MAXPHYADDR zero. Returns null when the EPTP is valid.
 *
 * @example
 * checkEptp(0x1000 | 6 | (3 << 3), 0, eptCapsFromMsr(DEFAULT_EPT_VPID_CAP.lo), 46); // null
 */
export function checkEptp(lo: number, hi: number, caps: EptCaps, maxPhyAddr: number): EptpError | null {
  const mt = lo & 7;
  if (!((mt === MemType.UC && caps.memTypeUc) || (mt === MemType.WB && caps.memTypeWb))) {
    return "EptpMemoryType";
  }
  const walk = (lo >>> 3) & 7;
  if (!((walk === 3 && caps.walk4) || (walk === 4 && caps.walk5))) return "EptpWalkLength";
  if (lo & 0x40 && !caps.accessDirty) return "EptpAccessDirty";
  if (lo & 0x80 && !caps.supervisorShadowStack) return "EptpShadowStack";
  if (lo & 0xf00 || (hi & ~physHiMask(maxPhyAddr)) !== 0) return "EptpReservedBits";
  return null;
}

/** Bits of the high half of a 64-bit entry that hold physical-address bits below MAXPHYADDR. */
export function physHiMask(maxPhyAddr: number): number {
  return maxPhyAddr >= 64 ? -1 : ((1 << (maxPhyAddr - 32)) - 1) | 0;
}

const TWO32 = 4294967296;

/** The EP4TA of an EPTP: bits MAXPHYADDR-1:12, which tag combined mappings (SDM Vol. 3C 29.4.1). */
export function eptpRoot(lo: number, hi: number, maxPhyAddr: number): number {
  return (hi & physHiMask(maxPhyAddr) & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
}

/** A/D updates that lose a race restart the walk at most this many times, then give up racing. */
const MAX_RESTARTS = 8;

/** Options of an `EptWalker`. */
export interface EptOptions {
  /** Physical-address width; reserved bits are 51:MAXPHYADDR (default 46). */
  maxPhyAddr?: number;
  caps?: EptCaps;
  /** The "mode-based execute control for EPT" secondary control: bit 10 is user-execute. */
  modeBasedExecute?: boolean;
}

/**
 * Walks EPT paging structures. Set the root with `setEptp`, then `translate(gpa, access, userLinear)`.
 *
 * @example
 * const ept = new EptWalker(mem);
 * ept.setEptp(0x10000 | 6 | (3 << 3), 0);
 * if (ept.translate(asGpa(0x5000), EptAccess.READ, false)) use(ept.hpa);
 * else exit(ept.exitReason, ept.qual);
 */
export class EptWalker {
  readonly maxPhyAddr: number;
  readonly caps: EptCaps;
  modeBasedExecute: boolean;
  /** The current EPTP as halves. */
  eptpLo = 0;
  eptpHi = 0;
  private rootBase = 0;
  private levels = 4;
  private ad = false;
  private readonly rsvdHi: number;

  /** Result: the host-physical address (success). */
  hpa = 0 as Hpa;
  /** Result: bytes mapped by the EPT leaf. */
  pageSize = 4096;
  /** Result: the leaf's memory type (bits 5:3) and ignore-PAT bit. */
  memType = 0;
  ipat = false;
  /** Result of a failed walk: `EptExit.VIOLATION` or `EptExit.MISCONFIG`. */
  exitReason = 0;
  /** Result: exit-qualification bits 0-6 of a violation (the caller adds 7-12). */
  qual = 0;
  /** Result: the EPT permission bits (0, 1, 2 and 10) ANDed over the entries used. */
  perms = 0;

  private readonly adAddr = new Float64Array(5);
  private readonly adOld = new Int32Array(5);

  constructor(
    private readonly mem: PhysMem,
    opts: EptOptions = {},
  ) {
    this.maxPhyAddr = opts.maxPhyAddr ?? 46;
    this.caps = opts.caps ?? eptCapsFromMsr(DEFAULT_EPT_VPID_CAP.lo, DEFAULT_EPT_VPID_CAP.hi);
    this.modeBasedExecute = opts.modeBasedExecute ?? false;
    this.rsvdHi = 0xfffff & ~physHiMask(this.maxPhyAddr);
  }

  /** Sets the EPT pointer (bits 5:3 walk length - 1, bit 6 A/D enable, 51:12 the root). */
  setEptp(lo: number, hi: number): void {
    this.eptpLo = lo | 0;
    this.eptpHi = hi | 0;
    this.rootBase = eptpRoot(lo, hi, this.maxPhyAddr);
    this.levels = ((lo >>> 3) & 7) === 4 ? 5 : 4;
    this.ad = (lo & 0x40) !== 0;
  }

  /** Whether EPTP bit 6 enables accessed and dirty flags (guest paging-structure accesses count as writes). */
  get accessDirty(): boolean {
    return this.ad;
  }

  /** The EP4TA: bits 51:12 of the EPTP, which tags combined and guest-physical mappings (SDM 29.4.1). */
  get ep4ta(): number {
    return this.rootBase;
  }

  /**
   * Translates `gpa` for an access of kind `access` (`EptAccess` bits; a guest paging-structure access
   * with A/D enabled is passed as READ | WRITE). `userLinear` says the linear address was user-mode
   * (used by mode-based execute control). Returns true with `hpa` set, or false with `exitReason`,
   * `qual` set. Never throws; the walk ends after at most five levels.
   */
  translate(gpa: Gpa | number, access: number, userLinear: boolean): boolean {
    const gHi = Math.floor(gpa / TWO32);
    const gLo = (gpa - gHi * TWO32) >>> 0;
    const mem = this.mem;
    const mbe = this.modeBasedExecute;
    // SDM 29.3.2: an entry is present when any of bits 2:0 (and bit 10 with mode-based execute) is set.
    const presentMask = mbe ? 0x407 : 7;
    for (let restart = 0; ; restart++) {
      let table = this.rootBase;
      let level = this.levels;
      let perms = presentMask;
      let n = 0;
      let leafLo = 0;
      let size = 4096;
      for (;;) {
        const idx =
          level === 5
            ? (gHi >>> 16) & 0x1ff
            : level === 4
              ? (gHi >>> 7) & 0x1ff
              : level === 3
                ? ((gLo >>> 30) | (gHi << 2)) & 0x1ff
                : level === 2
                  ? (gLo >>> 21) & 0x1ff
                  : (gLo >>> 12) & 0x1ff;
        const ea = table + idx * 8;
        const lo = mem.read32(ea);
        const hi = mem.read32(ea + 4);
        if ((lo & presentMask) === 0) {
          // SDM 29.3.3.2: a not-present entry is a violation; the AND of permissions includes it (0).
          return this.violation(access, 0);
        }
        // SDM 29.3.3.1: misconfigurations, checked on every present entry as the walk reaches it.
        if ((lo & 3) === 2) return this.misconfig();
        if (!this.caps.executeOnly && (lo & 1) === 0 && (lo & (mbe ? 0x404 : 4)) !== 0)
          return this.misconfig();
        if ((hi & this.rsvdHi) !== 0) return this.misconfig();
        let leaf = false;
        if (level >= 4) {
          if ((lo & 0xf8) !== 0) return this.misconfig(); // bits 7:3 reserved in PML5E / PML4E
        } else if (level === 1) {
          leaf = true;
        } else if ((lo & 0x80) !== 0) {
          if (level === 3 ? !this.caps.pages1G : !this.caps.pages2M) return this.misconfig();
          // Bits 29:12 (1 GiB) or 20:12 (2 MiB) of a large-page entry are reserved.
          if ((lo & (level === 3 ? 0x3ffff000 : 0x1ff000)) !== 0) return this.misconfig();
          leaf = true;
        } else if ((lo & 0x78) !== 0) {
          return this.misconfig(); // bits 6:3 reserved in a non-leaf PDPTE / PDE
        }
        if (leaf) {
          const mt = (lo >>> 3) & 7;
          // Memory types 2, 3 and 7 are reserved in the last entry (SDM 29.3.3.1).
          if (mt === 2 || mt === 3 || mt === 7) return this.misconfig();
        }
        perms &= lo;
        this.adAddr[n] = ea;
        this.adOld[n] = lo;
        n++;
        const base = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
        if (leaf) {
          leafLo = lo;
          size = level === 3 ? 0x40000000 : level === 2 ? 0x200000 : 4096;
          const off = size === 4096 ? gLo & 0xfff : (gLo & (size - 1)) >>> 0;
          this.hpa = (base - (base % size) + off) as Hpa;
          break;
        }
        table = base;
        level--;
      }
      // SDM 29.3.3.2: the access must be allowed by every entry used.
      let ok = true;
      if (access & EptAccess.READ && (perms & 1) === 0) ok = false;
      if (access & EptAccess.WRITE && (perms & 2) === 0) ok = false;
      if (access & EptAccess.FETCH && (perms & (mbe && userLinear ? 0x400 : 4)) === 0) ok = false;
      if (!ok) return this.violation(access, perms);
      // SDM 29.3.5: A on every entry used, D on the leaf for a write.
      if (this.ad && !this.setAd(n, (access & EptAccess.WRITE) !== 0) && restart < MAX_RESTARTS) continue;
      this.perms = perms;
      this.pageSize = size;
      this.memType = (leafLo >>> 3) & 7;
      this.ipat = (leafLo & 0x40) !== 0;
      this.exitReason = EptExit.NONE;
      this.qual = 0;
      return true;
    }
  }

  /** Sets A (bit 8) on the entries walked and D (bit 9) on the leaf; false if an entry changed meanwhile. */
  private setAd(n: number, write: boolean): boolean {
    const mem = this.mem;
    for (let k = 0; k < n; k++) {
      const old = this.adOld[k]!;
      const nv = old | 0x100 | (write && k === n - 1 ? 0x200 : 0);
      if (nv === old) continue;
      const pa = this.adAddr[k]!;
      if (mem.cmpxchg32) {
        if (mem.cmpxchg32(pa, old, nv) !== old) return false;
      } else {
        mem.write32(pa, nv);
      }
    }
    return true;
  }

  private violation(access: number, perms: number): false {
    this.exitReason = EptExit.VIOLATION;
    this.perms = perms;
    let q = access & 7;
    q |= (perms & 7) << 3;
    if (this.modeBasedExecute) q |= ((perms >>> 10) & 1) << 6;
    this.qual = q;
    return false;
  }

  private misconfig(): false {
    this.exitReason = EptExit.MISCONFIG;
    this.qual = 0;
    this.perms = 0;
    return false;
  }
}
