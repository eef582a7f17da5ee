/**
 * The VM configuration and its validation, separate from any transport: the CLI, the JS API
 * and tests all build a `VmConfig` through `parseVmOptions`. Every refusal is a `ConfigError`
 * with one line that names the option.
 */
import { MP_MAX_CPUS } from "./boot/mptable.js";
import { GiB, MiB, MMIO_HOLE_START } from "./layout.js";

/** One block device. */
export interface DiskConfig {
  path: string;
  readOnly: boolean;
  /** virtio transport: PCI (default) or MMIO (announced on the kernel command line). */
  transport: "pci" | "mmio";
}

/** The balloon's optional features (virtio 1.2 5.5.3), from `--balloon [report|no-report][,hint|no-hint]`. */
export interface BalloonOptions {
  /** VIRTIO_BALLOON_F_PAGE_REPORTING (on by default): the guest reports free 2 MiB blocks, the VMM drops their contents. */
  reporting: boolean;
  /** VIRTIO_BALLOON_F_FREE_PAGE_HINT (off by default): the guest hints free blocks when the host asks for them. */
  hinting: boolean;
}

/** Everything needed to build a VM. Sizes in bytes. */
export interface VmConfig {
  kernel: string;
  initrd: string | undefined;
  /** Kernel command line as given (the VMM appends its virtio-mmio announcements). */
  append: string;
  memBytes: number;
  cpus: number;
  disks: DiskConfig[];
  /** The virtual switch a virtio-net device joins, if any. */
  net: string | undefined;
  /** The virtio-balloon device and its features, if there is one. */
  balloon: BalloonOptions | undefined;
  gpu: boolean;
  /** Where `--screenshot` writes a PNG of the framebuffer at the end of the run. */
  screenshot: string | undefined;
  /** QEMU's isa-debug-exit at port 0xf4. */
  debugExit: boolean;
  /**
   * QEMU's `-icount SHIFT`: guest time comes from retired instructions, 2^SHIFT ns each, and
   * jumps to the next timer deadline while every vCPU is halted; a run is then reproducible.
   * Undefined: guest time is host time.
   */
  icount: number | undefined;
  /**
   * Who inflates a bzImage's kernel: "host" (default) inflates an LZ4 or gzip payload in the VMM
   * and enters vmlinux directly, as Firecracker boots a vmlinux; "guest" runs the bzImage's own
   * decompressor, as QEMU and kvmtool do. Other payloads are always inflated by the guest.
   */
  kernelDecompress: "host" | "guest";
}

/** Largest `--icount` shift (2^10 ns = ~1 us per instruction), as QEMU's MAX_ICOUNT_SHIFT. */
export const MAX_ICOUNT_SHIFT = 10;

/** A configuration the VMM refuses; `message` is one line. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Guest memory bounds: Linux needs a few MiB; RAM above the 3 GiB MMIO hole is not mapped yet. */
export const MIN_MEM = 16 * MiB;
export const MAX_MEM = MMIO_HOLE_START;
/**
 * QEMU's (`-m`) and Firecracker's (`mem_size_mib`) default. The bundled guest's shell needs ~20 MiB.
 * Linux sets up and frees a struct page for every page at boot: the bundled guest boots in 18.4 M
 * instructions with 128 MiB, 21.0 M with 256 MiB.
 */
export const DEFAULT_MEM = 128 * MiB;
export const MAX_CPUS = MP_MAX_CPUS;
/**
 * Default kernel command line: the serial console, reboot through the i8042 (no ACPI), and
 * `noreplace-smp`: a kernel that finds one CPU otherwise rewrites each of its ~2,300 LOCK prefixes
 * through text_poke, two page-table switches apiece (4,700 MOV CR3), about 5% of the guest
 * instructions of a boot; the prefixes are harmless on one CPU, and with more the kernel never
 * rewrites them.
 */
export const DEFAULT_APPEND = "console=ttyS0 reboot=k noreplace-smp";

const UNITS: Record<string, number> = {
  "": MiB,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: MiB,
  MB: MiB,
  MIB: MiB,
  G: GiB,
  GB: GiB,
  GIB: GiB,
};

/**
 * Parse a memory size as QEMU's -m does: a plain number is MiB; K, M, G suffixes (also KiB,
 * MiB, GiB, KB, MB, GB: all binary) scale it. The result must be a whole number of 4 KiB pages.
 */
export function parseSize(text: string, what = "size"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) throw new ConfigError(`${what}: "${text}" is not a size (use e.g. 256M or 1G)`);
  const unit = UNITS[m[2]!.toUpperCase()];
  if (unit === undefined)
    throw new ConfigError(`${what}: unknown unit "${m[2]}" in "${text}" (use K, M or G)`);
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes) || bytes % 4096 !== 0) {
    throw new ConfigError(`${what}: "${text}" is not a whole number of 4 KiB pages`);
  }
  return bytes;
}

/** Parse `PATH[,ro][,rw][,pci|,mmio]` (the path may not contain a comma). */
export function parseDisk(text: string): DiskConfig {
  const [path, ...opts] = text.split(",");
  if (!path) throw new ConfigError(`--disk: "${text}" has no file path`);
  let readOnly: boolean | undefined;
  let transport: "pci" | "mmio" | undefined;
  for (const o of opts) {
    if (o === "ro" || o === "rw") {
      if (readOnly !== undefined) throw new ConfigError(`--disk ${path}: "ro" and "rw" given more than once`);
      readOnly = o === "ro";
    } else if (o === "pci" || o === "mmio") {
      if (transport !== undefined) throw new ConfigError(`--disk ${path}: transport given more than once`);
      transport = o;
    } else {
      throw new ConfigError(`--disk ${path}: unknown option "${o}" (known: ro, rw, pci, mmio)`);
    }
  }
  return { path, readOnly: readOnly ?? false, transport: transport ?? "pci" };
}

/**
 * Parse the `--balloon` value: `true` (the bare flag) for the defaults, or a comma list of
 * `report`, `no-report`, `hint`, `no-hint`; false or undefined for no balloon.
 */
export function parseBalloon(value: boolean | string | undefined): BalloonOptions | undefined {
  if (value === undefined || value === false) return undefined;
  const opts: BalloonOptions = { reporting: true, hinting: false };
  if (value === true) return opts;
  const seen = new Set<"reporting" | "hinting">();
  for (const word of value.split(",")) {
    const w = word.trim();
    const key =
      w === "report" || w === "no-report"
        ? "reporting"
        : w === "hint" || w === "no-hint"
          ? "hinting"
          : undefined;
    if (key === undefined)
      throw new ConfigError(`--balloon: unknown option "${w}" (known: report, no-report, hint, no-hint)`);
    if (seen.has(key)) throw new ConfigError(`--balloon: ${key} given more than once in "${value}"`);
    seen.add(key);
    opts[key] = !w.startsWith("no-");
  }
  return opts;
}

/** The options as a transport hands them over (strings as typed; booleans for flags). */
export interface VmOptionsInput {
  kernel?: string | undefined;
  initrd?: string | undefined;
  append?: string | undefined;
  mem?: string | number | undefined;
  cpus?: string | number | undefined;
  disk?: string[] | undefined;
  net?: string | undefined;
  /** A flag (`--balloon`) or its feature list (`--balloon hint`, `--balloon no-report`). */
  balloon?: boolean | string | undefined;
  gpu?: boolean | undefined;
  screenshot?: string | undefined;
  debugExit?: boolean | undefined;
  icount?: string | number | undefined;
  kernelDecompress?: string | undefined;
}

/** Where the bundled guest lives, for the defaults. */
export interface BundledGuest {
  kernel: string;
  gpuKernel: string;
  initrd: string;
}

const SWITCH_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Validate options into a VmConfig (no file-system access: `createVm` checks the files).
 * With no kernel, the bundled guest is used (its gpu variant with `gpu`), with its initramfs
 * unless an initrd is given.
 */
export function parseVmOptions(input: VmOptionsInput, bundled: BundledGuest): VmConfig {
  const memBytes =
    input.mem === undefined
      ? DEFAULT_MEM
      : typeof input.mem === "number"
        ? input.mem
        : parseSize(input.mem, "--mem");
  if (!Number.isSafeInteger(memBytes) || memBytes % 4096 !== 0)
    throw new ConfigError(`--mem: ${memBytes} is not a whole number of pages`);
  if (memBytes < MIN_MEM)
    throw new ConfigError(`--mem: ${memBytes / MiB} MiB is too small (at least ${MIN_MEM / MiB}M)`);
  if (memBytes > MAX_MEM)
    throw new ConfigError(
      `--mem: at most ${MAX_MEM / MiB}M (RAM above the 32-bit MMIO hole is not supported yet)`,
    );

  const cpusText = input.cpus === undefined ? "1" : String(input.cpus);
  if (!/^\d+$/.test(cpusText)) throw new ConfigError(`--cpus: "${cpusText}" is not a whole number`);
  const cpus = Number(cpusText);
  if (cpus < 1 || cpus > MAX_CPUS) throw new ConfigError(`--cpus: ${cpus} is out of range 1-${MAX_CPUS}`);

  const disks = (input.disk ?? []).map(parseDisk);
  const seen = new Set<string>();
  for (const d of disks) {
    if (seen.has(d.path)) throw new ConfigError(`--disk ${d.path}: the same file is attached twice`);
    seen.add(d.path);
  }

  if (input.net !== undefined && !SWITCH_NAME.test(input.net)) {
    throw new ConfigError(`--net: "${input.net}" is not a switch name (letters, digits, _ . -; at most 64)`);
  }
  const gpu = input.gpu ?? false;
  if (input.screenshot !== undefined) {
    if (!gpu) throw new ConfigError("--screenshot needs --gpu (there is no framebuffer without it)");
    if (input.screenshot === "") throw new ConfigError("--screenshot: empty path");
  }
  if (input.kernel === "") throw new ConfigError("--kernel: empty path");
  if (input.initrd === "") throw new ConfigError("--initrd: empty path");
  const append = input.append ?? DEFAULT_APPEND;
  if (/[\0\n]/.test(append))
    throw new ConfigError("--append: the command line may not contain NUL or newline");

  let icount: number | undefined;
  if (input.icount !== undefined) {
    const t = String(input.icount);
    if (!/^\d+$/.test(t) || Number(t) > MAX_ICOUNT_SHIFT)
      throw new ConfigError(
        `--icount: "${t}" is not a shift of 0-${MAX_ICOUNT_SHIFT} (2^shift ns per instruction)`,
      );
    icount = Number(t);
  }

  const kernelDecompress = input.kernelDecompress ?? "host";
  if (kernelDecompress !== "host" && kernelDecompress !== "guest")
    throw new ConfigError(`--kernel-decompress: "${kernelDecompress}" is not "host" or "guest"`);

  const kernel = input.kernel ?? (gpu ? bundled.gpuKernel : bundled.kernel);
  const initrd = input.initrd ?? (input.kernel === undefined ? bundled.initrd : undefined);
  return {
    kernel,
    initrd,
    append,
    memBytes,
    cpus,
    disks,
    net: input.net,
    balloon: parseBalloon(input.balloon),
    gpu,
    screenshot: input.screenshot,
    debugExit: input.debugExit ?? false,
    icount,
    kernelDecompress,
  };
}
