// Differential test against iced-x86 (Intel rules). CI runs a sample; TSKVM_LONG=1 runs the full
// 1,000,000 sequences per mode (plain and prefix/escape-biased) recorded in BENCHMARKS.md.
import { describe, expect, it } from "vitest";
import { runDiff, runOperandDiff, summarize } from "./decoder-iced.js";

const LONG = process.env.TSKVM_LONG === "1";
const N = LONG ? 1_000_000 : 20_000;

describe("decoder vs iced-x86 on seeded random bytes", () => {
  for (const mode of [16, 32, 64] as const)
    for (const biased of [false, true])
      it(`${mode}-bit, ${N} ${biased ? "prefix/escape-biased" : "uniform"} sequences: lengths and mnemonics agree`, () => {
        const r = runDiff(mode, N, 0x5eed + mode, biased);
        // Every remaining difference would be listed (with its SDM reason) in
        // test/fixtures/decoder/iced-differences.txt and pinned there; today there are none.
        if (r.differences.size || LONG) console.log(`${biased ? "biased " : "uniform "}${summarize(r)}`);
        expect([...r.differences.keys()]).toEqual([]);
        expect(r.agree + r.skipped).toBe(N);
      }, 600_000);
});

describe("decoder vs iced-x86: operands the executor reads", () => {
  for (const mode of [16, 32, 64] as const)
    for (const biased of [false, true])
      it(`${mode}-bit, ${N} ${biased ? "biased" : "uniform"}: memory base/index/scale/displacement/segment, immediates, branch targets`, () => {
        const r = runOperandDiff(mode, N, 0x0be + mode, biased);
        if (r.diffs.size || LONG)
          console.log(
            `operands ${mode}-bit ${biased ? "biased" : "uniform"}: ${r.compared} compared`,
            [...r.diffs.entries()].map(([k, v]) => `\n  ${v.n} ${k}  e.g. ${v.example}`).join(""),
          );
        expect(r.compared).toBeGreaterThan(N / 4);
        expect([...r.diffs.keys()]).toEqual([]);
      }, 600_000);
});
