/**
 * Differential check of the loaders against real KVM: the guest memory and boot vCPU state that
 * createVm produced are handed to a minimal C runner (test/kvm/kvm-run.c) on the host's
 * /dev/kvm. The multiboot test kernel must print its line and leave through isa-debug-exit
 * with 33 — proof that the loaded image, the multiboot info and the protected-mode entry state
 * (segments, CR0, EAX/EBX) are what a real CPU accepts. Skipped without /dev/kvm or gcc.
 * With TSKVM_LONG=1 it also starts the bundled Linux with earlyprintk and checks the kernel's
 * own report of the boot protocol fields (slow where KVM emulates ring 0, as under kvm_pvm).
 */
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SegmentState } from "../src/boot/cpu-state.js";
import type { VmConfig } from "../src/config.js";
import { parseVmOptions } from "../src/config.js";
import { bundledGuest } from "../src/guests.js";
import { createVm, type Vm } from "../src/vm.js";

const GUESTS = resolve(__dirname, "../../../guests");
const bundled = bundledGuest(GUESTS);

function kvmUsable(): boolean {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  return spawnSync("gcc", ["--version"]).status === 0;
}
const HAVE_KVM = kvmUsable();
let dir = "";
let runner = "";

beforeAll(() => {
  if (!HAVE_KVM) return;
  dir = mkdtempSync(join(tmpdir(), "tskvm-kvm-"));
  runner = join(dir, "kvm-run");
  const cc = spawnSync("gcc", ["-O1", "-Wall", "-o", runner, resolve(__dirname, "kvm/kvm-run.c")], {
    encoding: "utf8",
  });
  if (cc.status !== 0) throw new Error(`kvm-run.c: ${cc.stderr}`);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Write the VM's low RAM and boot state in kvm-run's formats; returns the two paths. */
function dump(vm: Vm, name: string): { mem: string; state: string } {
  const mem = join(dir, `${name}.mem`);
  const state = join(dir, `${name}.state`);
  writeFileSync(mem, vm.memory.buffers[0]!);
  const c = vm.cpu;
  const seg = (s: SegmentState) =>
    [s.selector, s.base, s.limit, s.type, +s.present, s.dpl, +s.db, +s.s, +s.l, +s.g].join(" ");
  const lines = [
    ...Object.entries(c.regs).map(([k, v]) => `${k} ${v}`),
    `cr0 ${c.cr0}`,
    `cr3 ${c.cr3}`,
    `cr4 ${c.cr4}`,
    `efer ${c.efer}`,
    `gdt ${c.gdt.base} ${c.gdt.limit}`,
    `idt ${c.idt.base} ${c.idt.limit}`,
    ...(["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const).map((n) => `${n} ${seg(c[n])}`),
  ];
  writeFileSync(state, `${lines.join("\n")}\n`);
  return { mem, state };
}

/** Run on KVM with kvm-run's own minimal ports (serial out, debug-exit). */
function runOnKvm(vm: Vm, name: string, timeoutS: number) {
  const { mem, state } = dump(vm, name);
  const r = spawnSync(runner, [mem, state, String(timeoutS)], {
    encoding: "latin1",
    timeout: (timeoutS + 30) * 1000,
    maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Run on KVM with every port access answered by this package's device models (kvm-run
 * --bridge): the UART, i8042, CMOS, PCI host bridge and debug-exit of createVm, with their
 * interrupt lines raised through KVM_IRQ_LINE. Stops at debug-exit, reset, or when `stopOn`
 * accepts the serial output so far.
 */
async function runBridged(
  config: VmConfig,
  name: string,
  timeoutS: number,
  stopOn?: (serial: string) => boolean,
) {
  const irqChanges: string[] = [];
  let serial = "";
  let stop: number | undefined;
  const vm = await createVm(config, {
    onSerial: (b) => {
      serial += String.fromCharCode(b);
    },
    irq: (n) => ({ set: (level) => irqChanges.push(`${n}=${level ? 1 : 0}`) }),
    onEvent: (e) => {
      stop ??= e.kind === "debug-exit" ? e.status & 0xff : 0;
    },
  });
  const { mem, state } = dump(vm, name);
  const child = spawn(runner, [mem, state, String(timeoutS), "--bridge"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  let accesses = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    const [dir_, portS, sizeS, valueS] = line.split(" ");
    const port = Number(portS);
    const size = Number(sizeS) as 1 | 2 | 4;
    let value = 0;
    if (dir_ === "i") value = vm.devices.ports.read(port, size);
    else vm.devices.ports.write(port, size, Number(valueS));
    accesses++;
    if (stop === undefined && stopOn?.(serial)) stop = 0;
    const changes = irqChanges.splice(0).map((c) => ` ${c}`);
    child.stdin.write(`${value}${changes.join("")}${stop !== undefined ? ` q ${stop}` : ""}\n`);
  }
  return { status: await exited, serial, stderr, accesses, vm };
}

describe.skipIf(!HAVE_KVM)("loaders on real KVM (/dev/kvm)", () => {
  it.each(["multiboot-test.elf", "multiboot-test-aout.bin"])(
    "multiboot %s runs, sees EAX=0x2BADB002 and its memory map and command line, exits 33",
    async (file) => {
      const vm = await createVm(
        parseVmOptions(
          {
            kernel: join(GUESTS, "multiboot-test", file),
            append: "hello from tskvm",
            mem: "32M",
            debugExit: true,
          },
          bundled,
        ),
      );
      const r = runOnKvm(vm, file, 20);
      expect(r.stdout).toBe("tskvm multiboot-test: ok cmdline=hello from tskvm\n");
      expect(r.status).toBe(33);
    },
  );

  it("a multiboot entry state with EAX cleared is reported by the kernel itself (exit 35)", async () => {
    const vm = await createVm(
      parseVmOptions(
        { kernel: join(GUESTS, "multiboot-test/multiboot-test.elf"), mem: "32M", debugExit: true },
        bundled,
      ),
    );
    vm.cpu.regs.rax = 0;
    const r = runOnKvm(vm, "bad-eax", 20);
    expect(r.stdout).toBe("tskvm multiboot-test: bad magic in EAX\n");
    expect(r.status).toBe(35);
  });

  it("multiboot through tskvm's own devices: the kernel polls our 16550 and exits through our debug-exit", async () => {
    const r = await runBridged(
      parseVmOptions(
        {
          kernel: join(GUESTS, "multiboot-test/multiboot-test.elf"),
          append: "bridged",
          mem: "32M",
          debugExit: true,
        },
        bundled,
      ),
      "bridge-mb",
      20,
    );
    expect(r.serial).toBe("tskvm multiboot-test: ok cmdline=bridged\n");
    expect(r.status).toBe(33);
    expect(r.vm.events).toEqual([{ kind: "debug-exit", status: 33 }]);
  });

  it.skipIf(!process.env.TSKVM_LONG)(
    "the bundled bzImage decompresses and starts on its 64-bit entry; Linux echoes our e820 map and command line",
    async () => {
      const append = "console=ttyS0 earlyprintk=serial,ttyS0 reboot=k";
      const vm = await createVm(parseVmOptions({ mem: "128M", append }, bundled));
      const r = runOnKvm(vm, "linux", 600);
      expect(r.stdout).toContain("Linux version 6.1");
      expect(r.stdout).toContain(`Command line: ${append}`);
      expect(r.stdout).toMatch(/BIOS-e820: \[mem 0x0000000000100000-0x0000000007ffffff\] usable/);
      expect(r.stdout).toMatch(/found SMP MP-table at \[mem 0x0009fc00-0x0009fc0f\]/);
      expect(r.stdout).toContain("IOAPIC[0]: apic_id 1, version 17, address 0xfec00000, GSI 0-23");
      expect(r.stdout).toContain("APIC: Switch to symmetric I/O mode setup");
      const rd = vm.boot.protocol === "linux" ? vm.boot.initrd! : undefined;
      const hex = (n: number) => n.toString(16).padStart(8, "0");
      // Linux reports the initrd page-aligned: [start, start + PAGE_ALIGN(size) - 1].
      expect(r.stdout).toContain(
        `RAMDISK: [mem 0x${hex(rd!.addr)}-0x${hex(rd!.addr + Math.ceil(rd!.size / 4096) * 4096 - 1)}]`,
      );
    },
    700_000,
  );
});
