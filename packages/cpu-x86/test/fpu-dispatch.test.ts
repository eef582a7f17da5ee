// The Op -> handler tables driven by the real decoder and a mock FpuHost (memory operand at a
// fixed buffer, GPRs, EFLAGS): the wiring the executor will use.
import { describe, expect, it } from "vitest";
import { decode } from "../src/decoder/decode.js";
import { DecodeStatus, Insn } from "../src/decoder/insn.js";
import { X87_HANDLERS } from "../src/fpu/dispatch.js";
import { FpUnits, type FpuHost, FpuVector } from "../src/fpu/host.js";
import { SIMD_HANDLERS } from "../src/simd/dispatch.js";

class MockHost implements FpuHost {
  mem = new Uint8Array(1024);
  gpr = new Uint32Array(32);
  efl = 0x2;
  raised: number[] = [];
  readMem(bytes: number, buf: Uint8Array): boolean {
    buf.set(this.mem.subarray(0, bytes), 0);
    return true;
  }
  writeMem(bytes: number, buf: Uint8Array): boolean {
    this.mem.set(buf.subarray(0, bytes), 0);
    return true;
  }
  gprLo(r: number): number {
    return this.gpr[2 * r]!;
  }
  gprHi(r: number): number {
    return this.gpr[2 * r + 1]!;
  }
  setGpr(r: number, bytes: 2 | 4 | 8, lo: number, hi: number): void {
    if (bytes === 2) this.gpr[2 * r] = (this.gpr[2 * r]! & 0xffff0000) | (lo & 0xffff);
    else {
      this.gpr[2 * r] = lo;
      this.gpr[2 * r + 1] = bytes === 8 ? hi : 0;
    }
  }
  flags(): number {
    return this.efl;
  }
  setFlags(mask: number, value: number): void {
    this.efl = (this.efl & ~mask) | (value & mask);
  }
  protectedMode(): boolean {
    return true;
  }
  longMode(): boolean {
    return true; // run() decodes in 64-bit mode
  }
  xcr0Lo(): number {
    return 3;
  }
  xcr0Hi(): number {
    return 0;
  }
  raise(v: number): void {
    this.raised.push(v);
  }
}

function run(u: FpUnits, h: MockHost, hex: string): void {
  const bytes = Uint8Array.from(hex.split(" ").map((b) => Number.parseInt(b, 16)));
  const insn = new Insn();
  expect(decode(bytes, 0, 64, insn)).toBe(DecodeStatus.Ok);
  const f = X87_HANDLERS[insn.op] ?? SIMD_HANDLERS[insn.op];
  expect(f, hex).toBeDefined();
  f!(u, h, insn);
}

describe("dispatch tables (decoder Op -> x87/SSE handlers)", () => {
  it("x87: FLD1; FLDPI; FADDP; FSTP m64 stores 1 + pi as a double", () => {
    const u = new FpUnits();
    const h = new MockHost();
    run(u, h, "d9 e8");
    run(u, h, "d9 eb");
    run(u, h, "de c1");
    run(u, h, "dd 18");
    expect(new DataView(h.mem.buffer).getFloat64(0, true)).toBe(1 + Math.PI);
    expect(u.x87.getSw() & 0x3800).toBe(0); // stack empty again, TOP = 0
    run(u, h, "df e0"); // FNSTSW AX
    expect(h.gprLo(0) & 0xffff).toBe(u.x87.getSw());
  });

  it("x87: FCOMI sets ZF/PF/CF; FCMOVB moves on CF", () => {
    const u = new FpUnits();
    const h = new MockHost();
    run(u, h, "d9 e8"); // 1
    run(u, h, "d9 ee"); // 0 ; ST0 = 0, ST1 = 1
    run(u, h, "db f1"); // FCOMI ST0, ST1: 0 < 1 -> CF
    expect(h.efl & 0x45).toBe(0x01);
    run(u, h, "da c1"); // FCMOVB ST0, ST1
    expect(u.x87.stSe(0)).toBe(0x3fff);
  });

  it("SSE: ADDSD, COMISD, CVTTSD2SI, PCMPISTRI, and #XM on an unmasked divide by zero", () => {
    const u = new FpUnits();
    const h = new MockHost();
    u.sse.f64[0] = 1.5;
    u.sse.f64[2] = 2.25;
    run(u, h, "f2 0f 58 c1"); // addsd xmm0, xmm1
    expect(u.sse.f64[0]).toBe(3.75);
    run(u, h, "66 0f 2f c1"); // comisd xmm0, xmm1: greater
    expect(h.efl & 0x45).toBe(0);
    run(u, h, "f2 48 0f 2c c0"); // cvttsd2si rax, xmm0
    expect(h.gprLo(0)).toBe(3);
    u.sse.u8.set([0x61, 0x62, 0x63, 0], 0); // xmm0 = "abc"
    u.sse.u8.set([0x78, 0x79, 0x63, 0x7a, 0], 16); // xmm1 = "xycz"
    run(u, h, "66 0f 3a 63 c1 00"); // pcmpistri xmm0, xmm1, 0 (equal any)
    expect(h.gprLo(1)).toBe(2);
    expect(h.efl & 0x41).toBe(0x41); // CF (match) and ZF (xmm1 has a NUL)
    u.sse.mxcsr = 0x1f80 & ~(1 << 9); // unmask ZE
    u.sse.f32[0] = 1;
    u.sse.f32[4] = 0;
    run(u, h, "f3 0f 5e c1"); // divss xmm0, xmm1
    expect(h.raised).toEqual([FpuVector.XM]);
    expect(u.sse.f32[0]).toBe(1); // destination unchanged
    expect(u.sse.mxcsr & 4).toBe(4);
  });

  it("MMX: PADDB on MM registers sets TOP = 0 and all tags valid; EMMS empties them", () => {
    const u = new FpUnits();
    const h = new MockHost();
    u.x87.writeMm(0, 0x01020304, 0xff000001);
    u.x87.writeMm(1, 0x01010101, 0x01010101);
    run(u, h, "0f fc c1"); // paddb mm0, mm1
    expect(u.x87.mant[1]).toBe(0x02030405);
    expect(u.x87.mant[0]).toBe(0x00010102);
    expect(u.x87.tw).toBe(0);
    run(u, h, "0f 77"); // emms
    expect(u.x87.tw).toBe(0xffff);
  });
});
