/**
 * The PCI IRQ Routing Table a PC BIOS puts in the F segment (Microsoft's "PCI IRQ Routing Table
 * Specification" 1.0, signature "$PIR"; SeaBIOS writes one). This machine has no PIRQ router: PCI
 * INTx lines reach the IOAPIC as the MP table's I/O interrupt entries say, so the table lists no
 * slots and names no router. Linux (arch/x86/pci/irq.c, pcibios_irq_init) searches
 * [0xF0000, 0x100000) for it; without one it scans those 64 KiB in 16-byte steps for "$PIR" and
 * then byte by byte for AMI's "$IRT", ~420 k guest instructions, 1.7% of the bundled guest's boot.
 * With the IOAPIC routing PCI interrupts it then sets the table aside.
 */
import type { GuestMemory } from "../memory.js";

/** At the start of the F segment, 16-byte aligned as the specification requires. */
export const PIR_TABLE_ADDR = 0xf0000;
/** Header size; each slot entry would add 16 bytes. */
export const PIR_HEADER_LEN = 32;

/** The table's bytes: a header with version 1.0, no slots, no router, no IRQs exclusive to PCI. */
export function buildPirTable(): Uint8Array {
  const b = new Uint8Array(PIR_HEADER_LEN);
  const dv = new DataView(b.buffer);
  b.set([0x24, 0x50, 0x49, 0x52], 0); // "$PIR"
  dv.setUint16(4, 0x0100, true); // version 1.0
  dv.setUint16(6, PIR_HEADER_LEN, true); // table size
  // Router bus/devfn (8, 9), exclusive IRQs (10), router vendor/device (12, 14), miniport data (16)
  // and the reserved bytes stay 0. Byte 31 makes the sum of all bytes 0 mod 256.
  let sum = 0;
  for (const x of b) sum = (sum + x) & 0xff;
  b[31] = (0x100 - sum) & 0xff;
  return b;
}

/** Writes the table at PIR_TABLE_ADDR (RAM in every layout this VMM builds: at least 16 MiB). */
export function writePirTable(mem: GuestMemory): void {
  if (!mem.write(PIR_TABLE_ADDR, buildPirTable()))
    throw new Error(`$PIR table: 0x${PIR_TABLE_ADDR.toString(16)} is not guest RAM`);
}
