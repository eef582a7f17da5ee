// Cold and warm boots in one process: boots the bundled guest to its marker line twice (a fresh VM
// each time, `createVm` included), so the second boot runs on the JavaScript that V8 has already
// optimised during the first. The difference is what V8's warm-up costs a boot of the CLI.
//   cd packages/vmm && npx tsup && npx tsx bench/boot-twice.ts [--icount] [--runs N]
// `--icount`: guest time from retired instructions (`--icount 0`), so both boots run the same guest
// instructions. Prints each boot's wall time and the main thread's CPU time (Linux: from
// /proc/self/task/<pid>/stat; V8's compiler and GC threads left out).
import { parseArgs } from "node:util";
import { bundledGuest, createVm, parseVmOptions } from "../dist/index.js";
import { cpuMs, MARKER } from "./marker.js";

let values: { icount?: boolean; runs?: string };
try {
  ({ values } = parseArgs({
    options: { icount: { type: "boolean", default: false }, runs: { type: "string", default: "1" } },
  }));
} catch (e) {
  process.stderr.write(`boot-twice: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`boot-twice: --runs: a positive integer, not "${values.runs}"\n`);
  process.exit(2);
}

const mainCpuMs = () => cpuMs(process.pid, true);

/** One boot to the marker; resolves to [wall ms, main-thread CPU ms]. */
async function boot(): Promise<[number, number]> {
  const t0 = performance.now();
  const c0 = mainCpuMs();
  const options = parseVmOptions(values.icount ? { icount: 0 } : {}, bundledGuest());
  let tail = "";
  let done: (r: [number, number]) => void = () => {};
  const reached = new Promise<[number, number]>((resolve) => {
    done = resolve;
  });
  const vm = await createVm(options, {
    onSerial: (b: number) => {
      // A rolling window: a growing string would be the largest allocation of the run.
      tail = (tail + String.fromCharCode(b)).slice(-MARKER.length);
      if (tail === MARKER) done([performance.now() - t0, mainCpuMs() - c0]);
    },
  });
  const run = vm.run();
  const r = await reached;
  await vm.control({ kind: "stop" });
  await run;
  vm.close();
  return r;
}

for (let k = 0; k < runs; k++) {
  const [w1, c1] = await boot();
  const [w2, c2] = await boot();
  console.log(
    `first boot ${w1.toFixed(0)} ms (main thread ${c1} ms), second boot ${w2.toFixed(0)} ms (main thread ${c2} ms)`,
  );
}
process.exit(0);
