/**
 * The interrupt message that travels between IOAPIC, MSI writers and local APICs (SDM Vol. 3
 * 11.6 "Issuing interprocessor interrupts", 11.11 "Message signalled interrupts"; the IOAPIC
 * redirection entry carries the same fields, 82093AA datasheet 3.2.4).
 */

/** Delivery modes (ICR / redirection entry bits 10:8). */
export const DeliveryMode = {
  Fixed: 0,
  LowestPriority: 1,
  Smi: 2,
  Nmi: 4,
  Init: 5,
  StartUp: 6,
  ExtInt: 7,
} as const;

/** Destination shorthands (ICR bits 19:18). */
export const Shorthand = { None: 0, Self: 1, AllIncludingSelf: 2, AllExcludingSelf: 3 } as const;

/** One interrupt message. */
export interface ApicMessage {
  vector: number;
  /** {@link DeliveryMode}. */
  deliveryMode: number;
  /** false: physical destination; true: logical. */
  logical: boolean;
  /** Destination: 8-bit APIC id/logical mask in xAPIC, 32-bit in x2APIC. */
  dest: number;
  /** Trigger mode: true = level (the TMR bit is set and EOI is broadcast). */
  levelTriggered: boolean;
  /** Level (ICR bit 14): false with INIT means "INIT level de-assert". */
  assert: boolean;
  /** {@link Shorthand}. */
  shorthand: number;
}

/** Where interrupt messages go; implemented by the irqchip, which knows every LAPIC. */
export interface ApicBus {
  /**
   * Delivers `msg`; `sourceId` is the sending LAPIC's id for shorthands (-1 for IOAPIC/MSI).
   * Returns the number of LAPICs that accepted it (0 means it went nowhere).
   */
  deliver(msg: ApicMessage, sourceId: number): number;
}

/** MSI address/data decoding (SDM Vol. 3 11.11.1 and 11.11.2). */
export const MSI_ADDRESS_BASE = 0xfee00000;

/** Decodes an MSI write; returns undefined when the address is not in the 0xFEExxxxx window. */
export function decodeMsi(addressLo: number, addressHi: number, data: number): ApicMessage | undefined {
  // SDM 11.11.1: bits 31:20 must be 0FEEH. addressHi carries the x2APIC destination bits 31:8
  // (KVM's KVM_MSI_VALID_DEVID-less "extended destination" via address_hi, api.rst 4.71).
  if (addressLo >>> 20 !== 0xfee) return undefined;
  const destLow = (addressLo >>> 12) & 0xff;
  return {
    vector: data & 0xff,
    deliveryMode: (data >>> 8) & 7,
    logical: ((addressLo >>> 2) & 1) === 1,
    dest: ((addressHi & 0xffffff00) | destLow) >>> 0,
    levelTriggered: ((data >>> 15) & 1) === 1,
    assert: ((data >>> 14) & 1) === 1 || ((data >>> 15) & 1) === 0,
    shorthand: Shorthand.None,
  };
}
