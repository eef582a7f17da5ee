// Boot benchmark (issue 8, "Speed"): wall time from launch to the marker line the bundled guest's
// /init prints (TSKVM-BOOT-OK), for tskvm and, in the same run, QEMU with TCG on the same kernel
// and initramfs, their runs alternating. Prints each median and the ratio.
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

interface Monitor {
  name: string;
  cmd: string;
  argv: string[];
  times: number[];
  cpu: number[];
  /** Why a run failed; the monitor then runs no more. */
  failed?: string;
}

// The `tskvm` binary as users run it: its V8 code cache (src/code-cache.ts) is written by the first
// run that finds none, so that run is the slow one of the series.
const cli = resolve(here, "../dist/tskvm.js");
console.log(`kernel ${kernel}\ninitrd ${initrd}\nmem ${mem}, ${runs} runs each, alternating`);
const monitors: Monitor[] = [];
if (existsSync(cli)) {
  monitors.push({
    name: "tskvm",
    cmd: process.execPath,
    argv: [cli, "run", "--kernel", kernel, "--initrd", initrd, "--mem", mem, ...tskvmArgs],
    times: [],
    cpu: [],
  });
} else {
  console.log("tskvm: packages/vmm/dist/tskvm.js missing (run npx tsup)");
}
if (ensureQemu()) {
  monitors.push({
    name: "qemu-tcg",
    cmd: "qemu-system-x86_64",
    argv: [
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
    ],
    times: [],
    cpu: [],
  });
}

// Run by run, each monitor in turn: a slow minute on a shared machine slows both alike, where
// whole series one after the other would put it into one median only.
for (let i = 0; i < runs; i++) {
  for (const m of monitors) {
    if (m.failed !== undefined) continue;
    const r = await timeToMarker(m.cmd, m.argv);
    if (typeof r === "string") {
      m.failed = r;
      continue;
    }
    m.times.push(r.wallMs);
    m.cpu.push(r.cpuMs);
  }
}

const medians = new Map<string, number>();
const s3 = (ms: number) => (ms / 1000).toFixed(3);
for (const m of monitors) {
  if (m.failed !== undefined) {
    console.log(`${m.name}: ${m.failed}`);
    continue;
  }
  const med = median(m.times);
  medians.set(m.name, med);
  console.log(
    `${m.name}: median ${s3(med)} s over ${runs} runs [${m.times.map(s3).join(", ")}]; process CPU time median ${s3(median(m.cpu))} s [${m.cpu.map(s3).join(", ")}]`,
  );
}
const tskvm = medians.get("tskvm");
const qemu = medians.get("qemu-tcg");
if (tskvm !== undefined && qemu !== undefined)
  console.log(`ratio tskvm/qemu-tcg: ${(tskvm / qemu).toFixed(2)}x`);
