/**
 * Memory images of the x87/SSE state: FNSTENV/FLDENV and FNSAVE/FRSTOR (SDM Vol. 1 §8.1.10,
 * Figures 8-9..8-12), FXSAVE/FXRSTOR (Vol. 2 FXSAVE, Tables 10-2 and 10-3), and the legacy region +
 * header of XSAVE/XSAVEOPT/XSAVEC/XSAVES/XRSTOR/XRSTORS for the x87 (bit 0), SSE (bit 1) and PKRU
 * (bit 9) components, standard and compacted forms (Vol. 1 §13.4-13.12; the legacy region is the same in
 * both, PKRU moves from its CPUID offset to right after the header).
 * The executor reads/writes the guest bytes; these functions only fill or parse a Uint8Array.
 */
import { Mxcsr, type SseState } from "../simd/state.js";
import { Cw, Tag, X87 } from "./x87.js";

/** Outcome of an image load: the executor raises #GP(0) for anything but Ok. */
export const ImageStatus = {
  Ok: 0,
  /** A reserved MXCSR bit is set (FXRSTOR, XRSTOR). */
  BadMxcsr: 1,
  /**
   * XRSTOR header: XSTATE_BV not a subset of XCR0 (standard) or of XCOMP_BV (compacted), XCOMP_BV beyond
   * XCR0, the compacted form without XSAVEC support, or reserved header bytes set.
   */
  BadHeader: 2,
} as const;
export type ImageStatus = (typeof ImageStatus)[keyof typeof ImageStatus];

function w16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}
function w32(b: Uint8Array, o: number, v: number): void {
  w16(b, o, v & 0xffff);
  w16(b, o + 2, v >>> 16);
}
function r16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function r32(b: Uint8Array, o: number): number {
  return (r16(b, o) | (r16(b, o + 2) << 16)) >>> 0;
}

/** The full tag word as FSTENV reports it: recomputed from register contents (SDM Vol. 1 §8.1.7). */
export function fullTagWord(x: X87): number {
  let tw = 0;
  for (let p = 0; p < 8; p++) {
    const t =
      x.tagOf(p) === Tag.Empty ? Tag.Empty : X87.classify(x.se[p]!, x.mant[2 * p + 1]!, x.mant[2 * p]!);
    tw |= t << (2 * p);
  }
  return tw;
}

/** Abridged tag byte of FXSAVE: bit p = 1 when physical register p is not empty. */
export function abridgedTag(x: X87): number {
  let t = 0;
  for (let p = 0; p < 8; p++) if (x.tagOf(p) !== Tag.Empty) t |= 1 << p;
  return t;
}

/**
 * FNSTENV: write the environment (14 bytes for a 16-bit operand size, else 28) in the
 * protected-mode (pm=true) or real/V86-mode layout, then mask all exceptions (SDM Vol. 2 FSTENV).
 */
export function fstenv(x: X87, out: Uint8Array, off: number, opSize32: boolean, pm: boolean): void {
  writeEnv(x, out, off, opSize32, pm);
  x.cw |= 0x3f;
}

function writeEnv(x: X87, out: Uint8Array, off: number, opSize32: boolean, pm: boolean): void {
  const tw = fullTagWord(x);
  if (opSize32) {
    out.fill(0, off, off + 28);
    w16(out, off, x.cw);
    w16(out, off + 2, 0xffff);
    w16(out, off + 4, x.getSw());
    w16(out, off + 6, 0xffff);
    w16(out, off + 8, tw);
    w16(out, off + 10, 0xffff);
    if (pm) {
      w32(out, off + 12, x.fip);
      w16(out, off + 16, x.fcs);
      w16(out, off + 18, x.fop);
      w32(out, off + 20, x.fdp);
      w16(out, off + 24, x.fds);
      w16(out, off + 26, 0xffff);
    } else {
      // Real mode: linear 32-bit pointers split 16 / 16 (Figure 8-10).
      w16(out, off + 12, x.fip & 0xffff);
      w16(out, off + 14, 0xffff);
      w32(out, off + 16, (((x.fip >>> 16) & 0xffff) << 12) | x.fop);
      w16(out, off + 20, x.fdp & 0xffff);
      w16(out, off + 22, 0xffff);
      w32(out, off + 24, ((x.fdp >>> 16) & 0xffff) << 12);
    }
  } else {
    w16(out, off, x.cw);
    w16(out, off + 2, x.getSw());
    w16(out, off + 4, tw);
    if (pm) {
      w16(out, off + 6, x.fip);
      w16(out, off + 8, x.fcs);
      w16(out, off + 10, x.fdp);
      w16(out, off + 12, x.fds);
    } else {
      w16(out, off + 6, x.fip);
      w16(out, off + 8, (((x.fip >>> 16) & 0xf) << 12) | (x.fop & 0x7ff));
      w16(out, off + 10, x.fdp);
      w16(out, off + 12, ((x.fdp >>> 16) & 0xf) << 12);
    }
  }
}

/** FLDENV: load the environment; returns its size in bytes. Tags: empty or recomputed. */
export function fldenv(x: X87, src: Uint8Array, off: number, opSize32: boolean, pm: boolean): number {
  let tw: number;
  if (opSize32) {
    x.setCw(r16(src, off));
    x.setSw(r16(src, off + 4));
    tw = r16(src, off + 8);
    if (pm) {
      x.fip = r32(src, off + 12);
      x.fcs = r16(src, off + 16);
      x.fop = r16(src, off + 18) & 0x7ff;
      x.fdp = r32(src, off + 20);
      x.fds = r16(src, off + 24);
    } else {
      const d = r32(src, off + 16);
      x.fip = (r16(src, off + 12) | (((d >>> 12) & 0xffff) << 16)) >>> 0;
      x.fop = d & 0x7ff;
      x.fdp = (r16(src, off + 20) | (((r32(src, off + 24) >>> 12) & 0xffff) << 16)) >>> 0;
    }
  } else {
    x.setCw(r16(src, off));
    x.setSw(r16(src, off + 2));
    tw = r16(src, off + 4);
    x.fip = r16(src, off + 6);
    if (pm) {
      x.fcs = r16(src, off + 8);
      x.fdp = r16(src, off + 10);
      x.fds = r16(src, off + 12);
    } else {
      const d = r16(src, off + 8);
      x.fip |= (d >>> 12) << 16;
      x.fop = d & 0x7ff;
      x.fdp = r16(src, off + 10) | ((r16(src, off + 12) >>> 12) << 16);
    }
  }
  // Only "empty" is taken from the image; other tags follow the contents (SDM Vol. 1 §8.1.7).
  x.tw = 0;
  for (let p = 0; p < 8; p++) {
    const t =
      ((tw >>> (2 * p)) & 3) === Tag.Empty
        ? Tag.Empty
        : X87.classify(x.se[p]!, x.mant[2 * p + 1]!, x.mant[2 * p]!);
    x.setTag(p, t);
  }
  x.setCw(x.cw); // recompute ES/B against the loaded masks
  return opSize32 ? 28 : 14;
}

/** FNSAVE: environment + ST(0)..ST(7) (stack order), then FNINIT. 94 or 108 bytes. */
export function fsave(x: X87, out: Uint8Array, off: number, opSize32: boolean, pm: boolean): void {
  writeEnv(x, out, off, opSize32, pm);
  const base = off + (opSize32 ? 28 : 14);
  for (let i = 0; i < 8; i++) writeReg(x, x.phys(i), out, base + 10 * i);
  x.init();
}

/** FRSTOR. */
export function frstor(x: X87, src: Uint8Array, off: number, opSize32: boolean, pm: boolean): void {
  const base = off + (opSize32 ? 28 : 14);
  // Registers first (in stack order, which needs TOP from the image), then the environment.
  const sw = opSize32 ? r16(src, off + 4) : r16(src, off + 2);
  const top = (sw >>> 11) & 7;
  for (let i = 0; i < 8; i++) readReg(x, (top + i) & 7, src, base + 10 * i);
  fldenv(x, src, off, opSize32, pm);
}

function writeReg(x: X87, p: number, out: Uint8Array, o: number): void {
  w32(out, o, x.mant[2 * p]!);
  w32(out, o + 4, x.mant[2 * p + 1]!);
  w16(out, o + 8, x.se[p]!);
}

function readReg(x: X87, p: number, src: Uint8Array, o: number): void {
  x.mant[2 * p] = r32(src, o);
  x.mant[2 * p + 1] = r32(src, o + 4);
  x.se[p] = r16(src, o + 8);
}

/** Bytes 0..31 of the FXSAVE/XSAVE legacy region minus MXCSR (x87 control/status part). */
function writeFxX87(x: X87, out: Uint8Array, off: number, rexW: boolean): void {
  w16(out, off, x.cw);
  w16(out, off + 2, x.getSw());
  out[off + 4] = abridgedTag(x);
  out[off + 5] = 0;
  w16(out, off + 6, x.fop);
  if (rexW) {
    w32(out, off + 8, x.fip);
    w32(out, off + 12, x.fipHi);
    w32(out, off + 16, x.fdp);
    w32(out, off + 20, x.fdpHi);
  } else {
    w32(out, off + 8, x.fip);
    w16(out, off + 12, x.fcs);
    w16(out, off + 14, 0);
    w32(out, off + 16, x.fdp);
    w16(out, off + 20, x.fds);
    w16(out, off + 22, 0);
  }
  for (let i = 0; i < 8; i++) {
    const o = off + 32 + 16 * i;
    writeReg(x, x.phys(i), out, o);
    out.fill(0, o + 10, o + 16);
  }
}

function readFxX87(x: X87, src: Uint8Array, off: number, rexW: boolean): void {
  x.cw = (r16(src, off) & 0x1f3f) | 0x40; // reserved bit 6 reads as 1, as X87.setCw
  x.setSw(r16(src, off + 2));
  const ftw = src[off + 4]!;
  x.fop = r16(src, off + 6) & 0x7ff;
  x.fip = r32(src, off + 8);
  x.fdp = r32(src, off + 16);
  if (rexW) {
    x.fipHi = r32(src, off + 12);
    x.fdpHi = r32(src, off + 20);
  } else {
    x.fcs = r16(src, off + 12);
    x.fds = r16(src, off + 20);
    x.fipHi = 0;
    x.fdpHi = 0;
  }
  for (let i = 0; i < 8; i++) readReg(x, x.phys(i), src, off + 32 + 16 * i);
  x.tw = 0;
  for (let p = 0; p < 8; p++) {
    x.setTag(p, ftw & (1 << p) ? X87.classify(x.se[p]!, x.mant[2 * p + 1]!, x.mant[2 * p]!) : Tag.Empty);
  }
}

function writeXmm(s: SseState, out: Uint8Array, off: number, nRegs: number): void {
  out.set(s.u8.subarray(0, 16 * nRegs), off + 160);
}

function readXmm(s: SseState, src: Uint8Array, off: number, nRegs: number): void {
  s.u8.set(src.subarray(off + 160, off + 160 + 16 * nRegs), 0);
}

/**
 * FXSAVE (rexW=false) / FXSAVE64 (rexW=true) into 512 bytes at `off`. `nXmm` is 16 in 64-bit
 * mode, 8 otherwise. Bytes 416..511 are left untouched (reserved / available to software).
 * The executor checks alignment (#GP on a non-16-byte-aligned operand).
 */
export function fxsave(x: X87, s: SseState, out: Uint8Array, off: number, rexW: boolean, nXmm: number): void {
  writeFxX87(x, out, off, rexW);
  w32(out, off + 24, s.mxcsr);
  w32(out, off + 28, Mxcsr.MASK);
  writeXmm(s, out, off, nXmm);
}

/** FXRSTOR / FXRSTOR64: BadMxcsr (-> #GP(0)) leaves all state unchanged. */
export function fxrstor(
  x: X87,
  s: SseState,
  src: Uint8Array,
  off: number,
  rexW: boolean,
  nXmm: number,
): ImageStatus {
  const mx = r32(src, off + 24);
  if (mx & ~Mxcsr.MASK) return ImageStatus.BadMxcsr;
  readFxX87(x, src, off, rexW);
  x.setCw(x.cw);
  s.mxcsr = mx;
  readXmm(s, src, off, nXmm);
  return ImageStatus.Ok;
}

/** XSAVE state-component bits handled here (SDM Vol. 1 13.1). */
export const XCOMP_X87 = 1;
export const XCOMP_SSE = 2;
/** PKRU state (SDM Vol. 1 13.5.7): a user state component of 8 bytes (PKRU, then 4 reserved bytes). */
export const XCOMP_PKRU = 1 << 9;
/** The legacy region and the header: the compacted form's first extended component starts here. */
export const XSAVE_LEGACY_BYTES = 576;
/** Size of the PKRU component: CPUID.(0DH,9):EAX. */
export const XSAVE_PKRU_BYTES = 8;

/** The state beyond x87 and SSE that the images carry, and where the standard form puts it. */
export interface XExtState {
  /** PKRU (component 9); XRSTOR writes it back here. */
  pkru: number;
  /** Standard-form offset of component 9: CPUID.(0DH,9):EBX. */
  pkruOffset: number;
}

/**
 * Offset of the PKRU component in an area. The compacted form packs the components of XCOMP_BV in
 * order after the header (SDM Vol. 1 13.4.3); of components 2..8 none exists here, so PKRU is first.
 */
export function pkruSlot(ext: XExtState, compacted: boolean): number {
  return compacted ? XSAVE_LEGACY_BYTES : ext.pkruOffset;
}

function x87IsInit(x: X87): boolean {
  if (x.cw !== Cw.INIT || x.getSw() !== 0 || x.tw !== 0xffff || x.fop !== 0) return false;
  return x.fip === 0 && x.fipHi === 0 && x.fdp === 0 && x.fdpHi === 0 && x.fcs === 0 && x.fds === 0;
}

function sseIsInit(s: SseState): boolean {
  for (let i = 0; i < 64; i++) if (s.u32[i] !== 0) return false;
  return true;
}

/** MXCSR after RESET and in the initial SSE configuration. */
const MXCSR_INIT = 0x1f80;

/**
 * XSAVE / XSAVEOPT (standard form, `compacted` false) and XSAVEC / XSAVES (compacted) of the x87, SSE
 * and PKRU components selected by `rfbm` (= EDX:EAX & XCR0, or & (XCR0 | IA32_XSS) for XSAVES; low
 * bits). `ext` is null when the CPU has no PKRU. XINUSE[i] is "not in the initial configuration" (SDM
 * Vol. 1 §13.6; PKRU: PKRU = 0).
 * - Standard (§13.7): writes every component in RFBM (the legacy-region parts of x87 and SSE, PKRU at
 *   its offset), MXCSR and MXCSR_MASK when RFBM[1] or RFBM[2] is set, and XSTATE_BV[i] = XINUSE[i] for
 *   i in RFBM; other header bytes are untouched.
 * - Compacted (§13.10, §13.11): saves component i only when RFBM[i] = 1 and XINUSE[i] = 1 (for SSE,
 *   MXCSR other than 1F80H counts as in use); writes XSTATE_BV = RFBM & XINUSE and XCOMP_BV = bit 63 |
 *   RFBM, and no other header byte. XSAVES does not use the modified optimization (SDM 13.11 allows
 *   it, never requires it): it saves what XSAVEC would.
 */
export function xsave(
  x: X87,
  s: SseState,
  out: Uint8Array,
  off: number,
  rfbm: number,
  rexW: boolean,
  nXmm: number,
  compacted = false,
  ext: XExtState | null = null,
): void {
  const x87Used = !x87IsInit(x);
  const sseUsed = !sseIsInit(s) || (compacted && s.mxcsr !== MXCSR_INIT);
  const pkruUsed = ext !== null && ext.pkru !== 0;
  const saveX87 = rfbm & XCOMP_X87 && (!compacted || x87Used);
  const saveSse = rfbm & XCOMP_SSE && (!compacted || sseUsed);
  const savePkru = ext !== null && rfbm & XCOMP_PKRU && (!compacted || pkruUsed);
  if (saveX87) writeFxX87(x, out, off, rexW);
  if (compacted ? saveSse : rfbm & 6) {
    w32(out, off + 24, s.mxcsr);
    w32(out, off + 28, Mxcsr.MASK);
  }
  if (saveSse) writeXmm(s, out, off, nXmm);
  if (savePkru) {
    const p = off + pkruSlot(ext, compacted);
    w32(out, p, ext.pkru);
    w32(out, p + 4, 0);
  }
  const h = off + 512;
  const known = XCOMP_X87 | XCOMP_SSE | (ext !== null ? XCOMP_PKRU : 0);
  if (compacted) {
    w32(out, h, (saveX87 ? XCOMP_X87 : 0) | (saveSse ? XCOMP_SSE : 0) | (savePkru ? XCOMP_PKRU : 0));
    w32(out, h + 4, 0);
    w32(out, h + 8, rfbm & known);
    w32(out, h + 12, 0x80000000);
    return;
  }
  const inUse = (x87Used ? XCOMP_X87 : 0) | (sseUsed ? XCOMP_SSE : 0) | (pkruUsed ? XCOMP_PKRU : 0);
  const m = rfbm & known;
  w32(out, h, (r32(out, h) & ~m) | (inUse & m));
}

/**
 * The XSAVE-header checks of XRSTOR and XRSTORS (SDM Vol. 1 §13.8.1, §13.12): bytes 16..63 zero;
 * standard form (XCOMP_BV[63] = 0; XRSTORS, `mustCompact`, takes #GP): XCOMP_BV 0, XSTATE_BV within
 * `allowed`; compacted form: only with XSAVEC support (`compaction`), XCOMP_BV[62:0] within `allowed`,
 * XSTATE_BV within XCOMP_BV. `allowed` is XCR0 for XRSTOR and XCR0 | IA32_XSS for XRSTORS.
 */
export function xrstorCheck(
  src: Uint8Array,
  off: number,
  allowed: number,
  allowedHi: number,
  compaction: boolean,
  mustCompact = false,
): ImageStatus {
  const h = off + 512;
  const bvLo = r32(src, h);
  const bvHi = r32(src, h + 4);
  const compLo = r32(src, h + 8);
  const compHi = r32(src, h + 12);
  for (let i = 16; i < 64; i++) if (src[h + i] !== 0) return ImageStatus.BadHeader;
  if (compHi >= 0x80000000) {
    if (!compaction || compLo & ~allowed || compHi & 0x7fffffff & ~allowedHi) return ImageStatus.BadHeader;
    if (bvLo & ~compLo || bvHi & ~(compHi & 0x7fffffff)) return ImageStatus.BadHeader;
  } else if (mustCompact || compLo !== 0 || compHi !== 0 || bvLo & ~allowed || bvHi & ~allowedHi)
    return ImageStatus.BadHeader;
  return ImageStatus.Ok;
}

/**
 * XRSTOR and XRSTORS, both forms (SDM Vol. 1 §13.8, §13.12), after `xrstorCheck` with the same
 * `allowed`, `compaction` and `mustCompact`. A reserved MXCSR bit is #GP. Components with RFBM set and
 * XSTATE_BV clear are initialized (PKRU to 0). The standard form loads MXCSR whenever RFBM[1] or
 * RFBM[2] is set; the compacted one only with the SSE component, and sets it to 1F80H when that is
 * initialized. PKRU goes to `ext.pkru`. Nothing changes on #GP.
 */
export function xrstor(
  x: X87,
  s: SseState,
  src: Uint8Array,
  off: number,
  rfbm: number,
  allowed: number,
  allowedHi: number,
  rexW: boolean,
  nXmm: number,
  compaction = false,
  ext: XExtState | null = null,
  mustCompact = false,
): ImageStatus {
  const st = xrstorCheck(src, off, allowed, allowedHi, compaction, mustCompact);
  if (st !== ImageStatus.Ok) return st;
  const bvLo = r32(src, off + 512);
  const compacted = r32(src, off + 524) >= 0x80000000;
  const mx = r32(src, off + 24);
  const loadMx = compacted ? rfbm & XCOMP_SSE && bvLo & XCOMP_SSE : rfbm & 6;
  if (loadMx && mx & ~Mxcsr.MASK) return ImageStatus.BadMxcsr;
  if (rfbm & XCOMP_X87) {
    if (bvLo & XCOMP_X87) {
      readFxX87(x, src, off, rexW);
      x.setCw(x.cw);
    } else {
      x.init();
      x.mant.fill(0);
      x.se.fill(0);
    }
  }
  if (loadMx) s.mxcsr = mx;
  else if (compacted && rfbm & XCOMP_SSE) s.mxcsr = MXCSR_INIT;
  if (rfbm & XCOMP_SSE) {
    if (bvLo & XCOMP_SSE) readXmm(s, src, off, nXmm);
    else s.u32.fill(0);
  }
  if (ext !== null && rfbm & XCOMP_PKRU)
    ext.pkru = bvLo & XCOMP_PKRU ? r32(src, off + pkruSlot(ext, compacted)) | 0 : 0;
  return ImageStatus.Ok;
}
