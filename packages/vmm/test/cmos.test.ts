import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PortBus } from "../src/devices/bus.js";
import { CMOS_INDEX_PORT, Cmos, RegA, RegB, RegC, RtcReg } from "../src/devices/cmos.js";

// 2024-02-29 13:45:30.500 UTC, a Thursday.
const T0 = Date.UTC(2024, 1, 29, 13, 45, 30, 500);

function setup(start = T0, memBytes?: number) {
  let now = start;
  const irq: boolean[] = [];
  const cmos = new Cmos({ clock: () => now, irq: { set: (l) => irq.push(l) }, memBytes });
  const bus = new PortBus();
  bus.register(CMOS_INDEX_PORT, 2, cmos, "cmos");
  // CMOS_READ/CMOS_WRITE in Linux: index to 0x70, data at 0x71.
  const read = (r: number) => {
    bus.write(0x70, 1, r);
    return bus.read(0x71, 1);
  };
  const write = (r: number, v: number) => {
    bus.write(0x70, 1, r);
    bus.write(0x71, 1, v);
  };
  return {
    cmos,
    bus,
    read,
    write,
    irq,
    advance: (ms: number) => (now += ms),
    setNow: (t: number) => (now = t),
  };
}

describe("MC146818 RTC", () => {
  it("reads the host time in BCD, 24-hour, as a BIOS leaves it", () => {
    const { read } = setup();
    expect(read(RtcReg.SECONDS)).toBe(0x30);
    expect(read(RtcReg.MINUTES)).toBe(0x45);
    expect(read(RtcReg.HOURS)).toBe(0x13);
    expect(read(RtcReg.DAY_OF_WEEK)).toBe(5);
    expect(read(RtcReg.DAY_OF_MONTH)).toBe(0x29);
    expect(read(RtcReg.MONTH)).toBe(0x02);
    expect(read(RtcReg.YEAR)).toBe(0x24);
    expect(read(RtcReg.CENTURY)).toBe(0x20);
    expect(read(RtcReg.D)).toBe(0x80);
  });

  it("register B selects binary and 12-hour forms", () => {
    const { read, write } = setup();
    write(RtcReg.B, RegB.DM_BINARY | RegB.HOUR_24);
    expect(read(RtcReg.SECONDS)).toBe(30);
    expect(read(RtcReg.HOURS)).toBe(13);
    write(RtcReg.B, RegB.DM_BINARY);
    expect(read(RtcReg.HOURS)).toBe(0x80 | 1); // 1 PM
    write(RtcReg.B, 0);
    expect(read(RtcReg.HOURS)).toBe(0x81);
  });

  it("UIP is set 244 us before the update and through the 1984 us update cycle", () => {
    const t = setup(Date.UTC(2024, 0, 1, 0, 0, 0, 500));
    expect(t.read(RtcReg.A) & RegA.UIP).toBe(0);
    t.setNow(Date.UTC(2024, 0, 1, 0, 0, 0, 999) + 0.9);
    expect(t.read(RtcReg.A) & RegA.UIP).toBe(RegA.UIP);
    t.setNow(Date.UTC(2024, 0, 1, 0, 0, 1) + 1.5);
    expect(t.read(RtcReg.A) & RegA.UIP).toBe(RegA.UIP);
    t.setNow(Date.UTC(2024, 0, 1, 0, 0, 1) + 2.5);
    expect(t.read(RtcReg.A) & RegA.UIP).toBe(0);
    // With SET on, no updates run and UIP stays clear.
    t.setNow(Date.UTC(2024, 0, 1, 0, 0, 0, 999) + 0.9);
    t.write(RtcReg.B, RegB.SET | RegB.HOUR_24);
    expect(t.read(RtcReg.A) & RegA.UIP).toBe(0);
  });

  it("SET freezes the clock; the time the guest writes then runs on from the host clock", () => {
    const t = setup();
    t.write(RtcReg.B, RegB.SET | RegB.HOUR_24);
    t.write(RtcReg.YEAR, 0x99);
    t.write(RtcReg.CENTURY, 0x19);
    t.write(RtcReg.MONTH, 0x12);
    t.write(RtcReg.DAY_OF_MONTH, 0x31);
    t.write(RtcReg.HOURS, 0x23);
    t.write(RtcReg.MINUTES, 0x59);
    t.write(RtcReg.SECONDS, 0x58);
    t.advance(5000);
    expect(t.read(RtcReg.SECONDS)).toBe(0x58); // frozen
    t.write(RtcReg.B, RegB.HOUR_24);
    t.advance(3000);
    expect(t.read(RtcReg.SECONDS)).toBe(0x01);
    expect(t.read(RtcReg.MINUTES)).toBe(0x00);
    expect(t.read(RtcReg.YEAR)).toBe(0x00);
    expect(t.read(RtcReg.CENTURY)).toBe(0x20);
  });

  it("update-ended interrupt: UF with UIE raises IRQ 8; reading C clears it", () => {
    const t = setup();
    t.write(RtcReg.B, RegB.HOUR_24 | RegB.UIE);
    t.cmos.poll();
    expect(t.irq).toEqual([]);
    t.advance(600);
    t.cmos.poll();
    expect(t.irq).toEqual([true]);
    // PF is set too (RS=6 runs even with PIE off); only UF is enabled, so it alone raised IRQF.
    expect(t.read(RtcReg.C) & ~RegC.PF).toBe(RegC.IRQF | RegC.UF);
    expect(t.irq).toEqual([true, false]);
    expect(t.read(RtcReg.C) & RegC.UF).toBe(0);
  });

  it("periodic interrupt at the RS rate (RS=6: 1024 Hz)", () => {
    const t = setup();
    t.write(RtcReg.A, RegA.DV_32KHZ | 6);
    t.write(RtcReg.B, RegB.HOUR_24 | RegB.PIE);
    t.read(RtcReg.C);
    t.advance(0.5);
    expect(t.read(RtcReg.C) & RegC.PF).toBe(0);
    t.advance(0.5);
    expect(t.read(RtcReg.C)).toBe(RegC.IRQF | RegC.PF);
  });

  it("alarm with don't-care hours and minutes fires at the matching second", () => {
    const t = setup();
    t.write(RtcReg.SECONDS_ALARM, 0x32);
    t.write(RtcReg.MINUTES_ALARM, 0xff);
    t.write(RtcReg.HOURS_ALARM, 0xc0);
    t.write(RtcReg.B, RegB.HOUR_24 | RegB.AIE);
    t.read(RtcReg.C);
    t.advance(1000); // :31
    expect(t.read(RtcReg.C) & RegC.AF).toBe(0);
    t.advance(1000); // :32
    expect(t.read(RtcReg.C) & (RegC.AF | RegC.IRQF)).toBe(RegC.AF | RegC.IRQF);
  });

  it("port 0x70 bit 7 masks NMIs and selects the register with bits 6:0; NVRAM keeps bytes", () => {
    const t = setup();
    t.bus.write(0x70, 1, 0x80 | 0x40);
    expect(t.cmos.nmiMasked).toBe(true);
    t.bus.write(0x71, 1, 0x5a);
    t.bus.write(0x70, 1, 0x40);
    expect(t.cmos.nmiMasked).toBe(false);
    expect(t.bus.read(0x71, 1)).toBe(0x5a);
    expect(t.bus.read(0x70, 1)).toBe(0xff);
  });

  it("fills the BIOS memory-size bytes", () => {
    const t = setup(T0, 256 * 1024 * 1024);
    expect(t.read(0x15) | (t.read(0x16) << 8)).toBe(640);
    expect(t.read(0x30) | (t.read(0x31) << 8)).toBe(0xffff); // 1 MiB..64 MiB, saturated
    expect(t.read(0x34) | (t.read(0x35) << 8)).toBe((240 * 1024) / 64);
  });

  it("save -> restore -> save round-trips; nonsense guest time leaves the clock alone", () => {
    const t = setup();
    t.write(RtcReg.B, RegB.SET | RegB.HOUR_24);
    t.write(RtcReg.MONTH, 0x99);
    t.write(RtcReg.B, RegB.HOUR_24);
    expect(t.read(RtcReg.MINUTES)).toBeGreaterThan(0);
    const s = t.cmos.save();
    expect(Cmos.restore({ clock: () => T0 }, JSON.parse(JSON.stringify(s))).save()).toEqual(s);
    expect(() => Cmos.restore({}, { ...s, ram: [1, 2] })).toThrow("cmos state: bad ram");
  });

  it("fuzz: any port traffic and clock movement never throws; register D stays valid", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(3), fc.nat(255), fc.nat(5000)), { maxLength: 60 }), (ops) => {
        const t = setup();
        for (const [op, v, dt] of ops) {
          if (op === 0) t.bus.write(0x70, 1, v);
          else if (op === 1) t.bus.write(0x71, 1, v);
          else if (op === 2) t.bus.read(0x71, 1);
          else {
            t.advance(dt);
            t.cmos.poll();
          }
        }
        expect(t.read(RtcReg.D)).toBe(0x80);
        expect(Number.isFinite(t.cmos.save().offsetMs)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
