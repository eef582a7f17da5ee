import { FlatGuestMemory, MmioTransport, PciTransport, type VirtioDevice } from "../src/index";
import {
  type DriverTransport,
  MmioDriverTransport,
  MockDriver,
  PciDriverTransport,
  RecordingIrq,
  RecordingMsi,
} from "../src/testing/index";

export type TransportKind = "mmio" | "pci-intx" | "pci-msix" | "mmio-packed" | "pci-msix-packed";
/** Every device test runs over each: both transports, both interrupt kinds, both ring layouts. */
export const TRANSPORTS: TransportKind[] = ["mmio", "pci-intx", "pci-msix", "mmio-packed", "pci-msix-packed"];

export interface Rig<D extends VirtioDevice> {
  dev: D;
  mem: FlatGuestMemory;
  drv: MockDriver;
  t: DriverTransport;
  /** Transport-level counters. */
  transportMetrics: Record<string, number>;
  /** Collect interrupts as the driver's handler would. */
  irqs(): { used: boolean; config: boolean };
}

/** The device behind the given transport, driven by a MockDriver over 16 MiB of guest RAM. */
export function rig<D extends VirtioDevice>(kind: TransportKind, dev: D, memSize = 16 << 20): Rig<D> {
  const mem = new FlatGuestMemory(memSize);
  let t: DriverTransport;
  let metrics: Record<string, number>;
  const opts = { packedRings: kind.endsWith("-packed") };
  if (kind.startsWith("mmio")) {
    const irq = new RecordingIrq();
    const m = new MmioTransport(dev, mem, irq, opts);
    metrics = m.core.metrics;
    t = new MmioDriverTransport(m, irq);
  } else {
    const msi = kind.startsWith("pci-msix") ? new RecordingMsi() : undefined;
    const irq = new RecordingIrq();
    const p = new PciTransport(dev, mem, irq, msi, opts);
    metrics = p.core.metrics;
    t = new PciDriverTransport(p, msi);
  }
  const drv = new MockDriver(mem, t, 0x1000, memSize - 0x1000);
  return { dev, mem, drv, t, transportMetrics: metrics, irqs: () => t.takeInterrupts() };
}
