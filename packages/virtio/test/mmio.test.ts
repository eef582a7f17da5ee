import { describe, expect, it } from "vitest";
import {
  Feature,
  FlatGuestMemory,
  hasFeature,
  MMIO_MAGIC,
  MmioReg,
  MmioTransport,
  mmioKernelParam,
  Status,
  VirtioRng,
} from "../src/index";
import { MmioDriverTransport, MockDriver, RecordingIrq } from "../src/testing/index";

function setup() {
  const mem = new FlatGuestMemory(1 << 20);
  const irq = new RecordingIrq();
  const dev = new VirtioRng((b) => b.fill(0xab));
  const mmio = new MmioTransport(dev, mem, irq);
  const drv = new MockDriver(mem, new MmioDriverTransport(mmio, irq));
  return { mem, irq, dev, mmio, drv };
}

const A = Status.ACKNOWLEDGE;
const D = Status.DRIVER;
const F = Status.FEATURES_OK;
const OK = Status.DRIVER_OK;

describe("virtio-mmio transport (virtio 1.2 4.2)", () => {
  it("4.2.2 identification registers: magic, version 2, device and vendor id", () => {
    const { mmio } = setup();
    expect(mmio.read(MmioReg.MAGIC_VALUE, 4)).toBe(MMIO_MAGIC);
    expect(mmio.read(MmioReg.VERSION, 4)).toBe(2);
    expect(mmio.read(MmioReg.DEVICE_ID, 4)).toBe(4);
    expect(mmio.read(MmioReg.VENDOR_ID, 4)).not.toBe(0);
  });

  it("4.2.2.2 non-32-bit register accesses read 0 and are counted", () => {
    const { mmio } = setup();
    expect(mmio.read(MmioReg.MAGIC_VALUE, 2)).toBe(0);
    expect(mmio.core.metrics["badRegisterAccess"]).toBe(1);
  });

  it("3.1.1 the full init sequence reaches DRIVER_OK", () => {
    const { drv } = setup();
    expect(drv.init()).toBe(true);
    expect(hasFeature(drv.features, Feature.VERSION_1)).toBe(true);
  });

  it("2.1 status bits cannot be cleared except by writing 0 (Firecracker #5818)", () => {
    const { mmio } = setup();
    mmio.write(MmioReg.STATUS, 4, A);
    mmio.write(MmioReg.STATUS, 4, A | D);
    mmio.write(MmioReg.STATUS, 4, A);
    expect(mmio.read(MmioReg.STATUS, 4)).toBe(A | D);
    mmio.write(MmioReg.STATUS, 4, 0);
    expect(mmio.read(MmioReg.STATUS, 4)).toBe(0);
  });

  it("3.1.1 out-of-order status writes (DRIVER_OK before FEATURES_OK) are refused", () => {
    const { mmio } = setup();
    mmio.write(MmioReg.STATUS, 4, A);
    mmio.write(MmioReg.STATUS, 4, A | D | OK);
    expect(mmio.read(MmioReg.STATUS, 4)).toBe(A);
    expect(mmio.core.metrics["statusOutOfOrder"]).toBe(1);
  });

  it("2.2.1 acked features are masked to the offered ones", () => {
    const { mmio } = setup();
    mmio.write(MmioReg.STATUS, 4, A);
    mmio.write(MmioReg.STATUS, 4, A | D);
    mmio.write(MmioReg.DRIVER_FEATURES_SEL, 4, 0);
    mmio.write(MmioReg.DRIVER_FEATURES, 4, 0xffff_ffff);
    mmio.write(MmioReg.DRIVER_FEATURES_SEL, 4, 1);
    mmio.write(MmioReg.DRIVER_FEATURES, 4, 0xffff_ffff);
    expect(mmio.core.driverFeatures.lo).toBe(mmio.device.offered.lo);
    expect(mmio.core.driverFeatures.hi).toBe(mmio.device.offered.hi);
  });

  it("2.2 feature writes outside ACKNOWLEDGE|DRIVER are ignored", () => {
    const { mmio } = setup();
    mmio.write(MmioReg.DRIVER_FEATURES, 4, 1 << Feature.EVENT_IDX);
    expect(mmio.core.driverFeatures.lo).toBe(0);
  });

  it("3.1.1 step 6: FEATURES_OK stays clear when VERSION_1 is not accepted", () => {
    const { drv, mmio } = setup();
    expect(drv.negotiate({ lo: 0xffff_ffff, hi: 0 })).toBe(false);
    expect(mmio.read(MmioReg.STATUS, 4)).toBe(A | D);
  });

  it("4.2.3.2 queue registers are writable only between FEATURES_OK and DRIVER_OK", () => {
    const { mmio, drv } = setup();
    mmio.write(MmioReg.QUEUE_NUM, 4, 16);
    expect(mmio.core.queues[0]!.size).toBe(256);
    drv.init({ queueSize: 8 });
    mmio.write(MmioReg.QUEUE_SEL, 4, 0);
    mmio.write(MmioReg.QUEUE_NUM, 4, 16);
    expect(mmio.core.queues[0]!.size).toBe(8);
    expect(mmio.core.metrics["queueWriteOutOfOrder"]).toBe(2);
  });

  it("4.2.2 QueueNumMax reads 0 for a queue that does not exist (selector unchecked by sign)", () => {
    const { mmio } = setup();
    mmio.write(MmioReg.QUEUE_SEL, 4, 0xffff_ffff);
    expect(mmio.read(MmioReg.QUEUE_NUM_MAX, 4)).toBe(0);
    mmio.write(MmioReg.QUEUE_SEL, 4, 1);
    expect(mmio.read(MmioReg.QUEUE_NUM_MAX, 4)).toBe(0);
  });

  it("4.2.2 QueueNotify for a queue that does not exist is ignored", () => {
    const { mmio, drv } = setup();
    drv.init();
    mmio.write(MmioReg.QUEUE_NOTIFY, 4, 7);
    mmio.write(MmioReg.QUEUE_NOTIFY, 4, 0x1_0000);
    expect(mmio.core.metrics["notifyBadQueue"]).toBe(2);
  });

  it("4.2.2 InterruptStatus bit 0 and the line follow used buffers; InterruptACK clears", () => {
    const { drv, mmio, irq } = setup();
    drv.init();
    drv.queue(0).add([], [8], 1);
    expect(irq.level).toBe(true);
    expect(mmio.read(MmioReg.INTERRUPT_STATUS, 4)).toBe(1);
    mmio.write(MmioReg.INTERRUPT_ACK, 4, 1);
    expect(irq.level).toBe(false);
    expect(drv.queue(0).used()).toEqual([{ token: 1, len: 8, in: [new Uint8Array(8).fill(0xab)] }]);
  });

  it("2.1.2 a ring violation sets DEVICE_NEEDS_RESET and raises a config interrupt", () => {
    const { drv, mmio, mem } = setup();
    drv.init({ queueSize: 4 });
    const q = drv.queue(0);
    // avail.idx 100 entries ahead: more than the queue size.
    mem.write(q.availAddr + 2, new Uint8Array([100, 0]));
    mmio.write(MmioReg.QUEUE_NOTIFY, 4, 0);
    expect(drv.needsReset).toBe(true);
    expect(mmio.read(MmioReg.INTERRUPT_STATUS, 4) & 2).toBe(2);
    // Reset recovers.
    expect(drv.init()).toBe(true);
    expect(drv.needsReset).toBe(false);
  });

  it("2.5.1 ConfigGeneration changes when the device changes its configuration", () => {
    const { mmio } = setup();
    const g = mmio.read(MmioReg.CONFIG_GENERATION, 4);
    mmio.core.configChanged();
    expect(mmio.read(MmioReg.CONFIG_GENERATION, 4)).toBe((g + 1) >>> 0);
  });

  it("2.6.1 QueueReset resets one queue, reads 1 until re-enabled, and the queue works again", () => {
    const { drv, mmio } = setup();
    drv.init({ queueSize: 8 });
    drv.queue(0).add([], [4], 1);
    expect(drv.queue(0).used()).toHaveLength(1);
    expect(drv.resetQueue(0)).toBe(true);
    expect(mmio.read(MmioReg.QUEUE_RESET, 4)).toBe(0);
    drv.queue(0).add([], [4], 9);
    expect(drv.queue(0).used()).toMatchObject([{ token: 9, len: 4 }]);
    expect(drv.needsReset).toBe(false);
  });

  it("2.6.1 QueueReset without RING_RESET negotiated is refused", () => {
    const { mmio, drv } = setup();
    drv.init({ want: { lo: 0, hi: 1 } });
    mmio.write(MmioReg.QUEUE_SEL, 4, 0);
    mmio.write(MmioReg.QUEUE_RESET, 4, 1);
    expect(mmio.read(MmioReg.QUEUE_READY, 4)).toBe(1);
    expect(mmio.core.metrics["queueResetRejected"]).toBe(1);
  });

  it("4.2.2.1 upon reset the device clears InterruptStatus and every QueueReady", () => {
    const { drv, mmio, irq } = setup();
    drv.init();
    drv.queue(0).add([], [8], 1);
    expect(mmio.read(MmioReg.INTERRUPT_STATUS, 4)).not.toBe(0);
    mmio.write(MmioReg.STATUS, 4, 0);
    expect(mmio.read(MmioReg.INTERRUPT_STATUS, 4)).toBe(0);
    expect(irq.level).toBe(false);
    mmio.write(MmioReg.QUEUE_SEL, 4, 0);
    expect(mmio.read(MmioReg.QUEUE_READY, 4)).toBe(0);
  });

  it("4.2.2.1 the device does not access a queue whose QueueReady is zero", () => {
    const { mmio, drv, mem } = setup();
    drv.negotiate();
    // A queue that is configured but never made ready: notifications must not touch it.
    mmio.write(MmioReg.QUEUE_SEL, 4, 0);
    mmio.write(MmioReg.QUEUE_NUM, 4, 8);
    mmio.write(MmioReg.STATUS, 4, A | D | F | OK);
    const before = mem.refused;
    mmio.write(MmioReg.QUEUE_NOTIFY, 4, 0);
    expect(mmio.core.metrics["notifyIgnored"]).toBe(1);
    expect(mem.refused).toBe(before);
  });

  it("4.2.2.1 each event stays set in InterruptStatus until the driver acknowledges it", () => {
    const { drv, mmio } = setup();
    drv.init();
    drv.queue(0).add([], [8], 1);
    mmio.core.configChanged();
    expect(mmio.read(MmioReg.INTERRUPT_STATUS, 4)).toBe(3);
    mmio.write(MmioReg.INTERRUPT_ACK, 4, 2);
    expect(mmio.read(MmioReg.INTERRUPT_STATUS, 4)).toBe(1);
  });

  it("mmioKernelParam spells Linux's virtio_mmio.device= form", () => {
    expect(mmioKernelParam(0xd000_0000, 5)).toBe("virtio_mmio.device=4K@0xd0000000:5");
  });

  it("4.2.2 SHMLen reads all ones: no shared memory regions", () => {
    const { mmio } = setup();
    expect(mmio.read(MmioReg.SHM_LEN_LOW, 4)).toBe(0xffff_ffff);
  });

  it("DRIVER_OK with an invalid queue (size not a power of two) sets NEEDS_RESET", () => {
    const { mmio, drv } = setup();
    drv.negotiate();
    drv.transport.setupQueue(0, 6, 0x1000, 0x2000, 0x3000);
    mmio.write(MmioReg.STATUS, 4, A | D | F | OK);
    expect(drv.needsReset).toBe(true);
  });
});
