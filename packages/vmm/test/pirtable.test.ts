import { describe, expect, it } from "vitest";
import { buildPirTable, PIR_HEADER_LEN, PIR_TABLE_ADDR } from "../src/boot/pirtable.js";
import { MiB, ramRanges } from "../src/layout.js";
import { writePlatformTables } from "../src/machine.js";
import { GuestRam } from "../src/memory.js";

/**
 * Linux's pirq_find_routing_table() + pirq_check_routing_table() (arch/x86/pci/irq.c): the first
 * 16-byte-aligned "$PIR" in [0xF0000, 0x100000) with version 1.0, a size that is a multiple of 16
 * and at least the header, within the segment, whose bytes sum to 0 mod 256.
 */
function findLikeLinux(ram: GuestRam): { at: number; size: number; slots: number } | null {
  const seg = new Uint8Array(0x10000);
  expect(ram.read(0xf0000, seg)).toBe(true);
  const dv = new DataView(seg.buffer);
  for (let off = 0; off < seg.length - 32; off += 16) {
    if (dv.getUint32(off, true) !== 0x52495024 || dv.getUint16(off + 4, true) !== 0x0100) continue;
    const size = dv.getUint16(off + 6, true);
    if (size % 16 !== 0 || size < 32 || size > seg.length - off) continue;
    if (seg.subarray(off, off + size).reduce((s, x) => (s + x) & 0xff, 0) !== 0) continue;
    return { at: 0xf0000 + off, size, slots: (size - 32) / 16 };
  }
  return null;
}

describe("$PIR table (PCI IRQ Routing Table Specification 1.0)", () => {
  it("is a valid header with no slots and no router", () => {
    const b = buildPirTable();
    expect(b.length).toBe(PIR_HEADER_LEN);
    const dv = new DataView(b.buffer);
    expect(new TextDecoder().decode(b.subarray(0, 4))).toBe("$PIR");
    expect([dv.getUint16(4, true), dv.getUint16(6, true)]).toEqual([0x0100, 32]);
    // Router bus/devfn, exclusive IRQs, router vendor/device, miniport data, reserved: all 0.
    expect(b.subarray(8, 31).every((x) => x === 0)).toBe(true);
  });

  it("is where Linux looks for it once the platform tables are written", () => {
    const ram = new GuestRam(ramRanges(64 * MiB));
    expect(findLikeLinux(ram)).toBeNull();
    writePlatformTables(ram, 1, []);
    expect(findLikeLinux(ram)).toEqual({ at: PIR_TABLE_ADDR, size: 32, slots: 0 });
  });
});
