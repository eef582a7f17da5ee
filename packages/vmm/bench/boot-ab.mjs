#!/usr/bin/env node
// A/B boot timing of two (or more) built trees, interleaved: launch -> the bundled guest's marker
// (TSKVM-BOOT-OK), as bench/boot.ts times tskvm, but alternating the trees run by run so that a
// slow minute on a shared machine hits all of them alike. Prints median, mean, min and quartiles.
//   node packages/vmm/bench/boot-ab.mjs [--runs N] TREE[|node-flags] TREE[|node-flags] ...
// TREE is a checkout (or a copy) whose packages/*/dist are built, e.g. /tmp/base (a copy of an
// older commit after `npx turbo run build`) and the current checkout `.`; `|--v8-pool-size=1`
// after a tree adds node flags for that series. The kernel and initramfs are this checkout's
// bundled guest (guests/), so the trees differ only in their code.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** One line on stderr and exit status 2: a bad argument is not a crash. */
function die(msg) {
  process.stderr.write(`boot-ab: ${msg}\n`);
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
const guests = resolve(here, "../../../guests");
/** @type {{ values: { runs?: string }, positionals: string[] }} */
let args = { values: {}, positionals: [] };
try {
  args = parseArgs({ options: { runs: { type: "string", default: "15" } }, allowPositionals: true });
} catch (e) {
  die(e instanceof Error ? e.message : String(e));
}
const { values, positionals } = args;
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) die(`--runs: a positive integer, not "${values.runs}"`);
if (positionals.length === 0) die("name at least one built tree (e.g. . /tmp/base)");
const MARKER = "TSKVM-BOOT-OK";
const TIMEOUT_MS = 120_000;

const series = positionals.map((spec) => {
  const [tree = ".", flags = ""] = spec.split("|");
  const cli = resolve(tree, "packages/vmm/dist/cli.js");
  if (!existsSync(cli)) die(`${cli} missing: build that tree first (npx turbo run build)`);
  return { spec, cli, flags: flags.split(" ").filter((f) => f !== ""), ms: /** @type {number[]} */ ([]) };
});

/** One boot: ms from spawn to the marker on stdout. */
function boot(s) {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const argv = [
      ...s.flags,
      s.cli,
      "run",
      "--kernel",
      `${guests}/bzImage`,
      "--initrd",
      `${guests}/initramfs.cpio`,
    ];
    const child = spawn(process.execPath, [...argv, "--mem", "256M"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`${s.spec}: no marker within ${TIMEOUT_MS} ms`));
    }, TIMEOUT_MS);
    child.stdout.on("data", (d) => {
      out = (out + d.toString("latin1")).slice(-4096);
      if (!out.includes(MARKER)) return;
      clearTimeout(timer);
      child.kill("SIGKILL");
      done(performance.now() - t0);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (!out.includes(MARKER)) fail(new Error(`${s.spec}: exited ${code} before the marker`));
    });
  });
}

try {
  for (let k = 0; k < runs; k++) for (const s of series) s.ms.push(await boot(s));
} catch (e) {
  die(e instanceof Error ? e.message : String(e));
}
const at = (xs, q) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];
for (const s of series) {
  const xs = [...s.ms].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const f = (ms) => (ms / 1000).toFixed(3);
  console.log(
    `${s.spec}: median ${f(at(xs, 0.5))} s, mean ${f(mean)}, min ${f(xs[0])}, q1 ${f(at(xs, 0.25))}, q3 ${f(at(xs, 0.75))} (${runs} runs)`,
  );
}
