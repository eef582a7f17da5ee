import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hasFeature } from "@tskvm/virtio";
import { describe, expect, it } from "vitest";
import { parseVmOptions } from "../src/config.js";
import { bundledGuest } from "../src/guests.js";
import { MiB, VIRTIO_MMIO_BASE } from "../src/layout.js";
import { kernelCmdline, MMIO_IRQS, placeVirtioDevices } from "../src/machine.js";
import { createVm, VmError } from "../src/vm.js";

const GUESTS = resolve(__dirname, "../../../guests");
const bundled = bundledGuest(GUESTS);

describe("createVm (the JS API)", () => {
  it("loads the bundled guest, writes the MP table, wires the legacy devices; run() refuses honestly", async () => {
    const vm = await createVm(parseVmOptions({ mem: "128M", cpus: 2, balloon: true }, bundled));
    // The host inflated the LZ4 payload: the entry is vmlinux's startup_64 at 16 MiB.
    expect(vm.boot).toMatchObject({
      protocol: "linux",
      version: "2.15",
      entry: 0x1000000,
      hostDecompressed: true,
    });
    expect(vm.cpu.mode).toBe("long");
    expect(vm.cmdline).toBe("console=ttyS0 reboot=k noreplace-smp");
    expect(vm.virtio.map((v) => v.kind)).toEqual(["console", "rng", "balloon"]);
    // The MP table is where Linux scans for it.
    const fp = new Uint8Array(4);
    vm.memory.read(vm.mpTable.floatingPointer, fp);
    expect(new TextDecoder().decode(fp)).toBe("_MP_");
    // The initramfs is in guest memory.
    const b = vm.boot.protocol === "linux" ? vm.boot.initrd! : undefined;
    const head = new Uint8Array(6);
    vm.memory.read(b!.addr, head);
    expect(new TextDecoder().decode(head)).toBe("070701");
    // The UART at 0x3f8 answers (scratch register round trip) and its output reaches onSerial.
    vm.devices.ports.write(0x3ff, 1, 0x5a);
    expect(vm.devices.ports.read(0x3ff, 1)).toBe(0x5a);
    // i8042 reset is a machine event.
    vm.devices.ports.write(0x64, 1, 0xfe);
    expect(vm.events).toEqual([{ kind: "reset" }]);
    // The kvm-api vCPU holds the boot state: 64-bit entry, RSI = zero page.
    const regs = vm.kvm.vcpus[0]!.getRegs();
    expect(regs.rip).toBe(0x1000000n);
    expect(regs.rsi).toBe(0x7000n);
    expect(vm.kvm.vcpus).toHaveLength(2);
    vm.close();
  });

  it("--balloon no-report: the balloon does not offer free page reporting", async () => {
    const vm = await createVm(parseVmOptions({ mem: "64M", balloon: "no-report" }, bundled));
    expect(hasFeature(vm.virtioDevices.balloon!.offered, 5)).toBe(false);
    vm.close();
  });

  it("control actions follow the lifecycle and the configured devices", async () => {
    const vm = await createVm(parseVmOptions({ mem: "64M" }, bundled));
    expect(await vm.control({ kind: "pause" })).toEqual({
      ok: false,
      error: "pause: the VM is not running (it is created)",
    });
    expect(await vm.control({ kind: "balloon", bytes: MiB })).toMatchObject({
      ok: false,
      error: expect.stringContaining("--balloon"),
    });
    expect(await vm.control({ kind: "screenshot", path: "x.png" })).toMatchObject({
      ok: false,
      error: expect.stringContaining("--gpu"),
    });
    expect(await vm.control({ kind: "stop" })).toEqual({ ok: true });
    expect(vm.state).toEqual({ tag: "stopped", reason: "stopped by request" });
    expect(await vm.control({ kind: "resume" })).toMatchObject({ ok: false });
    vm.close();
  });

  it("balloon: the target goes to the device's config space; screenshot waits for a scanout", async () => {
    const vm = await createVm(parseVmOptions({ mem: "64M", balloon: true, gpu: true }, bundled));
    expect(await vm.control({ kind: "balloon", bytes: 16 * MiB })).toEqual({ ok: true });
    expect(vm.virtioDevices.balloon!.targetPages).toBe(4096);
    // --balloon offers free page reporting (VIRTIO_BALLOON_F_PAGE_REPORTING, bit 5) unless told not to.
    expect(hasFeature(vm.virtioDevices.balloon!.offered, 5)).toBe(true);
    expect(await vm.control({ kind: "balloon", bytes: 128 * MiB })).toMatchObject({ ok: false });
    expect(await vm.control({ kind: "screenshot", path: "never.png" })).toEqual({
      ok: false,
      error: "screenshot: the guest has not set up a scanout yet",
    });
    vm.close();
  });

  it("issue 8 item 7: the multiboot test kernel runs on tskvm's own CPU/VMX/KVM stack and exits 33", async () => {
    let serial = "";
    const vm = await createVm(
      parseVmOptions(
        {
          kernel: resolve(GUESTS, "multiboot-test/multiboot-test.elf"),
          append: "run by tskvm",
          debugExit: true,
          mem: "32M",
        },
        bundled,
      ),
      { onSerial: (b) => (serial += String.fromCharCode(b)) },
    );
    expect(await vm.run()).toEqual({ kind: "debug-exit", status: 33 });
    expect(serial).toBe("tskvm multiboot-test: ok cmdline=run by tskvm\n");
    expect(vm.state).toEqual({ tag: "stopped", reason: "debug-exit" });
    await expect(vm.run()).rejects.toBeInstanceOf(VmError);
    vm.close();
  });

  it("the a.out build with EAX corrupted reports it through the serial port and exits 35", async () => {
    let serial = "";
    const vm = await createVm(
      parseVmOptions(
        { kernel: resolve(GUESTS, "multiboot-test/multiboot-test-aout.bin"), debugExit: true, mem: "32M" },
        bundled,
      ),
      { onSerial: (b) => (serial += String.fromCharCode(b)) },
    );
    const r = vm.kvm.vcpus[0]!.getRegs();
    vm.kvm.vcpus[0]!.setRegs({ ...r, rax: 0n });
    expect(await vm.run()).toEqual({ kind: "debug-exit", status: 35 });
    expect(serial).toBe("tskvm multiboot-test: bad magic in EAX\n");
    vm.close();
  });

  it("multiboot: the test kernel with a module and isa-debug-exit", async () => {
    const serial: number[] = [];
    const vm = await createVm(
      parseVmOptions(
        {
          kernel: resolve(GUESTS, "multiboot-test/multiboot-test-aout.bin"),
          initrd: resolve(GUESTS, "initramfs/inittab"),
          debugExit: true,
          mem: "32M",
        },
        bundled,
      ),
      { onSerial: (b) => serial.push(b) },
    );
    expect(vm.boot).toMatchObject({ protocol: "multiboot", format: "a.out kludge", modules: 1 });
    expect(vm.cpu.regs.rax).toBe(0x2badb002);
    vm.devices.ports.write(0xf4, 1, 0x10);
    expect(vm.events).toEqual([{ kind: "debug-exit", status: 33 }]);
    vm.devices.ports.write(0x3f8, 1, 0x41);
    expect(serial).toEqual([0x41]);
  });

  it("mmio disks are announced on the command line; errors name the step", async () => {
    const img = resolve(GUESTS, "bzImage"); // a readable file with a size in whole sectors
    expect(readFileSync(img).length % 512).toBe(0);
    const vm = await createVm(parseVmOptions({ disk: [`${img},ro,mmio`], mem: "64M" }, bundled));
    expect(vm.cmdline).toBe(
      `console=ttyS0 reboot=k noreplace-smp virtio_mmio.device=4K@0x${VIRTIO_MMIO_BASE.toString(16)}:5`,
    );
    await expect(
      createVm(parseVmOptions({ kernel: resolve(GUESTS, "README.md") }, bundled)),
    ).rejects.toMatchObject({
      step: "kernel",
    });
    await expect(
      createVm(parseVmOptions({ kernel: resolve(GUESTS, "README.md") }, bundled)),
    ).rejects.toBeInstanceOf(VmError);
  });
});

describe("virtio placement", () => {
  it("PCI slots from 1 with INTA on pins 16-23; MMIO windows with free ISA IRQs", () => {
    const p = placeVirtioDevices([
      { kind: "rng", transport: "pci", label: "rng" },
      { kind: "blk", transport: "mmio", label: "a" },
      { kind: "blk", transport: "mmio", label: "b" },
      { kind: "net", transport: "pci", label: "net" },
    ]);
    expect(p[0]).toMatchObject({ transport: "pci", slot: 1, intxPin: 16 });
    expect(p[1]).toMatchObject({ transport: "mmio", base: VIRTIO_MMIO_BASE, irq: 5 });
    expect(p[2]).toMatchObject({ transport: "mmio", base: VIRTIO_MMIO_BASE + 0x1000, irq: 6 });
    expect(p[3]).toMatchObject({ transport: "pci", slot: 2, intxPin: 17 });
    expect(kernelCmdline("console=ttyS0", p)).toBe(
      "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6",
    );
    const many = Array.from({ length: MMIO_IRQS.length + 1 }, () => ({
      kind: "blk" as const,
      transport: "mmio" as const,
      label: "x",
    }));
    expect(() => placeVirtioDevices(many)).toThrow("too many virtio-mmio devices");
  });
});

describe("virtio devices on the machine", () => {
  it("every PCI device enumerates through conf1 with its virtio id and a routed BAR 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tskvm-vm-"));
    const img = join(dir, "disk.img");
    writeFileSync(img, new Uint8Array(1 << 20));
    const vm = await createVm(
      parseVmOptions({ mem: "64M", disk: [img], net: "sw0", balloon: true, gpu: true }, bundled),
    );
    try {
      const conf = (slot: number, reg: number, size: 1 | 2 | 4) => {
        vm.devices.ports.write(0xcf8, 4, (0x80000000 | (slot << 11) | (reg & 0xfc)) >>> 0);
        return vm.devices.ports.read(0xcfc + (reg & 3), size);
      };
      const ids: number[] = [];
      for (const p of vm.virtio) {
        if (p.transport !== "pci") continue;
        expect(conf(p.slot, 0, 2)).toBe(0x1af4);
        ids.push(conf(p.slot, 2, 2));
        // Pre-assigned BAR 0, memory decoding on, INTA routed to the pin the MP table names.
        const bar = (conf(p.slot, 0x10, 4) & ~0xf) >>> 0;
        expect(bar).toBe(vm.virtioDevices.pci.get(p.slot)!.barAddress);
        expect(conf(p.slot, 0x04, 2) & 0x2).toBe(0x2);
        expect(conf(p.slot, 0x3c, 1)).toBe(p.intxPin);
        // The common configuration (BAR 0 + 0): num_queues at 0x12 is non-zero for every device.
        expect(vm.mmio.read(bar + 0x12, 2)).toBeGreaterThan(0);
      }
      // 0x1040 + device type: console 3, rng 4, blk 2, net 1, balloon 5, gpu 16 (virtio 1.2 4.1.2.1).
      expect(ids).toEqual([0x1043, 0x1044, 0x1042, 0x1041, 0x1045, 0x1050]);
      expect(vm.virtioDevices.blk).toHaveLength(1);
      expect(vm.virtioDevices.net!.mac[0]).toBe(0x52);
    } finally {
      vm.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
