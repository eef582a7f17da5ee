// Fuzz: the decoder is total on hostile bytes. Random and truncated buffers never throw, never
// read outside the buffer, and a cut-short instruction is Truncated (fetch more and retry), never
// a different instruction. TSKVM_LONG=1 runs 1,000,000 cases per mode.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DecodeStatus, decode, formatIntel, Insn, MAX_INSN_LENGTH } from "../src/index.js";

const RUNS = process.env.TSKVM_LONG === "1" ? 1_000_000 : 5_000;

/** A view that records any read outside [0, length). */
function guarded(bytes: Uint8Array): { view: Uint8Array; outside: () => number } {
  let outside = 0;
  const view = new Proxy(bytes, {
    get(t, k) {
      if (typeof k === "string" && /^-?\d+$/.test(k)) {
        const i = Number(k);
        if (i < 0 || i >= t.length) outside++;
        return t[i];
      }
      const v = Reflect.get(t, k, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { view, outside: () => outside };
}

// Bytes that reach every decoding path often: prefixes, escapes, VEX, ModRM/SIB extremes.
const interesting = fc.constantFrom(
  0x66,
  0x67,
  0xf0,
  0xf2,
  0xf3,
  0x2e,
  0x64,
  0x40,
  0x48,
  0x4f,
  0x0f,
  0x38,
  0x3a,
  0xc4,
  0xc5,
  0x62,
  0x8f,
  0xd8,
  0xdf,
  0x04,
  0x05,
  0x44,
  0x84,
  0xc0,
  0xff,
  0x00,
);
const bytesArb = fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), interesting), {
  minLength: 0,
  maxLength: 20,
});

describe("decoder fuzz", () => {
  for (const mode of [16, 32, 64] as const)
    it(`${mode}-bit: total, in bounds, and truncation-consistent`, () => {
      const insn = new Insn();
      const full = new Insn();
      let n = 0;
      fc.assert(
        fc.property(bytesArb, (arr) => {
          // The bounds guard (a Proxy, slow) watches every cut of one case in 8, and the full
          // buffer of every case; the truncation rule is checked on every cut of every case.
          const watchCuts = (n++ & 7) === 0;
          const bytes = Uint8Array.from(arr);
          const g = guarded(bytes);
          const st = decode(g.view, 0, mode, full);
          expect(g.outside()).toBe(0);
          expect(full.length).toBeLessThanOrEqual(MAX_INSN_LENGTH);
          expect(full.length).toBeLessThanOrEqual(bytes.length);
          formatIntel(full, 0x1000); // must not throw either
          // Every shorter prefix of a decoded instruction is Truncated; longer buffers agree.
          for (let k = 0; k <= bytes.length; k++) {
            let s: number;
            if (watchCuts) {
              const cut = guarded(bytes.subarray(0, k));
              s = decode(cut.view, 0, mode, insn);
              expect(cut.outside()).toBe(0);
            } else s = decode(bytes.subarray(0, k), 0, mode, insn);
            if (st === DecodeStatus.Ok && k < full.length) expect(s).toBe(DecodeStatus.Truncated);
            if (st === DecodeStatus.Ok && k >= full.length) {
              expect(s).toBe(DecodeStatus.Ok);
              expect(insn.op).toBe(full.op);
              expect(insn.length).toBe(full.length);
            }
          }
        }),
        { numRuns: RUNS, seed: 0x7e57 + mode },
      );
    }, 600_000);

  it("the guard itself sees an out-of-bounds read", () => {
    const g = guarded(new Uint8Array(2));
    expect(g.view[1]).toBe(0);
    expect(g.view[2]).toBeUndefined();
    expect(g.outside()).toBe(1);
  });

  it("offsets anywhere in and around a buffer never throw", () => {
    const insn = new Insn();
    const bytes = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 255);
    for (let off = -3; off < 70; off++)
      for (const mode of [16, 32, 64] as const) {
        const g = guarded(bytes);
        decode(g.view, off, mode, insn);
        expect(g.outside()).toBe(0);
      }
    expect(decode(bytes, 0.5, 64, insn)).toBe(DecodeStatus.Truncated);
  });
});
