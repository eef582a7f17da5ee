/**
 * Throughput of the KVM_RUN engine, printed (never asserted): `TSKVM_BENCH=1 npx vitest run
 * test/run-perf.test.ts`. Figures go to BENCHMARKS.md ("kvm-api: KVM_RUN engine").
 */
import { describe, expect, it } from "vitest";
import { machine, realMode } from "./run-helpers.js";

const time = (f: () => void): number => {
  const a = performance.now();
  f();
  return performance.now() - a;
};

describe.skipIf(!process.env.TSKVM_BENCH)("KVM_RUN engine throughput (TSKVM_BENCH=1)", () => {
  it("guest loop, in-kernel and userspace exit round trips", () => {
    // mov ecx, N; l: dec ecx; jnz l; hlt (real mode, 32-bit operands)
    const n = 20_000_000;
    const loop = machine({ backend: { maxRunMs: 60_000, maxRunInstructions: 1e12 } });
    loop.ram.set(
      [0x66, 0xb9, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24, 0x66, 0x49, 0x75, 0xfc, 0xf4],
      0x1000,
    );
    realMode(loop, 0x1000);
    const loopMs = time(() => {
      while (loop.vcpu.run().kind === "intr");
    });
    // mov ecx, N; l: in al, 0x40 (PIT, in kernel); dec ecx; jnz l; out 0x10, al; hlt
    const k = 20_000;
    const kern = machine({ irqchip: true, pit: true, backend: { maxRunMs: 60_000 } });
    kern.ram.set(
      [0x66, 0xb9, k & 0xff, k >> 8, 0, 0, 0xe4, 0x40, 0x66, 0x49, 0x75, 0xfa, 0xe6, 0x10, 0xf4],
      0x1000,
    );
    realMode(kern, 0x1000);
    const kernMs = time(() => {
      while (kern.vcpu.run().kind === "intr");
    });
    // l: out 0x10, al; jmp l (every run() is one userspace exit)
    const u = 20_000;
    const user = machine();
    user.ram.set([0xe6, 0x10, 0xeb, 0xfc], 0x1000);
    realMode(user, 0x1000);
    const userMs = time(() => {
      for (let i = 0; i < u; i++) user.vcpu.run();
    });
    console.log(
      [
        `guest loop: ${((2 * n) / loopMs / 1000).toFixed(1)} MIPS`,
        `in-kernel I/O exit round trip: ${((kernMs * 1000) / k).toFixed(1)} us (${Math.round((k / kernMs) * 1000)}/s)`,
        `userspace I/O exit round trip: ${((userMs * 1000) / u).toFixed(1)} us (${Math.round((u / userMs) * 1000)}/s)`,
      ].join("\n"),
    );
    expect(kern.backend.exitCounts.get(30)).toBeGreaterThanOrEqual(k);
  }, 300_000);
});
