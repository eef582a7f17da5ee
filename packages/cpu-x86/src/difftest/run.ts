/**
 * One differential run: generate `count` snippets from `seed`, run them natively in batches and on
 * cpu-x86, compare. Used by the CLI (`npm run difftest`) and the vitest sample.
 */
import { Insn } from "../decoder/insn.js";
import { compare, describe } from "./compare.js";
import { EmulatedRunner } from "./emulated.js";
import { buildTemplates, generate, Rng } from "./generate.js";
import { buildHarness, runNative } from "./native.js";
import { type DiffMode, decodeOut, FX, newOut, OUT_SIZE, type SnippetIn, WIN } from "./records.js";
import { hostVendor } from "./vendor.js";

export interface DifftestFailure {
  index: number;
  snippet: string;
  diffs: string[];
}

export interface DifftestResult {
  passed: number;
  failed: number;
  failures: DifftestFailure[];
  /** Failures per op name. */
  byOp: Map<string, number>;
}

export interface DifftestOptions {
  seed: number;
  count: number;
  batch?: number;
  /** Keep at most this many failures with details. */
  keep?: number;
  /** 64 (default), 32 (compatibility mode) or 16 (16-bit code segment in compatibility mode). */
  mode?: DiffMode;
  /** Run every block through the block compiler (jit.ts, jit-gen.ts) instead of the interpreter. */
  jit?: boolean;
  /** Only the opcodes jit-gen.ts emits inline (MOV, ALU, TEST, INC/DEC, LEA, shifts, MOVZX/MOVSX, SETcc, CMOVcc, PUSH/POP, Jcc...). */
  inlineForms?: boolean;
}

/** One-byte opcodes of the forms the code generator covers (jit-gen.ts `genInline` and block ends). */
const INLINE_OPCODES = new Set<number>([
  0x01,
  0x03,
  0x09,
  0x0b,
  0x21,
  0x23,
  0x29,
  0x2b,
  0x31,
  0x33,
  0x39,
  0x3b,
  0x05,
  0x0d,
  0x25,
  0x2d,
  0x35,
  0x3d,
  0x81,
  0x83,
  0x85,
  0x89,
  0x8b,
  0x8d,
  0xc7,
  0xc1,
  0xd1,
  0xff,
  0xe8,
  0xc3,
  0xeb,
  0xe9,
  ...Array.from({ length: 16 }, (_, k) => 0x50 + k),
  ...Array.from({ length: 8 }, (_, k) => 0xb8 + k),
  ...Array.from({ length: 16 }, (_, k) => 0x70 + k),
]);

/** Two-byte (0F) opcodes of the forms it covers: MOVZX/MOVSX, SETcc, CMOVcc. */
const INLINE_OPCODES_0F = new Set<number>([
  0xb6,
  0xb7,
  0xbe,
  0xbf,
  ...Array.from({ length: 16 }, (_, k) => 0x90 + k),
  ...Array.from({ length: 16 }, (_, k) => 0x40 + k),
]);

function newSnippet(): SnippetIn {
  return {
    regs: new Int32Array(32),
    rflags: 0x202,
    xmm: new Uint32Array(64),
    mxcsr: 0x1f80,
    code: new Uint8Array(0),
    mem: new Uint8Array(WIN),
    fx: new Uint8Array(FX),
    op: 0,
    mode: 64,
  };
}

export function runDifftest(o: DifftestOptions): DifftestResult {
  const bin = buildHarness();
  const vendor = hostVendor();
  const mode = o.mode ?? 64;
  const all = buildTemplates(mode);
  const templates = o.inlineForms
    ? all.filter(
        (t) =>
          (t.map === 0 && INLINE_OPCODES.has(t.opcode)) ||
          (t.map === 1 && t.pfx === 0 && INLINE_OPCODES_0F.has(t.opcode)),
      )
    : all;
  const rng = new Rng(o.seed);
  const insn = new Insn();
  const emu = new EmulatedRunner(o.jit ?? false);
  const batch = o.batch ?? 5000;
  const keep = o.keep ?? 20;
  const res: DifftestResult = { passed: 0, failed: 0, failures: [], byOp: new Map() };
  const hostOut = newOut();
  const emuOut = newOut();
  let index = 0;
  let generated = 0;
  while (generated < o.count) {
    const n = Math.min(batch, o.count - generated);
    const snippets: SnippetIn[] = [];
    while (snippets.length < n) {
      const s = newSnippet();
      if (generate(rng, templates, index++, s, insn, mode)) snippets.push(s);
    }
    const out = runNative(bin, snippets);
    for (let k = 0; k < n; k++) {
      const s = snippets[k]!;
      decodeOut(out, k * OUT_SIZE, hostOut);
      emu.run(s, emuOut);
      const diffs = compare(s, hostOut, emuOut, vendor);
      if (diffs.length === 0) res.passed++;
      else {
        res.failed++;
        const name = describe(s).split(" ")[0]!;
        res.byOp.set(name, (res.byOp.get(name) ?? 0) + 1);
        if (res.failures.length < keep)
          res.failures.push({ index: generated + k, snippet: describe(s), diffs });
      }
    }
    generated += n;
  }
  return res;
}
