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
   * Returns the number of LAPICs that accepted it, or -1 when no LAPIC was addressed.
   */
  deliver(msg: ApicMessage, sourceId: number): number;
}

/** MSI address/data decoding (SDM Vol. 3 11.11.1 and 11.11.2). */
export const MSI_ADDRESS_BASE = 0xfee00000;

/**
 * Decodes an MSI (address, data) pair into a message. Like KVM's kvm_set_msi_irq() it does not
 * insist on the 0xFEExxxxx window (SDM 11.11.1): routing an MSI there is the platform's job.
 * `addressHi` bits 31:8 extend the destination for x2APIC ids above 255.
 */
export function decodeMsi(addressLo: number, addressHi: number, data: number): ApicMessage {
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
