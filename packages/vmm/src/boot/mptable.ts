/**
 * Intel MultiProcessor Specification 1.4 tables (chapter 4): the MP floating pointer structure
 * and an MP configuration table listing the processors, the buses, the I/O APIC and how ISA
 * IRQs reach its pins. Linux (arch/x86/kernel/mpparse.c, CONFIG_X86_MPPARSE, no ACPI) scans
 * [639 KiB, 640 KiB) for "_MP_", so a guest kernel finds its LAPICs and IOAPIC here and runs
 * in symmetric I/O mode instead of with `noapic`. Firecracker's arch/x86_64/mptable.rs writes
 * the same shape.
 */
import { IOAPIC_ADDR, IOAPIC_PINS, LAPIC_ADDR, MPTABLE_ADDR } from "../layout.js";
import type { GuestMemory } from "../memory.js";

/** Entry types (MP 1.4, Table 4-3). */
export const MpEntry = { PROCESSOR: 0, BUS: 1, IOAPIC: 2, IO_INTERRUPT: 3, LOCAL_INTERRUPT: 4 } as const;
/** Interrupt types (Table 4-9). */
export const MpIntType = { INT: 0, NMI: 1, SMI: 2, EXTINT: 3 } as const;
/** Polarity/trigger flags (Table 4-10): 0 = conforms to the bus. */
export const MP_IRQ_CONFORMING = 0;
/** Polarity active low (bits 1:0 = 11) and trigger level (bits 3:2 = 11), for PCI INTx. */
export const MP_IRQ_PCI = 0x0f;
/** Processor entry flags (Table 4-5). */
const CPU_ENABLED = 0x01;
const CPU_BOOTSTRAP = 0x02;
/** Local APIC version 0x14 (integrated APIC, as KVM reports) and IOAPIC version 0x11 (82093AA). */
const LAPIC_VERSION = 0x14;
const IOAPIC_VERSION = 0x11;
/** CPU signature (family 6) and feature flags (CPUID.1:EDX FPU | APIC) for processor entries. */
const CPU_SIGNATURE = 0x600;
const CPU_FEATURES = 0x201;

/** A PCI INTx line routed to an IOAPIC pin (bus irq = slot << 2 | (pin - 1), MP 1.4 D.3). */
export interface PciIntxRoute {
  slot: number;
  /** 1 = INTA# ... 4 = INTD#. */
  pin: number;
  ioapicPin: number;
}

export interface MpTableOptions {
  cpus: number;
  /**
   * IOAPIC pin of each ISA IRQ 0-15. Default: identity, which is how KVM's default GSI routing
   * (arch/x86/kvm/irq_comm.c) connects them; Linux handles IRQ 0 on pin 0 (its "..TIMER" check).
   */
  isaIrqToPin?: (irq: number) => number;
  pciRoutes?: PciIntxRoute[];
}

export interface MpTableLayout {
  floatingPointer: number;
  configTable: number;
  length: number;
  ioapicId: number;
}

/** An MP table that does not fit or cannot be written: a VMM configuration error. */
export class MpTableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MpTableError";
  }
}

/**
 * The most processors described: APIC IDs 0..cpus-1 and the IOAPIC takes id `cpus`; 32 processor
 * entries (20 bytes each) plus the rest still fit the 1 KiB below 640 KiB.
 */
export const MP_MAX_CPUS = 32;
/** The table lives in [639 KiB, 640 KiB): 1 KiB for the pointer and the config table. */
const AREA = 1024;

/**
 * MP bus IDs. The PCI bus's ID must be its PCI bus number (0): Linux's
 * IO_APIC_get_PCI_irq_vector() (arch/x86/kernel/apic/io_apic.c) matches an I/O interrupt entry's
 * source bus ID against `dev->bus->number` directly, so with PCI as MP bus 1 every PCI INTx
 * lookup failed ("can't find IRQ for PCI INT A; probably buggy MP table"). The ISA bus takes the
 * next ID, as kvmtool's x86/mptable.c and SeaBIOS's mptable.c number them.
 */
export const MP_PCI_BUS = 0;
export const MP_ISA_BUS = 1;
const ISA_BUS = MP_ISA_BUS;
const PCI_BUS = MP_PCI_BUS;

function checksum(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  return (0x100 - s) & 0xff;
}

/** Build the MP floating pointer + configuration table bytes for placement at `base`. */
export function buildMpTable(
  opts: MpTableOptions,
  base = MPTABLE_ADDR,
): { bytes: Uint8Array; layout: MpTableLayout } {
  const cpus = opts.cpus;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MP_MAX_CPUS)
    throw new MpTableError(`MP table: ${cpus} CPUs (1-${MP_MAX_CPUS})`);
  const ioapicId = cpus;
  const routeIsa = opts.isaIrqToPin ?? ((irq: number) => irq);
  const pci = opts.pciRoutes ?? [];

  const entries: Uint8Array[] = [];
  const entry = (len: number, fill: (dv: DataView) => void) => {
    const b = new Uint8Array(len);
    fill(new DataView(b.buffer));
    entries.push(b);
  };
  for (let id = 0; id < cpus; id++) {
    entry(20, (dv) => {
      dv.setUint8(0, MpEntry.PROCESSOR);
      dv.setUint8(1, id);
      dv.setUint8(2, LAPIC_VERSION);
      dv.setUint8(3, CPU_ENABLED | (id === 0 ? CPU_BOOTSTRAP : 0));
      dv.setUint32(4, CPU_SIGNATURE, true);
      dv.setUint32(8, CPU_FEATURES, true);
    });
  }
  const bus = (id: number, name: string) =>
    entry(8, (dv) => {
      dv.setUint8(0, MpEntry.BUS);
      dv.setUint8(1, id);
      for (let i = 0; i < 6; i++) dv.setUint8(2 + i, (name.padEnd(6, " ").charCodeAt(i) ?? 0x20) & 0xff);
    });
  // Bus entries in ascending ID order (MP 1.4, 4.3.2).
  bus(PCI_BUS, "PCI");
  bus(ISA_BUS, "ISA");
  entry(8, (dv) => {
    dv.setUint8(0, MpEntry.IOAPIC);
    dv.setUint8(1, ioapicId);
    dv.setUint8(2, IOAPIC_VERSION);
    dv.setUint8(3, 1); // enabled
    dv.setUint32(4, IOAPIC_ADDR, true);
  });
  const ioint = (type: number, flags: number, srcBus: number, srcIrq: number, pin: number) =>
    entry(8, (dv) => {
      dv.setUint8(0, MpEntry.IO_INTERRUPT);
      dv.setUint8(1, type);
      dv.setUint16(2, flags, true);
      dv.setUint8(4, srcBus);
      dv.setUint8(5, srcIrq);
      dv.setUint8(6, ioapicId);
      dv.setUint8(7, pin);
    });
  for (let irq = 0; irq < 16; irq++) {
    if (irq === 2) continue; // the PIC cascade: no ISA device raises IRQ 2
    const pin = routeIsa(irq);
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS)
      throw new MpTableError(`MP table: ISA IRQ ${irq} -> pin ${pin}`);
    ioint(MpIntType.INT, MP_IRQ_CONFORMING, ISA_BUS, irq, pin);
  }
  for (const r of pci) {
    if (
      r.slot < 0 ||
      r.slot > 31 ||
      r.pin < 1 ||
      r.pin > 4 ||
      r.ioapicPin < 0 ||
      r.ioapicPin >= IOAPIC_PINS
    ) {
      throw new MpTableError(`MP table: bad PCI route ${JSON.stringify(r)}`);
    }
    ioint(MpIntType.INT, MP_IRQ_PCI, PCI_BUS, (r.slot << 2) | (r.pin - 1), r.ioapicPin);
  }
  // Local interrupts: the PIC's output as ExtINT on LINT0, NMI on LINT1, to every LAPIC (0xff),
  // the virtual-wire wiring (MP 1.4, 3.6.2.2 and 5.1).
  for (const [type, lint] of [
    [MpIntType.EXTINT, 0],
    [MpIntType.NMI, 1],
  ] as const) {
    entry(8, (dv) => {
      dv.setUint8(0, MpEntry.LOCAL_INTERRUPT);
      dv.setUint8(1, type);
      dv.setUint16(2, MP_IRQ_CONFORMING, true);
      dv.setUint8(4, ISA_BUS);
      dv.setUint8(5, 0);
      dv.setUint8(6, 0xff);
      dv.setUint8(7, lint);
    });
  }

  const FP_LEN = 16;
  const HDR_LEN = 44;
  const tableLen = HDR_LEN + entries.reduce((n, e) => n + e.length, 0);
  if (FP_LEN + tableLen > AREA)
    throw new MpTableError(`MP table of ${FP_LEN + tableLen} bytes exceeds ${AREA}`);
  const bytes = new Uint8Array(FP_LEN + tableLen);
  const dv = new DataView(bytes.buffer);
  const configTable = base + FP_LEN;

  // Configuration table header (MP 1.4, Table 4-2).
  const h = FP_LEN;
  bytes.set(new TextEncoder().encode("PCMP"), h);
  dv.setUint16(h + 4, tableLen, true);
  dv.setUint8(h + 6, 4); // spec revision 1.4
  bytes.set(new TextEncoder().encode("TSKVM".padEnd(8, " ")), h + 8); // OEM ID, space-padded
  bytes.set(new TextEncoder().encode("TSKVM".padEnd(12, " ")), h + 16); // product ID, space-padded
  dv.setUint32(h + 28, 0, true); // OEM table pointer
  dv.setUint16(h + 32, 0, true); // OEM table size
  dv.setUint16(h + 34, entries.length, true);
  dv.setUint32(h + 36, LAPIC_ADDR, true);
  dv.setUint16(h + 40, 0, true); // extended table length
  let at = h + HDR_LEN;
  for (const e of entries) {
    bytes.set(e, at);
    at += e.length;
  }
  dv.setUint8(h + 7, checksum(bytes.subarray(h, h + tableLen)));

  // Floating pointer (MP 1.4, Table 4-1): "_MP_", table address, length in 16-byte units, revision 4.
  bytes.set(new TextEncoder().encode("_MP_"), 0);
  dv.setUint32(4, configTable, true);
  dv.setUint8(8, 1);
  dv.setUint8(9, 4);
  // Feature byte 1 = 0: a configuration table is present. Byte 2 bit 7 (IMCRP) = 0: virtual wire mode.
  dv.setUint8(10, checksum(bytes.subarray(0, FP_LEN)));

  return { bytes, layout: { floatingPointer: base, configTable, length: bytes.length, ioapicId } };
}

/** Build and write the MP table into guest memory at MPTABLE_ADDR. */
export function writeMpTable(mem: GuestMemory, opts: MpTableOptions): MpTableLayout {
  const { bytes, layout } = buildMpTable(opts);
  if (!mem.write(layout.floatingPointer, bytes))
    throw new MpTableError(`MP table: 0x${layout.floatingPointer.toString(16)} is not guest RAM`);
  return layout;
}
