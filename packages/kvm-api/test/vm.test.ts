import { describe, expect, it } from "vitest";
import type { DeterministicClock } from "../src/clock.js";
import { Kvm } from "../src/kvm.js";
import { errOf, linuxApicSetup } from "./helpers.js";

function vmWithChip() {
  const vm = new Kvm().createVm({ clock: "deterministic" });
  vm.createIrqchip();
  return vm;
}

describe("Vm: creation order (api.rst 4.24, 4.71)", () => {
  it("KVM_CREATE_IRQCHIP after a vCPU is EINVAL, twice is EEXIST", () => {
    const vm = new Kvm().createVm();
    vm.createVcpu(0);
    expect(errOf(() => vm.createIrqchip()).code).toBe("EINVAL");
    const vm2 = new Kvm().createVm();
    vm2.createIrqchip();
    expect(errOf(() => vm2.createIrqchip()).code).toBe("EEXIST");
  });
  it("KVM_CREATE_PIT2 before the irqchip is ENOENT, twice is EEXIST", () => {
    const vm = new Kvm().createVm();
    expect(errOf(() => vm.createPit2()).code).toBe("ENOENT");
    vm.createIrqchip();
    vm.createPit2();
    expect(errOf(() => vm.createPit2()).code).toBe("EEXIST");
  });
  it("KVM_CREATE_VCPU: duplicate id EEXIST, id out of range EINVAL", () => {
    const vm = new Kvm().createVm();
    vm.createVcpu(3);
    expect(errOf(() => vm.createVcpu(3)).code).toBe("EEXIST");
    expect(errOf(() => vm.createVcpu(255)).code).toBe("EINVAL");
    expect(errOf(() => vm.createVcpu(-1)).code).toBe("EINVAL");
  });
  it("irqchip calls without an irqchip: KVM_IRQ_LINE/GET_IRQCHIP ENXIO, GSI routing/irqfd EINVAL, PIT2 state ENXIO", () => {
    const vm = new Kvm().createVm();
    expect(errOf(() => vm.irqLine(4, true)).code).toBe("ENXIO");
    expect(errOf(() => vm.getIrqchip(0)).code).toBe("ENXIO");
    expect(errOf(() => vm.setGsiRouting([])).code).toBe("EINVAL");
    expect(errOf(() => vm.irqfd(4)).code).toBe("EINVAL");
    expect(errOf(() => vm.getPit2()).code).toBe("ENXIO");
  });
});

describe("Vm: interrupts", () => {
  it("PIT IRQ0 -> PIC -> LINT0 ExtINT: Linux's periodic tick reaches vCPU 0", () => {
    const vm = vmWithChip();
    vm.createPit2();
    const v = vm.createVcpu(0);
    linuxApicSetup(v.lapic!, 0);
    for (const [p, b] of [
      [0x20, 0x11],
      [0x21, 0x30],
      [0x21, 0x04],
      [0x21, 0x01],
      [0x21, 0xfe],
    ] as const)
      expect(vm.ioOut(p, 1, b)).toBe(true);
    vm.ioOut(0x43, 1, 0x34);
    vm.ioOut(0x40, 1, 1193 & 0xff);
    vm.ioOut(0x40, 1, 1193 >> 8);
    const clock = vm.clock as DeterministicClock;
    expect(v.hasInterrupt()).toBe(false);
    clock.advanceTo(vm.nextDeadlineNs());
    vm.tick();
    expect(v.hasInterrupt()).toBe(true);
    expect(v.acknowledgeInterrupt()).toBe(0x30);
    vm.ioOut(0x20, 1, 0x20);
    expect(v.hasInterrupt()).toBe(false);
  });
  it("ExtINT is taken only while LINT0 is unmasked ExtINT or the APIC is disabled (kvm_apic_accept_pic_intr)", () => {
    const vm = vmWithChip();
    const v = vm.createVcpu(0);
    expect(v.lapic!.mmioRead(0x350, 4)).toBe(0x700); // KVM_X86_QUIRK_LINT0_REENABLED
    vm.mmioWrite(0, 0xfee00350, 4, 0x10700); // mask LINT0
    vm.irqLine(3, true);
    expect(v.hasInterrupt()).toBe(false);
    v.writeMsr(0x1b, 0xfee00000n + 0x100n); // hardware-disable the APIC
    expect(v.hasInterrupt()).toBe(true);
    expect(v.acknowledgeInterrupt()).toBe(3); // uninitialised PIC: base 0
  });
  it("LAPIC timer deadline is serviced by Vm.tick()", () => {
    const vm = vmWithChip();
    const v = vm.createVcpu(0);
    linuxApicSetup(v.lapic!, 0);
    vm.mmioWrite(0, 0xfee003e0, 4, 0xb);
    vm.mmioWrite(0, 0xfee00320, 4, 0xec);
    vm.mmioWrite(0, 0xfee00380, 4, 1000);
    expect(vm.nextDeadlineNs()).toBe(1000);
    (vm.clock as DeterministicClock).advance(1000);
    vm.tick();
    expect(v.acknowledgeInterrupt()).toBe(0xec);
  });
  it("KVM_SIGNAL_MSI delivers to the addressed APIC; only KVM_MSI_VALID_DEVID in flags; -1 when nobody is addressed", () => {
    const vm = vmWithChip();
    const a = vm.createVcpu(0);
    const b = vm.createVcpu(1);
    linuxApicSetup(a.lapic!, 0);
    linuxApicSetup(b.lapic!, 1);
    expect(vm.signalMsi({ addressLo: 0xfee01000, addressHi: 0, data: 0x45 })).toBe(1);
    expect(b.lapic!.pendingVector()).toBe(0x45);
    expect(vm.signalMsi({ addressLo: 0xfee07000, addressHi: 0, data: 0x45 })).toBe(-1); // APIC 7: none
    expect(vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x46, flags: 1 })).toBe(1);
    expect(
      errOf(() => vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x45, flags: 2 })).code,
    ).toBe("EINVAL");
  });
  it("GSI routing: MSI route via KVM_IRQ_LINE; validation per irqchip.c", () => {
    const vm = vmWithChip();
    const a = vm.createVcpu(0);
    linuxApicSetup(a.lapic!, 0);
    vm.setGsiRouting([{ gsi: 40, type: 2, addressLo: 0xfee00000, addressHi: 0, data: 0x66 }]);
    expect(vm.irqLine(40, true)).toBe(1);
    expect(a.lapic!.pendingVector()).toBe(0x66);
    expect(vm.irqLine(3, true)).toBe(-1); // the default table was replaced
    expect(errOf(() => vm.setGsiRouting([{ gsi: 1, type: 1, irqchip: 0, pin: 8 }])).reason).toBe("BadPin");
    expect(errOf(() => vm.setGsiRouting([{ gsi: 1, type: 1, irqchip: 3, pin: 0 }])).reason).toBe(
      "BadIrqchip",
    );
    expect(
      errOf(() =>
        vm.setGsiRouting([
          { gsi: 1, type: 1, irqchip: 2, pin: 1 },
          { gsi: 1, type: 1, irqchip: 2, pin: 2 },
        ]),
      ).reason,
    ).toBe("DuplicateRoute");
    expect(
      errOf(() =>
        vm.setGsiRouting([
          { gsi: 1, type: 1, irqchip: 2, pin: 1 },
          { gsi: 1, type: 2, addressLo: 0xfee00000, addressHi: 0, data: 0 },
        ]),
      ).reason,
    ).toBe("DuplicateRoute");
  });
  it("irqfd with resample: level until the guest EOIs, then resample is called", () => {
    const vm = vmWithChip();
    const v = vm.createVcpu(0);
    linuxApicSetup(v.lapic!, 0);
    vm.ioOut(0x21, 1, 0xff);
    vm.ioOut(0xa1, 1, 0xff);
    vm.mmioWrite(0, 0xfec00000, 4, 0x10 + 2 * 10);
    vm.mmioWrite(0, 0xfec00010, 4, 0x8000 | 0x71); // level, vector 0x71
    let resampled = 0;
    const fd = vm.irqfd(10, () => resampled++);
    fd.signal();
    expect(v.acknowledgeInterrupt()).toBe(0x71);
    vm.mmioWrite(0, 0xfee000b0, 4, 0);
    expect(resampled).toBe(1);
    expect(v.hasInterrupt()).toBe(false); // deasserted by the EOI, not re-delivered
    fd.deassign();
    fd.deassign(); // kvm_irqfd_deassign() succeeds for a pair that is not assigned
  });
});

describe("Vm: ioeventfd (KVM_IOEVENTFD)", () => {
  it("a matching write is completed in the kernel; others exit", () => {
    const vm = new Kvm().createVm();
    let hits = 0;
    const spec = { addr: 0xd0000050, len: 4, pio: false, datamatch: 2n, notify: () => hits++ };
    vm.ioeventfd(spec);
    expect(vm.mmioWrite(0, 0xd0000050, 4, 2)).toBe(true);
    expect(vm.mmioWrite(0, 0xd0000050, 4, 3)).toBe(false);
    expect(vm.mmioWrite(0, 0xd0000050, 2, 2)).toBe(false);
    expect(hits).toBe(1);
    expect(errOf(() => vm.ioeventfd({ ...spec })).code).toBe("EEXIST");
    vm.ioeventfd(spec, true);
    expect(errOf(() => vm.ioeventfd(spec, true)).code).toBe("ENOENT");
  });
  it("PIO, wildcard; bad length EINVAL; datamatch with length 0 EINVAL", () => {
    const vm = new Kvm().createVm();
    let hits = 0;
    vm.ioeventfd({ addr: 0xc050, len: 2, pio: true, notify: () => hits++ });
    expect(vm.ioOut(0xc050, 2, 0x1234)).toBe(true);
    expect(hits).toBe(1);
    expect(errOf(() => vm.ioeventfd({ addr: 0, len: 3, pio: true, notify: () => {} })).code).toBe("EINVAL");
    expect(
      errOf(() => vm.ioeventfd({ addr: 0, len: 0, pio: false, datamatch: 1n, notify: () => {} })).code,
    ).toBe("EINVAL");
  });
});

describe("Vm: kernel-side I/O and MMIO routing", () => {
  it("ports of the PIC, ELCR and PIT are the kernel's; 0x61 only with KVM_PIT_SPEAKER_DUMMY; others exit", () => {
    const vm = vmWithChip();
    vm.createPit2(0);
    expect(vm.ioIn(0x21, 1)).toBe(0);
    expect(vm.ioIn(0x4d0, 1)).toBe(0);
    expect(vm.ioIn(0x40, 1)).toBeDefined();
    expect(vm.ioIn(0x61, 1)).toBeUndefined();
    expect(vm.ioIn(0x3f8, 1)).toBeUndefined();
    expect(vm.ioOut(0x3f8, 1, 0x41)).toBe(false);
    const vm2 = vmWithChip();
    vm2.createPit2(1);
    expect(vm2.ioIn(0x61, 1)).toBeDefined();
  });
  it("non-byte accesses to PIC and PIT ports stay in the kernel as KVM's picdev/pit handlers do", () => {
    const vm = vmWithChip();
    vm.createPit2(0);
    vm.ioOut(0x21, 1, 0x5a);
    expect(vm.ioIn(0x21, 2)).toBe(0);
    expect(vm.ioOut(0x21, 2, 0)).toBe(true);
    expect(vm.ioIn(0x21, 1)).toBe(0x5a); // the wide write was dropped
    expect(vm.ioOut(0x43, 4, 0x1234_5634)).toBe(true); // low byte 0x34: ch0 mode 2
    expect(vm.getPit2().channels[0]!.mode).toBe(2);
  });

  it("LAPIC MMIO is per vCPU and follows IA32_APIC_BASE; x2APIC turns it off", () => {
    const vm = vmWithChip();
    const a = vm.createVcpu(0);
    vm.createVcpu(1);
    expect(vm.mmioRead(0, 0xfee00020, 4)).toBe(0);
    expect(vm.mmioRead(1, 0xfee00020, 4)).toBe(0x01000000);
    a.writeMsr(0x1b, 0xfed00900n);
    expect(vm.mmioRead(0, 0xfee00020, 4)).toBeUndefined();
    expect(vm.mmioRead(0, 0xfed00030, 4)).toBe(0x50014);
    a.writeMsr(0x1b, 0xfed00d00n);
    expect(vm.mmioRead(0, 0xfed00030, 4)).toBeUndefined();
  });
  it("IOAPIC window at 0xfec00000", () => {
    const vm = vmWithChip();
    vm.mmioWrite(0, 0xfec00000, 4, 1);
    expect(vm.mmioRead(0, 0xfec00010, 4)).toBe(0x170011);
    expect(vm.mmioRead(0, 0xfec00100, 4)).toBeUndefined();
  });
});

describe("Vm: device state (KVM_GET/SET_IRQCHIP, PIT2, CLOCK)", () => {
  it("irqchip state round trips for chips 0, 1, 2; chip 3 is EINVAL", () => {
    const vm = vmWithChip();
    vm.ioOut(0x20, 1, 0x11);
    vm.ioOut(0x21, 1, 0x30);
    vm.mmioWrite(0, 0xfec00000, 4, 0x12);
    vm.mmioWrite(0, 0xfec00010, 4, 0x1234);
    const s = [0, 1, 2].map((c) => vm.getIrqchip(c));
    const vm2 = vmWithChip();
    for (const x of s) vm2.setIrqchip(x);
    expect([0, 1, 2].map((c) => vm2.getIrqchip(c))).toEqual(s);
    expect(errOf(() => vm.getIrqchip(3)).code).toBe("EINVAL");
  });
  it("PIT state round trips", () => {
    const vm = vmWithChip();
    vm.createPit2();
    vm.ioOut(0x43, 1, 0x34);
    vm.ioOut(0x40, 1, 0x10);
    vm.ioOut(0x40, 1, 0x27);
    const vm2 = vmWithChip();
    vm2.createPit2();
    vm2.setPit2(vm.getPit2());
    expect(vm2.getPit2()).toEqual(vm.getPit2());
    expect(errOf(() => vm2.setPit2({ channels: [], flags: 0 })).code).toBe("EINVAL");
  });
});
