/**
 * Block compiler. In 64-bit mode a hot block and the hot blocks of its page that its branches reach
 * become generated code (`jit-gen.ts`: inline JS for the common forms, registers and flags in
 * locals). Otherwise, and for a 64-bit block with nothing the generator covers, the block becomes
 * one JS function that calls each instruction's handler from its own call site: every site then has
 * a single target, so V8 can inline the handlers into the block, and the per-instruction loop
 * bookkeeping (next-RIP arithmetic, dispatch through `insn.fn`) is specialised to the block's mode.
 * Semantics are exactly the interpreter's: the same handlers run in the same order with the same
 * state updates between them.
 *
 * Register-only instructions whose handlers can neither fault nor look at RIP (ALU, MOV, shifts...
 * on registers) skip the bookkeeping entirely: their RIP and retired-instruction updates are folded
 * into the next instruction that may fault, or the end of the block.
 *
 * Compiled code is dropped with its block (a write to the page invalidates the block; the
 * interpreter never calls a block whose `valid` is false).
 */
import { generateRegion64, NO_FAULT_ON_REGISTERS, type RegionBlock } from "./jit-gen.js";
import type { OpCpu, XInsn } from "./operands.js";

/**
 * A compiled block: runs the whole block from its first instruction. A block that branches back to
 * its own start may go round several times, never past `end` retired instructions.
 */
export type CompiledBlock = (c: OpCpu, end: number) => void;

/**
 * Executions of a block before it is compiled (the default of `CpuOptions.jitThreshold`). A compiled
 * block only pays off after V8 optimises it, and optimising a block with its handlers inlined costs
 * milliseconds of compiler time: booting Linux compiled ~7,800 blocks at a threshold of 64 and took
 * 2.5x the CPU time of the plain interpreter (25 s vs 9-10 s to the initramfs marker), while loops
 * that run millions of times still gain 20-35% (BENCHMARKS.md). So only blocks hot enough to repay
 * that compile are compiled.
 */
export const JIT_THRESHOLD = 20_000;

/**
 * How many times hotter than `JIT_THRESHOLD` a block must be to be compiled when the blocks compiled
 * with it have no loop (`CpuOptions.jitStraightThreshold`). Until V8 optimises it, a generated
 * function runs 2-4x slower than the interpreter (it starts in V8's bytecode interpreter, where the
 * inline TLB and flag code is long), and a function without a loop only gets there through many
 * calls. A Linux boot is full of such code that is hot for a moment and then never again: helpers
 * called once per struct page (__init_single_page, free_page_is_bad, __free_pages_ok: 40-65k calls
 * of 12-21 instructions each, over ~100 ms) were compiled at 20,000 calls and ran 12k calls at
 * 100-140 ns per instruction before V8 optimised them, then lost that to a deoptimisation. A loop
 * region is optimised by V8 within one long call (on-stack replacement), so loops keep the low
 * threshold. Code that stays hot, such as a user-mode loop that leaves its region on every
 * iteration, is still compiled, after 160,000 runs instead of 20,000 (BENCHMARKS.md, vmm,
 * session 8).
 */
export const JIT_STRAIGHT_FACTOR = 8;

function simple(i: XInsn): boolean {
  return !i.isMem && NO_FAULT_ON_REGISTERS.has(i.fn);
}

/**
 * Builds the function for `insns` decoded in `mode`. Each instruction that may fault: set curInsn
 * and next RIP, run its handler, commit RIP, count it, and leave early when the handler ended the
 * block.
 */
export function compileBlock(
  region: readonly RegionBlock[],
  mode: 16 | 32 | 64,
  tlbMask: number,
): CompiledBlock {
  if (mode === 64) {
    const gen = generateRegion64(region, tlbMask);
    if (gen !== null) return gen;
  }
  return compileCalls(region[0]!.insns, mode);
}

/** The handler-call form: one call per instruction, with the interpreter's bookkeeping between. */
function compileCalls(insns: readonly XInsn[], mode: 16 | 32 | 64): CompiledBlock {
  const params: string[] = [];
  const args: unknown[] = [];
  let body = "";
  let pendBytes = 0;
  let pendCount = 0;
  const advance = (bytes: number): string => {
    if (mode === 64) {
      return `n = (c.ripLo >>> 0) + ${bytes}; c.ripLo = n | 0; if (n > 4294967295) c.ripHi = (c.ripHi + 1) | 0;\n`;
    }
    return mode === 32
      ? `c.ripLo = (c.ripLo + ${bytes}) | 0;\n`
      : `c.ripLo = (c.ripLo + ${bytes}) & 0xffff;\n`;
  };
  const flush = (): void => {
    if (pendCount === 0) return;
    body += advance(pendBytes);
    body += `c.executed += ${pendCount};\n`;
    pendBytes = 0;
    pendCount = 0;
  };
  for (let k = 0; k < insns.length; k++) {
    const i = insns[k]!;
    params.push(`h${k}`, `i${k}`);
    args.push(i.fn, i);
    if (simple(i)) {
      body += `h${k}(c, i${k});\n`;
      pendBytes += i.length;
      pendCount++;
      continue;
    }
    flush();
    body += `c.curInsn = i${k};\n`;
    if (mode === 64) {
      body += `n = (c.ripLo >>> 0) + ${i.length}; c.nipLo = n | 0; c.nipHi = n > 4294967295 ? (c.ripHi + 1) | 0 : c.ripHi;\n`;
    } else if (mode === 32) {
      body += `c.nipLo = (c.ripLo + ${i.length}) | 0; c.nipHi = 0;\n`;
    } else {
      body += `c.nipLo = (c.ripLo + ${i.length}) & 0xffff; c.nipHi = 0;\n`;
    }
    body += `h${k}(c, i${k});\nc.ripLo = c.nipLo; c.ripHi = c.nipHi; c.executed++;\n`;
    if (k + 1 < insns.length) body += "if (c.stopBlock || c.codeInvalidated) return;\n";
  }
  flush();
  const factory = new Function(...params, `"use strict"; return function block(c) { let n = 0;\n${body}};`);
  return factory(...args) as CompiledBlock;
}
