/**
 * Cross-device sequences as Linux runs them at boot, checked end to end through the VM's
 * kernel-side port/MMIO handlers and one deterministic clock.
 */
import { describe, expect, it } from "vitest";
import type { DeterministicClock } from "../src/clock.js";
import { PIT_HZ } from "../src/devices/pit.js";
import { Kvm } from "../src/kvm.js";

function machine(tscKhz = 2_400_000) {
  const vm = new Kvm().createVm({ clock: "deterministic" });
  vm.createIrqchip();
  vm.createPit2(1);
  const v = vm.createVcpu(0);
  v.setTscKhz(tscKhz);
  return { vm, v, clock: vm.clock as DeterministicClock };
}

describe("Linux boot-time sequences", () => {
  it("arch/x86/kernel/tsc.c pit_calibrate_tsc: 50 ms of PIT channel 2 measures the TSC rate", () => {
    const { vm, v, clock } = machine(2_400_000);
    const latch = Math.floor(PIT_HZ / (1000 / 50));
    vm.ioOut(0x61, 1, (vm.ioIn(0x61, 1)! & ~0x02) | 0x01);
    vm.ioOut(0x43, 1, 0xb0);
    vm.ioOut(0x42, 1, latch & 0xff);
    vm.ioOut(0x42, 1, latch >> 8);
    const t1 = v.tsc();
    // The guest spins on inb(0x61) & 0x20; each iteration costs time. Model 1 us per loop.
    let loops = 0;
    while ((vm.ioIn(0x61, 1)! & 0x20) === 0 && loops < 1_000_000) {
      clock.advance(1000);
      loops++;
    }
    const t2 = v.tsc();
    const tscKhz = Math.floor((t2 - t1) / 50);
    expect(Math.abs(tscKhz - 2_400_000) / 2_400_000).toBeLessThan(0.001);
  });

  it("apic.c calibrate_APIC_clock: TMCCT over 100 ms at divide-by-16 gives the 1 GHz APIC bus", () => {
    const { vm, clock } = machine();
    const rd = (off: number) => vm.mmioRead(0, 0xfee00000 + off, 4)!;
    const wr = (off: number, val: number) => vm.mmioWrite(0, 0xfee00000 + off, 4, val);
    wr(0xf0, 0x1ff);
    // __setup_APIC_LVTT(0xffffffff, 0, 0): one-shot, masked, divide by 16, TMICT = clocks / 16
    wr(0x3e0, (rd(0x3e0) & ~0xf) | 0x3);
    wr(0x320, 0x100ec);
    wr(0x380, Math.floor(0xffffffff / 16));
    const start = rd(0x390);
    clock.advance(100_000_000); // LAPIC_CAL_LOOPS ticks of a HZ=100... 100 ms
    const delta = start - rd(0x390);
    const busHz = delta * 16 * 10;
    expect(busHz).toBe(1_000_000_000);
  });

  it("IOAPIC check_timer: PIT IRQ0 through IOAPIC pin 2 (ACPI override) with the PIC masked", () => {
    const { vm, v, clock } = machine();
    vm.mmioWrite(0, 0xfee000f0, 4, 0x1ff);
    vm.ioOut(0x21, 1, 0xff);
    vm.ioOut(0xa1, 1, 0xff);
    // MADT interrupt source override: ISA IRQ0 -> GSI 2; QEMU routes GSI 0 to IOAPIC pin 2.
    vm.setGsiRouting([
      { gsi: 0, type: 1, irqchip: 0, pin: 0 },
      { gsi: 0, type: 1, irqchip: 2, pin: 2 },
    ]);
    vm.mmioWrite(0, 0xfec00000, 4, 0x10 + 2 * 2);
    vm.mmioWrite(0, 0xfec00010, 4, 0x30); // vector 0x30, edge, physical, APIC 0
    vm.ioOut(0x43, 1, 0x34);
    vm.ioOut(0x40, 1, 1193 & 0xff);
    vm.ioOut(0x40, 1, 1193 >> 8);
    let ticks = 0;
    for (let i = 0; i < 5; i++) {
      clock.advanceTo(vm.nextDeadlineNs());
      vm.tick();
      if (v.hasInterrupt()) {
        expect(v.acknowledgeInterrupt()).toBe(0x30);
        vm.mmioWrite(0, 0xfee000b0, 4, 0);
        ticks++;
      }
    }
    expect(ticks).toBe(5);
  });

  it("smpboot.c wakeup_secondary_cpu_via_init: INIT, 10 ms, SIPI, SIPI start the AP once", () => {
    const { vm } = machine();
    const ap = vm.createVcpu(1);
    vm.mmioWrite(0, 0xfee000f0, 4, 0x1ff);
    const icr = (lo: number) => {
      vm.mmioWrite(0, 0xfee00310, 4, 1 << 24);
      vm.mmioWrite(0, 0xfee00300, 4, lo);
    };
    icr(0xc500); // INIT assert
    icr(0x8500); // INIT deassert
    ap.acceptEvents();
    icr(0x0600 | 0x9f);
    ap.acceptEvents();
    ap.setRegs({ ...ap.getRegs(), rip: 0x42n }); // the AP started running
    icr(0x0600 | 0x9f); // the second SIPI of the sequence is ignored by a running AP
    ap.acceptEvents();
    expect(ap.getRegs().rip).toBe(0x42n);
    expect(ap.getSregs().cs.base).toBe(0x9f000n);
  });
});
