import { InterruptReason } from "../constants";
import type { VirtioDevice } from "../device";
import { type IrqLine, type MsiSink, NO_IRQ, NO_MSI } from "../irq";
import type { GuestMemory } from "../memory";
import { TransportCore, type TransportCoreState, type TransportOptions, TransportRestoreError } from "./core";
import { hiAddr } from "./mmio";
import {
  BarLayout,
  CapAt,
  CommonCfg,
  NOTIFY_MULTIPLIER,
  PciCapId,
  PciCfg,
  PciCommand,
  PciStatus,
  pciClassOf,
  VIRTIO_MSI_NO_VECTOR,
  VirtioPciCap,
} from "./pci-regs";

const TWO_32 = 0x1_0000_0000;
/** Saved virtio-pci state (plain JSON). */
export interface PciTransportState {
  kind: "virtio-pci";
  config: number[];
  isr: number;
  configVector: number;
  queueVectors: number[];
  msixTable: number[];
  msixPending: number[];
  core: TransportCoreState;
}

/** virtio 1.2 4.1.2: the PCI vendor id of virtio devices. */
export const VIRTIO_PCI_VENDOR = 0x1af4;
/** 4.1.2.1: non-transitional device ids are 0x1040 + the virtio device id. */
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;

/**
 * virtio-pci modern (virtio 1.2 4.1): a type-0 PCI function with the virtio vendor
 * capabilities (common, notify, ISR, device, pci_cfg), MSI-X (table and PBA in BAR 0), and an
 * INTx fallback. BAR 0 is a 32-bit memory BAR of BarLayout.SIZE bytes.
 *
 * The VMM's PCI host bridge calls `configRead/configWrite` for configuration cycles and
 * `barRead/barWrite` for MMIO that hits BAR 0 (at `bar0Address()` while memory decoding is on).
 *
 * @example
 * ```ts
 * import { FlatGuestMemory, PciTransport, VirtioRng } from "@tskvm/virtio";
 * const pci = new PciTransport(new VirtioRng(), new FlatGuestMemory(1 << 20));
 * pci.configRead(0x00, 4).toString(16); // "10441af4": vendor 0x1af4, device 0x1044
 * ```
 */
export class PciTransport {
  readonly core: TransportCore;
  /** Configuration space contents (dynamic fields are computed on read). */
  private readonly cfg = new Uint8Array(256);
  /** Which bits of each configuration byte the driver may write. */
  private readonly wmask = new Uint8Array(256);
  private isr = 0;
  private configVector = VIRTIO_MSI_NO_VECTOR;
  private readonly queueVectors: number[];
  readonly msixVectors: number;
  /** MSI-X table: 4 dwords per vector (address lo, address hi, data, vector control). */
  private readonly msixTable: Uint32Array;
  private readonly msixPending: Uint8Array;
  private intxLevel = false;

  constructor(
    readonly device: VirtioDevice,
    readonly mem: GuestMemory,
    private readonly intx: IrqLine = NO_IRQ,
    private readonly msi: MsiSink = NO_MSI,
    opts: TransportOptions = {},
  ) {
    this.core = new TransportCore(device, mem, opts);
    const nq = device.queueSizes.length;
    this.queueVectors = new Array<number>(nq).fill(VIRTIO_MSI_NO_VECTOR);
    // One vector per queue plus one for configuration changes, as Linux asks for first.
    this.msixVectors = nq + 1;
    this.msixTable = new Uint32Array(4 * this.msixVectors);
    this.msixPending = new Uint8Array(this.msixVectors);
    this.resetMsix();
    this.buildConfigSpace();
    this.core.attachSink({
      queueInterrupt: (q) =>
        this.interrupt(this.queueVectors[q] ?? VIRTIO_MSI_NO_VECTOR, InterruptReason.USED_BUFFER),
      configInterrupt: () => this.interrupt(this.configVector, InterruptReason.CONFIG_CHANGE),
      resetInterrupts: () => {
        this.isr = 0;
        this.configVector = VIRTIO_MSI_NO_VECTOR;
        this.queueVectors.fill(VIRTIO_MSI_NO_VECTOR);
        this.updateIntx();
      },
    });
  }

  save(): PciTransportState {
    return {
      kind: "virtio-pci",
      config: [...this.cfg],
      isr: this.isr,
      configVector: this.configVector,
      queueVectors: [...this.queueVectors],
      msixTable: [...this.msixTable],
      msixPending: [...this.msixPending],
      core: this.core.save(),
    };
  }

  /**
   * A transport for `device` with a saved state loaded. Read-only configuration bits must match
   * what this device presents; vectors must fit the MSI-X table. Throws TransportRestoreError.
   */
  static restore(
    device: VirtioDevice,
    mem: GuestMemory,
    intx: IrqLine,
    msi: MsiSink,
    s: PciTransportState,
    opts: TransportOptions = {},
  ): PciTransport {
    if (s === null || typeof s !== "object" || s.kind !== "virtio-pci")
      throw new TransportRestoreError("NotPciState");
    const t = new PciTransport(device, mem, intx, msi, opts);
    const byte = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xff;
    if (!Array.isArray(s.config) || s.config.length !== 256 || !s.config.every(byte)) {
      throw new TransportRestoreError("ConfigSpaceSize");
    }
    for (let i = 0; i < 256; i++) {
      if ((s.config[i]! & ~t.wmask[i]!) !== (t.cfg[i]! & ~t.wmask[i]!))
        throw new TransportRestoreError("ConfigSpaceReadOnly");
    }
    const vec = (v: unknown) =>
      v === VIRTIO_MSI_NO_VECTOR ||
      (Number.isInteger(v) && (v as number) >= 0 && (v as number) < t.msixVectors);
    if (
      !vec(s.configVector) ||
      !Array.isArray(s.queueVectors) ||
      s.queueVectors.length !== t.queueVectors.length
    ) {
      throw new TransportRestoreError("Vectors");
    }
    if (!s.queueVectors.every(vec)) throw new TransportRestoreError("Vectors");
    const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
    if (!Array.isArray(s.msixTable) || s.msixTable.length !== t.msixTable.length || !s.msixTable.every(u32)) {
      throw new TransportRestoreError("MsixTable");
    }
    if (!Array.isArray(s.msixPending) || s.msixPending.length !== t.msixPending.length) {
      throw new TransportRestoreError("MsixPending");
    }
    t.cfg.set(s.config);
    const err = t.core.load(s.core);
    if (err !== undefined) throw new TransportRestoreError(err);
    t.isr = s.isr & 3;
    t.configVector = s.configVector;
    s.queueVectors.forEach((v, i) => {
      t.queueVectors[i] = v;
    });
    t.msixTable.set(s.msixTable);
    s.msixPending.forEach((v, i) => {
      t.msixPending[i] = v ? 1 : 0;
    });
    t.updateIntx();
    // Chains made available before the snapshot are processed now (Firecracker #5958).
    t.core.resume();
    return t;
  }

  private resetMsix(): void {
    this.msixTable.fill(0);
    // PCI 3.0 6.8.2.9: each vector's Mask bit is set after reset.
    for (let v = 0; v < this.msixVectors; v++) this.msixTable[4 * v + 3] = 1;
    this.msixPending.fill(0);
  }

  private buildConfigSpace(): void {
    const c = this.cfg;
    const dv = new DataView(c.buffer);
    const w16 = (o: number, v: number) => dv.setUint16(o, v, true);
    const w32 = (o: number, v: number) => dv.setUint32(o, v, true);
    w16(PciCfg.VENDOR_ID, VIRTIO_PCI_VENDOR);
    w16(PciCfg.DEVICE_ID, VIRTIO_PCI_DEVICE_BASE + this.device.deviceType);
    w16(PciCfg.STATUS, PciStatus.CAP_LIST);
    // 4.1.2.1: non-transitional devices "SHOULD have a PCI Revision ID of 1 or higher".
    c[PciCfg.REVISION] = 1;
    const cls = pciClassOf(this.device.deviceType);
    c[PciCfg.CLASS_PROG] = cls & 0xff;
    c[PciCfg.CLASS_SUB] = (cls >>> 8) & 0xff;
    c[PciCfg.CLASS_BASE] = (cls >>> 16) & 0xff;
    w16(PciCfg.SUBSYS_VENDOR, VIRTIO_PCI_VENDOR);
    // 4.1.2.1: "... Subsystem Device ID of 0x40 or higher" for non-transitional devices.
    w16(PciCfg.SUBSYS_ID, 0x40 + this.device.deviceType);
    c[PciCfg.CAP_PTR] = CapAt.MSIX;
    c[PciCfg.INT_PIN] = 1; // INTA#
    // Writable: command (I/O space stays 0: no I/O BARs), cache line, latency, BAR 0, int line.
    w16Mask(this.wmask, PciCfg.COMMAND, PciCommand.MEMORY | PciCommand.BUS_MASTER | PciCommand.INTX_DISABLE);
    this.wmask[PciCfg.CACHE_LINE] = 0xff;
    this.wmask[PciCfg.LATENCY] = 0xff;
    // A 32-bit non-prefetchable memory BAR: the size bits read back as 0 (PCI 3.0 6.2.5.1).
    new DataView(this.wmask.buffer).setUint32(PciCfg.BAR0, ~(BarLayout.SIZE - 1) >>> 0, true);
    this.wmask[PciCfg.INT_LINE] = 0xff;

    // MSI-X capability (PCI 3.0 6.8.2): table size N-1, table and PBA in BAR 0.
    c[CapAt.MSIX] = PciCapId.MSIX;
    c[CapAt.MSIX + 1] = CapAt.COMMON;
    w16(CapAt.MSIX + 2, this.msixVectors - 1);
    w32(CapAt.MSIX + 4, BarLayout.MSIX_TABLE | 0);
    w32(CapAt.MSIX + 8, BarLayout.MSIX_PBA | 0);
    // Message control: function mask (bit 14) and enable (bit 15) are writable.
    this.wmask[CapAt.MSIX + 3] = 0xc0;

    const hasDevCfg = this.device.configSize > 0;
    const vcap = (at: number, next: number, len: number, type: number, off: number, size: number) => {
      c[at] = PciCapId.VENDOR;
      c[at + 1] = next;
      c[at + 2] = len;
      c[at + 3] = type;
      c[at + 4] = 0; // bar
      w32(at + 8, off);
      w32(at + 12, size);
    };
    vcap(CapAt.COMMON, CapAt.NOTIFY, 16, VirtioPciCap.COMMON, BarLayout.COMMON, CommonCfg.SIZE);
    vcap(
      CapAt.NOTIFY,
      CapAt.ISR,
      20,
      VirtioPciCap.NOTIFY,
      BarLayout.NOTIFY,
      NOTIFY_MULTIPLIER * Math.max(1, this.device.queueSizes.length),
    );
    w32(CapAt.NOTIFY + 16, NOTIFY_MULTIPLIER);
    vcap(CapAt.ISR, hasDevCfg ? CapAt.DEVICE : CapAt.PCI_CFG, 16, VirtioPciCap.ISR, BarLayout.ISR, 1);
    if (hasDevCfg) {
      vcap(CapAt.DEVICE, CapAt.PCI_CFG, 16, VirtioPciCap.DEVICE, BarLayout.DEVICE, this.device.configSize);
    }
    // 4.1.4.9: "The device MUST present at least one VIRTIO_PCI_CAP_PCI_CFG capability".
    vcap(CapAt.PCI_CFG, 0, 20, VirtioPciCap.PCI_CFG, 0, 0);
    // Its bar, offset, length and data fields are the driver's to write.
    this.wmask[CapAt.PCI_CFG + 4] = 0xff;
    this.wmask.fill(0xff, CapAt.PCI_CFG + 8, CapAt.PCI_CFG + 20);
  }

  private get command(): number {
    return this.cfg[PciCfg.COMMAND]! | (this.cfg[PciCfg.COMMAND + 1]! << 8);
  }

  /** Where the driver (or firmware) put BAR 0; only meaningful while memory decoding is on. */
  bar0Address(): number {
    return (new DataView(this.cfg.buffer).getUint32(PciCfg.BAR0, true) & ~0xf) >>> 0;
  }

  /** Whether the command register enables memory decoding (the VMM routes BAR 0 only then). */
  get memoryEnabled(): boolean {
    return (this.command & PciCommand.MEMORY) !== 0;
  }

  private get msixControl(): number {
    return this.cfg[CapAt.MSIX + 2]! | (this.cfg[CapAt.MSIX + 3]! << 8);
  }

  get msixEnabled(): boolean {
    return (this.msixControl & 0x8000) !== 0;
  }

  /** Level of the INTx line. */
  get intxAsserted(): boolean {
    return this.intxLevel;
  }

  // --- configuration space -------------------------------------------------------------

  /** A configuration read of size (1, 2, 4) bytes at offset (0..255); never throws. */
  configRead(offset: number, size: number): number {
    // Beyond the 256-byte header space (PCIe extended space) reads all ones of the access
    // size, which Linux's pci_cfg_space_size_ext takes as "no extended configuration space".
    if (size !== 1 && size !== 2 && size !== 4) return 0xffffffff;
    if (offset < 0 || offset + size > 256) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    const dataAt = CapAt.PCI_CFG + 16;
    if (offset >= dataAt && offset < dataAt + 4) return this.pciCfgDataRead(offset - dataAt, size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.cfgByte(offset + i);
    return v >>> 0;
  }

  private cfgByte(o: number): number {
    if (o === PciCfg.STATUS) return this.cfg[o]! | (this.intxLevel ? PciStatus.INTERRUPT : 0);
    return this.cfg[o]!;
  }

  /** A configuration write of size (1, 2, 4) bytes at offset; only writable bits change. */
  configWrite(offset: number, size: number, value: number): void {
    if (offset < 0 || offset + size > 256 || (size !== 1 && size !== 2 && size !== 4)) return;
    const wasMsix = this.msixControl;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      const m = this.wmask[o]!;
      this.cfg[o] = (this.cfg[o]! & ~m) | (b & m);
    }
    const touches = (at: number, len: number) => offset < at + len && at < offset + size;
    if (touches(PciCfg.COMMAND, 2)) this.updateIntx();
    if (touches(CapAt.MSIX + 2, 2) && wasMsix !== this.msixControl) {
      this.updateIntx();
      this.deliverPending();
    }
    const dataAt = CapAt.PCI_CFG + 16;
    if (touches(dataAt, 4) && offset >= dataAt) this.pciCfgDataWrite(offset - dataAt, size, value);
  }

  /** 4.1.4.9: pci_cfg_data accesses BAR `bar` at `offset` for `length` bytes. */
  private pciCfgWindow(): { bar: number; off: number; len: number } {
    const dv = new DataView(this.cfg.buffer);
    return {
      bar: this.cfg[CapAt.PCI_CFG + 4]!,
      off: dv.getUint32(CapAt.PCI_CFG + 8, true),
      len: dv.getUint32(CapAt.PCI_CFG + 12, true),
    };
  }

  private pciCfgDataRead(at: number, size: number): number {
    const w = this.pciCfgWindow();
    if (at !== 0 || w.bar !== 0 || (w.len !== 1 && w.len !== 2 && w.len !== 4) || size < w.len) return 0;
    return this.barRead(0, w.off, w.len);
  }

  private pciCfgDataWrite(at: number, size: number, value: number): void {
    const w = this.pciCfgWindow();
    if (at !== 0 || w.bar !== 0 || (w.len !== 1 && w.len !== 2 && w.len !== 4) || size < w.len) return;
    this.barWrite(0, w.off, w.len, value);
  }

  // --- BAR 0 -----------------------------------------------------------------------------

  /** A read of size bytes at offset within BAR bar; never throws. */
  barRead(bar: number, offset: number, size: number): number {
    if (bar !== 0 || offset < 0 || offset >= BarLayout.SIZE) return 0;
    if (offset >= BarLayout.MSIX_PBA) return this.pbaRead(offset - BarLayout.MSIX_PBA, size);
    if (offset >= BarLayout.MSIX_TABLE) return this.msixRead(offset - BarLayout.MSIX_TABLE, size);
    if (offset >= BarLayout.NOTIFY) return 0;
    if (offset >= BarLayout.DEVICE) return this.device.readConfig(offset - BarLayout.DEVICE, size);
    if (offset >= BarLayout.ISR) return offset === BarLayout.ISR ? this.readIsr() : 0;
    return this.commonRead(offset, size);
  }

  /** A write of size bytes at offset within BAR bar; never throws. */
  barWrite(bar: number, offset: number, size: number, value: number): void {
    if (bar !== 0 || offset < 0 || offset >= BarLayout.SIZE) return;
    value >>>= 0;
    if (offset >= BarLayout.MSIX_PBA) return; // PBA is read-only
    if (offset >= BarLayout.MSIX_TABLE) {
      this.msixWrite(offset - BarLayout.MSIX_TABLE, size, value);
      return;
    }
    if (offset >= BarLayout.NOTIFY) {
      const rel = offset - BarLayout.NOTIFY;
      // 4.1.4.4: the queue is named by the notify address (queue_notify_off * multiplier).
      if (rel % NOTIFY_MULTIPLIER === 0) this.core.notify(rel / NOTIFY_MULTIPLIER);
      else this.core.count("badNotifyAddress");
      return;
    }
    if (offset >= BarLayout.DEVICE) {
      this.device.writeConfig(offset - BarLayout.DEVICE, size, value);
      return;
    }
    if (offset >= BarLayout.ISR) return;
    this.commonWrite(offset, size, value);
  }

  /** 4.1.4.5.1: "The device MUST reset ISR status to 0 on driver read." */
  private readIsr(): number {
    const v = this.isr;
    this.isr = 0;
    this.updateIntx();
    return v;
  }

  private commonRead(off: number, size: number): number {
    const c = this.core;
    const q = c.selectedQueue();
    const i = c.queueSel;
    const exact = (at: number, sz: number) => off === at && size === sz;
    if (exact(CommonCfg.DEVICE_FEATURE_SELECT, 4)) return c.deviceFeatureSel;
    if (exact(CommonCfg.DEVICE_FEATURE, 4)) return c.readDeviceFeatures();
    if (exact(CommonCfg.DRIVER_FEATURE_SELECT, 4)) return c.driverFeatureSel;
    if (exact(CommonCfg.DRIVER_FEATURE, 4)) {
      const f = c.driverFeatures;
      return c.driverFeatureSel === 0 ? f.lo : c.driverFeatureSel === 1 ? f.hi : 0;
    }
    if (exact(CommonCfg.CONFIG_MSIX_VECTOR, 2)) return this.configVector;
    if (exact(CommonCfg.NUM_QUEUES, 2)) return c.queues.length;
    if (exact(CommonCfg.DEVICE_STATUS, 1)) return c.status;
    if (exact(CommonCfg.CONFIG_GENERATION, 1)) return c.configGeneration & 0xff;
    if (exact(CommonCfg.QUEUE_SELECT, 2)) return i & 0xffff;
    // 4.1.4.3: a queue_size of 0 means the selected queue is unavailable.
    if (exact(CommonCfg.QUEUE_SIZE, 2)) return q?.size ?? 0;
    if (exact(CommonCfg.QUEUE_MSIX_VECTOR, 2)) return q ? this.queueVectors[i]! : VIRTIO_MSI_NO_VECTOR;
    if (exact(CommonCfg.QUEUE_ENABLE, 2)) return q?.ready ? 1 : 0;
    if (exact(CommonCfg.QUEUE_NOTIFY_OFF, 2)) return q ? i : 0;
    if (q !== undefined && size === 4) {
      const half = (addr: number, at: number) =>
        off === at ? addr % TWO_32 : off === at + 4 ? Math.floor(addr / TWO_32) : -1;
      for (const [at, addr] of [
        [CommonCfg.QUEUE_DESC, q.descAddr],
        [CommonCfg.QUEUE_DRIVER, q.availAddr],
        [CommonCfg.QUEUE_DEVICE, q.usedAddr],
      ] as const) {
        const v = half(addr, at);
        if (v >= 0) return v >>> 0;
      }
    }
    if (exact(CommonCfg.QUEUE_NOTIF_CONFIG_DATA, 2)) return 0;
    if (exact(CommonCfg.QUEUE_RESET, 2)) return c.queueResetting[i] ? 1 : 0;
    c.count("badCommonAccess");
    return 0;
  }

  private commonWrite(off: number, size: number, value: number): void {
    const c = this.core;
    const exact = (at: number, sz: number) => off === at && size === sz;
    if (exact(CommonCfg.DEVICE_FEATURE_SELECT, 4)) c.deviceFeatureSel = value;
    else if (exact(CommonCfg.DRIVER_FEATURE_SELECT, 4)) c.driverFeatureSel = value;
    else if (exact(CommonCfg.DRIVER_FEATURE, 4)) c.writeDriverFeatures(value);
    else if (exact(CommonCfg.CONFIG_MSIX_VECTOR, 2)) this.configVector = this.vectorOrNone(value);
    else if (exact(CommonCfg.DEVICE_STATUS, 1)) {
      c.writeStatus(value & 0xff);
      if (value === 0) this.resetMsixVectors();
    } else if (exact(CommonCfg.QUEUE_SELECT, 2)) c.queueSel = value & 0xffff;
    else if (exact(CommonCfg.QUEUE_SIZE, 2)) this.queueWrite((q) => (q.size = value & 0xffff));
    else if (exact(CommonCfg.QUEUE_MSIX_VECTOR, 2)) {
      const i = c.queueSel;
      if (c.selectedQueue() !== undefined) this.queueVectors[i] = this.vectorOrNone(value);
    } else if (exact(CommonCfg.QUEUE_ENABLE, 2)) {
      // 4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable."
      if ((value & 1) === 1) c.writeQueueReady(true);
      else c.count("queueDisableWrite");
    } else if (size === 4 && off >= CommonCfg.QUEUE_DESC && off < CommonCfg.QUEUE_NOTIF_CONFIG_DATA) {
      const rel = off - CommonCfg.QUEUE_DESC;
      const field = Math.floor(rel / 8);
      const high = rel % 8 === 4;
      if (rel % 4 !== 0) {
        c.count("badCommonAccess");
        return;
      }
      this.queueWrite((q) => {
        const get = field === 0 ? q.descAddr : field === 1 ? q.availAddr : q.usedAddr;
        const next = high ? hiAddr(get, value) : get - (get % TWO_32) + value;
        if (field === 0) q.descAddr = next;
        else if (field === 1) q.availAddr = next;
        else q.usedAddr = next;
      });
    } else if (exact(CommonCfg.QUEUE_RESET, 2)) {
      if ((value & 1) === 1) c.resetSelectedQueue();
    } else c.count("badCommonAccess");
  }

  private resetMsixVectors(): void {
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    this.queueVectors.fill(VIRTIO_MSI_NO_VECTOR);
  }

  /** 4.1.5.1.2 (MSI-X vector configuration): a vector the device cannot map reads back as NO_VECTOR. */
  private vectorOrNone(v: number): number {
    v &= 0xffff;
    return v < this.msixVectors ? v : VIRTIO_MSI_NO_VECTOR;
  }

  private queueWrite(fn: (q: NonNullable<ReturnType<TransportCore["selectedQueue"]>>) => void): void {
    const q = this.core.selectedQueue();
    if (q === undefined || !this.core.queueConfigurable()) {
      this.core.rejectQueueWrite();
      return;
    }
    fn(q);
  }

  // --- interrupts ----------------------------------------------------------------------

  private interrupt(vector: number, reason: number): void {
    if (this.msixEnabled) {
      // 4.1.4.5.1: the config-change bit is set in ISR even with MSI-X; the queue bit is not.
      if (reason === InterruptReason.CONFIG_CHANGE) this.isr |= reason;
      if (vector === VIRTIO_MSI_NO_VECTOR || vector >= this.msixVectors) return;
      this.sendMsix(vector);
      return;
    }
    this.isr |= reason;
    this.updateIntx();
  }

  private sendMsix(v: number): void {
    const t = this.msixTable;
    const functionMasked = (this.msixControl & 0x4000) !== 0;
    // PCI Local Bus 3.0 6.8.2 (MSI-X): a masked vector's message is held in the PBA until unmasked.
    if (functionMasked || (t[4 * v + 3]! & 1) !== 0 || (this.command & PciCommand.BUS_MASTER) === 0) {
      this.msixPending[v] = 1;
      return;
    }
    this.msixPending[v] = 0;
    this.msi.signalMsi(t[4 * v]!, t[4 * v + 1]!, t[4 * v + 2]!);
  }

  private deliverPending(): void {
    if (!this.msixEnabled) return;
    for (let v = 0; v < this.msixVectors; v++) if (this.msixPending[v]) this.sendMsix(v);
  }

  private updateIntx(): void {
    // INTx is used only while MSI-X is off and the command register allows it.
    const level = this.isr !== 0 && !this.msixEnabled && (this.command & PciCommand.INTX_DISABLE) === 0;
    if (level !== this.intxLevel) {
      this.intxLevel = level;
      this.intx.set(level);
    }
  }

  private msixRead(off: number, size: number): number {
    if (size !== 4 || off % 4 !== 0 || off >= 16 * this.msixVectors) return 0;
    return this.msixTable[off / 4]!;
  }

  private msixWrite(off: number, size: number, value: number): void {
    if (size !== 4 || off % 4 !== 0 || off >= 16 * this.msixVectors) return;
    const word = off / 4;
    // Vector control: only the mask bit (bit 0) is defined.
    this.msixTable[word] = word % 4 === 3 ? value & 1 : value;
    if (word % 4 === 3 && (value & 1) === 0) {
      const v = (word - 3) / 4;
      if (this.msixPending[v] && this.msixEnabled) this.sendMsix(v);
    }
  }

  private pbaRead(off: number, size: number): number {
    let v = 0;
    for (let i = 0; i < size * 8; i++) {
      const bit = off * 8 + i;
      if (bit < this.msixVectors && this.msixPending[bit]) v |= 1 << i;
    }
    return v >>> 0;
  }
}

function w16Mask(mask: Uint8Array, at: number, v: number): void {
  mask[at] = v & 0xff;
  mask[at + 1] = (v >>> 8) & 0xff;
}
