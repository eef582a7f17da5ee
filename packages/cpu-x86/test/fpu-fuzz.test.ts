// Hostile input: every dispatch-table handler on random instruction fields, random register
// contents (any bit pattern, including unsupported x87 encodings) and random control words
// never throws; FPREM iterated to completion gives the exact remainder.
import { describe, expect, it } from "vitest";
import { Insn } from "../src/decoder/insn.js";
import { X87_HANDLERS } from "../src/fpu/dispatch.js";
import { FpUnits, type FpuHost } from "../src/fpu/host.js";
import { fPrem } from "../src/fpu/transcend.js";
import { fLdF64, fStF64 } from "../src/fpu/x87ops.js";
import { SIMD_HANDLERS } from "../src/simd/dispatch.js";
import { Rng } from "./oracle/build.js";

class RandomHost implements FpuHost {
  constructor(private r: Rng) {}
  readMem(bytes: number, buf: Uint8Array): boolean {
    for (let i = 0; i < bytes; i++) buf[i] = this.r.u32() & 0xff;
    return this.r.below(16) !== 0; // sometimes the access faults
  }
  writeMem(): boolean {
    return true;
  }
  gprLo(): number {
    return this.r.u32();
  }
  gprHi(): number {
    return this.r.below(2) ? 0 : this.r.u32();
  }
  setGpr(): void {}
  flags(): number {
    return this.r.u32() & 0x8d5;
  }
  setFlags(): void {}
  protectedMode(): boolean {
    return this.r.below(2) === 0;
  }
  longMode(): boolean {
    return this.r.below(2) === 0;
  }
  xcr0Lo(): number {
    return 3;
  }
  xcr0Hi(): number {
    return 0;
  }
  raise(): void {}
}

describe("hostile input", () => {
  it("no handler throws on random fields, registers, CW and MXCSR", () => {
    const r = new Rng(0xf00d);
    const u = new FpUnits();
    const h = new RandomHost(r);
    const insn = new Insn();
    const handlers = [...Object.values(X87_HANDLERS), ...Object.values(SIMD_HANDLERS)];
    for (let n = 0; n < 40_000; n++) {
      const f = handlers[r.below(handlers.length)]!;
      for (let p = 0; p < 8; p++) u.x87.writePhys(p, r.u32() & 0xffff, r.u32(), r.u32());
      if (r.below(4) === 0) u.x87.tw = r.u32() & 0xffff;
      u.x87.top = r.below(8);
      u.x87.cw = r.u32() & 0x1f7f;
      for (let i = 0; i < 64; i++) u.sse.u32[i] = r.u32();
      u.sse.mxcsr = r.u32() & 0xffff;
      insn.isMem = r.below(2) === 0;
      insn.reg = r.below(16);
      insn.rm = r.below(16);
      insn.opcode = r.pick([
        0x0f,
        0x71,
        0x72,
        0x73,
        0xd8,
        0xd9,
        0xda,
        0xdb,
        0xdc,
        0xdd,
        0xde,
        0xdf,
        0xf0,
        0xf1,
        r.below(256),
      ]);
      insn.imm = r.u32();
      insn.prefixes = r.u32() & 0xff;
      insn.rex = r.below(16);
      insn.opSize = r.pick([2, 4, 8]);
      insn.mode = r.pick([16, 32, 64] as const);
      expect(() => f(u, h, insn)).not.toThrow();
    }
  });

  it("SDM Vol. 2 FPREM: iterating while C2 = 1 ends at the exact remainder (fmod)", () => {
    const r = new Rng(99);
    const u = new FpUnits();
    const view = new DataView(new ArrayBuffer(8));
    for (let n = 0; n < 3000; n++) {
      const a = (r.u32() / 2 ** 32 + 0.5) * 2 ** (r.below(2000) - 1000) * (r.below(2) ? -1 : 1);
      const b = (r.u32() / 2 ** 32 + 0.5) * 2 ** (r.below(200) - 100);
      u.x87.init();
      view.setFloat64(0, b);
      fLdF64(u.x87, view.getUint32(0), view.getUint32(4));
      view.setFloat64(0, a);
      fLdF64(u.x87, view.getUint32(0), view.getUint32(4));
      let steps = 0;
      do {
        fPrem(u.x87, false);
        steps++;
      } while (u.x87.sw & 0x400 && steps < 100);
      fStF64(u.x87, false);
      view.setUint32(0, u.x87.oHi);
      view.setUint32(4, u.x87.oLo);
      expect(view.getFloat64(0), `${a} % ${b}`).toBe(a % b);
    }
  });
});
