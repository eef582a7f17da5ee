// Throughput of the x87 soft-float and the SSE helpers (ops per second). Figures in BENCHMARKS.md.
import { bench, describe } from "vitest";
import { X87 } from "../src/fpu/x87.js";
import { FArith, fArithReg, fLdF80, fSqrt } from "../src/fpu/x87ops.js";
import { arithSd, arithSs } from "../src/simd/float.js";
import { IOp, intOp } from "../src/simd/int.js";
import { FOp } from "../src/simd/lanes.js";
import { SseState } from "../src/simd/state.js";

const x = new X87();
fLdF80(x, 0x3fff, 0xc90fdaa2, 0x2168c234);
fLdF80(x, 0x4000, 0xadf85458, 0xa2bb4a9a);
const u = new SseState();
u.f64[0] = 1.2345;
u.f64[2] = 6.789;
u.f32[0] = 1.2345;
u.f32[4] = 6.789;

describe("x87 soft-float (1000 ops per iteration)", () => {
  // Operands are reset every op so that values stay normal (no drift into the slow paths).
  const reset = (): void => {
    x.writeST(0, 0x3fff, 0xc90fdaa2, 0x2168c234);
  };
  bench("FADD ST0, ST1", () => {
    for (let i = 0; i < 1000; i++) {
      reset();
      fArithReg(x, FArith.ADD, 0, 1, false);
    }
  });
  bench("FMUL ST0, ST1", () => {
    for (let i = 0; i < 1000; i++) {
      reset();
      fArithReg(x, FArith.MUL, 0, 1, false);
    }
  });
  bench("FDIV ST0, ST1", () => {
    for (let i = 0; i < 1000; i++) {
      reset();
      fArithReg(x, FArith.DIV, 0, 1, false);
    }
  });
  bench("FSQRT", () => {
    for (let i = 0; i < 1000; i++) {
      reset();
      fSqrt(x);
    }
  });
});

describe("SSE scalar (1000 ops per iteration)", () => {
  bench("ADDSD, PE not yet set (exact inexact check)", () => {
    for (let i = 0; i < 1000; i++) {
      u.mxcsr = 0x1f80;
      u.f64[0] = 1.2345;
      arithSd(u, FOp.ADD, u, 0, u, 8);
    }
  });
  bench("MULSD, PE set and masked (fast path)", () => {
    u.mxcsr = 0x1fa0;
    for (let i = 0; i < 1000; i++) {
      u.f64[0] = 1.2345;
      arithSd(u, FOp.MUL, u, 0, u, 8);
    }
  });
  bench("DIVSS, PE not yet set", () => {
    for (let i = 0; i < 1000; i++) {
      u.mxcsr = 0x1f80;
      u.f32[0] = 1.2345;
      arithSs(u, FOp.DIV, u, 0, u, 4);
    }
  });
  bench("DIVSD, round up (soft-float path)", () => {
    for (let i = 0; i < 1000; i++) {
      u.mxcsr = 0x5f80;
      u.f64[0] = 1.2345;
      arithSd(u, FOp.DIV, u, 0, u, 8);
    }
  });
  bench("PADDB xmm", () => {
    for (let i = 0; i < 1000; i++) intOp(u, IOp.PADDB, u, 0, u, 4, 4);
  });
});
