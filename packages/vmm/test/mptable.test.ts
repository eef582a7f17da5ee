import { describe, expect, it } from "vitest";
import {
  buildMpTable,
  MP_ISA_BUS,
  MP_PCI_BUS,
  MpEntry,
  MpIntType,
  MpTableError,
  writeMpTable,
} from "../src/boot/mptable.js";
import { IOAPIC_ADDR, LAPIC_ADDR, MiB, ramRanges } from "../src/layout.js";
import { GuestRam } from "../src/memory.js";

const sum = (b: Uint8Array) => b.reduce((s, x) => (s + x) & 0xff, 0);

/** What Linux's mpparse.c does: smp_scan_config() over [639 KiB, 640 KiB), then smp_read_mpc(). */
function parseLikeLinux(ram: GuestRam) {
  const area = new Uint8Array(1024);
  expect(ram.read(639 * 1024, area)).toBe(true);
  let fp = -1;
  for (let off = 0; off < 1024; off += 16) {
    const sig = new TextDecoder().decode(area.subarray(off, off + 4));
    if (
      sig === "_MP_" &&
      area[off + 8] === 1 &&
      sum(area.subarray(off, off + 16)) === 0 &&
      [1, 4].includes(area[off + 9]!)
    ) {
      fp = off;
      break;
    }
  }
  expect(fp).toBeGreaterThanOrEqual(0);
  const dv = new DataView(area.buffer);
  const physptr = dv.getUint32(fp + 4, true);
  const hdr = new Uint8Array(44);
  ram.read(physptr, hdr);
  const hv = new DataView(hdr.buffer);
  expect(new TextDecoder().decode(hdr.subarray(0, 4))).toBe("PCMP");
  const len = hv.getUint16(4, true);
  const table = new Uint8Array(len);
  ram.read(physptr, table);
  expect(sum(table)).toBe(0);
  expect(hv.getUint32(36, true)).toBe(LAPIC_ADDR);
  const tv = new DataView(table.buffer);
  const entries: { type: number; bytes: Uint8Array }[] = [];
  let at = 44;
  const count = hv.getUint16(34, true);
  for (let i = 0; i < count; i++) {
    const type = table[at]!;
    const l = type === MpEntry.PROCESSOR ? 20 : 8;
    entries.push({ type, bytes: table.subarray(at, at + l) });
    at += l;
  }
  expect(at).toBe(len);
  return { entries, tv };
}

describe("MP table (Intel MP spec 1.4)", () => {
  it("Linux finds the processors, the IOAPIC and the ISA IRQ routing", () => {
    const ram = new GuestRam(ramRanges(16 * MiB));
    const layout = writeMpTable(ram, { cpus: 4, pciRoutes: [{ slot: 3, pin: 1, ioapicPin: 11 }] });
    const { entries } = parseLikeLinux(ram);
    const cpus = entries.filter((e) => e.type === MpEntry.PROCESSOR);
    expect(cpus.map((c) => c.bytes[1])).toEqual([0, 1, 2, 3]);
    expect(cpus.map((c) => c.bytes[3])).toEqual([3, 1, 1, 1]); // BSP flag on CPU 0 only
    const io = entries.filter((e) => e.type === MpEntry.IOAPIC);
    expect(io).toHaveLength(1);
    expect(io[0]!.bytes[1]).toBe(layout.ioapicId);
    expect(new DataView(io[0]!.bytes.slice().buffer).getUint32(4, true)).toBe(IOAPIC_ADDR);
    const buses = entries
      .filter((e) => e.type === MpEntry.BUS)
      .map((b) => new TextDecoder().decode(b.bytes.subarray(2, 8)));
    expect(buses).toEqual(["PCI   ", "ISA   "]);
    const busIds = entries.filter((e) => e.type === MpEntry.BUS).map((b) => b.bytes[1]);
    expect(busIds).toEqual([MP_PCI_BUS, MP_ISA_BUS]);
    const ints = entries.filter((e) => e.type === MpEntry.IO_INTERRUPT);
    const com1 = ints.find((e) => e.bytes[4] === MP_ISA_BUS && e.bytes[5] === 4)!;
    expect(com1.bytes[1]).toBe(MpIntType.INT);
    expect(com1.bytes[7]).toBe(4);
    expect(ints.some((e) => e.bytes[5] === 2 && e.bytes[4] === MP_ISA_BUS)).toBe(false);
    // IO_APIC_get_PCI_irq_vector(bus 0, slot 3, pin 0): the source bus ID is the PCI bus number.
    const pci = ints.find((e) => e.bytes[4] === 0 && e.bytes[5]! >> 2 === 3 && (e.bytes[5]! & 3) === 0)!;
    expect(pci.bytes[5]).toBe((3 << 2) | 0);
    expect(pci.bytes[7]).toBe(11);
    expect(pci.bytes[2]).toBe(0x0f); // active low, level
    const lints = entries.filter((e) => e.type === MpEntry.LOCAL_INTERRUPT);
    expect(lints.map((e) => [e.bytes[1], e.bytes[7]])).toEqual([
      [MpIntType.EXTINT, 0],
      [MpIntType.NMI, 1],
    ]);
  });

  it("a custom ISA routing (IRQ 0 on pin 2, as on real chipsets) is honoured", () => {
    const { bytes } = buildMpTable({ cpus: 1, isaIrqToPin: (irq) => (irq === 0 ? 2 : irq) });
    const ram = new GuestRam(ramRanges(16 * MiB));
    ram.write(0x9fc00, bytes);
    const { entries } = parseLikeLinux(ram);
    const irq0 = entries.find((e) => e.type === MpEntry.IO_INTERRUPT && e.bytes[5] === 0)!;
    expect(irq0.bytes[7]).toBe(2);
  });

  it("refuses impossible configurations with MpTableError", () => {
    expect(() => buildMpTable({ cpus: 0 })).toThrow(MpTableError);
    expect(() => buildMpTable({ cpus: 33 })).toThrow(MpTableError);
    expect(() => buildMpTable({ cpus: 1, isaIrqToPin: () => 24 })).toThrow(MpTableError);
    expect(buildMpTable({ cpus: 32 }).bytes.length).toBeLessThanOrEqual(1024);
  });
});
