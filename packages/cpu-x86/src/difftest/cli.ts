#!/usr/bin/env node
// difftest: runs generated x86-64 snippets on the host CPU (native harness) and on cpu-x86, and reports
// the first differences. Usage: npm run difftest -w @tskvm/cpu-x86 -- --seed S --count N [--show K] [--mode 16|32|64] [--jit]
// (--jit: every block runs compiled by the block compiler, checked against the host the same way;
// --inline-forms: only the one-byte forms the code generator emits inline)
import { runDifftest } from "./run.js";

function arg(name: string, def: number): number {
  const k = process.argv.indexOf(`--${name}`);
  if (k < 0) return def;
  const v = Number(process.argv[k + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`difftest: --${name} needs a non-negative integer`);
    process.exit(2);
  }
  return v;
}

const seed = arg("seed", 1);
const count = arg("count", 10000);
const show = arg("show", 10);
const mode = arg("mode", 64);
if (mode !== 16 && mode !== 32 && mode !== 64) {
  console.error("difftest: --mode is 16, 32 or 64");
  process.exit(2);
}
const t0 = performance.now();
const jit = process.argv.includes("--jit");
const inlineForms = process.argv.includes("--inline-forms");
const r = runDifftest({ seed, count, keep: show, mode, jit, inlineForms });
for (const f of r.failures) {
  console.log(`#${f.index} ${f.snippet}`);
  for (const d of f.diffs) console.log(`    ${d}`);
}
if (r.byOp.size > 0) {
  const top = [...r.byOp.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20);
  console.log(`failures by op: ${top.map(([n, c]) => `${n}=${c}`).join(" ")}`);
}
const secs = (performance.now() - t0) / 1000;
console.log(
  `seed ${seed}, mode ${mode}${jit ? ", compiled" : ""}, ${count} snippets in ${secs.toFixed(1)} s`,
);
console.log(`${r.passed} passed, ${r.failed} failed`);
process.exit(r.failed === 0 ? 0 : 1);
