#!/usr/bin/env node
/**
 * The `tskvm` command, in the habits of QEMU and kvmtool. `tskvm` alone is `tskvm run` with the
 * bundled guest. Every refusal is one line on stderr and a non-zero exit, and nothing is written:
 *   2  bad usage or configuration (unknown flag, bad size, contradictory options)
 *   1  a file cannot be used (missing, unreadable, not a kernel, initrd too large...), or the
 *      guest triple-faulted or KVM_RUN failed (the reason is printed)
 *   0  the guest powered off (Linux `poweroff`: every vCPU halted with interrupts disabled),
 *      reset (Linux `reboot`) or was stopped (Ctrl-A x)
 *   (value << 1) | 1 (low 8 bits)  the guest wrote `value` to isa-debug-exit (--debug-exit)
 */
// The `tskvm` binary runs this file from dist/cli.cjs, where commander is bundled and its bytecode
// comes from the code cache (code-cache.ts); loaded from node_modules it costs ~7-10 ms per start.
import { Command, CommanderError, Option } from "commander";
import {
  ConfigError,
  DEFAULT_APPEND,
  DEFAULT_MEM,
  MAX_CPUS,
  parseVmOptions,
  type VmOptionsInput,
} from "./config.js";
import { CONSOLE_HELP, ConsoleEscape } from "./console.js";
import { bundledGuest } from "./guests.js";
import { youngGenerationFullSizeAtOnce } from "./heap.js";
import { MiB } from "./layout.js";
import type { VmExit } from "./run.js";
import { favourMainThread } from "./threads.js";
import { type ActionResult, createVm, type Vm, VmError } from "./vm.js";

export const EXIT_USAGE = 2;
export const EXIT_LOAD = 1;
/** Longest a serial byte waits before it is written to stdout (ms). */
const SERIAL_FLUSH_MS = 2;

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Run the CLI on `argv` (without node and script); resolves to the exit status. */
export async function main(
  argv: string[],
  io: {
    out: (s: string) => void;
    err: (s: string) => void;
    /** Connects the console to `vm`; `lost` ends the run with that reason. Returns the detach. */
    attachConsole?: (vm: Vm, lost: (reason: string) => void) => () => void;
  } = {
    out: (s) => process.stdout.write(s, "latin1"),
    err: (s) => process.stderr.write(s),
    attachConsole: attachStdinConsole,
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
    .option("--mem <size>", "guest memory, e.g. 256M or 1G (a plain number is MiB)", `${DEFAULT_MEM / MiB}M`)
    .option("--cpus <n>", `vCPUs, 1-${MAX_CPUS}`, "1")
    .option("--disk <path[,ro][,pci|,mmio]>", "virtio-blk disk image (repeatable)", collect)
    .option("--net <switch>", "virtio-net device on the named virtual switch")
    .option(
      "--balloon [features]",
      "virtio-balloon device; features: report|no-report (free page reporting, on), hint|no-hint (free page hinting, off)",
    )
    .option("--gpu", "virtio-gpu device (and the gpu kernel when no --kernel is given)")
    .option("--screenshot <path>", "write a PNG of the framebuffer when the guest stops (needs --gpu)")
    .addOption(new Option("--debug-exit", "QEMU's isa-debug-exit at port 0xf4: exit status (value << 1) | 1"))
    .option(
      "--icount <shift>",
      "guest time from retired instructions, 2^shift ns each (QEMU's -icount): reproducible runs",
    )
    .option(
      "--kernel-decompress <who>",
      "host: inflate an LZ4/gzip bzImage in the VMM and enter vmlinux (Firecracker's way); guest: run its decompressor",
      "host",
    )
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
  // Serial bytes leave in batches, at most SERIAL_FLUSH_MS after the first of them, not one
  // write per character (every character is a port-I/O exit of its own).
  let serial = "";
  let flushQueued = false;
  const flushSerial = () => {
    flushQueued = false;
    if (serial === "") return;
    io.out(serial);
    serial = "";
  };
  const onSerial = (b: number) => {
    serial += String.fromCharCode(b);
    if (!flushQueued) {
      flushQueued = true;
      setTimeout(flushSerial, SERIAL_FLUSH_MS);
    }
  };
  let vm: Awaited<ReturnType<typeof createVm>>;
  try {
    vm = await createVm(config, { onSerial });
  } catch (e) {
    if (e instanceof VmError) return fail(EXIT_LOAD, e.message);
    throw e;
  }
  let lostReason: string | undefined;
  const lost = (reason: string) => {
    if (lostReason !== undefined) return;
    lostReason = reason;
    void vm.control({ kind: "stop" });
  };
  const detach = io.attachConsole?.(vm, lost) ?? (() => {});
  let end: VmExit;
  let shot: ActionResult = { ok: true };
  try {
    end = await vm.run();
    // --screenshot: the framebuffer as the run left it, before the devices are closed.
    if (config.screenshot !== undefined)
      shot = await vm.control({ kind: "screenshot", path: config.screenshot });
  } finally {
    flushSerial();
    detach();
    vm.close();
  }
  if (!shot.ok) return fail(EXIT_LOAD, shot.error);
  if (lostReason !== undefined && end.kind === "stopped") return fail(EXIT_LOAD, lostReason);
  switch (end.kind) {
    case "debug-exit":
      // As QEMU: the process exit status is the low 8 bits of (value << 1) | 1.
      return end.status & 0xff;
    case "halted":
    case "reset":
    case "stopped":
      return 0;
    case "shutdown":
      return fail(EXIT_LOAD, "the guest triple-faulted (KVM_EXIT_SHUTDOWN)");
    case "error":
      return fail(EXIT_LOAD, `the guest stopped: ${end.reason}`);
  }
}

/**
 * The terminal as the serial console: raw mode on a TTY with QEMU's Ctrl-A escapes (Ctrl-A x
 * quits), plain bytes from a pipe otherwise. Returns the function that detaches it. When stdout
 * fails (`tskvm | head`: EPIPE once the reader has gone), the run is stopped through `lost`, as
 * Ctrl-A x stops it, rather than the process dying of an unhandled stream error.
 */
export function attachStdinConsole(vm: Vm, lost: (reason: string) => void): () => void {
  const stdout = process.stdout;
  const onOutError = (e: NodeJS.ErrnoException) => {
    lost(`the console's output failed (${e.code ?? e.message}); the guest was stopped`);
  };
  stdout.on("error", onOutError);
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  const esc = new ConsoleEscape();
  if (tty) stdin.setRawMode(true);
  const onData = (chunk: Buffer) => {
    if (!tty) {
      vm.sendSerial(new Uint8Array(chunk));
      return;
    }
    for (const ev of esc.feed(new Uint8Array(chunk))) {
      if (ev.kind === "data") vm.sendSerial(ev.bytes);
      else if (ev.kind === "quit") void vm.control({ kind: "stop" });
      else if (ev.kind === "help") process.stderr.write(`\r\n${CONSOLE_HELP.replaceAll("\n", "\r\n")}\r\n`);
      // "break": the 16550 model has no break input yet.
    }
  };
  stdin.on("data", onData);
  return () => {
    // Later writes (the last serial batch) may fail too: still ours to absorb.
    stdout.off("error", onOutError);
    stdout.on("error", () => {});
    stdin.off("data", onData);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
  };
}

// Run when executed as the `tskvm` binary (not when imported by tests).
const invokedDirectly =
  process.argv[1] !== undefined && /(?:^|[/\\])(?:cli\.(?:js|ts)|tskvm(?:\.js)?)$/.test(process.argv[1]);
if (invokedDirectly) {
  // The vCPU loop before V8's compiler and GC threads (threads.ts); decoded code pretenured (heap.ts).
  favourMainThread();
  youngGenerationFullSizeAtOnce();
  // A closed stderr must not turn the last message into a crash (stdout: attachStdinConsole).
  process.stderr.on("error", () => {});
  main(process.argv.slice(2)).then(
    (status) => {
      // Exit explicitly: stdin or timers must not keep a finished VM's process alive.
      process.exit(status);
    },
    (e: unknown) => {
      process.stderr.write(`tskvm: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 70;
    },
  );
}
