/**
 * A level-triggered interrupt line the transport drives (virtio-mmio's interrupt, PCI INTx).
 * The VMM wires it to its irqchip; the device never calls into a CPU.
 */
export interface IrqLine {
  set(level: boolean): void;
}

/** An IrqLine that goes nowhere (the default until the VMM wires one). */
export const NO_IRQ: IrqLine = { set: () => {} };

/**
 * Where a PCI function's MSI-X messages go: a DWORD write of data to the 64-bit address
 * (addressHi:addressLo), as PCI Local Bus 3.0 6.8.3 describes. The VMM routes it to the LAPIC.
 */
export interface MsiSink {
  signalMsi(addressLo: number, addressHi: number, data: number): void;
}

/** An MsiSink that drops every message. */
export const NO_MSI: MsiSink = { signalMsi: () => {} };
