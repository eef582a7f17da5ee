#!/usr/bin/env node
// Boot A/B for interpreter changes: boots the bundled Linux through the vmm CLI with `--icount 0`
// (guest time counts retired instructions, so every boot runs the same guest instructions) until
// the guest prints TSKVM-BOOT-OK, alternating between this package's dist and another build of
// @tskvm/cpu-x86 (a worktree at an older commit, after `npx tsup` there). Prints the CPU time of
// the process's main thread at the marker (V8's compiler and GC threads excluded: on a shared
// machine the steadiest figure), then medians and minima.
// Run: cd packages/cpu-x86 && npx tsup && node bench/boot-ab.mjs --before /tmp/wt/packages/cpu-x86/dist
//      [--runs 10] [--cli ../vmm/dist/cli.js] [--guests DIR]   (build packages/vmm first)
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = new URL(".", import.meta.url).pathname;
const { values: opts } = parseArgs({
  options: {
    before: { type: "string" },
    runs: { type: "string", default: "10" },
    cli: { type: "string", default: join(here, "../../vmm/dist/cli.js") },
    guests: { type: "string" },
  },
});
if (!opts.before) throw new Error("--before: the dist directory of the build to compare with");
const runs = Number(opts.runs);
const builds = [
  ["after", resolve(here, "../dist")],
  ["before", resolve(opts.before)],
];

// A resolve hook that sends `@tskvm/cpu-x86` to the build under test.
const dir = mkdtempSync(join(tmpdir(), "boot-ab-"));
writeFileSync(
  join(dir, "hook.mjs"),
  `let dist;
export function initialize(d) { dist = d; }
export function resolve(spec, ctx, next) {
  if (spec === "@tskvm/cpu-x86") return { url: dist, shortCircuit: true };
  return next(spec, ctx);
}
`,
);
const registerFiles = builds.map(([name, dist]) => {
  const file = join(dir, `register-${name}.mjs`);
  const hook = JSON.stringify(pathToFileURL(join(dir, "hook.mjs")).href);
  const index = JSON.stringify(pathToFileURL(join(dist, "index.js")).href);
  writeFileSync(file, `import { register } from "node:module"; register(${hook}, { data: ${index} });\n`);
  return file;
});

/** utime + stime of a thread, seconds (/proc, clock ticks of 1/100 s). */
function threadCpu(pid) {
  const f = readFileSync(`/proc/${pid}/task/${pid}/stat`, "latin1");
  const s = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(s[11]) + Number(s[12])) / 100;
}

function boot(b) {
  return new Promise((done, fail) => {
    const env = { ...process.env };
    if (opts.guests) env.TSKVM_GUESTS_DIR = resolve(opts.guests);
    const child = spawn("node", ["--import", registerFiles[b], opts.cli, "run", "--icount", "0"], {
      stdio: ["ignore", "pipe", "inherit"],
      env,
    });
    let out = "";
    let seen = false;
    child.stdout.on("data", (d) => {
      out += d;
      if (!seen && out.includes("TSKVM-BOOT-OK")) {
        seen = true;
        const t = threadCpu(child.pid);
        child.kill("SIGKILL");
        done(t);
      }
    });
    child.on("exit", () => {
      if (!seen) fail(new Error(`no marker; output ends:\n${out.slice(-1000)}`));
    });
  });
}

const times = builds.map(() => []);
for (let r = 0; r < runs; r++) {
  const line = [];
  for (let b = 0; b < builds.length; b++) {
    const t = await boot(b);
    times[b].push(t);
    line.push(`${builds[b][0]} ${t.toFixed(2)} s`);
  }
  console.log(line.join("   "));
}
rmSync(dir, { recursive: true });
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
for (let b = 0; b < builds.length; b++) {
  console.log(
    `${builds[b][0]}: median ${median(times[b]).toFixed(2)} s, min ${Math.min(...times[b]).toFixed(2)} s`,
  );
}
console.log(`after / before: ${(median(times[0]) / median(times[1])).toFixed(3)} (medians)`);
