// Differential test against the host CPU (a CI-sized sample of `npm run difftest`): snippets generated
// from the decoder's tables run natively (difftest/harness.c, built with gcc) and on cpu-x86 in 64-bit
// user mode, 32-bit compatibility mode and 16-bit code; everything must match except the flags the ISA
// records leave undefined.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { runDifftest } from "../src/difftest/run.js";

function hasGcc(): boolean {
  try {
    execFileSync("gcc", ["--version"], { stdio: "ignore" });
    return process.arch === "x64" && process.platform === "linux";
  } catch {
    return false;
  }
}

describe.skipIf(!hasGcc())("difftest against the host CPU", () => {
  it("50,000 generated snippets match the host", () => {
    const r = runDifftest({ seed: 20261124, count: 50_000, keep: 10 });
    const report = r.failures.map((f) => `#${f.index} ${f.snippet}\n  ${f.diffs.join("\n  ")}`).join("\n");
    expect(report).toBe("");
    expect(r.passed).toBe(50_000);
  });

  it("20,000 snippets in 32-bit compatibility mode (BCD, PUSHA, INC/DEC short forms...) match the host", () => {
    const r = runDifftest({ seed: 20261125, count: 20_000, keep: 10, mode: 32 });
    const report = r.failures.map((f) => `#${f.index} ${f.snippet}\n  ${f.diffs.join("\n  ")}`).join("\n");
    expect(report).toBe("");
    expect(r.passed).toBe(20_000);
  });

  it("20,000 snippets of the forms jit-gen.ts emits inline, every block compiled, match the host", () => {
    const r = runDifftest({ seed: 20261127, count: 20_000, keep: 10, jit: true, inlineForms: true });
    const report = r.failures.map((f) => `#${f.index} ${f.snippet}\n  ${f.diffs.join("\n  ")}`).join("\n");
    expect(report).toBe("");
    expect(r.passed).toBe(20_000);
  });

  it("20,000 snippets in 16-bit code (LDT code and data segments, 16-bit addressing and stack) match the host", () => {
    const r = runDifftest({ seed: 20261126, count: 20_000, keep: 10, mode: 16 });
    const report = r.failures.map((f) => `#${f.index} ${f.snippet}\n  ${f.diffs.join("\n  ")}`).join("\n");
    expect(report).toBe("");
    expect(r.passed).toBe(20_000);
  });
});
