import { describe, expect, it } from "vitest";
import { linuxApicSetup, makeChip } from "./helpers.js";

const out = new Uint32Array(2);

function ipi(l: ReturnType<ReturnType<typeof makeChip>["lapic"]>, lo: number, destId: number): void {
  l.mmioWrite(0x310, 4, destId << 24);
  l.mmioWrite(0x300, 4, lo);
}

describe("LAPIC registers (SDM 11.4)", () => {
  it("power-up state: version 0x50014, DFR all ones, LVTs masked, SVR 0xFF, ID = vCPU id", () => {
    const { lapic } = makeChip(2);
    const l = lapic(1);
    expect(l.mmioRead(0x30, 4)).toBe(0x50014);
    expect(l.mmioRead(0xe0, 4)).toBe(0xffffffff);
    expect(l.mmioRead(0x320, 4)).toBe(0x10000);
    expect(l.mmioRead(0xf0, 4)).toBe(0xff);
    expect(l.mmioRead(0x20, 4)).toBe(0x01000000);
    expect(l.rdmsr(0x1b, out)).toBe(true);
    expect(out[0]).toBe(0xfee00800); // EN, not BSP
    expect(lapic(0).apicBase).toBe(0xfee00900); // BSP
  });
  it("byte reads inside a register work; writes that are not aligned dwords are dropped", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    l.mmioWrite(0x80, 4, 0x5a);
    expect(l.mmioRead(0x80, 1)).toBe(0x5a);
    l.mmioWrite(0x80, 2, 0x11);
    l.mmioWrite(0x84, 4, 0x11);
    expect(l.mmioRead(0x80, 4)).toBe(0x5a);
    expect(l.mmioRead(0x83, 2)).toBe(0); // crosses the dword: KVM refuses, reads 0
  });
  it("software disable (SVR bit 8 clear) masks every LVT and keeps them masked", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x320, 4, 0xef);
    l.mmioWrite(0xf0, 4, 0xff);
    expect(l.mmioRead(0x320, 4)).toBe(0x100ef);
    l.mmioWrite(0x320, 4, 0xef);
    expect(l.mmioRead(0x320, 4) & 0x10000).toBe(0x10000);
  });
});

describe("LAPIC priority (SDM 11.8.3)", () => {
  it("PPR is TPR when its class is not below the in-service class, else the ISR class", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.accept({
      vector: 0x45,
      deliveryMode: 0,
      logical: false,
      dest: 0,
      levelTriggered: false,
      assert: true,
      shorthand: 0,
    });
    l.acknowledge(0x45);
    l.mmioWrite(0x80, 4, 0x32);
    expect(l.mmioRead(0xa0, 4)).toBe(0x40);
    l.mmioWrite(0x80, 4, 0x52);
    expect(l.mmioRead(0xa0, 4)).toBe(0x52);
  });
  it("an IRR vector is delivered only if its class is above PPR's; CR8 is TPR[7:4]", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.cr8 = 5;
    expect(l.mmioRead(0x80, 4)).toBe(0x50);
    l.accept({
      vector: 0x5f,
      deliveryMode: 0,
      logical: false,
      dest: 0,
      levelTriggered: false,
      assert: true,
      shorthand: 0,
    });
    expect(l.pendingVector()).toBe(-1);
    l.accept({
      vector: 0x61,
      deliveryMode: 0,
      logical: false,
      dest: 0,
      levelTriggered: false,
      assert: true,
      shorthand: 0,
    });
    expect(l.pendingVector()).toBe(0x61);
    l.cr8 = 0;
    expect(l.pendingVector()).toBe(0x61);
    l.acknowledge(0x61);
    expect(l.pendingVector()).toBe(-1); // 0x5f is below the in-service 0x61's class
    l.mmioWrite(0xb0, 4, 0);
    expect(l.pendingVector()).toBe(0x5f);
  });
  it("a software-disabled APIC drops fixed interrupts (KVM __apic_accept_irq)", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    expect(
      l.accept({
        vector: 0x30,
        deliveryMode: 0,
        logical: false,
        dest: 0,
        levelTriggered: false,
        assert: true,
        shorthand: 0,
      }),
    ).toBe(false);
  });
  it("receiving an illegal vector (<16) sets ESR bit 6, visible after an ESR write", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.accept({
      vector: 3,
      deliveryMode: 0,
      logical: false,
      dest: 0,
      levelTriggered: false,
      assert: true,
      shorthand: 0,
    });
    expect(l.mmioRead(0x280, 4)).toBe(0);
    l.mmioWrite(0x280, 4, 0);
    expect(l.mmioRead(0x280, 4)).toBe(0x40);
    expect(l.pendingVector()).toBe(0xfe); // LVT error interrupt
  });
});

describe("LAPIC IPIs (SDM 11.6)", () => {
  it("fixed IPI to a physical destination", () => {
    const { lapic } = makeChip(2);
    linuxApicSetup(lapic(0), 0);
    linuxApicSetup(lapic(1), 1);
    ipi(lapic(0), 0x4040, 1);
    expect(lapic(1).pendingVector()).toBe(0x40);
    expect(lapic(0).mmioRead(0x300, 4)).toBe(0x4040); // delivery status idle
  });
  it("shorthands: self, all including self, all excluding self", () => {
    const { lapic } = makeChip(3);
    for (let i = 0; i < 3; i++) linuxApicSetup(lapic(i), i);
    ipi(lapic(1), 0x40041, 0); // self
    expect([0, 1, 2].map((i) => lapic(i).pendingVector())).toEqual([-1, 0x41, -1]);
    ipi(lapic(1), 0xc0052, 0); // all excluding self
    expect([0, 1, 2].map((i) => lapic(i).pendingVector())).toEqual([0x52, 0x41, 0x52]);
    ipi(lapic(0), 0x80063, 0); // all including self
    expect([0, 1, 2].map((i) => lapic(i).pendingVector())).toEqual([0x63, 0x63, 0x63]);
  });
  it("INIT then SIPI: Linux wakeup_secondary_cpu_via_init sequence", () => {
    const { lapic, kicks } = makeChip(2);
    linuxApicSetup(lapic(0), 0);
    const bsp = lapic(0);
    ipi(bsp, 0xc500, 1); // INIT assert, level
    ipi(bsp, 0x8500, 1); // INIT de-assert: ignored
    expect(lapic(1).pendingEvents).toBe(1);
    ipi(bsp, 0x0600 | 0x9a, 1); // SIPI, vector 0x9a -> start at 0x9a000
    expect(lapic(1).pendingEvents).toBe(3);
    expect(lapic(1).sipiVector).toBe(0x9a);
    expect(kicks).toContain(1);
  });
  it("NMI IPI counts a pending NMI", () => {
    const { lapic } = makeChip(2);
    ipi(lapic(0), 0x0400, 1);
    expect(lapic(1).nmiPending).toBe(1);
  });
  it("sending an illegal vector sets ESR bit 5 and sends nothing", () => {
    const { lapic } = makeChip(2);
    linuxApicSetup(lapic(0), 0);
    linuxApicSetup(lapic(1), 1);
    ipi(lapic(0), 0x0005, 1);
    lapic(0).mmioWrite(0x280, 4, 0);
    expect(lapic(0).mmioRead(0x280, 4) & 0x20).toBe(0x20);
    expect(lapic(1).pendingVector()).toBe(-1);
  });
  it("lowest priority goes to the APIC with the lowest PPR", () => {
    const { lapic } = makeChip(3);
    for (let i = 0; i < 3; i++) linuxApicSetup(lapic(i), i);
    lapic(0).mmioWrite(0x80, 4, 0x30);
    lapic(1).mmioWrite(0x80, 4, 0x10);
    lapic(2).mmioWrite(0x80, 4, 0x20);
    ipi(lapic(0), 0x0971, 0x07); // logical flat, all three
    expect([0, 1, 2].map((i) => lapic(i).pendingVector())).toEqual([-1, 0x71, -1]);
  });
});

describe("LAPIC EOI (SDM 11.8.5)", () => {
  it("EOI retires the highest in-service vector and broadcasts only level vectors", () => {
    const { chip, lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    const seen: number[] = [];
    chip.onGsiEoi(9, () => seen.push(9));
    chip.ioapic.mmioWrite(0, 4, 0x10 + 18);
    chip.ioapic.mmioWrite(0x10, 4, 0x8070); // pin 9: level, vector 0x70
    chip.pic.ioWrite(0x21, 0xff);
    chip.pic.ioWrite(0xa1, 0xff);
    chip.setGsi(9, true);
    expect(chip.acknowledge(0)).toBe(0x70);
    l.mmioWrite(0xb0, 4, 0);
    expect(seen).toEqual([9]);
  });
});

describe("LAPIC timer (SDM 11.5.4)", () => {
  it("divide configuration: TDCR 0b1011 divides by 1, 0b0011 by 16", () => {
    const { lapic, clock } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x3e0, 4, 0x3);
    l.mmioWrite(0x320, 4, 0x20ef);
    l.mmioWrite(0x380, 4, 1000);
    expect(l.nextDeadlineNs()).toBe(16000);
    clock.advance(1600);
    expect(l.mmioRead(0x390, 4)).toBe(900);
    l.mmioWrite(0x3e0, 4, 0xb);
    expect(l.mmioRead(0x390, 4)).toBe(900); // counts left kept, now at divide-by-1
    expect(l.nextDeadlineNs()).toBe(1600 + 900);
  });
  it("one-shot: fires once, then TMCCT reads 0", () => {
    const { lapic, clock } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x3e0, 4, 0xb);
    l.mmioWrite(0x320, 4, 0xec);
    l.mmioWrite(0x380, 4, 5000);
    clock.advance(4999);
    expect(l.tick(clock.nowNs())).toBe(false);
    clock.advance(1);
    expect(l.tick(clock.nowNs())).toBe(true);
    expect(l.pendingVector()).toBe(0xec);
    expect(l.mmioRead(0x390, 4)).toBe(0);
    expect(l.nextDeadlineNs()).toBe(Number.POSITIVE_INFINITY);
  });
  it("LAPIC timer periodic reloads from initial count", () => {
    const { lapic, clock } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x3e0, 4, 0xb);
    l.mmioWrite(0x320, 4, 0x200ec); // periodic
    l.mmioWrite(0x380, 4, 1_000_000); // 1 ms
    clock.advance(1_000_000);
    expect(l.tick(clock.nowNs())).toBe(true);
    expect(l.nextDeadlineNs()).toBe(2_000_000);
    expect(l.mmioRead(0x390, 4)).toBe(1_000_000);
    clock.advance(250_000);
    expect(l.mmioRead(0x390, 4)).toBe(750_000);
    clock.advance(5_000_000); // missed periods collapse into one
    expect(l.tick(clock.nowNs())).toBe(true);
    expect(l.nextDeadlineNs()).toBe(7_000_000);
  });
  it("periodic timers shorter than 200 us are clamped (KVM min_timer_period_us)", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x3e0, 4, 0xb);
    l.mmioWrite(0x320, 4, 0x200ec);
    l.mmioWrite(0x380, 4, 10);
    expect(l.nextDeadlineNs()).toBe(200_000);
  });
  it("a masked timer counts but raises nothing", () => {
    const { lapic, clock } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x3e0, 4, 0xb);
    l.mmioWrite(0x320, 4, 0x100ec);
    l.mmioWrite(0x380, 4, 10);
    clock.advance(10);
    expect(l.tick(clock.nowNs())).toBe(true);
    expect(l.pendingVector()).toBe(-1);
  });
  it("TSC-deadline: fires when the TSC reaches IA32_TSC_DEADLINE, which then reads 0; TMICT is ignored", () => {
    const { lapic, clock } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    expect(l.wrmsr(0x6e0, 1234, 0)).toBe(true); // ignored outside deadline mode
    l.rdmsr(0x6e0, out);
    expect(out[0]).toBe(0);
    l.mmioWrite(0x320, 4, 0x400ed);
    l.mmioWrite(0x380, 4, 10);
    expect(l.mmioRead(0x380, 4)).toBe(0);
    l.wrmsr(0x6e0, 50_000, 0);
    l.rdmsr(0x6e0, out);
    expect(out[0]).toBe(50_000);
    clock.advance(50_000);
    expect(l.tick(clock.nowNs())).toBe(true);
    expect(l.pendingVector()).toBe(0xed);
    l.rdmsr(0x6e0, out);
    expect(out[0]).toBe(0);
  });
  it("leaving TSC-deadline mode disarms the timer (KVM apic_update_lvtt)", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x320, 4, 0x400ed);
    l.wrmsr(0x6e0, 50_000, 0);
    l.mmioWrite(0x320, 4, 0xed);
    expect(l.nextDeadlineNs()).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("IA32_APIC_BASE and x2APIC (SDM 11.4.4, 11.12)", () => {
  it("mode transitions: xAPIC -> x2APIC ok, x2APIC -> xAPIC #GP, disabled -> x2APIC #GP, EN=0 with EXTD=1 #GP", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    expect(l.wrmsr(0x1b, 0xfee00d00, 0)).toBe(true);
    expect(l.x2apicMode).toBe(true);
    expect(l.wrmsr(0x1b, 0xfee00900, 0)).toBe(false);
    expect(l.wrmsr(0x1b, 0xfee00500, 0)).toBe(false);
    expect(l.wrmsr(0x1b, 0xfee00100, 0)).toBe(true); // disable
    expect(l.wrmsr(0x1b, 0xfee00d00, 0)).toBe(false);
    expect(l.wrmsr(0x1b, 0xfee00d00, 0, true)).toBe(true); // host-initiated may
  });
  it("reserved bits (0-7, 9) #GP", () => {
    const { lapic } = makeChip(1);
    expect(lapic(0).wrmsr(0x1b, 0xfee00901, 0)).toBe(false);
    expect(lapic(0).wrmsr(0x1b, 0xfee00b00, 0)).toBe(false);
  });
  it("x2APIC: ID is the vCPU id, LDR is cluster<<16 | 1<<(id&15), MMIO is off", () => {
    const { lapic } = makeChip(19);
    const l = lapic(18);
    l.wrmsr(0x1b, 0xfee00c00, 0);
    expect(l.rdmsr(0x802, out)).toBe(true);
    expect(out[0]).toBe(18);
    l.rdmsr(0x80d, out);
    expect(out[0]).toBe((1 << 16) | (1 << 2));
    expect(l.mmioBase).toBe(-1);
  });
  it("x2APIC MSR rules: DFR and ICR2 do not exist, EOI is write-only and must write 0, ID is read-only", () => {
    const { lapic } = makeChip(1);
    const l = lapic(0);
    l.wrmsr(0x1b, 0xfee00d00, 0);
    expect(l.rdmsr(0x80e, out)).toBe(false);
    expect(l.rdmsr(0x831, out)).toBe(false);
    expect(l.rdmsr(0x80b, out)).toBe(false);
    expect(l.wrmsr(0x80b, 1, 0)).toBe(false);
    expect(l.wrmsr(0x80b, 0, 0)).toBe(true);
    expect(l.wrmsr(0x802, 5, 0)).toBe(false);
    expect(l.wrmsr(0x808, 0x100, 0)).toBe(false); // TPR reserved bits
  });
  it("x2APIC ICR: one 64-bit write sends to a 32-bit destination; SELF_IPI", () => {
    const { lapic } = makeChip(2);
    for (const i of [0, 1]) {
      lapic(i).wrmsr(0x1b, 0xfee00c00 | (i === 0 ? 0x100 : 0), 0);
      lapic(i).wrmsr(0x80f, 0x1ff, 0);
    }
    expect(lapic(0).wrmsr(0x830, 0x4055, 1)).toBe(true);
    expect(lapic(1).pendingVector()).toBe(0x55);
    lapic(0).wrmsr(0x83f, 0x66, 0);
    expect(lapic(0).pendingVector()).toBe(0x66);
    expect(lapic(0).rdmsr(0x830, out)).toBe(true);
    expect([out[0], out[1]]).toEqual([0x4055, 1]);
  });
  it("x2APIC MSRs #GP in xAPIC mode", () => {
    const { lapic } = makeChip(1);
    expect(lapic(0).rdmsr(0x802, out)).toBe(false);
  });
});

describe("LAPIC state", () => {
  it("save -> restore -> save round trip, timer keeps its remaining time", () => {
    const { lapic, clock } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    l.mmioWrite(0x3e0, 4, 0xb);
    l.mmioWrite(0x320, 4, 0xec);
    l.mmioWrite(0x380, 4, 5000);
    clock.advance(1000);
    const s = l.save();
    expect(s.regs[0x390 >> 2]).toBe(4000);
    const other = makeChip(1);
    other.clock.advance(1000);
    other.lapic(0).restore(s);
    expect(other.lapic(0).save()).toEqual(s);
    expect(other.lapic(0).nextDeadlineNs()).toBe(5000);
  });
  it("INIT reset keeps the APIC id and base", () => {
    const { lapic } = makeChip(2);
    const l = lapic(1);
    linuxApicSetup(l, 1);
    l.reset(true);
    expect(l.mmioRead(0x20, 4)).toBe(0x01000000);
    expect(l.mmioRead(0xf0, 4)).toBe(0xff);
    expect(l.mmioRead(0xd0, 4)).toBe(0);
  });
});
