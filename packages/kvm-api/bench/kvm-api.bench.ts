import { bench, describe } from "vitest";
import { Kvm } from "../src/kvm.js";

const MB = 1 << 20;

function vmWithSlots() {
  const vm = new Kvm().createVm({ clock: "deterministic" });
  // A typical PC layout: low RAM, VGA hole, high RAM, a few device/ROM slots.
  const layout: [number, number][] = [
    [0, 640 * 1024],
    [0xc0000, 0x40000],
    [MB, 255 * MB],
    [0xffe00000, 2 * MB],
    [0x100000000, 64 * MB],
    [0xd0000000, MB],
    [0xe0000000, MB],
    [0xf0000000, MB],
  ];
  layout.forEach(([base, size], slot) => {
    vm.setUserMemoryRegion({
      slot,
      flags: 0,
      guestPhysAddr: base,
      memorySize: size,
      memory: new ArrayBuffer(size),
    });
  });
  return vm;
}

describe("memory", () => {
  const vm = vmWithSlots();
  const addrs = Array.from(
    { length: 1024 },
    (_, i) => [0x1000, 0x200000 + i * 4096, 0xffe01000, 0x100001000, 0xc1000][i % 5]!,
  );
  let i = 0;
  bench("slotAt, same page (last-hit)", () => {
    vm.memory.slotAt(0x300000);
  });
  bench("slotAt, rotating over 5 slots (binary search)", () => {
    vm.memory.slotAt(addrs[i++ & 1023]!);
  });
  const buf = new Uint8Array(8);
  bench("GuestPhysMemory.read 8 bytes", () => {
    vm.memory.read(0x200010, buf);
  });
});

describe("irqchip", () => {
  const vm = new Kvm().createVm({ clock: "deterministic" });
  vm.createIrqchip();
  const v = vm.createVcpu(0);
  vm.createVcpu(1);
  vm.mmioWrite(0, 0xfee000f0, 4, 0x1ff);
  vm.mmioWrite(1, 0xfee000f0, 4, 0x1ff);
  bench("self IPI -> INTA -> EOI (xAPIC MMIO)", () => {
    vm.mmioWrite(0, 0xfee00300, 4, 0x40040);
    v.acknowledgeInterrupt();
    vm.mmioWrite(0, 0xfee000b0, 4, 0);
  });
  const pvm = new Kvm().createVm({ clock: "deterministic" });
  pvm.createIrqchip();
  const pv = pvm.createVcpu(0);
  pv.writeMsr(0x1b, 0xfee00100n); // APIC off: PIC output goes straight to the CPU
  for (const [p, b] of [
    [0x20, 0x11],
    [0x21, 0x30],
    [0x21, 4],
    [0x21, 1],
    [0x21, 0],
  ] as const)
    pvm.ioOut(p, 1, b);
  bench("PIC edge IRQ1 -> INTA -> non-specific EOI", () => {
    pvm.irqLine(1, true);
    pvm.irqLine(1, false);
    pv.acknowledgeInterrupt();
    pvm.ioOut(0x20, 1, 0x20);
  });
  const evm = new Kvm().createVm();
  let n = 0;
  evm.ioeventfd({ addr: 0xd0000050, len: 4, pio: false, notify: () => n++ });
  bench("ioeventfd MMIO write hit", () => {
    evm.mmioWrite(0, 0xd0000050, 4, 0);
  });
});
