/**
 * SSE state: XMM0-15 and MXCSR (SDM Vol. 1 §10.2). One 256-byte buffer with typed views so that
 * lane access is a plain array index; the soft-float engine `sf` serves the float ops that need
 * exact results or flags.
 */
import { SoftFloat } from "../fpu/softfloat.js";

/** MXCSR bits (SDM Vol. 1 §10.2.3). Flags and masks sit at the x87 status/control positions (<< 7 for masks). */
export const Mxcsr = {
  IE: 0x0001,
  DE: 0x0002,
  ZE: 0x0004,
  OE: 0x0008,
  UE: 0x0010,
  PE: 0x0020,
  FLAGS: 0x003f,
  DAZ: 0x0040,
  MASK_SHIFT: 7,
  MASKS: 0x1f80,
  RC_SHIFT: 13,
  RC: 0x6000,
  FTZ: 0x8000,
  /** Reset/init value: all exceptions masked, round to nearest. */
  INIT: 0x1f80,
  /** MXCSR_MASK reported by FXSAVE: DAZ supported, bits 31:16 reserved. Writing a reserved bit is #GP. */
  MASK: 0xffff,
} as const;

/**
 * Views over 16-byte registers: XMM (4 words each) or MMX (2 words each). Operation helpers index
 * registers by 32-bit word offset (XMMn = 4n, MMn = 2n), so they run on this unit's own file, on
 * the executor's arrays (`xmmFileOver(cpu.xmm)`) or on the x87 significands (`xmmFileOver(x87.mant)`).
 */
export interface XmmFile {
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  readonly u8: Uint8Array;
  readonly i8: Int8Array;
  readonly f32: Float32Array;
  readonly f64: Float64Array;
}

/** Build the typed views over any word array (once, at setup; not per instruction). */
export function xmmFileOver(w: Uint32Array): XmmFile {
  const b = w.buffer;
  const o = w.byteOffset;
  const n = w.byteLength;
  return {
    u32: w,
    i32: new Int32Array(b, o, n >>> 2),
    u16: new Uint16Array(b, o, n >>> 1),
    i16: new Int16Array(b, o, n >>> 1),
    u8: new Uint8Array(b, o, n),
    i8: new Int8Array(b, o, n),
    f32: new Float32Array(b, o, n >>> 2),
    f64: new Float64Array(b, o, n >>> 3),
  };
}

/** Result of an SSE/MMX helper. */
export const SimdStatus = {
  Ok: 0,
  /**
   * An unmasked SIMD floating-point exception: the destination is unchanged, MXCSR flags are set;
   * the executor raises #XM when CR4.OSXMMEXCPT = 1, else #UD (SDM Vol. 1 §11.5.1).
   */
  Xm: 1,
} as const;

/** Plain JSON state (`SseState.save()`). */
export interface SseSaved {
  mxcsr: number;
  /** XMM0-15, each as four 32-bit words, lowest first. */
  xmm: number[][];
}

export type SseRestoreError = { kind: "BadField"; field: string };

/**
 * @example
 * const s = new SseState();
 * s.f64[0] = 1.5; // XMM0 low double
 * s.u32[1] === 0x3ff80000;
 */
export class SseState implements XmmFile {
  /**
   * @param buf the 256-byte XMM0-15 storage; pass the executor's own buffer (e.g.
   * `cpu.xmm.buffer`) so that its views and these helpers share the registers.
   */
  readonly buf: ArrayBuffer;
  /** XMMn word k at [4n + k]. */
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly u16: Uint16Array;
  readonly i16: Int16Array;
  readonly u8: Uint8Array;
  readonly i8: Int8Array;
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  constructor(buf: ArrayBuffer = new ArrayBuffer(256)) {
    this.buf = buf;
    this.u32 = new Uint32Array(buf, 0, 64);
    this.i32 = new Int32Array(buf, 0, 64);
    this.u16 = new Uint16Array(buf, 0, 128);
    this.i16 = new Int16Array(buf, 0, 128);
    this.u8 = new Uint8Array(buf, 0, 256);
    this.i8 = new Int8Array(buf, 0, 256);
    this.f32 = new Float32Array(buf, 0, 64);
    this.f64 = new Float64Array(buf, 0, 32);
  }
  mxcsr: number = Mxcsr.INIT;
  readonly sf = new SoftFloat();
  /** A 16-byte scratch register: the executor loads memory operands here (word offset 0). */
  readonly tmp: XmmFile = xmmFileOver(new Uint32Array(4));
  /** Lane results before commit, with byte/word views (integer ops build results here). */
  readonly res = new Uint32Array(4);
  readonly res8 = new Uint8Array(this.res.buffer);
  readonly res16 = new Uint16Array(this.res.buffer);
  /** Exceptions raised by the current instruction. */
  exc = 0;
  /** Bit-cast scratch. */
  readonly cu32 = new Uint32Array(2);
  readonly cf32 = new Float32Array(this.cu32.buffer);
  readonly cf64 = new Float64Array(this.cu32.buffer);
  /** Second result word of 64-bit lane helpers (high half); the low half is the return value. */
  rHi = 0;

  /** LDMXCSR: false (caller raises #GP(0)) when a reserved bit is set (SDM Vol. 2 LDMXCSR). */
  setMxcsr(v: number): boolean {
    if ((v >>> 0) & ~Mxcsr.MASK) return false;
    this.mxcsr = v & Mxcsr.MASK;
    return true;
  }

  save(): SseSaved {
    const xmm: number[][] = [];
    for (let i = 0; i < 16; i++) xmm.push(Array.from(this.u32.subarray(4 * i, 4 * i + 4)));
    return { mxcsr: this.mxcsr, xmm };
  }

  static restore(s: SseSaved): SseState | SseRestoreError {
    const ok = (v: unknown): v is number =>
      typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
    if (!ok(s.mxcsr) || s.mxcsr & ~Mxcsr.MASK) return { kind: "BadField", field: "mxcsr" };
    if (!Array.isArray(s.xmm) || s.xmm.length !== 16) return { kind: "BadField", field: "xmm" };
    const st = new SseState();
    st.mxcsr = s.mxcsr;
    for (let i = 0; i < 16; i++) {
      const r = s.xmm[i];
      if (!Array.isArray(r) || r.length !== 4 || !r.every(ok))
        return { kind: "BadField", field: `xmm[${i}]` };
      st.u32.set(r, 4 * i);
    }
    return st;
  }
}
