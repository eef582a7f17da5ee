// Where a Linux boot's non-CPU time and garbage come from: boots the bundled guest (through
// packages/vmm/dist, so run `npx turbo run build` first) with the deterministic instruction clock
// until the marker line, timing the kernel side of KVM_RUN around the CPU.
//   node bench/boot-exits.mjs           exits by kind, kernel-side time, per-step medians
//   node bench/boot-exits.mjs --alloc   also sampled allocation (garbage included) by package
// The marker is matched on a rolling window of the serial output: a growing string would be the
// largest allocation of the run and skew the garbage figures (`out += c; out.endsWith(m)` is
// ~45 MB per boot).
import { Session } from "node:inspector/promises";
import { bundledGuest, createVm, parseVmOptions } from "../dist/index.js";

const MARKER = "TSKVM-BOOT-OK";
const alloc = process.argv.includes("--alloc");

let session = null;
if (alloc) {
  session = new Session();
  session.connect();
  await session.post("HeapProfiler.enable");
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}

/** Per-step samples (ms) of the kernel-side functions wrapped below. */
const steps = new Map();
function timed(obj, name, label) {
  const f = obj[name].bind(obj);
  const xs = [];
  steps.set(label, xs);
  obj[name] = (...a) => {
    const t = performance.now();
    const r = f(...a);
    xs.push(performance.now() - t);
    return r;
  };
}

const kinds = new Map();
let inRun = 0;
let inCpu = 0;
let window = "";
let vm;
const t0 = performance.now();

async function report() {
  const ms = performance.now() - t0;
  const cpu = vm.kvm.vcpus[0].backend.cpu;
  console.log(
    `marker after ${ms.toFixed(0)} ms host, ${(cpu.executed / 1e6).toFixed(2)} M guest instructions, ` +
      `cpu time ${(process.cpuUsage().user / 1e6).toFixed(2)} s`,
  );
  const runs = [...kinds.values()].reduce((a, b) => a + b, 0);
  console.log(`KVM_RUN ${runs} times`);
  if (!alloc)
    console.log(
      `  ${inRun.toFixed(0)} ms in KVM_RUN, of which the CPU ${inCpu.toFixed(0)} ms, ` +
        `the kernel side ${(inRun - inCpu).toFixed(0)} ms`,
    );
  for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`  exit ${k}: ${n}`);
  for (const [label, xs] of steps) {
    xs.sort((a, b) => a - b);
    const q = (f) => (xs[Math.floor(f * (xs.length - 1))] * 1000).toFixed(2);
    const sum = xs.reduce((a, b) => a + b, 0);
    console.log(`  ${label}: ${xs.length}, ${sum.toFixed(0)} ms, median ${q(0.5)} us, p90 ${q(0.9)} us`);
  }
  if (session !== null) {
    const { profile } = await session.post("HeapProfiler.stopSampling");
    const byPkg = new Map();
    const walk = (n, pkg) => {
      const url = n.callFrame.url;
      // This script's own wrappers and counters are kept apart from the package they sit in.
      const m = url.endsWith("/boot-exits.mjs") ? ["", "(this bench)"] : /packages\/([^/]+)\//.exec(url);
      const p = m ? m[1] : pkg;
      if (n.selfSize) byPkg.set(p, (byPkg.get(p) ?? 0) + n.selfSize);
      for (const c of n.children ?? []) walk(c, p);
    };
    walk(profile.head, "(node)");
    console.log("sampled allocation by package of the allocating function:");
    for (const [p, b] of [...byPkg].sort((a, b) => b[1] - a[1]))
      console.log(`  ${(b / 1e6).toFixed(1).padStart(6)} MB ${p}`);
  }
  process.exit(0);
}

vm = await createVm(parseVmOptions({ icount: "0", kernelDecompress: "host" }, bundledGuest()), {
  onSerial: (b) => {
    window = (window + String.fromCharCode(b)).slice(-MARKER.length);
    if (window === MARKER) void report();
  },
});
const vcpu = vm.kvm.vcpus[0];
const backend = vcpu.backend;
// The timing wrappers allocate (a sample per call): with --alloc only the exits are counted.
if (!alloc) {
  const cpuRun = backend.cpu.run.bind(backend.cpu);
  backend.cpu.run = (n) => {
    const t = performance.now();
    const r = cpuRun(n);
    inCpu += performance.now() - t;
    return r;
  };
  timed(backend, "vmExit", "VM exit (Cpu -> record -> VMCS, host state)");
  timed(backend.unit, "vmresume", "VMRESUME (checks, VMCS -> record)");
  timed(backend.handlers, "handle", "exit handler");
  timed(backend.handlers, "injectEvents", "injectEvents");
}
const vcpuRun = vcpu.run.bind(vcpu);
vcpu.run = () => {
  const t = alloc ? 0 : performance.now();
  const e = vcpuRun();
  if (!alloc) inRun += performance.now() - t;
  const k = e.kind === "io" ? `io ${e.direction ? "out" : "in"} 0x${e.port.toString(16)}` : e.kind;
  kinds.set(k, (kinds.get(k) ?? 0) + 1);
  return e;
};
vm.run();
