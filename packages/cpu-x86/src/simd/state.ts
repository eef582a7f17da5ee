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
export class SseState {
  readonly buf = new ArrayBuffer(256);
  /** XMMn word k at [4n + k]. */
  readonly u32 = new Uint32Array(this.buf);
  readonly i32 = new Int32Array(this.buf);
  readonly u16 = new Uint16Array(this.buf);
  readonly i16 = new Int16Array(this.buf);
  readonly u8 = new Uint8Array(this.buf);
  readonly i8 = new Int8Array(this.buf);
  readonly f32 = new Float32Array(this.buf);
  readonly f64 = new Float64Array(this.buf);
  mxcsr: number = Mxcsr.INIT;
  readonly sf = new SoftFloat();

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
