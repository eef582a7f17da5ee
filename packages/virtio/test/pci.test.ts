import { describe, expect, it } from "vitest";
import {
  BarLayout,
  CommonCfg,
  FlatGuestMemory,
  PciCfg,
  PciCommand,
  PciStatus,
  PciTransport,
  Status,
  VIRTIO_MSI_NO_VECTOR,
  VirtioPciCap,
  VirtioRng,
} from "../src/index";
import { MockDriver, PciDriverTransport, RecordingIrq, RecordingMsi } from "../src/testing/index";

function setup(msix: boolean) {
  const mem = new FlatGuestMemory(1 << 20);
  const irq = new RecordingIrq();
  const msi = new RecordingMsi();
  const pci = new PciTransport(new VirtioRng(), mem, irq, msi);
  const t = new PciDriverTransport(pci, msix ? msi : undefined);
  const drv = new MockDriver(mem, t);
  return { mem, irq, msi, pci, t, drv };
}

describe("virtio-pci modern transport (virtio 1.2 4.1)", () => {
  it("4.1.2.1 ids: vendor 0x1af4, device 0x1040 + type, revision >= 1, subsystem id >= 0x40", () => {
    const { pci } = setup(false);
    expect(pci.configRead(PciCfg.VENDOR_ID, 2)).toBe(0x1af4);
    expect(pci.configRead(PciCfg.DEVICE_ID, 2)).toBe(0x1044);
    expect(pci.configRead(PciCfg.REVISION, 1)).toBeGreaterThanOrEqual(1);
    expect(pci.configRead(PciCfg.SUBSYS_ID, 2)).toBeGreaterThanOrEqual(0x40);
    expect(pci.configRead(PciCfg.STATUS, 2) & PciStatus.CAP_LIST).toBe(PciStatus.CAP_LIST);
  });

  it("4.1.4 the capability list has common, notify, ISR and pci_cfg (4.1.4.9 at least one PCI_CFG)", () => {
    const { t } = setup(false);
    expect(t.capsFound).toEqual([
      VirtioPciCap.COMMON,
      VirtioPciCap.NOTIFY,
      VirtioPciCap.ISR,
      VirtioPciCap.PCI_CFG,
    ]);
  });

  it("PCI 6.2.5.1 BAR 0 sizing: all-ones reads back the size mask", () => {
    const { pci } = setup(false);
    pci.configWrite(PciCfg.BAR0, 4, 0xffff_ffff);
    expect(pci.configRead(PciCfg.BAR0, 4)).toBe(~(BarLayout.SIZE - 1) >>> 0);
    pci.configWrite(PciCfg.BAR0, 4, 0xc000_0000);
    expect(pci.bar0Address()).toBe(0xc000_0000);
  });

  it("extended configuration space reads all ones of the access size", () => {
    const { pci } = setup(false);
    expect(pci.configRead(0x100, 4)).toBe(0xffff_ffff);
    expect(pci.configRead(0x100, 2)).toBe(0xffff);
    expect(pci.configRead(0x100, 1)).toBe(0xff);
  });

  it("read-only header fields ignore writes", () => {
    const { pci } = setup(false);
    pci.configWrite(PciCfg.VENDOR_ID, 4, 0);
    expect(pci.configRead(PciCfg.VENDOR_ID, 2)).toBe(0x1af4);
  });

  it("3.1.1 init and a request over INTx: ISR bit 0, line level, 4.1.4.5.1 ISR clears on read", () => {
    const { drv, irq, pci } = setup(false);
    expect(drv.init()).toBe(true);
    drv.queue(0).add([], [32], 1);
    expect(irq.level).toBe(true);
    expect(pci.configRead(PciCfg.STATUS, 2) & PciStatus.INTERRUPT).toBe(PciStatus.INTERRUPT);
    expect(pci.barRead(0, BarLayout.ISR, 1)).toBe(1);
    expect(irq.level).toBe(false);
    expect(pci.barRead(0, BarLayout.ISR, 1)).toBe(0);
    expect(drv.queue(0).used()[0]?.len).toBe(32);
  });

  it("INTx disable in the command register holds the line low", () => {
    const { drv, irq, pci } = setup(false);
    drv.init();
    pci.configWrite(PciCfg.COMMAND, 2, PciCommand.MEMORY | PciCommand.BUS_MASTER | PciCommand.INTX_DISABLE);
    drv.queue(0).add([], [8], 1);
    expect(irq.level).toBe(false);
  });

  it("4.1.5.1 MSI-X: a queue's vector sends its message; INTx stays low", () => {
    const { drv, irq, msi } = setup(true);
    expect(drv.init()).toBe(true);
    drv.queue(0).add([], [8], 1);
    expect(irq.level).toBe(false);
    expect(msi.messages).toEqual([{ addressLo: 0xfee0_0000, addressHi: 0, data: 0x40 }]);
  });

  it("PCI 6.8.2 MSI-X: a masked vector sets its PBA bit and fires on unmask", () => {
    const { drv, msi, pci } = setup(true);
    drv.init();
    pci.barWrite(0, BarLayout.MSIX_TABLE + 12, 4, 1); // mask vector 0
    drv.queue(0).add([], [8], 1);
    expect(msi.messages).toHaveLength(0);
    expect(pci.barRead(0, BarLayout.MSIX_PBA, 4) & 1).toBe(1);
    pci.barWrite(0, BarLayout.MSIX_TABLE + 12, 4, 0);
    expect(msi.messages).toHaveLength(1);
    expect(pci.barRead(0, BarLayout.MSIX_PBA, 4) & 1).toBe(0);
  });

  it("4.1.4.3.2 the device presents 0 in queue_enable after reset, and device_feature 0 beyond its bits", () => {
    const { pci, drv } = setup(false);
    drv.init();
    pci.barWrite(0, CommonCfg.DEVICE_STATUS, 1, 0);
    pci.barWrite(0, CommonCfg.QUEUE_SELECT, 2, 0);
    expect(pci.barRead(0, CommonCfg.QUEUE_ENABLE, 2)).toBe(0);
    pci.barWrite(0, CommonCfg.DEVICE_FEATURE_SELECT, 4, 2);
    expect(pci.barRead(0, CommonCfg.DEVICE_FEATURE, 4)).toBe(0);
    pci.barWrite(0, CommonCfg.DEVICE_FEATURE_SELECT, 4, 1);
    expect(pci.barRead(0, CommonCfg.DEVICE_FEATURE, 4) & 1).toBe(1); // VERSION_1 (bit 32)
  });

  it("4.1.4.3 a vector beyond the table reads back as VIRTIO_MSI_NO_VECTOR", () => {
    const { pci, drv } = setup(true);
    drv.negotiate();
    pci.barWrite(0, CommonCfg.QUEUE_SELECT, 2, 0);
    pci.barWrite(0, CommonCfg.QUEUE_MSIX_VECTOR, 2, 99);
    expect(pci.barRead(0, CommonCfg.QUEUE_MSIX_VECTOR, 2)).toBe(VIRTIO_MSI_NO_VECTOR);
  });

  it("4.1.4.3 queue_size reads 0 for a queue_select beyond num_queues", () => {
    const { pci } = setup(false);
    expect(pci.barRead(0, CommonCfg.NUM_QUEUES, 2)).toBe(1);
    pci.barWrite(0, CommonCfg.QUEUE_SELECT, 2, 0xffff);
    expect(pci.barRead(0, CommonCfg.QUEUE_SIZE, 2)).toBe(0);
  });

  it("4.1.4.3.2 a 0 written to queue_enable is ignored", () => {
    const { pci, drv } = setup(false);
    drv.negotiate();
    drv.transport.setupQueue(0, 8, 0x10000, 0x11000, 0x12000);
    pci.barWrite(0, CommonCfg.QUEUE_ENABLE, 2, 0);
    expect(pci.barRead(0, CommonCfg.QUEUE_ENABLE, 2)).toBe(1);
  });

  it("4.1.4.3 64-bit queue addresses are written and read as two 32-bit halves", () => {
    const { pci, drv } = setup(false);
    drv.negotiate();
    pci.barWrite(0, CommonCfg.QUEUE_DESC, 4, 0x1234_5000);
    pci.barWrite(0, CommonCfg.QUEUE_DESC + 4, 4, 0x7);
    expect(pci.barRead(0, CommonCfg.QUEUE_DESC, 4)).toBe(0x1234_5000);
    expect(pci.barRead(0, CommonCfg.QUEUE_DESC + 4, 4)).toBe(7);
    expect(pci.core.queues[0]!.descAddr).toBe(7 * 0x1_0000_0000 + 0x1234_5000);
  });

  it("4.1.4.9 the pci_cfg window reads the common config through configuration space", () => {
    const { pci } = setup(false);
    pci.configWrite(0x98 + 4, 1, 0); // bar 0
    pci.configWrite(0x98 + 8, 4, CommonCfg.NUM_QUEUES);
    pci.configWrite(0x98 + 12, 4, 2);
    expect(pci.configRead(0x98 + 16, 4) & 0xffff).toBe(1);
    pci.configWrite(0x98 + 8, 4, CommonCfg.DEVICE_STATUS);
    pci.configWrite(0x98 + 12, 4, 1);
    pci.configWrite(0x98 + 16, 4, Status.ACKNOWLEDGE);
    expect(pci.core.status).toBe(Status.ACKNOWLEDGE);
  });

  it("2.1.2 NEEDS_RESET sends the config vector with MSI-X", () => {
    const { drv, msi, mem, pci } = setup(true);
    drv.init({ queueSize: 4 });
    mem.write(drv.queue(0).availAddr + 2, new Uint8Array([9, 0]));
    pci.barWrite(0, BarLayout.NOTIFY, 2, 0);
    expect(drv.needsReset).toBe(true);
    expect(msi.messages.at(-1)?.data).toBe(0x40 + 1);
  });

  it("4.1.4.4 a notify at an address that names no queue is ignored", () => {
    const { drv, pci } = setup(false);
    drv.init();
    pci.barWrite(0, BarLayout.NOTIFY + 4 * 5, 2, 5);
    pci.barWrite(0, BarLayout.NOTIFY + 1, 1, 0);
    expect(pci.core.metrics["notifyBadQueue"]).toBe(1);
    expect(pci.core.metrics["badNotifyAddress"]).toBe(1);
  });

  it("2.6.1 queue_reset over pci: reset, read 1, set up again, works", () => {
    const { drv } = setup(true);
    drv.init({ queueSize: 8 });
    expect(drv.resetQueue(0)).toBe(true);
    drv.queue(0).add([], [4], 3);
    expect(drv.queue(0).used()).toMatchObject([{ token: 3, len: 4 }]);
  });
});
