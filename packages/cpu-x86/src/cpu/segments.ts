/**
 * Segmentation (SDM Vol. 3 ch. 3 and 5): effective -> linear address with limit and type checks in the
 * legacy modes, descriptor-table reads, segment-register loads with their privilege checks in every
 * mode, and stack pushes/pops.
 */
import { MemCpu, Vec } from "./memory.js";
import { AR, CR0, F, Seg } from "./state.js";

/** Per-segment access summary kept beside the hidden part (recomputed on every load). */
export const SA_READ = 1;
export const SA_WRITE = 2;
const SA_DOWN = 4;
export const SA_BIG = 8;

export class SegCpu extends MemCpu {
  /** Result of `lin`: the linear address. */
  la = 0;
  laHi = 0;
  /** Segment access summary (`SA_*`) per segment register. */
  readonly segAcc = new Int32Array(8);
  /** Raw descriptor of the last `readDescriptor` (low, high dwords; 64-bit system descriptors: +8). */
  descLo = 0;
  descHi = 0;
  descHi2 = 0;
  /** Linear address of the descriptor last read (for setting the accessed / busy bit). */
  descAddr = 0;
  descAddrHi = 0;

  /** Recomputes the cached access summary of segment `s` after its hidden part changed. */
  segCache(s: number): void {
    const a = this.segAttr[s]!;
    let v = 0;
    if ((a & AR.UNUSABLE) === 0 && (a & AR.P) !== 0) {
      if (a & AR.CODE) {
        if (a & AR.RW) v |= SA_READ;
      } else {
        v |= SA_READ;
        if (a & AR.RW) v |= SA_WRITE;
        if (a & AR.CE) v |= SA_DOWN;
      }
    }
    if (a & AR.DB) v |= SA_BIG;
    // Real mode ignores the access rights for data access (SDM 20.1.1): treat as read/write data.
    if ((this.cr0 & CR0.PE) === 0 || this.flags & F.VM) v = (v & (SA_DOWN | SA_BIG)) | SA_READ | SA_WRITE;
    this.segAcc[s] = v;
  }

  /**
   * Loads CS and SS with the flat hidden parts (base 0, limit 4 GiB) that SYSCALL, SYSRET, SYSENTER
   * and SYSEXIT give them without reading the GDT (SDM Vol. 2), and switches to privilege `cpl`:
   * `segCache` and `updateModeKeepCpl` for such a load, written out (it runs twice per system call).
   * Protected mode only (the callers check it): CS is readable code, SS writable data. Generated
   * SYSCALL/SYSRETQ write it out (jit-gen.ts `genFlatCsSs`).
   */
  loadFlatCsSs(csSel: number, csAttr: number, ssSel: number, ssAttr: number, cpl: number): void {
    const sel = this.segSel;
    const baseLo = this.segBaseLo;
    const baseHi = this.segBaseHi;
    const limit = this.segLimit;
    const attr = this.segAttr;
    const acc = this.segAcc;
    // Plain numbers (Seg.CS = 1, Seg.SS = 2, AR.DB = 0x4000, AR.L = 0x2000, EFER.LMA = 0x400, the SA_*
    // summaries): V8 does not fold the module's constant objects here, and the named form measured
    // ~10% slower on the SYSCALL loop (56-59 against 63-65 warm MIPS). cpu-jit-syscall.test.ts checks
    // the result against `segCache` and `updateMode`.
    sel[1] = csSel;
    baseLo[1] = 0;
    baseHi[1] = 0;
    limit[1] = -1;
    attr[1] = csAttr;
    acc[1] = csAttr & 0x4000 ? 9 : 1; // SA_READ | SA_BIG, SA_READ
    sel[2] = ssSel;
    baseLo[2] = 0;
    baseHi[2] = 0;
    limit[2] = -1;
    attr[2] = ssAttr;
    acc[2] = ssAttr & 0x4000 ? 11 : 3; // SA_READ | SA_WRITE | SA_BIG, SA_READ | SA_WRITE
    const mode = this.efer & 0x400 && csAttr & 0x2000 ? 64 : csAttr & 0x4000 ? 32 : 16;
    this.codeMode = mode;
    this.stackSize = mode === 64 ? 8 : ssAttr & 0x4000 ? 4 : 2;
    this.cpl = cpl;
    this.moveLinkEpoch(mode, 0, -1, cpl);
    this.updateAccessMasks();
  }

  segCacheAll(): void {
    for (let s = 0; s < 8; s++) this.segCache(s);
  }

  /** `lin` in 64-bit mode: only FS and GS bases apply; no limit checks (SDM 3.2.4). */
  lin64(s: number, eaLo: number, eaHi: number): void {
    this.laSeg = s;
    if (s >= Seg.FS) {
      const sum = (eaLo >>> 0) + (this.segBaseLo[s]! >>> 0);
      this.la = sum | 0;
      this.laHi = (eaHi + this.segBaseHi[s]! + (sum > 0xffffffff ? 1 : 0)) | 0;
    } else {
      this.la = eaLo;
      this.laHi = eaHi;
    }
  }

  /**
   * Effective address (eaLo, eaHi) in segment `s` -> linear address in `la`/`laHi`, checking type and
   * limit for an access of `size` bytes (`write` true for stores) in the legacy modes (SDM 5.3, 5.4).
   * Faults: #GP(0), or #SS(0) for SS-relative accesses.
   */
  lin(s: number, eaLo: number, eaHi: number, size: number, write: boolean): void {
    if (this.codeMode === 64) {
      this.lin64(s, eaLo, eaHi);
      return;
    }
    this.laSeg = s;
    const acc = this.segAcc[s]!;
    const off = eaLo >>> 0;
    if ((acc & (write ? SA_WRITE : SA_READ)) === 0) this.raise(s === Seg.SS ? Vec.SS : Vec.GP, 0);
    const lim = this.segLimit[s]! >>> 0;
    const end = off + size - 1;
    if (acc & SA_DOWN) {
      // Expand-down: valid offsets are limit+1 .. 0xffff or 0xffffffff (SDM 5.3).
      const upper = acc & SA_BIG ? 0xffffffff : 0xffff;
      if (off <= lim || end > upper) this.raise(s === Seg.SS ? Vec.SS : Vec.GP, 0);
    } else if (end > lim) {
      this.raise(s === Seg.SS ? Vec.SS : Vec.GP, 0);
    }
    this.la = (this.segBaseLo[s]! + eaLo) | 0;
    this.laHi = 0;
  }

  // ------------------------------------------------------------------ descriptor tables

  /**
   * Reads the descriptor for `sel` into descLo/descHi (and descHi2 when `wide`, for 16-byte system
   * descriptors in long mode). Raises #GP(sel & ~3) (or `vec`) when the selector is outside its table.
   */
  readDescriptor(sel: number, wide = false, vec: number = Vec.GP): void {
    let baseLo: number;
    let baseHi: number;
    let limit: number;
    if (sel & 4) {
      if (this.segAttr[Seg.LDTR]! & AR.UNUSABLE || (this.segSel[Seg.LDTR]! & 0xfffc) === 0) {
        this.raise(vec, sel & 0xfffc);
      }
      baseLo = this.segBaseLo[Seg.LDTR]!;
      baseHi = this.segBaseHi[Seg.LDTR]!;
      limit = this.segLimit[Seg.LDTR]! >>> 0;
    } else {
      baseLo = this.gdtrBaseLo;
      baseHi = this.gdtrBaseHi;
      limit = this.gdtrLimit;
    }
    const off = sel & 0xfff8;
    if (off + (wide ? 15 : 7) > limit) this.raise(vec, sel & 0xfffc);
    const a = (baseLo >>> 0) + off;
    const lo = a | 0;
    const hi = this.efer & 0x400 ? (baseHi + (a > 0xffffffff ? 1 : 0)) | 0 : 0;
    this.beginSupervisor();
    this.descLo = this.rd32(lo, hi);
    this.descHi = this.rd32((lo + 4) | 0, hi);
    this.descHi2 = wide ? this.rd32((lo + 8) | 0, hi) : 0;
    this.endSupervisor();
    this.descAddr = lo;
    this.descAddrHi = hi;
  }

  /** Sets a bit in the high dword of the descriptor last read (accessed = 0x100, TSS busy = 0x200). */
  markDescriptor(bit: number): void {
    if ((this.descHi & bit) !== 0) return;
    this.descHi |= bit;
    this.beginSupervisor();
    this.wr32((this.descAddr + 4) | 0, this.descAddrHi, this.descHi);
    this.endSupervisor();
  }

  /** Loads the hidden part of segment `s` from the descriptor last read. */
  loadFromDescriptor(s: number, sel: number): void {
    const lo = this.descLo;
    const hi = this.descHi;
    let limit = (lo & 0xffff) | (hi & 0xf0000);
    if (hi & 0x800000) limit = (limit << 12) | 0xfff;
    this.segSel[s] = sel & 0xffff;
    this.segBaseLo[s] = (lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000);
    this.segBaseHi[s] = s >= Seg.LDTR && this.efer & 0x400 ? this.descHi2 : 0;
    this.segLimit[s] = limit;
    this.segAttr[s] = ((hi >> 8) & 0xff) | (((hi >> 20) & 0xf) << 12);
    this.segCache(s);
  }

  /** Loads a null selector into a data segment register (usable only as "unusable", SDM 3.4.2). */
  loadNull(s: number, sel: number): void {
    this.segSel[s] = sel & 0xffff;
    this.segBaseLo[s] = 0;
    this.segBaseHi[s] = 0;
    this.segLimit[s] = 0;
    this.segAttr[s] = AR.UNUSABLE;
    this.segCache(s);
  }

  /** Real-mode / virtual-8086 segment load: base = selector * 16 (SDM 20.1.1). */
  loadReal(s: number, sel: number): void {
    sel &= 0xffff;
    this.segSel[s] = sel;
    this.segBaseLo[s] = sel << 4;
    this.segBaseHi[s] = 0;
    if (this.flags & F.VM) {
      this.segLimit[s] = 0xffff;
      this.segAttr[s] =
        AR.P | AR.S | AR.RW | AR.ACCESSED | (3 << AR.DPL_SHIFT) | (s === Seg.CS ? AR.CODE : 0);
    } else if (this.segAttr[s]! & AR.UNUSABLE) {
      this.segAttr[s] = AR.P | AR.S | AR.RW | AR.ACCESSED | (s === Seg.CS ? AR.CODE : 0);
    }
    this.segCache(s);
  }

  /**
   * MOV/POP to a data segment register or SS (SDM Vol. 2 MOV "Operation", Vol. 3 5.5-5.7), in every mode.
   */
  loadSegment(s: number, sel: number): void {
    sel &= 0xffff;
    if ((this.cr0 & CR0.PE) === 0 || this.flags & F.VM) {
      this.loadReal(s, sel);
      if (s === Seg.SS) this.updateMode();
      return;
    }
    const rpl = sel & 3;
    const cpl = this.cpl;
    if ((sel & 0xfffc) === 0) {
      if (s === Seg.SS) {
        // 64-bit mode allows a null SS at CPL < 3 with RPL = CPL (SDM Vol. 2 MOV).
        if (this.codeMode !== 64 || cpl === 3 || rpl !== cpl) this.raise(Vec.GP, 0);
      }
      this.loadNull(s, sel);
      if (s === Seg.SS) {
        this.segAttr[s] = AR.UNUSABLE | (cpl << AR.DPL_SHIFT) | AR.DB;
        this.updateMode();
      }
      return;
    }
    this.readDescriptor(sel);
    const hi = this.descHi;
    const dpl = (hi >> 13) & 3;
    const type = (hi >> 8) & 0xf;
    const isS = (hi & 0x1000) !== 0;
    const present = (hi & 0x8000) !== 0;
    if (s === Seg.SS) {
      // Writable data segment with RPL = DPL = CPL.
      if (rpl !== cpl || dpl !== cpl || !isS || type & 8 || (type & 2) === 0)
        this.raise(Vec.GP, sel & 0xfffc);
      if (!present) this.raise(Vec.SS, sel & 0xfffc);
    } else {
      // Data or readable code; privilege checked unless conforming code.
      if (!isS || (type & 0xa) === 8) this.raise(Vec.GP, sel & 0xfffc);
      if ((type & 0xc) !== 0xc && (rpl > dpl || cpl > dpl)) this.raise(Vec.GP, sel & 0xfffc);
      if (!present) this.raise(Vec.NP, sel & 0xfffc);
    }
    this.markDescriptor(0x100);
    this.loadFromDescriptor(s, sel);
    if (s === Seg.SS) this.updateMode();
  }

  // ------------------------------------------------------------------ stack

  /** Current stack pointer as (lo, hi) in `la`-space helpers: returns RSP low, respecting stack size. */
  private spAfter(delta: number): number {
    return (this.r[8]! + delta) | 0;
  }

  /** Pushes `size` bytes (2, 4 or 8; hi used for 8) on SS:rSP. Memory first, RSP after (fault-safe). */
  push(size: number, lo: number, hi: number): void {
    const ss = this.stackSize;
    let spLo: number;
    let spHi = 0;
    if (ss === 8) {
      const sum = (this.r[8]! >>> 0) - size;
      spLo = sum | 0;
      spHi = (this.r[9]! - (sum < 0 ? 1 : 0)) | 0;
    } else if (ss === 4) {
      spLo = this.spAfter(-size);
    } else {
      spLo = (this.r[8]! - size) & 0xffff;
    }
    this.lin(Seg.SS, spLo, spHi, size, true);
    if (size === 8) this.wr64(this.la, this.laHi, lo, hi);
    else if (size === 4) this.wr32(this.la, this.laHi, lo);
    else this.wr16(this.la, this.laHi, lo);
    this.setSp(spLo, spHi);
  }

  /** Writes rSP honouring the stack size (16-bit stacks change only SP). */
  setSp(lo: number, hi: number): void {
    const ss = this.stackSize;
    if (ss === 8) {
      this.r[8] = lo;
      this.r[9] = hi;
    } else if (ss === 4) {
      this.r[8] = lo;
      this.r[9] = 0;
    } else {
      this.r[8] = (this.r[8]! & ~0xffff) | (lo & 0xffff);
    }
  }

  /** Reads `size` bytes at SS:rSP + `offset` without popping; the high half of 8-byte reads goes to hiOut. */
  peek(size: number, offset: number): number {
    const ss = this.stackSize;
    let spLo: number;
    let spHi = 0;
    if (ss === 8) {
      const sum = (this.r[8]! >>> 0) + offset;
      spLo = sum | 0;
      spHi = (this.r[9]! + (sum > 0xffffffff ? 1 : 0)) | 0;
    } else if (ss === 4) {
      spLo = (this.r[8]! + offset) | 0;
    } else {
      spLo = (this.r[8]! + offset) & 0xffff;
    }
    this.lin(Seg.SS, spLo, spHi, size, false);
    if (size === 8) return this.rd64(this.la, this.laHi);
    if (size === 4) return this.rd32(this.la, this.laHi);
    return this.rd16(this.la, this.laHi);
  }

  /** Adds `n` to rSP in the stack's width. */
  addSp(n: number): void {
    const ss = this.stackSize;
    if (ss === 8) {
      const sum = (this.r[8]! >>> 0) + n;
      this.r[8] = sum | 0;
      if (sum > 0xffffffff) this.r[9] = (this.r[9]! + 1) | 0;
      else if (sum < 0) this.r[9] = (this.r[9]! - 1) | 0;
    } else if (ss === 4) {
      this.r[8] = (this.r[8]! + n) | 0;
      this.r[9] = 0;
    } else {
      this.r[8] = (this.r[8]! & ~0xffff) | ((this.r[8]! + n) & 0xffff);
    }
  }

  /** Pops `size` bytes; returns the low half (8-byte pops leave the high half in hiOut). */
  pop(size: number): number {
    const v = this.peek(size, 0);
    this.addSp(size);
    return v;
  }
}
