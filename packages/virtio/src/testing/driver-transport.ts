import { InterruptReason } from "../constants";
import type { Features } from "../features";
import type { IrqLine } from "../irq";
import { MmioReg, type MmioTransport } from "../transport/mmio";

/** The driver's view of a transport: what Linux's virtio_config_ops do, register by register. */
export interface DriverTransport {
  readonly name: string;
  getStatus(): number;
  setStatus(v: number): void;
  reset(): void;
  deviceId(): number;
  getFeatures(): Features;
  setFeatures(f: Features): void;
  /** Select queue i and return its maximum size (0: no such queue). */
  queueMax(i: number): number;
  /** Program queue i (size and ring addresses) and enable it. */
  setupQueue(i: number, size: number, desc: number, avail: number, used: number): void;
  /** Whether queue i reads back enabled. */
  queueEnabled(i: number): boolean;
  /** RING_RESET: reset queue i; returns what the reset register reads back afterwards. */
  resetQueue(i: number): number;
  notify(i: number): void;
  configRead(offset: number, size: number): number;
  configWrite(offset: number, size: number, value: number): void;
  configGeneration(): number;
  /**
   * Collect pending interrupts the way the driver's handler does (read-and-ack the status /
   * ISR, or take the recorded MSI-X messages): which queue vectors fired and whether config changed.
   */
  takeInterrupts(): { used: boolean; config: boolean };
}

/** A level line that remembers its state (for tests). */
export class RecordingIrq implements IrqLine {
  level = false;
  raised = 0;
  set(level: boolean): void {
    if (level && !this.level) this.raised++;
    this.level = level;
  }
}

/** Drives a virtio-mmio window as drivers/virtio/virtio_mmio.c does (version 2). */
export class MmioDriverTransport implements DriverTransport {
  readonly name = "mmio";
  constructor(
    readonly mmio: MmioTransport,
    readonly irq?: RecordingIrq,
  ) {}

  private r(off: number): number {
    return this.mmio.read(off, 4);
  }
  private w(off: number, v: number): void {
    this.mmio.write(off, 4, v >>> 0);
  }

  getStatus(): number {
    return this.r(MmioReg.STATUS);
  }
  setStatus(v: number): void {
    this.w(MmioReg.STATUS, v);
  }
  reset(): void {
    this.w(MmioReg.STATUS, 0);
  }
  deviceId(): number {
    return this.r(MmioReg.DEVICE_ID);
  }
  getFeatures(): Features {
    this.w(MmioReg.DEVICE_FEATURES_SEL, 1);
    const hi = this.r(MmioReg.DEVICE_FEATURES);
    this.w(MmioReg.DEVICE_FEATURES_SEL, 0);
    return { lo: this.r(MmioReg.DEVICE_FEATURES), hi };
  }
  setFeatures(f: Features): void {
    this.w(MmioReg.DRIVER_FEATURES_SEL, 1);
    this.w(MmioReg.DRIVER_FEATURES, f.hi);
    this.w(MmioReg.DRIVER_FEATURES_SEL, 0);
    this.w(MmioReg.DRIVER_FEATURES, f.lo);
  }
  queueMax(i: number): number {
    this.w(MmioReg.QUEUE_SEL, i);
    // virtio_mmio.c vm_setup_vq: "Queue shouldn't already be set up".
    if (this.r(MmioReg.QUEUE_READY) !== 0) return 0;
    return this.r(MmioReg.QUEUE_NUM_MAX);
  }
  setupQueue(i: number, size: number, desc: number, avail: number, used: number): void {
    this.w(MmioReg.QUEUE_SEL, i);
    this.w(MmioReg.QUEUE_NUM, size);
    const lo = (a: number) => a % 0x1_0000_0000;
    const hi = (a: number) => Math.floor(a / 0x1_0000_0000);
    this.w(MmioReg.QUEUE_DESC_LOW, lo(desc));
    this.w(MmioReg.QUEUE_DESC_HIGH, hi(desc));
    this.w(MmioReg.QUEUE_DRIVER_LOW, lo(avail));
    this.w(MmioReg.QUEUE_DRIVER_HIGH, hi(avail));
    this.w(MmioReg.QUEUE_DEVICE_LOW, lo(used));
    this.w(MmioReg.QUEUE_DEVICE_HIGH, hi(used));
    this.w(MmioReg.QUEUE_READY, 1);
  }
  queueEnabled(i: number): boolean {
    this.w(MmioReg.QUEUE_SEL, i);
    return this.r(MmioReg.QUEUE_READY) === 1;
  }
  resetQueue(i: number): number {
    this.w(MmioReg.QUEUE_SEL, i);
    this.w(MmioReg.QUEUE_RESET, 1);
    return this.r(MmioReg.QUEUE_RESET);
  }
  notify(i: number): void {
    this.w(MmioReg.QUEUE_NOTIFY, i);
  }
  configRead(offset: number, size: number): number {
    return this.mmio.read(MmioReg.CONFIG + offset, size);
  }
  configWrite(offset: number, size: number, value: number): void {
    this.mmio.write(MmioReg.CONFIG + offset, size, value);
  }
  configGeneration(): number {
    return this.r(MmioReg.CONFIG_GENERATION);
  }
  takeInterrupts(): { used: boolean; config: boolean } {
    // vm_interrupt: read InterruptStatus, ack it, dispatch.
    const s = this.r(MmioReg.INTERRUPT_STATUS);
    if (s !== 0) this.w(MmioReg.INTERRUPT_ACK, s);
    return {
      used: (s & InterruptReason.USED_BUFFER) !== 0,
      config: (s & InterruptReason.CONFIG_CHANGE) !== 0,
    };
  }
}
