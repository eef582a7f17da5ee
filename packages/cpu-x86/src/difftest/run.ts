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
}

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
  const mode = o.mode ?? 64;
  const templates = buildTemplates(mode);
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
      const diffs = compare(s, hostOut, emuOut);
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
