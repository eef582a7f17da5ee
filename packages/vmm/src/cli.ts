#!/usr/bin/env node
/**
 * The `tskvm` command, in the habits of QEMU and kvmtool. `tskvm` alone is `tskvm run` with the
 * bundled guest. Every refusal is one line on stderr and a non-zero exit, and nothing is written:
 *   2  bad usage or configuration (unknown flag, bad size, contradictory options)
 *   1  a file cannot be used (missing, unreadable, not a kernel, initrd too large...)
 *   3  everything loaded, but executing the guest is not available yet
 */
import { Command, CommanderError, Option } from "commander";
import { ConfigError, DEFAULT_APPEND, MAX_CPUS, parseVmOptions, type VmOptionsInput } from "./config.js";
import { bundledGuest } from "./guests.js";
import { MiB } from "./layout.js";
import { createVm, ExecutionUnavailableError, VmError } from "./vm.js";

export const EXIT_USAGE = 2;
export const EXIT_LOAD = 1;
export const EXIT_UNAVAILABLE = 3;

const collect = (value: string, previous: string[] = []) => [...previous, value];
const hex = (n: number) => `0x${n.toString(16)}`;

/** Run the CLI on `argv` (without node and script); resolves to the exit status. */
export async function main(
  argv: string[],
  io: { out: (s: string) => void; err: (s: string) => void } = {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
  },
): Promise<number> {
  const fail = (status: number, msg: string) => {
    io.err(`tskvm: ${msg}\n`);
    return status;
  };
  let runOptions: VmOptionsInput | undefined;
  const program = new Command("tskvm")
    .description("tskvm: boot an x86-64 guest on KVM rebuilt in TypeScript")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      // Commander's own errors arrive here as "error: ..."; re-worded to one "tskvm:" line below.
      writeErr: () => {},
    });
  program
    .command("run", { isDefault: true })
    .description("boot a guest (the bundled Linux when no --kernel is given)")
    .option("--kernel <path>", "bzImage (Linux boot protocol >= 2.06, 64-bit) or multiboot v1 kernel")
    .option("--initrd <path>", "initramfs for Linux, or module 1 for a multiboot kernel")
    .option("--append <cmdline>", `kernel command line (default "${DEFAULT_APPEND}")`)
    .option("--mem <size>", "guest memory, e.g. 256M or 1G (a plain number is MiB)", "256M")
    .option("--cpus <n>", `vCPUs, 1-${MAX_CPUS}`, "1")
    .option("--disk <path[,ro][,pci|,mmio]>", "virtio-blk disk image (repeatable)", collect)
    .option("--net <switch>", "virtio-net device on the named virtual switch")
    .option("--balloon", "virtio-balloon device")
    .option("--gpu", "virtio-gpu device (and the gpu kernel when no --kernel is given)")
    .option("--screenshot <path>", "write a PNG of the framebuffer when the guest stops (needs --gpu)")
    .addOption(new Option("--debug-exit", "QEMU's isa-debug-exit at port 0xf4: exit status (value << 1) | 1"))
    .action((opts: VmOptionsInput) => {
      runOptions = opts;
    });

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === "commander.helpDisplayed" ||
        e.code === "commander.version" ||
        e.code === "commander.help"
      )
        return 0;
      return fail(EXIT_USAGE, e.message.replace(/^error: /, "").split("\n")[0]!);
    }
    throw e;
  }
  if (!runOptions) return 0;

  let config: ReturnType<typeof parseVmOptions>;
  try {
    config = parseVmOptions(runOptions, bundledGuest());
  } catch (e) {
    if (e instanceof ConfigError) return fail(EXIT_USAGE, e.message);
    throw e;
  }
  let vm: Awaited<ReturnType<typeof createVm>>;
  try {
    vm = await createVm(config, { onSerial: (b) => io.out(String.fromCharCode(b)) });
  } catch (e) {
    if (e instanceof VmError) return fail(EXIT_LOAD, e.message);
    throw e;
  }
  try {
    await vm.run();
    return 0;
  } catch (e) {
    vm.close();
    if (e instanceof ExecutionUnavailableError) {
      const b = vm.boot;
      const what =
        b.protocol === "linux"
          ? `Linux boot protocol ${b.version}, 64-bit entry ${hex(b.entry)}${b.initrd ? `, initrd ${b.initrd.size} bytes at ${hex(b.initrd.addr)}` : ""}`
          : `multiboot (${b.format}), entry ${hex(b.entry)}`;
      return fail(
        EXIT_UNAVAILABLE,
        `loaded ${config.kernel} (${what}) into ${config.memBytes / MiB} MiB with ${config.cpus} vCPU(s) and ${vm.virtio.length} virtio device(s), but ${e.message}`,
      );
    }
    throw e;
  }
}

// Run when executed as the `tskvm` binary (not when imported by tests).
const invokedDirectly =
  process.argv[1] !== undefined && /(?:^|[/\\])(?:cli\.(?:js|ts)|tskvm)$/.test(process.argv[1]);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status;
    },
    (e: unknown) => {
      process.stderr.write(`tskvm: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 70;
    },
  );
}
