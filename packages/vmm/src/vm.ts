/**
 * `createVm(config)`: the JS API. It checks every file the configuration names, loads the
 * kernel (bzImage or multiboot) and initrd into guest RAM, writes the MP table, builds the
 * legacy devices and the virtio devices, and creates the kvm-api VM (memory slots over the same
 * buffers, irqchip, PIT, vCPUs with the boot state). `run()` then runs KVM_RUN until the guest
 * exits through isa-debug-exit, resets, triple-faults, fails, or a `stop` action.
 */
import { constants } from "node:fs";
import { access, readFile, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { L2Switch, MsiSink } from "@tskvm/virtio";
import type { VmAction } from "./actions.js";
import type { BootCpuState } from "./boot/cpu-state.js";
import { HDRS_MAGIC, Hdr, LinuxLoadError, loadLinux, parseBzImage } from "./boot/linux.js";
import type { MpTableLayout } from "./boot/mptable.js";
import { findMultibootHeader, loadMultiboot, MultibootLoadError } from "./boot/multiboot.js";
import type { VmConfig } from "./config.js";
import { type IrqLine, MmioBus } from "./devices/bus.js";
import { ramRanges } from "./layout.js";
import {
  createLegacyDevices,
  kernelCmdline,
  type LegacyDevices,
  type MachineEvent,
  placeVirtioDevices,
  type VirtioKind,
  type VirtioPlacement,
  writePlatformTables,
} from "./machine.js";
import { GuestRam } from "./memory.js";
import { createKvmMachine, type KvmMachine, runLoop, setBootState, type VmExit } from "./run.js";
import { encodePng } from "./screenshot.js";
import { createVirtioDevices, type VirtioDevices } from "./virtio-devices.js";

/** Which step refused the configuration. */
export type VmErrorStep = "kernel" | "initrd" | "disk" | "screenshot" | "machine";

/** A VM that cannot be built; `message` is one line naming the file and the reason. */
export class VmError extends Error {
  constructor(
    readonly step: VmErrorStep,
    message: string,
  ) {
    super(message);
    this.name = "VmError";
  }
}

/** How the kernel was loaded. */
export type BootInfo =
  | {
      protocol: "linux";
      version: string;
      entry: number;
      initrd: { addr: number; size: number } | undefined;
      /** The host inflated the kernel and `entry` is vmlinux's startup_64 (see `kernelDecompress`). */
      hostDecompressed: boolean;
    }
  | { protocol: "multiboot"; entry: number; format: "elf" | "a.out kludge"; modules: number };

/** Lifecycle of a VM (a sum type, not flags). */
export type VmLifecycle =
  | { tag: "created" }
  | { tag: "running" }
  | { tag: "paused" }
  | { tag: "stopped"; reason: string };

/** The outcome of a control action. */
export type ActionResult = { ok: true } | { ok: false; error: string };

export interface Vm {
  readonly config: VmConfig;
  readonly memory: GuestRam;
  readonly boot: BootInfo;
  /** The boot vCPU's state at the kernel entry. */
  readonly cpu: BootCpuState;
  /** The command line the kernel received (with virtio-mmio announcements). */
  readonly cmdline: string;
  readonly devices: LegacyDevices;
  /** KVM_EXIT_MMIO dispatch: virtio-mmio windows and PCI BAR 0s. */
  readonly mmio: MmioBus;
  readonly virtio: VirtioPlacement[];
  /** The virtio device instances. */
  readonly virtioDevices: VirtioDevices;
  readonly mpTable: MpTableLayout;
  readonly state: VmLifecycle;
  /** Machine events seen so far (reset, debug-exit). */
  readonly events: MachineEvent[];
  /** Apply a control action (pause, resume, balloon, screenshot, stop). */
  control(action: VmAction): Promise<ActionResult>;
  /** Release host resources (disk files). */
  close(): void;
  /** Run the guest until it exits, resets or fails (or a `stop` action); resolves to how it ended. */
  run(): Promise<VmExit>;
  /** Console input for the serial line (queued; fed to the UART as its FIFO has room). */
  sendSerial(bytes: Uint8Array): void;
  /** The kvm-api side: the VM and its vCPUs. */
  readonly kvm: KvmMachine;
}

export interface VmDeps {
  /** Serial console output, one byte at a time; default: discard. */
  onSerial?: (byte: number) => void;
  /** The interrupt line of ISA IRQ / IOAPIC pin `n` (the irqchip); default: lines that go nowhere. */
  irq?: (n: number) => IrqLine;
  /** Machine events (reset, debug-exit) as they happen; they are also kept in `vm.events`. */
  onEvent?: (e: MachineEvent) => void;
  /** hvc0 (virtio-console) output; default: the serial output's sink, byte by byte. */
  onConsole?: (bytes: Uint8Array) => void;
  /** Where MSI-X messages go (the LAPIC); default: dropped. */
  msi?: MsiSink;
  /** Virtual switches shared by the VMs of this process, by `--net` name. */
  switches?: Map<string, L2Switch>;
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** A file's size, with one-line errors for the usual failures. */
async function checkFile(step: VmErrorStep, flag: string, path: string, mode: number): Promise<number> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (e) {
    throw new VmError(
      step,
      `${flag} ${path}: ${errno(e) === "ENOENT" ? "no such file" : `cannot read it (${errno(e) ?? String(e)})`}`,
    );
  }
  if (!st.isFile()) throw new VmError(step, `${flag} ${path}: not a regular file`);
  try {
    await access(path, mode);
  } catch {
    const what = mode & constants.W_OK ? "not writable (add ,ro to attach it read-only)" : "not readable";
    throw new VmError(step, `${flag} ${path}: ${what}`);
  }
  return st.size;
}

function hasHdrS(k: Uint8Array): boolean {
  return (
    k.length >= Hdr.HEADER + 4 &&
    new DataView(k.buffer, k.byteOffset).getUint32(Hdr.HEADER, true) === HDRS_MAGIC
  );
}

function hasMultibootHeader(k: Uint8Array): boolean {
  try {
    findMultibootHeader(k);
    return true;
  } catch (e) {
    return !(e instanceof MultibootLoadError && e.detail.kind === "NoHeader");
  }
}

/** Build a VM from a validated configuration: check files, load the kernel, wire the machine. */
export async function createVm(config: VmConfig, deps: VmDeps = {}): Promise<Vm> {
  // 1. Every file, before anything is read into memory or written anywhere.
  const kernelSize = await checkFile("kernel", "--kernel", config.kernel, constants.R_OK);
  if (kernelSize > config.memBytes)
    throw new VmError("kernel", `--kernel ${config.kernel}: ${kernelSize} bytes is larger than guest memory`);
  let initrdSize = 0;
  if (config.initrd !== undefined) {
    initrdSize = await checkFile("initrd", "--initrd", config.initrd, constants.R_OK);
    if (initrdSize > config.memBytes) {
      throw new VmError(
        "initrd",
        `--initrd ${config.initrd}: ${initrdSize} bytes does not fit in ${config.memBytes} bytes of guest memory`,
      );
    }
  }
  for (const d of config.disks) {
    const size = await checkFile(
      "disk",
      "--disk",
      d.path,
      d.readOnly ? constants.R_OK : constants.R_OK | constants.W_OK,
    );
    if (size % 512 !== 0)
      throw new VmError("disk", `--disk ${d.path}: size ${size} is not a multiple of 512-byte sectors`);
  }
  if (config.screenshot !== undefined) {
    const dir = dirname(config.screenshot);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory())
      throw new VmError("screenshot", `--screenshot ${config.screenshot}: directory ${dir} does not exist`);
    const target = await stat(config.screenshot).catch(() => undefined);
    if (target?.isDirectory())
      throw new VmError("screenshot", `--screenshot ${config.screenshot}: is a directory`);
  }

  // 2. Devices and their placement, which the command line and MP table depend on.
  const wanted: { kind: VirtioKind; transport: "pci" | "mmio"; label: string }[] = [
    { kind: "console", transport: "pci", label: "virtio-console (hvc0)" },
    { kind: "rng", transport: "pci", label: "virtio-rng" },
    ...config.disks.map((d) => ({
      kind: "blk" as const,
      transport: d.transport,
      label: `virtio-blk ${d.path}${d.readOnly ? " (ro)" : ""}`,
    })),
    ...(config.net !== undefined
      ? [{ kind: "net" as const, transport: "pci" as const, label: `virtio-net on switch ${config.net}` }]
      : []),
    ...(config.balloon
      ? [{ kind: "balloon" as const, transport: "pci" as const, label: "virtio-balloon" }]
      : []),
    ...(config.gpu ? [{ kind: "gpu" as const, transport: "pci" as const, label: "virtio-gpu" }] : []),
  ];
  let virtio: VirtioPlacement[];
  try {
    virtio = placeVirtioDevices(wanted);
  } catch (e) {
    throw new VmError("machine", (e as Error).message);
  }
  const cmdline = kernelCmdline(config.append, virtio);

  // 3. Guest RAM and the kernel.
  const memory = new GuestRam(ramRanges(config.memBytes));
  const kernel = new Uint8Array(await readFile(config.kernel));
  const initrd = config.initrd !== undefined ? new Uint8Array(await readFile(config.initrd)) : undefined;
  let boot: BootInfo;
  let cpu: BootCpuState;
  try {
    const linux = hasHdrS(kernel);
    if (!linux && !hasMultibootHeader(kernel)) {
      // Neither format: report why it is not a bzImage, and that no multiboot header was found.
      const why = (() => {
        try {
          parseBzImage(kernel);
          return "not a bzImage";
        } catch (e) {
          return e instanceof LinuxLoadError ? e.message : String(e);
        }
      })();
      throw new VmError("kernel", `--kernel ${config.kernel}: ${why}; no multiboot header either`);
    }
    if (linux) {
      const r = loadLinux(memory, {
        kernel,
        initrd,
        cmdline,
        memBytes: config.memBytes,
        decompress: config.kernelDecompress,
      });
      const v = r.header.version;
      boot = {
        protocol: "linux",
        version: `${v >> 8}.${(v & 0xff).toString().padStart(2, "0")}`,
        entry: r.entry,
        initrd: r.initrd,
        hostDecompressed: r.hostDecompressed,
      };
      cpu = r.cpu;
    } else {
      // Multiboot: the initrd, if any, becomes module 1 with its path as the module's command line.
      const modules = initrd ? [{ data: initrd, cmdline: config.initrd }] : [];
      const r = loadMultiboot(memory, { kernel, cmdline, modules, memBytes: config.memBytes });
      boot = {
        protocol: "multiboot",
        entry: r.entry,
        format: r.header.addresses ? "a.out kludge" : "elf",
        modules: r.modules.length,
      };
      cpu = r.cpu;
    }
  } catch (e) {
    if (e instanceof LinuxLoadError || e instanceof MultibootLoadError) {
      const step: VmErrorStep =
        e instanceof LinuxLoadError && e.detail.kind === "InitrdTooLarge" ? "initrd" : "kernel";
      throw new VmError(
        step,
        `${step === "initrd" ? `--initrd ${config.initrd}` : `--kernel ${config.kernel}`}: ${e.message}`,
      );
    }
    throw e;
  }
  let mpTable: MpTableLayout;
  try {
    mpTable = writePlatformTables(memory, config.cpus, virtio);
  } catch (e) {
    throw new VmError("machine", (e as Error).message);
  }

  // 4. The kvm-api VM over the same RAM buffers; interrupt lines go to its irqchip.
  let machine: KvmMachine;
  try {
    machine = createKvmMachine(memory, config.cpus, config.icount);
    setBootState(machine.vcpus[0]!, cpu);
  } catch (e) {
    throw new VmError("machine", `kvm-api: ${(e as Error).message}`);
  }
  const irq =
    deps.irq ??
    ((n: number): IrqLine => ({
      set: (level) => {
        machine.vm.irqLine(n, level);
      },
    }));
  const msi: MsiSink = deps.msi ?? {
    signalMsi: (addressLo, addressHi, data) => {
      machine.vm.signalMsi({ addressLo, addressHi, data });
    },
  };

  // 5. Legacy and virtio devices.
  const events: MachineEvent[] = [];
  const devices = createLegacyDevices({
    memBytes: config.memBytes,
    debugExit: config.debugExit,
    irq,
    onEvent: (e) => {
      events.push(e);
      deps.onEvent?.(e);
    },
    onSerial: deps.onSerial ?? (() => {}),
  });

  const mmio = new MmioBus();
  let virtioDevices: VirtioDevices;
  try {
    virtioDevices = createVirtioDevices(config, virtio, {
      memory,
      irq,
      msi,
      mmio,
      pci: devices.pci,
      onConsole:
        deps.onConsole ??
        ((bytes) => {
          for (const b of bytes) deps.onSerial?.(b);
        }),
      switches: deps.switches ?? new Map(),
    });
  } catch (e) {
    throw new VmError("machine", `virtio devices: ${(e as Error).message}`);
  }

  let state: VmLifecycle = { tag: "created" };
  let stopRequested = false;
  let resume: (() => void) | undefined;
  let pausedUntil: Promise<void> | undefined;
  const input: Uint8Array[] = [];
  let seenEvents = 0;
  const refuse = (error: string): ActionResult => ({ ok: false, error });
  const notRunning = (what: string) => refuse(`${what}: the VM is not running (it is ${state.tag})`);
  return {
    config,
    memory,
    boot,
    cpu,
    cmdline,
    devices,
    mmio,
    virtio,
    virtioDevices,
    mpTable,
    events,
    get state() {
      return state;
    },
    close(): void {
      virtioDevices.close();
    },
    async control(action: VmAction): Promise<ActionResult> {
      switch (action.kind) {
        case "stop":
          if (state.tag === "stopped") return refuse("stop: the VM is already stopped");
          stopRequested = true;
          if (state.tag === "paused") resume?.();
          if (state.tag === "created") state = { tag: "stopped", reason: "stopped by request" };
          return { ok: true };
        case "pause":
          if (state.tag !== "running") return notRunning("pause");
          state = { tag: "paused" };
          pausedUntil = new Promise<void>((r) => {
            resume = r;
          });
          return { ok: true };
        case "resume":
          if (state.tag !== "paused") return refuse(`resume: the VM is not paused (it is ${state.tag})`);
          state = { tag: "running" };
          pausedUntil = undefined;
          resume?.();
          return { ok: true };
        case "balloon": {
          const b = virtioDevices.balloon;
          if (!b) return refuse("balloon: the VM has no balloon device (start it with --balloon)");
          if (action.bytes > config.memBytes) {
            return refuse(`balloon: ${action.bytes} bytes is more than the guest's ${config.memBytes}`);
          }
          if (state.tag === "stopped") return refuse("balloon: the VM is stopped");
          // The target stands until the guest's driver acts on it (virtio 1.2 5.5.6).
          b.setTarget(action.bytes / 4096);
          return { ok: true };
        }
        case "screenshot": {
          const gpu = virtioDevices.gpu;
          if (!gpu) return refuse("screenshot: the VM has no gpu (start it with --gpu)");
          const fb = virtioDevices.display();
          if (!fb) return refuse("screenshot: the guest has not set up a scanout yet");
          try {
            await writeFile(action.path, encodePng(fb));
          } catch (e) {
            return refuse(`screenshot: ${(e as Error).message}`);
          }
          return { ok: true };
        }
      }
    },
    kvm: machine,
    sendSerial(bytes: Uint8Array): void {
      if (bytes.length > 0) input.push(bytes.slice());
    },
    async run(): Promise<VmExit> {
      if (state.tag !== "created") throw new VmError("machine", `run: the VM is ${state.tag}`);
      state = { tag: "running" };
      const end = await runLoop({
        machine,
        ports: devices.ports,
        mmio,
        paused: () => pausedUntil,
        beforeRun: () => {
          // Feed queued console input as the receive FIFO has room (no byte is dropped).
          while (input.length > 0) {
            const head = input[0]!;
            const n = devices.uart.receive(head);
            if (n === head.length) input.shift();
            else {
              input[0] = head.subarray(n);
              break;
            }
          }
        },
        pending: () => {
          while (seenEvents < events.length) {
            const e = events[seenEvents++]!;
            if (e.kind === "debug-exit") return { kind: "debug-exit", status: e.status };
            if (e.kind === "reset") return { kind: "reset" };
          }
          return stopRequested ? { kind: "stopped" } : undefined;
        },
      });
      state = { tag: "stopped", reason: end.kind === "error" ? end.reason : end.kind };
      return end;
    },
  };
}
