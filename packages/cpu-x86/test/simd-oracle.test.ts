// Differential test of the SSE float helpers against the host CPU (test/oracle/sse.c): results,
// MXCSR flags and #XM for every op over edge cases, all rounding modes, FTZ/DAZ and mask settings.
import { beforeAll, describe, expect, it } from "vitest";
import { SseState } from "../src/simd/state.js";
import { buildOracle, haveOracle, runOracle } from "./oracle/build.js";
import { genSse, SSE_OPS, simulateSse } from "./oracle/ssesim.js";

const N = process.env.TSKVM_LONG === "1" ? 200_000 : 3_000;

describe.skipIf(!haveOracle())("SSE vs host CPU", () => {
  let exe = "";
  beforeAll(() => {
    exe = buildOracle("sse");
  });
  for (const group of Object.keys(SSE_OPS)) {
    it(`SDM Vol. 1 §11.5: ${group} matches the host (results, MXCSR, #XM)`, () => {
      const vecs = genSse(SSE_OPS[group]!, N, 0x5eed + group.length * 131);
      const out = runOracle(
        exe,
        vecs.map((v) => v.line),
      );
      const u = new SseState();
      const fails: string[] = [];
      for (let i = 0; i < vecs.length; i++) {
        const got = simulateSse(u, vecs[i]!);
        if (got !== out[i] && fails.length < 6)
          fails.push(`${vecs[i]!.line}\n  host ${out[i]}\n  ours ${got}`);
      }
      expect(fails.join("\n")).toBe("");
    });
  }
});
