// Boot benchmark (issue 8, "Speed"): wall time from launch to the marker line the bundled guest's
// /init prints (TSKVM-BOOT-OK), for tskvm and, in the same run, QEMU with TCG on the same kernel
// and initramfs. Prints each median and the ratio.
//   npm run bench:boot -w @tskvm/vmm -- [--runs N] [--kernel PATH] [--initrd PATH] [--mem 128M]
//                                        [--tskvm-args="--icount 0"]
//   (= npx tsx packages/vmm/bench/boot.ts ...; it builds nothing: run `npx tsup` in packages/vmm first)
// Installs Debian's qemu-system-x86 when qemu-system-x86_64 is missing and we are root.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_APPEND, DEFAULT_MEM } from "../src/config.js";
import { MiB } from "../src/layout.js";
import { median, timeToMarker } from "./marker.js";

const here = dirname(fileURLToPath(import.meta.url));
const guests = resolve(here, "../../../guests");
const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    kernel: { type: "string", default: join(guests, "bzImage") },
    initrd: { type: "string", default: join(guests, "initramfs.cpio") },
    /** Both get the same `-m`: by default tskvm's default, which is also QEMU's (128M). */
    mem: { type: "string", default: `${DEFAULT_MEM / MiB}M` },
    /** More tskvm flags, space-separated (e.g. "--icount 0"). */
    "tskvm-args": { type: "string", default: "" },
  },
});
const runs = Number(opts.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs: a positive integer, not "${opts.runs}"`);
const { kernel, initrd, mem } = opts;
const tskvmArgs = opts["tskvm-args"].split(" ").filter((a) => a !== "");

function haveQemu(): boolean {
  return spawnSync("qemu-system-x86_64", ["--version"], { encoding: "utf8" }).status === 0;
}

function ensureQemu(): boolean {
  if (haveQemu()) return true;
  if (process.getuid?.() !== 0) {
    console.log("qemu-system-x86_64 missing: apt-get install qemu-system-x86 (as root)");
    return false;
  }
  console.log("installing qemu-system-x86 ...");
  spawnSync("apt-get", ["update"], { stdio: "ignore" });
  spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "qemu-system-x86"], {
    stdio: "ignore",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  return haveQemu();
}

async function series(name: string, cmd: string, argv: string[]): Promise<number | undefined> {
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await timeToMarker(cmd, argv);
    if (typeof r === "string") {
      console.log(`${name}: ${r}`);
      return undefined;
    }
    times.push(r.wallMs);
    cpu.push(r.cpuMs);
  }
  const med = median(times);
  const s3 = (ms: number) => (ms / 1000).toFixed(3);
  console.log(
    `${name}: median ${s3(med)} s over ${runs} runs [${times.map(s3).join(", ")}]; process CPU time median ${s3(median(cpu))} s [${cpu.map(s3).join(", ")}]`,
  );
  return med;
}

// The `tskvm` binary as users run it: its V8 code cache (src/code-cache.ts) is written by the first
// run that finds none, so that run is the slow one of the series.
const cli = resolve(here, "../dist/tskvm.js");
console.log(`kernel ${kernel}\ninitrd ${initrd}\nmem ${mem}, ${runs} runs each`);
let tskvm: number | undefined;
if (existsSync(cli)) {
  tskvm = await series("tskvm", process.execPath, [
    cli,
    "run",
    "--kernel",
    kernel,
    "--initrd",
    initrd,
    "--mem",
    mem,
    ...tskvmArgs,
  ]);
} else {
  console.log("tskvm: packages/vmm/dist/tskvm.js missing (run npx tsup)");
}
let qemu: number | undefined;
if (ensureQemu()) {
  qemu = await series("qemu-tcg", "qemu-system-x86_64", [
    "-accel",
    "tcg",
    "-m",
    mem,
    "-kernel",
    kernel,
    "-initrd",
    initrd,
    "-append",
    DEFAULT_APPEND,
    "-nographic",
    "-no-reboot",
    "-nic",
    "none",
  ]);
}
if (tskvm !== undefined && qemu !== undefined)
  console.log(`ratio tskvm/qemu-tcg: ${(tskvm / qemu).toFixed(2)}x`);
