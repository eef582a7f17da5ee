import { describe, expect, it } from "vitest";
import {
  BlkType,
  FlatGuestMemory,
  MemoryBlockBackend,
  MmioTransport,
  type MmioTransportState,
  PciTransport,
  type PciTransportState,
  TransportRestoreError,
  VirtioBlk,
} from "../src/index";
import {
  MmioDriverTransport,
  MockDriver,
  type MockQueue,
  PciDriverTransport,
  RecordingIrq,
  RecordingMsi,
} from "../src/testing/index";

function readReq(): Uint8Array {
  const h = new Uint8Array(16);
  new DataView(h.buffer).setUint32(0, BlkType.IN, true);
  return h;
}

describe("transport snapshots (save -> restore -> save)", () => {
  it("mmio: round trip, and a chain made available before the snapshot completes after restore", () => {
    const mem = new FlatGuestMemory(1 << 20);
    const disk = new MemoryBlockBackend(1 << 16);
    disk.bytes[0] = 0x42;
    const mmio = new MmioTransport(new VirtioBlk(disk), mem);
    const drv = new MockDriver(mem, new MmioDriverTransport(mmio));
    drv.init({ queueSize: 8 });
    const q = drv.queue(0) as MockQueue;
    q.add([readReq()], [512, 1], 1, { noKick: true }); // in flight at snapshot time
    const state: MmioTransportState = JSON.parse(JSON.stringify(mmio.save()));
    const irq = new RecordingIrq();
    const back = MmioTransport.restore(new VirtioBlk(disk), mem, irq, state);
    expect(back.save()).toMatchObject({ kind: "virtio-mmio", core: { status: state.core.status } });
    // The restored device re-scanned the ring: the request is done and the driver interrupted.
    (drv as { transport: unknown }).transport = new MmioDriverTransport(back, irq);
    const u = q.used();
    expect(u[0]!.in[0]![0]).toBe(0x42);
    expect(irq.level).toBe(true);
  });

  it("mmio: bad status, features, queue state and kind are each refused", () => {
    const mem = new FlatGuestMemory(1 << 20);
    const mmio = new MmioTransport(new VirtioBlk(new MemoryBlockBackend(4096)), mem);
    new MockDriver(mem, new MmioDriverTransport(mmio)).init({ queueSize: 8 });
    const good = mmio.save();
    const bad = (mutate: (s: MmioTransportState) => void) => {
      const s = structuredClone(good);
      mutate(s);
      try {
        MmioTransport.restore(new VirtioBlk(new MemoryBlockBackend(4096)), mem, new RecordingIrq(), s);
        return "ok";
      } catch (e) {
        return e instanceof TransportRestoreError ? e.step : "other";
      }
    };
    expect(bad(() => {})).toBe("ok");
    expect(bad((s) => (s.core.status = 0x04))).toBe("BadStatus");
    expect(bad((s) => (s.core.driverFeatures.lo = 0xffff_ffff))).toBe("BadFeatures");
    expect(bad((s) => (s.core.queues[0]!.size = 6))).toBe("BadQueue0");
    expect(bad((s) => s.core.queues.push(s.core.queues[0]!))).toBe("QueueCount");
    expect(bad((s) => ((s as { kind: string }).kind = "x"))).toBe("NotMmioState");
  });

  it("pci: round trip with MSI-X state; read-only config bytes must match", () => {
    const mem = new FlatGuestMemory(1 << 20);
    const msi = new RecordingMsi();
    const pci = new PciTransport(new VirtioBlk(new MemoryBlockBackend(4096)), mem, new RecordingIrq(), msi);
    new MockDriver(mem, new PciDriverTransport(pci, msi)).init({ queueSize: 8 });
    const s: PciTransportState = JSON.parse(JSON.stringify(pci.save()));
    const back = PciTransport.restore(
      new VirtioBlk(new MemoryBlockBackend(4096)),
      mem,
      new RecordingIrq(),
      msi,
      s,
    );
    expect(back.save()).toEqual(s);
    expect(back.msixEnabled).toBe(true);
    const tampered = structuredClone(s);
    tampered.config[0] = 0x12; // vendor id is read-only
    expect(() =>
      PciTransport.restore(
        new VirtioBlk(new MemoryBlockBackend(4096)),
        mem,
        new RecordingIrq(),
        msi,
        tampered,
      ),
    ).toThrow(TransportRestoreError);
    const badVector = structuredClone(s);
    badVector.queueVectors[0] = 40;
    expect(() =>
      PciTransport.restore(
        new VirtioBlk(new MemoryBlockBackend(4096)),
        mem,
        new RecordingIrq(),
        msi,
        badVector,
      ),
    ).toThrow("Vectors");
  });
});
