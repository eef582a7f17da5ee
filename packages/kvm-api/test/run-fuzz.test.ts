/**
 * Guest code is hostile: random bytes run through KVM_RUN in real mode, 32-bit protected mode and
 * long mode (identity-mapped) must always end in a `kvm_run` exit, never
 * in a JS exception out of `run()` and never in a hang. `TSKVM_LONG=1` runs 20x more programs.
 */
import { describe, expect, it } from "vitest";
import type { KvmExit } from "../src/index.js";
import { flat32, machine, realMode } from "./run-helpers.js";

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

const COUNT = process.env.TSKVM_LONG ? 2000 : 100;

describe("KVM_RUN on random guest code", () => {
  for (const mode of ["real", "flat32", "long"] as const) {
    it(`${mode}: every run() returns an exit`, () => {
      const rnd = prng(mode.length * 7919);
      const kinds = new Map<string, number>();
      for (let p = 0; p < COUNT; p++) {
        const m = machine({
          memSize: 1 << 20,
          irqchip: p % 2 === 0,
          backend: { maxRunInstructions: 500, maxRunMs: 5 },
        });
        for (let i = 0; i < 0x3000; i++) m.ram[0x1000 + i] = (rnd() * 256) | 0;
        if (mode === "real") realMode(m, 0x1000);
        else {
          flat32(m, 0x1000);
          if (mode === "long") {
            // Identity-mapped first 2 MiB (PML4 0x80000 -> PDPT 0x81000 -> PD 0x82000, one 2 MiB page).
            const dv = new DataView(m.ram.buffer);
            dv.setUint32(0x80000, 0x81003, true);
            dv.setUint32(0x81000, 0x82003, true);
            dv.setUint32(0x82000, 0x83, true);
            const s = m.vcpu.getSregs();
            m.vcpu.setSregs({
              ...s,
              cr0: 0x80000011n,
              cr3: 0x80000n,
              cr4: 0x20n,
              efer: 0x500n,
              cs: { ...s.cs, l: 1, db: 0 },
            });
          }
        }
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
