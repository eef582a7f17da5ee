/**
 * Block compiler: a hot decoded block becomes one JS function that calls each instruction's handler
 * from its own call site. Every site then has a single target, so V8 can inline the handlers into
 * the block, and the per-instruction loop bookkeeping (next-RIP arithmetic, dispatch through
 * `insn.fn`) is specialised to the block's mode. Semantics are exactly the interpreter's: the same
 * handlers run in the same order with the same state updates between them.
 *
 * Compiled code is dropped with its block (a write to the page invalidates the block; the
 * interpreter never calls a block whose `valid` is false).
 */
import type { OpCpu, XInsn } from "./operands.js";

/** A compiled block: runs the whole block from its first instruction. */
export type CompiledBlock = (c: OpCpu) => void;

/** Executions of a block before it is compiled. */
export const JIT_THRESHOLD = 64;

/**
 * Builds the function for `insns` decoded in `mode`. Each instruction: set curInsn and next RIP,
 * run its handler, commit RIP, count it, and leave early when the handler ended the block.
 */
export function compileBlock(insns: readonly XInsn[], mode: 16 | 32 | 64): CompiledBlock {
  const params: string[] = [];
  const args: unknown[] = [];
  let body = "";
  for (let k = 0; k < insns.length; k++) {
    const i = insns[k]!;
    params.push(`h${k}`, `i${k}`);
    args.push(i.fn, i);
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
  const factory = new Function(...params, `"use strict"; return function block(c) { let n = 0;\n${body}};`);
  return factory(...args) as CompiledBlock;
}
