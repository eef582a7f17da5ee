// Where a boot's time goes, in guest instructions: boots the bundled guest in this process through
// the JS API and, when the marker line (TSKVM-BOOT-OK) appears, prints the host time since launch,
// the guest instructions retired by vCPU 0, the MIPS that makes, and the kernel's `Run /init`
// timestamp (with --icount 0 that timestamp is the kernel's own instruction count, 1 ns each).
//   npm run bench:boot-count -w @tskvm/vmm -- [--icount] [--kernel-decompress guest] [--runs N]
//     [--kernel PATH] [--initrd PATH] [--mem SIZE]   (default: the bundled guest's)
//   (uses packages/vmm/dist: run `npx tsup` in packages/vmm first)
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { VmxBackend } from "@tskvm/kvm-api";
import { bundledGuest, createVm, parseVmOptions } from "../dist/index.js";

const { values: opts } = parseArgs({
  options: {
    icount: { type: "boolean", default: false },
    "kernel-decompress": { type: "string", default: "host" },
    runs: { type: "string", default: "1" },
    kernel: { type: "string" },
    initrd: { type: "string" },
    mem: { type: "string" },
  },
});
const MARKER = "TSKVM-BOOT-OK";

async function once(): Promise<string> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const guest = bundledGuest();
  const config = parseVmOptions(
    {
      icount: opts.icount ? "0" : undefined,
      kernelDecompress: opts["kernel-decompress"],
      kernel: opts.kernel,
      mem: opts.mem,
      // The marker comes from the bundled initramfs's init, so it stays the default with --kernel.
      initrd: opts.initrd ?? guest.initrd,
    },
    guest,
  );
  // One line at a time: appending every byte to the whole output would allocate ~45 MB per boot
  // and skew the very GC figures this measures.
  let line = "";
  let init = "?";
  let report = (_: string) => {};
  const done = new Promise<string>((resolve) => {
    report = resolve;
  });
  const vm = await createVm(config, {
    onSerial: (b) => {
      if (b === 10) {
        init = /\[\s*([\d.]+)\] Run \/init/.exec(line)?.[1] ?? init;
        line = "";
        return;
      }
      line += String.fromCharCode(b);
      if (line !== MARKER) return;
      const backend = vm.kvm.vcpus[0]?.backend;
      if (!(backend instanceof VmxBackend)) throw new Error("vCPU 0 has no VMX backend");
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const insns = backend.cpu.executed;
      report(
        `marker after ${ms.toFixed(0)} ms (process CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms); ` +
          `${(insns / 1e6).toFixed(2)} M guest instructions, ${(insns / ms / 1000).toFixed(1)} MIPS; ` +
          `Run /init at ${init} s guest time`,
      );
      void vm.control({ kind: "stop" });
    },
  });
  const run = vm.run();
  const summary = await done;
  await run;
  return summary;
}

for (let r = 0; r < Number(opts.runs); r++) console.log(await once());
