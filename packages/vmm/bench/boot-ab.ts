// A/B boot timing of two (or more) built trees, interleaved: launch -> the bundled guest's marker,
// as bench/boot.ts times tskvm, but alternating the trees run by run so that a slow minute on a
// shared machine hits all of them alike. Prints median, mean, min and quartiles of wall time.
//   npm run bench:boot-ab -w @tskvm/vmm -- [--runs N] [--icount] TREE[|node-flags[|ENV=V ...]] ...
//   (= npx tsx packages/vmm/bench/boot-ab.ts ...)
// TREE is a checkout (or a copy) whose packages/*/dist are built, e.g. /tmp/base (a copy of an
// older commit after `npx turbo run build`) and the current checkout `.`; `|--v8-pool-size=1`
// after a tree adds node flags for that series, and a second `|` environment variables (e.g.
// `.||TSKVM_CODE_CACHE=off`). A tree runs its `tskvm` binary (packages/vmm/dist/tskvm.js, with the
// V8 code cache), or its `dist/cli.js` if it predates that. The kernel and initramfs are this checkout's
// bundled guest (guests/), so the trees differ only in their code. packages/cpu-x86's
// bench/boot-ab.mjs is the narrower tool: it swaps only the cpu-x86 build and counts main-thread CPU
// under `--icount 0`; this one compares whole trees (any package, the CLI's threads) by wall time.
// `--icount` boots with `--icount 0` (guest time from retired instructions: every boot runs the same
// guest instructions) and compares the main thread's CPU time at the marker instead, the steadiest
// figure on a shared machine for a change to the emulator's own work (not for thread or timer
// changes, which it cannot see).
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_MEM } from "../src/config.js";
import { MiB } from "../src/layout.js";
import { median, timeToMarker } from "./marker.js";

/** One line on stderr and exit status 2: a bad argument is not a crash. */
function die(msg: string): never {
  process.stderr.write(`boot-ab: ${msg}\n`);
  process.exit(2);
}

const guests = resolve(dirname(fileURLToPath(import.meta.url)), "../../../guests");
let args: { values: { runs?: string; icount?: boolean }; positionals: string[] };
try {
  args = parseArgs({
    options: { runs: { type: "string", default: "15" }, icount: { type: "boolean", default: false } },
    allowPositionals: true,
  });
} catch (e) {
  die(e instanceof Error ? e.message : String(e));
}
const { values, positionals } = args;
const icount = values.icount === true;
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) die(`--runs: a positive integer, not "${values.runs}"`);
if (positionals.length === 0) die("name at least one built tree (e.g. . /tmp/base)");

const series = positionals.map((spec) => {
  const [tree = ".", flags = "", envs = ""] = spec.split("|");
  const bin = resolve(tree, "packages/vmm/dist/tskvm.js");
  const cli = existsSync(bin) ? bin : resolve(tree, "packages/vmm/dist/cli.js");
  if (!existsSync(cli)) die(`${cli} missing: build that tree first (npx turbo run build)`);
  const env: Record<string, string> = {};
  for (const kv of envs.split(" ").filter((e) => e !== "")) {
    const eq = kv.indexOf("=");
    if (eq < 1) die(`${spec}: "${kv}" is not NAME=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const argv = [...flags.split(" ").filter((f) => f !== ""), cli, "run"];
  argv.push(
    "--kernel",
    `${guests}/bzImage`,
    "--initrd",
    `${guests}/initramfs.cpio`,
    "--mem",
    `${DEFAULT_MEM / MiB}M`,
  );
  if (icount) argv.push("--icount", "0");
  return { spec, argv, env, ms: [] as number[] };
});

for (let k = 0; k < runs; k++)
  for (const s of series) {
    const r = await timeToMarker(process.execPath, s.argv, s.env);
    if (typeof r === "string") die(`${s.spec}: ${r}`);
    s.ms.push(icount ? r.mainCpuMs : r.wallMs);
  }

const f = (ms: number) => (ms / 1000).toFixed(3);
for (const s of series) {
  const xs = [...s.ms].sort((a, b) => a - b);
  const at = (q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `${s.spec}: ${icount ? "main-thread CPU" : "wall"} median ${f(median(xs))} s, mean ${f(mean)}, min ${f(xs[0]!)}, q1 ${f(at(0.25))}, q3 ${f(at(0.75))} (${runs} runs)`,
  );
}
