/**
 * Guest code is hostile: random bytes run through KVM_RUN in real mode, 32-bit protected mode and
 * long mode (identity-mapped) must always end in a `kvm_run` exit, never in a JS exception out of
 * `run()` and never in a hang. `TSKVM_LONG=1` runs 20x more programs (COUNT).
 */
import { describe, expect, it } from "vitest";
import type { KvmExit } from "../src/index.js";
import { flat32, longMode, machine, realMode } from "./run-helpers.js";

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Programs per mode. Random real-mode code is self-modifying almost everywhere: its 16-bit
 * addresses land in the first 64 KiB, over its own code at 0x1000. It used to cost ~90 ms per
 * program (every write dropped the page's decoded blocks, ~0.7 drops per guest instruction); since
 * cpu-x86 runs such a page uncached (`Cpu.invalidateCodePage`), the long run's 2000 programs per
 * mode take ~10 s (real), ~4 s (flat32) and ~3 s (long) on the 2-core dev machine.
 */
const LONG = Boolean(process.env.TSKVM_LONG);
const COUNT = { real: LONG ? 2000 : 100, flat32: LONG ? 2000 : 100, long: LONG ? 2000 : 100 };

describe("KVM_RUN on random guest code", () => {
  for (const mode of ["real", "flat32", "long"] as const) {
    it(`${mode}: every run() returns an exit`, () => {
      const rnd = prng(mode.length * 7919);
      const kinds = new Map<string, number>();
      for (let p = 0; p < COUNT[mode]; p++) {
        const m = machine({
          memSize: 1 << 20,
          irqchip: p % 2 === 0,
          backend: { maxRunInstructions: 500, maxRunMs: 5 },
        });
        for (let i = 0; i < 0x3000; i++) m.ram[0x1000 + i] = (rnd() * 256) | 0;
        if (mode === "real") realMode(m, 0x1000);
        else if (mode === "flat32") flat32(m, 0x1000);
        else longMode(m, 0x1000);
        for (let r = 0; r < 8; r++) {
          let e: KvmExit | undefined;
          expect(() => {
            e = m.vcpu.run();
          }).not.toThrow();
          const k = e!.kind;
          kinds.set(k, (kinds.get(k) ?? 0) + 1);
          if (k === "io" && e!.kind === "io" && e!.direction === 0) e!.data.fill(0xff);
          if (k === "mmio" && e!.kind === "mmio" && !e!.isWrite) e!.data.fill(0xff);
          if (k === "shutdown" || k === "fail-entry" || k === "internal-error") break;
        }
      }
      // Some variety must have been reached (a fuzz that only ever sees one exit tests little).
      expect(kinds.size).toBeGreaterThan(1);
    }, 120_000);
  }
});
