/**
 * The guest-physical layout of a tskvm machine (x86-64, PC-compatible where Linux looks).
 * Modelled on Firecracker's arch/x86_64/layout.rs and kvmtool's x86 layout; every address is
 * one a loader, the MP table or a device must agree on, so they live in one place.
 */

/** 1 KiB / 1 MiB / 1 GiB. */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Where the boot GDT is written (3 descriptors: null, code, data; Linux boot.rst 64-bit protocol). */
export const BOOT_GDT_ADDR = 0x500;
/** Where the boot IDT would live; loaded with limit 0 so any exception before Linux sets its own triple-faults. */
export const BOOT_IDT_ADDR = 0x520;
/** Zero page (struct boot_params) for the Linux boot protocol. Firecracker uses 0x7000 too. */
export const ZERO_PAGE_ADDR = 0x7000;
/** Initial stack pointer for both protocols (Firecracker's BOOT_STACK_POINTER). */
export const BOOT_STACK_ADDR = 0x8ff0;
/** Identity page tables for the 64-bit entry: PML4, one PDPT, four PDs (4 GiB with 2 MiB pages). */
export const PML4_ADDR = 0x9000;
export const PDPT_ADDR = 0xa000;
export const PD_ADDR = 0xb000;
/** Multiboot information structure and what it points to (mmap, module list, strings). */
export const MULTIBOOT_INFO_ADDR = 0x10000;
/** Kernel command line (Firecracker CMDLINE_START). */
export const CMDLINE_ADDR = 0x20000;
/** Bytes reserved for the command line at CMDLINE_ADDR. */
export const CMDLINE_MAX = 0x10000;
/** End of conventional memory; the EBDA/MP-table kilobyte below it is reserved in the e820 map. */
export const EBDA_START = 0x9fc00;
/** The MP floating pointer and configuration table (Linux scans [639 KiB, 640 KiB) for "_MP_"). */
export const MPTABLE_ADDR = EBDA_START;
/** Legacy VGA hole and BIOS area, never RAM in the e820 map. */
export const LEGACY_HOLE_START = 0xa0000;
export const HIGH_MEMORY_START = 0x100000;
/** The 32-bit MMIO hole: [3 GiB, 4 GiB) holds PCI BARs, virtio-mmio windows, IOAPIC and LAPIC. */
export const MMIO_HOLE_START = 3 * GiB;
export const MMIO_HOLE_END = 4 * GiB;
/** virtio-mmio windows, 4 KiB each, from here up (announced as virtio_mmio.device=4K@addr:irq). */
export const VIRTIO_MMIO_BASE = 0xd000_0000;
export const VIRTIO_MMIO_STRIDE = 0x1000;
/** Where PCI memory BARs are placed. */
export const PCI_MMIO_BASE = 0xc000_0000;
export const PCI_MMIO_END = 0xd000_0000;
/** Default IOAPIC and LAPIC MMIO bases (Intel 82093AA; SDM Vol. 3A 11.4.1). */
export const IOAPIC_ADDR = 0xfec0_0000;
export const LAPIC_ADDR = 0xfee0_0000;
/** IOAPIC input pins (82093AA has 24). */
export const IOAPIC_PINS = 24;

/** RAM ranges for `memBytes` of guest memory: below the MMIO hole, the rest above 4 GiB. */
export function ramRanges(memBytes: number): { base: number; size: number }[] {
  const low = Math.min(memBytes, MMIO_HOLE_START);
  const ranges = [{ base: 0, size: low }];
  if (memBytes > low) ranges.push({ base: MMIO_HOLE_END, size: memBytes - low });
  return ranges;
}

/** One e820 entry (Linux arch/x86/include/uapi/asm/e820.h; ACPI 6.5 15.1 address range types). */
export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}
/** e820 type: usable RAM. */
export const E820_RAM = 1;
/** e820 type: reserved. */
export const E820_RESERVED = 2;

/**
 * The e820 map for `memBytes` of RAM: conventional memory up to the EBDA, the EBDA/MP-table
 * kilobyte and BIOS area reserved, then RAM from 1 MiB to the hole and above 4 GiB.
 */
export function e820Map(memBytes: number): E820Entry[] {
  const map: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: LEGACY_HOLE_START - EBDA_START, type: E820_RESERVED },
    { addr: 0xf0000, size: HIGH_MEMORY_START - 0xf0000, type: E820_RESERVED },
  ];
  for (const r of ramRanges(memBytes)) {
    const start = r.base === 0 ? HIGH_MEMORY_START : r.base;
    const end = r.base + r.size;
    if (end > start) map.push({ addr: start, size: end - start, type: E820_RAM });
  }
  return map;
}

/** The kernel command-line fragment that announces one virtio-mmio device (drivers/virtio/virtio_mmio.c). */
export function virtioMmioCmdline(base: number, irq: number, size = VIRTIO_MMIO_STRIDE): string {
  const sz = size % 1024 === 0 ? `${size / 1024}K` : String(size);
  return `virtio_mmio.device=${sz}@0x${base.toString(16)}:${irq}`;
}
