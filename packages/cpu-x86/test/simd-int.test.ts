// Packed-integer, shuffle, SSE4.2 string and bit-count helpers against the host CPU.
import { beforeAll, describe, expect, it } from "vitest";
import { SseState } from "../src/simd/state.js";
import { buildOracle, haveOracle, runOracle } from "./oracle/build.js";
import { genInt, INT_OPS, maskInt, simulateInt } from "./oracle/intsim.js";

const N = process.env.TSKVM_LONG === "1" ? 100_000 : 3_000;

describe.skipIf(!haveOracle())("SIMD integer ops vs host CPU", () => {
  let exe = "";
  beforeAll(() => {
    exe = buildOracle("sse");
  });
  for (const group of Object.keys(INT_OPS)) {
    it(`SDM Vol. 2 P*/PCMPxSTRx/CRC32: ${group} matches the host`, () => {
      const vecs = genInt(INT_OPS[group]!, N, 0xabc + group.length);
      const out = runOracle(
        exe,
        vecs.map((v) => v.line),
      );
      const u = new SseState();
      const fails: string[] = [];
      for (let i = 0; i < vecs.length; i++) {
        const want = maskInt(vecs[i]!.op, out[i]!);
        const got = simulateInt(u, vecs[i]!);
        if (got !== want && fails.length < 6) fails.push(`${vecs[i]!.line}\n  host ${want}\n  ours ${got}`);
      }
      expect(fails.join("\n")).toBe("");
    });
  }
});
