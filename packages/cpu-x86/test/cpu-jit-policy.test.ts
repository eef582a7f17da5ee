// When blocks are compiled (cpu.ts `compile`, jit.ts JIT_STRAIGHT_FACTOR): a block whose region
// loops at `jitThreshold` executions, a block whose region has no loop at `jitStraightThreshold`;
// a SYSCALL/SYSRET round trip inside the page is a loop. The generated code itself is checked
// against the interpreter in cpu-jit.test.ts and cpu-jit-syscall.test.ts.
import { describe, expect, it } from "vitest";
import {
  type Block,
  Cpu,
  type CpuOptions,
  enterFlatLongMode,
  FlatMemory,
  IdentityTranslator,
  JIT_STRAIGHT_FACTOR,
  JIT_THRESHOLD,
  RunExit,
} from "../src/index.js";

const CODE = 0x10000;
const FUNC = 0x12000; // another page: a call there leaves the caller's region
const KERNEL = 0x10800; // SYSCALL entry, in CODE's page
/** `msr64` slots (state.ts M64: star 0, lstar 1, fmask 3; lo at 2i, hi at 2i + 1). */
const STAR_HI = 1;
const LSTAR = 2;

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

// mov ecx, n; l: add eax, 1; add ebx, eax; dec ecx; jnz l; hlt  (one block looping on itself)
const selfLoop = (n: number) => [
  0xb9,
  ...le32(n),
  0x83,
  0xc0,
  0x01,
  0x01,
  0xc3,
  0xff,
  0xc9,
  0x75,
  0xf7,
  0xf4,
];

// mov ecx, n; l: call FUNC; dec ecx; jnz l; hlt  with FUNC: add eax, 1; ret (every iteration
// leaves through the call, so no region has a cycle)
function callLoop(n: number): number[] {
  const call = CODE + 5; // the CALL's address
  return [0xb9, ...le32(n), 0xe8, ...le32(FUNC - (call + 5)), 0xff, 0xc9, 0x75, 0xf7, 0xf4];
}

// mov edx, n; l: syscall; dec edx; jnz l; hlt  with KERNEL: add eax, 1; sysretq (SYSCALL keeps the
// return RIP in RCX, so the count is in EDX)
const sysLoop = (n: number) => [0xba, ...le32(n), 0x0f, 0x05, 0xff, 0xca, 0x75, 0xfa, 0xf4];
const SYS_KERNEL = [0x83, 0xc0, 0x01, 0x48, 0x0f, 0x07];

function newCpu(opts: Partial<CpuOptions>, code: number[]): { cpu: Cpu; ram: Uint8Array } {
  const ram = new Uint8Array(0x40000);
  ram.set(code, CODE);
  ram.set([0x83, 0xc0, 0x01, 0xc3], FUNC); // add eax, 1; ret
  ram.set(SYS_KERNEL, KERNEL);
  const cpu = new Cpu({ memory: new FlatMemory(ram), translator: new IdentityTranslator(), ...opts });
  enterFlatLongMode(cpu, 0);
  cpu.ripLo = CODE;
  cpu.r[8] = 0x30000; // rsp
  return { cpu, ram };
}

/** Compiled blocks now cached, by linear address (the identity map: physical). */
function compiled(cpu: Cpu): number[] {
  const out: number[] = [];
  for (const [pfn, page] of cpu.codePages)
    for (const [key, b] of page.blocks) if ((b as Block).compiled !== null) out.push(pfn * 4096 + (key >> 2));
  return out.sort((a, b) => a - b);
}

function runToEnd(cpu: Cpu): RunExit {
  for (let k = 0; k < 10; k++) {
    const exit = cpu.run(100_000);
    if (exit !== RunExit.BUDGET) return exit;
  }
  throw new Error("the program did not end");
}

function runToHlt(cpu: Cpu): void {
  expect(runToEnd(cpu)).toBe(RunExit.HLT);
}

describe("JIT thresholds", () => {
  it("default: a straight region waits JIT_STRAIGHT_FACTOR times longer; explicit values are kept, never below jitThreshold", () => {
    const d = newCpu({}, [0xf4]).cpu;
    expect(d.jitThreshold).toBe(JIT_THRESHOLD);
    expect(d.jitStraightThreshold).toBe(JIT_THRESHOLD * JIT_STRAIGHT_FACTOR);
    expect(JIT_STRAIGHT_FACTOR).toBeGreaterThan(1);
    expect(newCpu({ jitThreshold: 10 }, [0xf4]).cpu.jitStraightThreshold).toBe(10 * JIT_STRAIGHT_FACTOR);
    expect(newCpu({ jitThreshold: 10, jitStraightThreshold: 25 }, [0xf4]).cpu.jitStraightThreshold).toBe(25);
    expect(newCpu({ jitThreshold: 10, jitStraightThreshold: 3 }, [0xf4]).cpu.jitStraightThreshold).toBe(10);
  });

  it("a block looping on itself is compiled at jitThreshold", () => {
    const { cpu } = newCpu({ jitThreshold: 8, jitStraightThreshold: 1000 }, selfLoop(7));
    runToHlt(cpu);
    expect(compiled(cpu)).toEqual([]);
    const again = newCpu({ jitThreshold: 8, jitStraightThreshold: 1000 }, selfLoop(100));
    runToHlt(again.cpu);
    expect(compiled(again.cpu)).toEqual([CODE + 5]);
    // Same result either way: 100 iterations of EAX += 1.
    expect(again.cpu.r[0]).toBe(100);
  });

  it("blocks that leave their region on every run wait for jitStraightThreshold", () => {
    const few = newCpu({ jitThreshold: 8, jitStraightThreshold: 64 }, callLoop(50));
    runToHlt(few.cpu);
    expect(few.cpu.r[0]).toBe(50);
    expect(compiled(few.cpu)).toEqual([]);
    const many = newCpu({ jitThreshold: 8, jitStraightThreshold: 64 }, callLoop(80));
    runToHlt(many.cpu);
    expect(many.cpu.r[0]).toBe(80);
    // The return path (DEC/JNZ; its region takes in the CALL block) and FUNC ran 64 times by the
    // 64th iteration; the CALL block no longer runs on its own after that.
    expect(compiled(many.cpu)).toEqual([CODE + 10, FUNC]);
    // With both thresholds equal, everything is compiled at the first.
    const eager = newCpu({ jitThreshold: 8, jitStraightThreshold: 8 }, callLoop(10));
    runToHlt(eager.cpu);
    expect(compiled(eager.cpu)).toEqual([CODE + 10, FUNC]);
  });

  it("a SYSCALL/SYSRET round trip into the same page is a loop", () => {
    const { cpu } = newCpu({ jitThreshold: 8, jitStraightThreshold: 1000 }, sysLoop(30));
    enterFlatLongMode(cpu, 3);
    cpu.ripLo = CODE;
    cpu.r[8] = 0x30000;
    cpu.msr64[STAR_HI] = (0x10 << 16) | 0x08; // SYSCALL CS 0x08, SS 0x10; SYSRET CS 0x23, SS 0x1b
    cpu.msr64[LSTAR] = KERNEL;
    cpu.efer |= 1; // SCE
    // HLT at CPL 3 is #GP; with no IDT that ends in a shutdown, after the loop.
    expect(runToEnd(cpu)).toBe(RunExit.SHUTDOWN);
    expect(cpu.r[0]).toBe(30);
    expect(compiled(cpu).length).toBeGreaterThan(0);
  });
});
