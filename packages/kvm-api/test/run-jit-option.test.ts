/**
 * `VmxBackendOptions.jitThreshold` reaches the CPU: a guest loop's block is compiled after that many
 * runs, and with the default (cpu-x86's JIT_THRESHOLD, 20,000) a 200-turn loop stays interpreted.
 */
import { expect, it } from "vitest";
import { machine, realMode, runLog } from "./run-helpers.js";

// biome-ignore format: one instruction per line
const LOOP = [
  0xb9, 0xc8, 0x00, // mov cx, 200
  0x40, //             L: inc ax
  0xe2, 0xfd, //       loop L
  0xf4, //             hlt
];

function compiledBlocks(jitThreshold?: number): { compiled: number; ax: number } {
  const m = machine(jitThreshold === undefined ? {} : { backend: { jitThreshold } });
  m.ram.set(LOOP, 0x1000);
  realMode(m, 0x1000);
  expect(runLog(m)).toEqual(["hlt"]);
  let compiled = 0;
  for (const page of m.backend.cpu.codePages.values())
    for (const b of page.blocks.values())
      if ((b as unknown as { compiled: unknown }).compiled !== null) compiled++;
  return { compiled, ax: Number(m.vcpu.getRegs().rax & 0xffffn) };
}

it("jitThreshold: the loop is compiled after that many runs, and runs the same", () => {
  expect(compiledBlocks(16)).toEqual({ compiled: 1, ax: 200 });
  expect(compiledBlocks()).toEqual({ compiled: 0, ax: 200 });
});

it("jitThreshold sets the CPU's thresholds (loops, and straight code JIT_STRAIGHT_FACTOR later)", () => {
  const m = machine({ backend: { jitThreshold: 1000 } });
  expect(m.backend.cpu.jitThreshold).toBe(1000);
  expect(m.backend.cpu.jitStraightThreshold).toBeGreaterThan(1000);
});
