// The block compiler against the interpreter: random 64-bit loops built from the forms jit-gen.ts
// generates inline (register and memory ALU/MOV/TEST/INC/DEC/LEA, PUSH/POP, Jcc) mixed with forms
// it leaves to their handlers (IMUL, shifts, SETcc, CMOVcc, ADC/SBB), run with every block
// compiled and with the interpreter alone under the same instruction budgets. After every `run`
// the two CPUs must agree on registers, RFLAGS, RIP, the retired count, the exit and memory, and on
// any exception (vector, error code, CR2). The interpreter itself is checked against the host CPU
// by the difftest; `npm run difftest -w @tskvm/cpu-x86 -- --jit` checks the compiled form there too.
import { describe, expect, it } from "vitest";
import {
  Cpu,
  enterFlatLongMode,
  FlatMemory,
  IdentityTranslator,
  InterceptKind,
  RunExit,
  TranslateFault,
  type TranslateResult,
} from "../src/index.js";
import { Rng } from "./oracle/build.js";

const CODE = 0x10000;
const DATA = 0x40000;
/** A page that faults (#PF, not present) and the first address past RAM (MMIO: reads all-ones). */
const HOLE = 0x60000;
const RAM = 0x80000;

/** Registers a random instruction may write: not RSP (4), r13 (index), r14 (base), r15 (counter). */
const FREE = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12];

function rex(w: boolean, reg: number, index: number, rm: number): number[] {
  const v = 0x40 | (w ? 8 : 0) | ((reg >> 3) << 2) | ((index >> 3) << 1) | (rm >> 3);
  return v === 0x40 ? [] : [v];
}

/** ModRM with a register operand. */
function rr(op: number[], w: boolean, reg: number, rm: number): number[] {
  return [...rex(w, reg, 0, rm), ...op, 0xc0 | ((reg & 7) << 3) | (rm & 7)];
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** ModRM + SIB + disp32 for [r14 + r13*scale + disp] (or [r14 + disp] without index). */
function mem(
  op: number[],
  w: boolean,
  reg: number,
  scale: number,
  disp: number,
  withIndex: boolean,
): number[] {
  if (!withIndex)
    return [...rex(w, reg, 0, 14), ...op, 0x80 | ((reg & 7) << 3) | 4, 0x24 | 0x02, ...le32(disp)];
  // SIB: scale, index r13 (101 + REX.X), base r14 (110 + REX.B)
  return [...rex(w, reg, 13, 14), ...op, 0x84 | ((reg & 7) << 3), (scale << 6) | (5 << 3) | 6, ...le32(disp)];
}

const EDGE = [0, 1, -1, 0x7fffffff, -0x80000000, 0x80, 0xff, 0xffff, 0x12345678];

function imm32(g: Rng): number {
  return g.below(3) === 0 ? g.pick(EDGE) : g.u32() | 0;
}

/** One random instruction (bytes). */
function randomInsn(g: Rng, memOk: boolean): number[] {
  const w = g.below(2) === 0;
  const d = g.pick(FREE);
  const s = g.below(16);
  const k = g.below(8);
  if (g.below(12) === 0) {
    // CALL rel32 to the next instruction, then POP the return address; or LEA/PUSH/RET to the
    // next instruction: block ends through CALL and RET (jit-gen.ts `genLastInline`).
    return g.below(2)
      ? [0xe8, 0, 0, 0, 0, ...(d >= 8 ? [0x41] : []), 0x58 | (d & 7)]
      : [0x48, 0x8d, 0x05, 2, 0, 0, 0, 0x50, 0xc3];
  }
  if (g.below(8) === 0) {
    // MOVZX/MOVSX r, r/m8 or r/m16 (0F B6/B7/BE/BF), MOVSXD (63), TEST r/m, imm32 (F7 /0)
    const which = g.below(4);
    if (which === 3) return [...rex(w, 0, 0, d), 0xf7, 0xc0 | (d & 7), ...le32(imm32(g))];
    if (which === 2) return rr([0x63], true, d, s);
    const op = [0x0f, g.pick([0xb6, 0xb7, 0xbe, 0xbf])];
    return memOk && g.below(2)
      ? mem(op, w, d, g.below(4), g.below(512) * 4 - 64, g.below(2) === 0)
      : rr(op, w, d, s);
  }
  switch (g.below(memOk ? 16 : 11)) {
    case 0:
      return rr([0x89], w, s, d); // mov r/m, r
    case 1:
      return rr([0x8b], w, d, s); // mov r, r/m
    case 2:
      return rr([0x01 + k * 8], w, s, d); // alu r/m, r (ADC/SBB included: handler)
    case 3:
      return g.below(2)
        ? [...rex(w, 0, 0, d), 0x83, 0xc0 | (k << 3) | (d & 7), g.below(256)]
        : [...rex(w, 0, 0, d), 0x81, 0xc0 | (k << 3) | (d & 7), ...le32(imm32(g))];
    case 4:
      return rr([0x85], w, s, d); // test
    case 5:
      return [...rex(w, 0, 0, d), 0xff, 0xc0 | (g.below(2) << 3) | (d & 7)]; // inc/dec
    case 6:
      return w && g.below(2)
        ? [...rex(true, 0, 0, d), 0xb8 | (d & 7), ...le32(imm32(g)), ...le32(imm32(g))]
        : [...rex(w, 0, 0, d), 0xb8 | (d & 7), ...le32(imm32(g))];
    case 7: {
      // lea d, [s + r13*scale + disp] through the generic SIB form
      const base = g.below(16);
      if ((base & 7) === 5 || (base & 7) === 4) return rr([0x89], w, s, d);
      const v = 0x40 | (w ? 8 : 0) | ((d >> 3) << 2) | 2 | (base >> 3);
      return [v, 0x8d, 0x84 | ((d & 7) << 3), (g.below(4) << 6) | (5 << 3) | (base & 7), ...le32(imm32(g))];
    }
    case 8:
      return rr([0x0f, 0x40 | g.below(16)], w, d, s); // cmovcc (handler)
    case 9:
      return [...rex(w, d, 0, s), 0x6b, 0xc0 | ((d & 7) << 3) | (s & 7), g.below(256)]; // imul (handler)
    case 10:
      return [...rex(w, 0, 0, d), 0xc1, 0xc0 | (g.pick([4, 5, 7, 0]) << 3) | (d & 7), g.below(64)]; // shifts (handler)
    case 11:
      return mem([0x8b], w, d, g.below(4), g.below(512) * 4 - 64, g.below(2) === 0); // load
    case 12:
      return mem([0x89], w, s === 4 ? d : s, g.below(4), g.below(512) * 4 - 64, g.below(2) === 0); // store
    case 13:
      return mem([0x03 + k * 8], w, d, g.below(4), g.below(512) * 4 - 64, g.below(2) === 0); // alu r, m
    case 14: {
      const r = g.pick(FREE);
      return [...(r >= 8 ? [0x41] : []), 0x50 | (r & 7), ...(d >= 8 ? [0x41] : []), 0x58 | (d & 7)]; // push r; pop d
    }
    default:
      return [...(d >= 8 ? [0x41] : []), 0x0f, 0x90 | g.below(16), 0xc0 | (d & 7)]; // setcc (handler)
  }
}

interface Program {
  code: number[];
  regs: Int32Array;
}

/**
 * loop: N random instructions; [add r14, 8]; dec r15; jnz loop (self-loop, one block when no
 * instruction in it ends a block) ... then a second loop ending in a conditional branch on random
 * flags, then HLT.
 */
function program(g: Rng): Program {
  const code: number[] = [];
  const n = 1 + g.below(12);
  const memOk = g.below(4) !== 0;
  for (let k = 0; k < n; k++) code.push(...randomInsn(g, memOk));
  if (g.below(2)) code.push(0x49, 0x83, 0xc6, 0x08); // add r14, 8: walks toward the hole / MMIO
  code.push(0x49, 0xff, 0xcf); // dec r15
  code.push(0x0f, 0x85, ...le32(-(code.length + 6))); // jnz loop
  // Second loop: random body, branch back on a random condition, bounded by r15 reloaded.
  const start2 = code.length;
  code.push(0x41, 0xbf, ...le32(3 + g.below(40))); // mov r15d, imm
  const body = code.length;
  for (let k = 0; k < 1 + g.below(6); k++) {
    if (g.below(3) === 0) {
      // if (cc) skip the next instruction: a branch inside the loop, so the loop spans blocks
      const skipped = randomInsn(g, memOk);
      code.push(0x70 | g.below(16), skipped.length, ...skipped);
    } else code.push(...randomInsn(g, memOk));
  }
  code.push(0x49, 0xff, 0xcf); // dec r15
  code.push(0x74, 4); // jz out (past the jcc and the jmp)
  code.push(0x70 | g.below(16), -(code.length + 2 - body) & 0xff); // jcc body (random condition)
  code.push(0xeb, -(code.length + 2 - start2 - 6) & 0xff); // jmp body: back when jcc falls through
  code.push(0xf4); // out: hlt
  const regs = new Int32Array(32);
  for (let r = 0; r < 32; r++) regs[r] = g.below(3) === 0 ? g.pick(EDGE) : g.u32() | 0;
  regs[8] = 0x30000; // RSP
  regs[9] = 0;
  regs[26] = g.below(8); // r13: index
  regs[27] = 0;
  const where = g.below(4);
  regs[28] =
    where === 0 ? HOLE - 0x200 : where === 1 ? RAM - 0x300 : where === 2 ? CODE + 0x800 : DATA + 0x100;
  regs[29] = 0;
  regs[30] = 1 + g.below(300); // r15: first loop count
  regs[31] = 0;
  return { code, regs };
}

interface Outcome {
  log: string[];
  mem: Uint8Array;
}

function runProgram(p: Program, jit: boolean, budgets: number[]): Outcome {
  const ram = new Uint8Array(RAM);
  ram.set(p.code, CODE);
  for (let a = DATA; a < DATA + 0x2000; a++) ram[a] = (a * 7 + 3) & 0xff;
  let fault = "";
  const cpu = new Cpu({
    memory: new FlatMemory(ram),
    translator: {
      translate(lo: number, hi: number, access: number, out: TranslateResult): boolean {
        if (hi !== 0 || (lo & ~0xfff) === HOLE) {
          out.fault = TranslateFault.PAGE_FAULT;
          out.errorCode = access & 1 ? 2 : 0;
          return false;
        }
        out.paddr = lo >>> 0;
        out.writable = true;
        out.user = true;
        out.nx = false;
        out.global = false;
        out.pageSize = 4096;
        out.fault = TranslateFault.NONE;
        return true;
      },
    },
    intercepts: {
      intercept(kind: number, a: number, b: number): boolean {
        if (kind !== InterceptKind.EXCEPTION) return false;
        fault = `#${a}(${b})`;
        return true;
      },
    },
    jit,
    jitThreshold: 1,
    jitStraightThreshold: 1,
  });
  enterFlatLongMode(cpu, 0);
  cpu.r.set(p.regs);
  cpu.ripLo = CODE;
  const log: string[] = [];
  for (const b of budgets) {
    const exit = cpu.run(b);
    log.push(
      `exit ${exit} ${fault} n=${cpu.executed} rip=${(cpu.ripLo >>> 0).toString(16)} fl=${cpu.getRflags().toString(16)} cr2=${(cpu.cr2Lo >>> 0).toString(16)} r=${Array.from(cpu.r, (v) => (v >>> 0).toString(16)).join(",")}`,
    );
    if (exit !== RunExit.BUDGET) break;
  }
  return { log, mem: ram };
}

describe("block compiler (jit-gen.ts) vs the interpreter", () => {
  it("random loops of inline and handler forms: same state after every run(), faults included", () => {
    const g = new Rng(20261124);
    let compared = 0;
    for (let t = 0; t < 400; t++) {
      const p = program(g);
      const budgets = Array.from({ length: 12 }, () =>
        g.below(3) === 0 ? 1 + g.below(7) : 20 + g.below(900),
      );
      const a = runProgram(p, true, budgets);
      const b = runProgram(p, false, budgets);
      const hex = p.code.map((x) => x.toString(16).padStart(2, "0")).join("");
      expect(a.log, `program ${t}: ${hex}`).toEqual(b.log);
      expect(Buffer.compare(a.mem, b.mem), `program ${t} memory: ${hex}`).toBe(0);
      compared += a.log.length;
    }
    expect(compared).toBeGreaterThan(400);
  });

  it("INC/DEC keep CF when the generated code cannot know the flags: concrete (after POPFQ) or lazy (an ADD in another block)", () => {
    // push imm32; popfq; dec r15; setc al; add ecx, ebx; jmp +0; dec r15; setc dl; hlt
    for (const cfIn of [0, 1])
      for (const [ecx, ebx] of [
        [0xffffffff, 1],
        [5, 6],
      ]) {
        const code = [0x68, ...le32(0x2 | cfIn | 0x40), 0x9d, 0x49, 0xff, 0xcf, 0x0f, 0x92, 0xc0];
        code.push(0x01, 0xd9, 0xeb, 0x00, 0x49, 0xff, 0xcf, 0x0f, 0x92, 0xc2, 0xf4);
        const regs = new Int32Array(32);
        regs[0] = 0x7700; // rax: al gets CF
        regs[2] = ecx! | 0; // rcx
        regs[4] = 0x7700; // rdx: dl gets CF
        regs[6] = ebx!; // rbx
        regs[8] = 0x30000; // rsp
        regs[30] = 10; // r15
        const jit = runProgram({ code, regs }, true, [100]);
        const interp = runProgram({ code, regs }, false, [100]);
        expect(jit.log).toEqual(interp.log);
        const r = jit.log[0]!.split(" r=")[1]!.split(",");
        expect(r[0]).toBe((0x7700 | cfIn).toString(16)); // CF from POPFQ, kept by DEC
        expect(r[4]).toBe((0x7700 | (ecx === 0xffffffff ? 1 : 0)).toString(16)); // CF from the ADD, kept by DEC
        expect(r[30]).toBe("8");
      }
  });

  it("a loop that stores into its own code page leaves at the store and runs the new code", () => {
    // loop: mov [r14], eax (r14 points at the two INCs below); dec r15; jnz loop; then the patched
    // bytes run. Self-modifying code must be seen on the next execution.
    const code = [
      0x41,
      0x89,
      0x06, // mov [r14], eax
      0x49,
      0xff,
      0xcf, // dec r15
      0x75,
      0xf8, // jnz loop
      0xff,
      0xc0,
      0xff,
      0xc0, // inc eax; inc eax (patched to four NOPs)
      0xf4,
    ];
    for (const jit of [true, false]) {
      const regs = new Int32Array(32);
      regs[0] = 0x90909090; // four NOPs replace the two INCs
      regs[28] = CODE + 8;
      regs[30] = 50;
      regs[8] = 0x30000;
      const o = runProgram({ code, regs }, jit, [10_000]);
      expect(o.log[0]).toMatch(/^exit 1 .* r=90909090,/); // HLT, EAX not incremented
      expect(Array.from(o.mem.subarray(CODE + 8, CODE + 12))).toEqual([0x90, 0x90, 0x90, 0x90]);
    }
    const a = runProgram(
      { code, regs: Object.assign(new Int32Array(32), { 0: 0x90909090, 28: CODE + 8, 30: 50, 8: 0x30000 }) },
      true,
      [7, 1000],
    );
    const b = runProgram(
      { code, regs: Object.assign(new Int32Array(32), { 0: 0x90909090, 28: CODE + 8, 30: 50, 8: 0x30000 }) },
      false,
      [7, 1000],
    );
    expect(a.log).toEqual(b.log);
  });
});

describe("code that rewrites itself as it runs", () => {
  it("a loop patching the immediate it executes next gets every new value; the page then runs uncached", () => {
    // loop: mov [rip+1], ecx (the imm32 of the next instruction); mov eax, imm32; add ebx, eax;
    //       dec ecx; jnz loop; hlt.  EBX = N + (N-1) + ... + 1.
    const code = [0x89, 0x0d, 1, 0, 0, 0, 0xb8, 0, 0, 0, 0, 0x01, 0xc3, 0xff, 0xc9, 0x75, 0xef, 0xf4];
    for (const jit of [true, false]) {
      const ram = new Uint8Array(RAM);
      ram.set(code, CODE);
      const cpu = new Cpu({
        memory: new FlatMemory(ram),
        translator: new IdentityTranslator(),
        jit,
        jitThreshold: 1,
        jitStraightThreshold: 1,
      });
      enterFlatLongMode(cpu, 0);
      cpu.ripLo = CODE;
      const n = 5000;
      cpu.r[2] = n; // ECX
      let exit: number;
      do exit = cpu.run(7919);
      while (exit === RunExit.BUDGET);
      expect(exit).toBe(RunExit.HLT);
      expect(cpu.r[6]! >>> 0).toBe((n * (n + 1)) / 2);
      expect(cpu.executed).toBe(n * 5 + 1);
      // Dropped and rebuilt 8 times, then decoded per instruction without caching the page.
      expect(cpu.codePages.has(CODE / 4096)).toBe(false);
    }
  });
});
