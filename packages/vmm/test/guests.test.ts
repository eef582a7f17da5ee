import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const GUESTS = resolve(__dirname, "../../../guests");

function manifest(): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readFileSync(join(GUESTS, "SHA256SUMS"), "utf8").split("\n")) {
    if (line.trim() === "") continue;
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    expect(match, `malformed SHA256SUMS line: ${line}`).not.toBeNull();
    m.set(match![2]!, match![1]!);
  }
  return m;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

describe("guests/ (the bundled guest images)", () => {
  it("every file in SHA256SUMS exists and has that hash", () => {
    const m = manifest();
    expect(m.size).toBeGreaterThan(0);
    for (const [file, sum] of m) {
      const got = createHash("sha256")
        .update(readFileSync(join(GUESTS, file)))
        .digest("hex");
      expect(got, file).toBe(sum);
    }
  });

  it("the manifest covers every built artifact", () => {
    const m = manifest();
    for (const f of ["bzImage", "bzImage-gpu", "initramfs.cpio", "config-6.1", "config-6.1-gpu"]) {
      expect(m.has(f), f).toBe(true);
    }
    expect(m.has("multiboot-test/multiboot-test.elf")).toBe(true);
    expect(m.has("multiboot-test/multiboot-test-aout.bin")).toBe(true);
  });

  it("the folder stays under 10 MB", () => {
    const total = walk(GUESTS).reduce((n, f) => n + statSync(f).size, 0);
    expect(total).toBeLessThan(10 * 1024 * 1024);
  });

  it("the committed configs carry the options the issue lists", () => {
    const cfg = readFileSync(join(GUESTS, "config-6.1"), "utf8");
    for (const o of [
      "64BIT",
      "SERIAL_8250_CONSOLE",
      "BLK_DEV_INITRD",
      "DEVTMPFS_MOUNT",
      "PCI_MSI",
      "VIRTIO_PCI",
      "VIRTIO_MMIO_CMDLINE_DEVICES",
      "VIRTIO_BLK",
      "VIRTIO_NET",
      "VIRTIO_BALLOON",
      "VIRTIO_CONSOLE",
      "HW_RANDOM_VIRTIO",
      "EXT2_FS",
      "KVM_GUEST",
      "X86_IO_APIC",
      "X86_MPPARSE",
      "KERNEL_LZ4",
    ]) {
      expect(cfg, o).toMatch(new RegExp(`^CONFIG_${o}=y$`, "m"));
    }
    expect(cfg).toMatch(/^# CONFIG_KERNEL_XZ is not set$/m);
    const gpu = readFileSync(join(GUESTS, "config-6.1-gpu"), "utf8");
    // A 100 Hz tick that stops while the CPU idles (guests/README.md), in both kernels.
    for (const c of [cfg, gpu]) {
      expect(c).toMatch(/^CONFIG_HZ=100$/m);
      expect(c).toMatch(/^CONFIG_NO_HZ_IDLE=y$/m);
      // Only what the machine has (guests/README.md): COM1 alone, no PCI UARTs, no hardware RNG
      // but virtio's, no uncore/RAPL/cstate PMUs, no cpufreq, no PTP.
      expect(c).toMatch(/^CONFIG_SERIAL_8250_RUNTIME_UARTS=1$/m);
      for (const o of [
        "SERIAL_8250_PCI",
        "HW_RANDOM_INTEL",
        "HW_RANDOM_AMD",
        "HW_RANDOM_VIA",
        "PERF_EVENTS_INTEL_UNCORE",
        "PERF_EVENTS_INTEL_RAPL",
        "PERF_EVENTS_INTEL_CSTATE",
        "CPU_FREQ",
        "PTP_1588_CLOCK",
      ]) {
        expect(c, o).toMatch(new RegExp(`^# CONFIG_${o} is not set$`, "m"));
      }
    }
    expect(gpu).toMatch(/^CONFIG_DRM_VIRTIO_GPU=y$/m);
    expect(gpu).toMatch(/^CONFIG_FRAMEBUFFER_CONSOLE=y$/m);
  });

  it("the initramfs is an uncompressed newc cpio with /init (a static x86-64 ELF) and busybox", () => {
    const cpio = readFileSync(join(GUESTS, "initramfs.cpio"));
    expect(cpio.subarray(0, 6).toString("latin1")).toBe("070701");
    const names = new Set<string>();
    let init = Buffer.alloc(0);
    let off = 0;
    // newc: 110-byte ASCII header, name (padded to 4), data (padded to 4); ends at "TRAILER!!!".
    for (let i = 0; i < 10000 && off + 110 <= cpio.length; i++) {
      const field = (n: number) =>
        Number.parseInt(cpio.subarray(off + 6 + n * 8, off + 14 + n * 8).toString(), 16);
      const size = field(6);
      const nameSize = field(11);
      const name = cpio.subarray(off + 110, off + 110 + nameSize - 1).toString();
      if (name === "TRAILER!!!") break;
      names.add(name);
      off = Math.ceil((off + 110 + nameSize) / 4) * 4;
      if (name === "init") init = cpio.subarray(off, off + size);
      off = Math.ceil((off + size) / 4) * 4;
    }
    for (const n of ["init", "bin/busybox", "bin/sh", "sbin/init", "etc/inittab", "dev/console"]) {
      expect(names.has(n), n).toBe(true);
    }
    // ELF64, little-endian, EXEC, x86-64; the marker is in its data, and in the source it is built from.
    expect(init.subarray(0, 6)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]));
    expect(init.readUInt16LE(16)).toBe(2);
    expect(init.readUInt16LE(18)).toBe(62);
    expect(init.includes("TSKVM-BOOT-OK")).toBe(true);
    expect(readFileSync(join(GUESTS, "initramfs/init.c"), "utf8")).toContain("TSKVM-BOOT-OK");
  });

  it("every built artifact is in the manifest (sources and recipes may sit beside them)", () => {
    const m = manifest();
    const source = /(^|\/)(Makefile|[^/]+\.(md|sh|S|s|asm|c|h|ld|txt))$|^initramfs\/|^SHA256SUMS$/;
    for (const f of walk(GUESTS).map((p) => relative(GUESTS, p))) {
      expect(m.has(f) || source.test(f), `${f} is neither a source nor in SHA256SUMS`).toBe(true);
    }
  });
});
