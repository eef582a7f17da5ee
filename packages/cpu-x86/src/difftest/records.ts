/**
 * The binary records exchanged with the native harness (difftest/harness.c): `struct in_rec` and
 * `struct out_rec`, little-endian, fixed size. Layouts must match the C structs exactly.
 */

export const CODE_BASE = 0x20000000;
export const DATA_BASE = 0x10000000;
export const WIN_OFF = 0x600;
export const WIN = 1024;
export const CODE_MAX = 32;
export const WIN_BASE = DATA_BASE + WIN_OFF;

/** Modes the snippets run in. */
export type DiffMode = 16 | 32 | 64;
/** Selectors and bases of the harness's 16-bit LDT segments (code at CODE_BASE, data at DATA_BASE). */
export const SEL_CODE16 = 0x07;
export const SEL_DATA16 = 0x0f;

/** Bytes 0..159 of an FXSAVE image: the x87 state (FCW, FSW, abridged FTW, FOP, FIP, FDP, ST0..ST7). */
export const FX = 160;

export const IN_SIZE = 16 * 8 + 8 + 256 + 4 + 4 + CODE_MAX + WIN + FX;
export const OUT_SIZE = 16 * 8 + 8 + 8 + 256 + 4 + 4 + 8 + 8 + WIN + 4 + 4 + FX;

/** One snippet's starting state (registers as 32-bit halves: regs[2n] low, regs[2n+1] high). */
export interface SnippetIn {
  regs: Int32Array; // 32
  rflags: number;
  xmm: Uint32Array; // 64
  mxcsr: number;
  code: Uint8Array;
  mem: Uint8Array; // WIN
  /** x87 state as FXSAVE bytes 0..159 (the MXCSR slot, 24..31, unused). */
  fx: Uint8Array;
  /** Op id of the instruction under test (for flag masks and reports). */
  op: number;
  /** 64-bit mode, 32-bit compatibility mode, or 16-bit code (compatibility mode with 16-bit segments). */
  mode: DiffMode;
}

/** One snippet's end state. `trapno` -1 = ran to the end. */
export interface SnippetOut {
  regs: Int32Array;
  ripLo: number;
  ripHi: number;
  rflags: number;
  xmm: Uint32Array;
  mxcsr: number;
  trapno: number;
  err: number;
  addrLo: number;
  addrHi: number;
  mem: Uint8Array;
  outsideOff: number;
  outsideVal: number;
  fx: Uint8Array;
}

export function newOut(): SnippetOut {
  return {
    regs: new Int32Array(32),
    ripLo: 0,
    ripHi: 0,
    rflags: 0,
    xmm: new Uint32Array(64),
    mxcsr: 0,
    trapno: -1,
    err: 0,
    addrLo: 0,
    addrHi: 0,
    mem: new Uint8Array(WIN),
    outsideOff: -1,
    outsideVal: 0,
    fx: new Uint8Array(FX),
  };
}

export function encodeIn(s: SnippetIn, buf: Uint8Array, at: number): void {
  const dv = new DataView(buf.buffer, buf.byteOffset + at, IN_SIZE);
  for (let i = 0; i < 32; i++) dv.setInt32(i * 4, s.regs[i]!, true);
  dv.setUint32(128, s.rflags >>> 0, true);
  dv.setUint32(132, s.mode === 64 ? 0 : s.mode, true); // the harness's mode flag (high dword of rflags)
  for (let i = 0; i < 64; i++) dv.setUint32(136 + i * 4, s.xmm[i]!, true);
  dv.setUint32(392, s.mxcsr >>> 0, true);
  dv.setUint32(396, s.code.length, true);
  buf.fill(0, at + 400, at + 400 + CODE_MAX);
  buf.set(s.code.subarray(0, CODE_MAX), at + 400);
  buf.set(s.mem, at + 400 + CODE_MAX);
  buf.set(s.fx, at + 400 + CODE_MAX + WIN);
}

export function decodeOut(buf: Uint8Array, at: number, o: SnippetOut): void {
  const dv = new DataView(buf.buffer, buf.byteOffset + at, OUT_SIZE);
  for (let i = 0; i < 32; i++) o.regs[i] = dv.getInt32(i * 4, true);
  o.ripLo = dv.getInt32(128, true);
  o.ripHi = dv.getInt32(132, true);
  o.rflags = dv.getUint32(136, true);
  for (let i = 0; i < 64; i++) o.xmm[i] = dv.getUint32(144 + i * 4, true);
  o.mxcsr = dv.getUint32(400, true);
  o.trapno = dv.getInt32(404, true);
  o.err = dv.getUint32(408, true);
  o.addrLo = dv.getInt32(416, true);
  o.addrHi = dv.getInt32(420, true);
  o.mem.set(buf.subarray(at + 424, at + 424 + WIN));
  o.outsideOff = dv.getInt32(424 + WIN, true);
  o.outsideVal = dv.getUint32(428 + WIN, true);
  o.fx.set(buf.subarray(at + 432 + WIN, at + 432 + WIN + FX));
}
