import { describe, expect, it } from "vitest";
import { RTE_MASKED, RTE_REMOTE_IRR } from "../src/devices/ioapic.js";
import { linuxApicSetup, makeChip } from "./helpers.js";

/** Linux io_apic.c __ioapic_write_entry: high dword first, then low. */
function writeEntry(chip: ReturnType<typeof makeChip>["chip"], pin: number, lo: number, hi: number): void {
  chip.ioapic.mmioWrite(0, 4, 0x10 + 2 * pin + 1);
  chip.ioapic.mmioWrite(0x10, 4, hi);
  chip.ioapic.mmioWrite(0, 4, 0x10 + 2 * pin);
  chip.ioapic.mmioWrite(0x10, 4, lo);
}
/** Linux masks the 8259As once the IOAPIC takes over (init_IO_APIC_traps / legacy_pic->mask_all). */
function maskPic(chip: ReturnType<typeof makeChip>["chip"]): void {
  chip.pic.ioWrite(0x21, 0xff);
  chip.pic.ioWrite(0xa1, 0xff);
}
function readReg(chip: ReturnType<typeof makeChip>["chip"], reg: number): number {
  chip.ioapic.mmioWrite(0, 4, reg);
  return chip.ioapic.mmioRead(0x10, 4);
}

describe("IOAPIC (82093AA)", () => {
  it("version register: 0x11 with 24 entries (max redirection entry 23)", () => {
    const { chip } = makeChip(1);
    expect(readReg(chip, 1)).toBe(0x170011);
  });
  it("IOAPICID bits 27:24 are writable, IOREGSEL reads back", () => {
    const { chip } = makeChip(1);
    chip.ioapic.mmioWrite(0, 4, 0);
    chip.ioapic.mmioWrite(0x10, 4, 0x0f000000);
    expect(readReg(chip, 0)).toBe(0x0f000000);
    expect(chip.ioapic.mmioRead(0, 4)).toBe(0);
  });
  it("entries come out of reset masked; delivery status and remote IRR are read-only", () => {
    const { chip } = makeChip(1);
    expect(readReg(chip, 0x10) & RTE_MASKED).toBe(RTE_MASKED);
    writeEntry(chip, 3, 0x30 | RTE_REMOTE_IRR | (1 << 12), 0);
    expect(readReg(chip, 0x16)).toBe(0x30);
  });
  it("edge-triggered entry delivers a fixed interrupt to the physical destination", () => {
    const { chip, lapic } = makeChip(2);
    linuxApicSetup(lapic(0), 0);
    linuxApicSetup(lapic(1), 1);
    writeEntry(chip, 4, 0x34, 1 << 24); // vector 0x34 to APIC 1
    chip.setGsi(4, true);
    chip.setGsi(4, false);
    expect(lapic(1).pendingVector()).toBe(0x34);
    expect(lapic(0).pendingVector()).toBe(-1);
  });
  it("logical flat destination reaches every APIC in the mask", () => {
    const { chip, lapic } = makeChip(3);
    for (let i = 0; i < 3; i++) linuxApicSetup(lapic(i), i);
    writeEntry(chip, 5, 0x41 | (1 << 11), 0b101 << 24);
    chip.setGsi(5, true);
    expect([0, 1, 2].map((i) => lapic(i).pendingVector())).toEqual([0x41, -1, 0x41]);
  });
  it("IOAPIC level-triggered: remote IRR set until EOI", () => {
    const { chip, lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    maskPic(chip);
    writeEntry(chip, 10, 0x50 | (1 << 15), 0);
    chip.setGsi(10, true);
    expect(readReg(chip, 0x10 + 20) & RTE_REMOTE_IRR).toBe(RTE_REMOTE_IRR);
    expect(chip.acknowledge(0)).toBe(0x50);
    chip.setGsi(10, false);
    chip.setGsi(10, true); // re-asserted while remote IRR is set: held back
    expect(l.pendingVector()).toBe(-1);
    l.mmioWrite(0xb0, 4, 0); // EOI: TMR bit set -> broadcast
    expect(readReg(chip, 0x10 + 20) & RTE_REMOTE_IRR).toBe(RTE_REMOTE_IRR); // delivered again
    expect(l.pendingVector()).toBe(0x50);
  });
  it("level EOI with the line deasserted leaves remote IRR clear", () => {
    const { chip, lapic } = makeChip(1);
    const l = lapic(0);
    linuxApicSetup(l, 0);
    maskPic(chip);
    writeEntry(chip, 11, 0x51 | (1 << 15), 0);
    chip.setGsi(11, true);
    chip.acknowledge(0);
    chip.setGsi(11, false);
    l.mmioWrite(0xb0, 4, 0);
    expect(readReg(chip, 0x10 + 22) & RTE_REMOTE_IRR).toBe(0);
    expect(l.pendingVector()).toBe(-1);
  });
  it("unmasking an asserted level entry delivers it; masked edges are dropped", () => {
    const { chip, lapic } = makeChip(1);
    linuxApicSetup(lapic(0), 0);
    writeEntry(chip, 12, 0x60 | (1 << 15) | RTE_MASKED, 0);
    writeEntry(chip, 13, 0x61 | RTE_MASKED, 0);
    chip.setGsi(12, true);
    chip.setGsi(13, true);
    chip.setGsi(13, false);
    expect(lapic(0).pendingVector()).toBe(-1);
    writeEntry(chip, 12, 0x60 | (1 << 15), 0);
    writeEntry(chip, 13, 0x61, 0);
    expect(lapic(0).pendingVector()).toBe(0x60);
    expect(lapic(0).reg(0x200 + (0x61 >> 5) * 0x10) & (1 << (0x61 & 31))).toBe(0); // the masked edge was dropped
  });
  it("GSI 16-23 reach only the IOAPIC; 0-15 reach the PIC too", () => {
    const { chip } = makeChip(1);
    chip.pic.ioWrite(0x20, 0x11);
    chip.pic.ioWrite(0x21, 0x20);
    chip.pic.ioWrite(0x21, 4);
    chip.pic.ioWrite(0x21, 1);
    chip.setGsi(3, true);
    expect(chip.pic.output).toBe(true);
    expect(chip.setGsi(20, true)).toBe(-1); // IOAPIC only, and the entry is masked: -1 as in KVM
    expect(chip.setGsi(24, true)).toBe(-1); // no route
  });
  it("save -> restore -> save round trip", () => {
    const { chip } = makeChip(1);
    writeEntry(chip, 7, 0x99 | (1 << 15), 3 << 24);
    chip.setGsi(7, true);
    const s = chip.ioapic.save();
    const other = makeChip(1).chip;
    other.ioapic.restore(s);
    expect(other.ioapic.save()).toEqual(s);
  });
});
