/**
 * Guest code is hostile: random bytes run through KVM_RUN in real mode, 32-bit protected mode and
 * long mode (identity-mapped) must always end in a `kvm_run` exit, never in a JS exception out of
 * `run()` and never in a hang. `TSKVM_LONG=1` runs 20x more programs (6x in real mode: COUNT).
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
 * addresses land in the first 64 KiB, over its own code at 0x1000, and a write to a page of
 * decoded code drops the page's blocks (cpu-x86 memory.ts). Measured on the 2-core dev machine:
 * about 0.7 code-page invalidations per guest instruction, so ~90 ms per real-mode program
 * (~11 programs/s, ~25k guest instructions/s) against ~9 ms in flat32 and ~5 ms in long mode. The
 * long run gives real mode 600 programs (~55 s) where the others get 2000 (~19 s and ~10 s).
 */
const LONG = Boolean(process.env.TSKVM_LONG);
const COUNT = { real: LONG ? 600 : 100, flat32: LONG ? 2000 : 100, long: LONG ? 2000 : 100 };

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
