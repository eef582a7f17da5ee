// Differential test of the x87 unit against the host CPU (test/oracle/x87.c): every op over
// edge-case and random extended values, all rounding modes, precisions and mask settings.
// TSKVM_LONG=1 runs a much larger sample (recorded in BENCHMARKS.md).
import { beforeAll, describe, expect, it } from "vitest";
import { X87 } from "../src/fpu/x87.js";
import { buildOracle, haveOracle, runOracle } from "./oracle/build.js";
import { genVectors, simulate, type Vec, X87_OPS } from "./oracle/x87sim.js";

const LONG = process.env.TSKVM_LONG === "1";
const N = LONG ? 200_000 : 2_500;

describe.skipIf(!haveOracle())("x87 vs host CPU", () => {
  let exe = "";
  beforeAll(() => {
    exe = buildOracle("x87");
  });

  for (const group of Object.keys(X87_OPS)) {
    it(`SDM Vol. 1 ch. 4/8: ${group} matches the host bit for bit`, () => {
      const ops = X87_OPS[group]!;
      const vecs: Vec[] = genVectors(ops, N, 0x1234 + group.length * 77);
      const out = runOracle(
        exe,
        vecs.map((v) => v.line),
      );
      const x = new X87();
      const fails: string[] = [];
      for (let i = 0; i < vecs.length; i++) {
        const v = vecs[i]!;
        const got = simulate(x, v);
        const want = v.mask(out[i]!);
        if (got !== want && fails.length < 4) fails.push(`${v.line}\n  host ${want}\n  ours ${got}`);
      }
      expect(fails.join("\n")).toBe("");
    });
  }
});
