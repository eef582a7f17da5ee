import { InterruptReason } from "../constants";
import type { Features } from "../features";
import type { MsiSink } from "../irq";
import type { PciTransport } from "../transport/pci";
import {
  CommonCfg,
  PciCapId,
  PciCfg,
  PciCommand,
  VIRTIO_MSI_NO_VECTOR,
  VirtioPciCap,
} from "../transport/pci-regs";
import type { DriverTransport } from "./driver-transport";

/** Records MSI-X messages (for tests). */
export class RecordingMsi implements MsiSink {
  readonly messages: { addressLo: number; addressHi: number; data: number }[] = [];
  signalMsi(addressLo: number, addressHi: number, data: number): void {
    this.messages.push({ addressLo, addressHi, data });
  }
}

/** The x86 MSI address window (Intel SDM 3A 11.11.1). */
const MSI_ADDRESS = 0xfee0_0000;

/**
 * Drives a virtio-pci modern function as drivers/virtio/virtio_pci_modern_dev.c does: walk the
 * capability list for the vendor capabilities, map BAR 0, then use the common configuration
 * structure; with `msix` it enables MSI-X with one vector per queue and one for config changes
 * (vp_find_vqs_msix), otherwise it uses INTx and the ISR.
 */
export class PciDriverTransport implements DriverTransport {
  readonly name: string;
  private common = -1;
  private notifyBase = -1;
  private notifyMult = 0;
  private isrAt = -1;
  private deviceAt = -1;
  readonly capsFound: number[] = [];

  constructor(
    readonly pci: PciTransport,
    readonly msi: RecordingMsi | undefined,
    readonly barAddress = 0xe000_0000,
  ) {
    this.name = msi ? "pci-msix" : "pci-intx";
    // Size and place BAR 0 as firmware would.
    pci.configWrite(PciCfg.BAR0, 4, 0xffff_ffff);
    const mask = pci.configRead(PciCfg.BAR0, 4) & ~0xf;
    if (mask === 0) throw new Error("BAR 0 not implemented");
    pci.configWrite(PciCfg.BAR0, 4, barAddress);
    pci.configWrite(PciCfg.COMMAND, 2, PciCommand.MEMORY | PciCommand.BUS_MASTER);
    // virtio_pci_find_capability: walk the list (bounded: at most 48 capabilities fit in 256 bytes).
    let at = pci.configRead(PciCfg.CAP_PTR, 1);
    let msixAt = -1;
    for (let n = 0; at !== 0 && n < 48; n++) {
      const id = pci.configRead(at, 1);
      if (id === PciCapId.MSIX) msixAt = at;
      if (id === PciCapId.VENDOR) {
        const type = pci.configRead(at + 3, 1);
        const off = pci.configRead(at + 8, 4);
        this.capsFound.push(type);
        if (type === VirtioPciCap.COMMON && this.common < 0) this.common = off;
        if (type === VirtioPciCap.NOTIFY && this.notifyBase < 0) {
          this.notifyBase = off;
          this.notifyMult = pci.configRead(at + 16, 4);
        }
        if (type === VirtioPciCap.ISR && this.isrAt < 0) this.isrAt = off;
        if (type === VirtioPciCap.DEVICE && this.deviceAt < 0) this.deviceAt = off;
      }
      at = pci.configRead(at + 1, 1);
    }
    if (this.common < 0 || this.notifyBase < 0 || this.isrAt < 0) throw new Error("virtio caps missing");
    if (msi !== undefined) {
      if (msixAt < 0) throw new Error("no MSI-X capability");
      const ctl = pci.configRead(msixAt + 2, 2);
      const n = (ctl & 0x7ff) + 1;
      const table = pci.configRead(msixAt + 4, 4) & ~7;
      for (let v = 0; v < n; v++) {
        pci.barWrite(0, table + 16 * v, 4, MSI_ADDRESS);
        pci.barWrite(0, table + 16 * v + 4, 4, 0);
        pci.barWrite(0, table + 16 * v + 8, 4, 0x40 + v);
        pci.barWrite(0, table + 16 * v + 12, 4, 0);
      }
      pci.configWrite(msixAt + 2, 2, ctl | 0x8000);
    }
  }

  private c8(off: number): number {
    return this.pci.barRead(0, this.common + off, 1);
  }
  private c16(off: number): number {
    return this.pci.barRead(0, this.common + off, 2);
  }
  private c32(off: number): number {
    return this.pci.barRead(0, this.common + off, 4);
  }
  private w8(off: number, v: number): void {
    this.pci.barWrite(0, this.common + off, 1, v);
  }
  private w16(off: number, v: number): void {
    this.pci.barWrite(0, this.common + off, 2, v);
  }
  private w32(off: number, v: number): void {
    this.pci.barWrite(0, this.common + off, 4, v >>> 0);
  }
  private w64(off: number, v: number): void {
    // vp_iowrite64_twopart: low half then high half.
    this.w32(off, v % 0x1_0000_0000);
    this.w32(off + 4, Math.floor(v / 0x1_0000_0000));
  }

  getStatus(): number {
    return this.c8(CommonCfg.DEVICE_STATUS);
  }
  setStatus(v: number): void {
    this.w8(CommonCfg.DEVICE_STATUS, v);
  }
  reset(): void {
    this.w8(CommonCfg.DEVICE_STATUS, 0);
    // vp_reset: wait for the status to read back 0.
    if (this.getStatus() !== 0) throw new Error("reset did not complete");
    if (this.msi) this.w16(CommonCfg.CONFIG_MSIX_VECTOR, this.numQueues());
  }
  deviceId(): number {
    return this.pci.configRead(PciCfg.DEVICE_ID, 2) - 0x1040;
  }
  numQueues(): number {
    return this.c16(CommonCfg.NUM_QUEUES);
  }
  getFeatures(): Features {
    this.w32(CommonCfg.DEVICE_FEATURE_SELECT, 0);
    const lo = this.c32(CommonCfg.DEVICE_FEATURE);
    this.w32(CommonCfg.DEVICE_FEATURE_SELECT, 1);
    return { lo, hi: this.c32(CommonCfg.DEVICE_FEATURE) };
  }
  setFeatures(f: Features): void {
    this.w32(CommonCfg.DRIVER_FEATURE_SELECT, 0);
    this.w32(CommonCfg.DRIVER_FEATURE, f.lo);
    this.w32(CommonCfg.DRIVER_FEATURE_SELECT, 1);
    this.w32(CommonCfg.DRIVER_FEATURE, f.hi);
  }
  queueMax(i: number): number {
    if (i >= this.numQueues()) return 0;
    this.w16(CommonCfg.QUEUE_SELECT, i);
    if (this.c16(CommonCfg.QUEUE_ENABLE) !== 0) return 0;
    return this.c16(CommonCfg.QUEUE_SIZE);
  }
  setupQueue(i: number, size: number, desc: number, avail: number, used: number): void {
    this.w16(CommonCfg.QUEUE_SELECT, i);
    this.w16(CommonCfg.QUEUE_SIZE, size);
    this.w64(CommonCfg.QUEUE_DESC, desc);
    this.w64(CommonCfg.QUEUE_DRIVER, avail);
    this.w64(CommonCfg.QUEUE_DEVICE, used);
    if (this.msi) {
      this.w16(CommonCfg.QUEUE_MSIX_VECTOR, i);
      if (this.c16(CommonCfg.QUEUE_MSIX_VECTOR) === VIRTIO_MSI_NO_VECTOR) throw new Error("vector refused");
    }
    this.w16(CommonCfg.QUEUE_ENABLE, 1);
  }
  queueEnabled(i: number): boolean {
    this.w16(CommonCfg.QUEUE_SELECT, i);
    return this.c16(CommonCfg.QUEUE_ENABLE) === 1;
  }
  resetQueue(i: number): number {
    this.w16(CommonCfg.QUEUE_SELECT, i);
    this.w16(CommonCfg.QUEUE_RESET, 1);
    return this.c16(CommonCfg.QUEUE_RESET);
  }
  notify(i: number): void {
    this.w16(CommonCfg.QUEUE_SELECT, i);
    const off = this.c16(CommonCfg.QUEUE_NOTIFY_OFF);
    this.pci.barWrite(0, this.notifyBase + off * this.notifyMult, 2, i);
  }
  configRead(offset: number, size: number): number {
    return this.pci.barRead(0, this.deviceAt + offset, size);
  }
  configWrite(offset: number, size: number, value: number): void {
    this.pci.barWrite(0, this.deviceAt + offset, size, value);
  }
  configGeneration(): number {
    return this.c8(CommonCfg.CONFIG_GENERATION);
  }
  takeInterrupts(): { used: boolean; config: boolean } {
    if (this.msi) {
      const cfgVector = this.numQueues();
      let used = false;
      let config = false;
      for (const m of this.msi.messages.splice(0)) {
        if (m.data - 0x40 === cfgVector) config = true;
        else used = true;
      }
      return { used, config };
    }
    const isr = this.pci.barRead(0, this.isrAt, 1);
    return {
      used: (isr & InterruptReason.USED_BUFFER) !== 0,
      config: (isr & InterruptReason.CONFIG_CHANGE) !== 0,
    };
  }
}
