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

describe("device state in snapshots", () => {
  it("gpu: resources, backing, scanouts and the framebuffer survive; bad state is refused", async () => {
    const { VirtioGpu, GpuCmd, GpuFormat } = await import("../src/index");
    const mem = new FlatGuestMemory(16 << 20);
    const gpu = new VirtioGpu();
    const mmio = new MmioTransport(gpu, mem);
    const drv = new MockDriver(mem, new MmioDriverTransport(mmio));
    drv.init();
    const cmd = (type: number, body: number[]) => {
      const b = new Uint8Array(24 + 4 * body.length);
      const d = new DataView(b.buffer);
      d.setUint32(0, type, true);
      body.forEach((v, i) => {
        d.setUint32(24 + 4 * i, v, true);
      });
      return b;
    };
    const send = (...out: Uint8Array[]) => {
      drv.queue(0).add(out, [24], 1);
      drv.queue(0).used();
    };
    send(cmd(GpuCmd.RESOURCE_CREATE_2D, [7, GpuFormat.R8G8B8A8_UNORM, 4, 4]));
    const entry = new Uint8Array(16);
    new DataView(entry.buffer).setUint32(0, 0xc0_0000, true);
    new DataView(entry.buffer).setUint32(8, 64, true);
    send(cmd(GpuCmd.RESOURCE_ATTACH_BACKING, [7, 1]), entry);
    mem.bytes.fill(0x99, 0xc0_0000, 0xc0_0040);
    send(cmd(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 4, 4, 0, 0, 7, 0]));
    send(cmd(GpuCmd.SET_SCANOUT, [0, 0, 4, 4, 0, 7]));
    const s = JSON.parse(JSON.stringify(mmio.save()));
    const gpu2 = new VirtioGpu();
    MmioTransport.restore(gpu2, mem, new RecordingIrq(), s);
    expect(gpu2.toRGBA(0)).toEqual(gpu.toRGBA(0));
    expect(gpu2.resourceBytes).toBe(64);
    s.core.device.scanouts[0].rect.width = 99;
    expect(() => MmioTransport.restore(new VirtioGpu(), mem, new RecordingIrq(), s)).toThrow(
      "BadDeviceState",
    );
  });

  it("net: the link state (config space) survives; a config of the wrong size is refused", async () => {
    const { VirtioNet, NetConfig } = await import("../src/index");
    const mem = new FlatGuestMemory(1 << 20);
    const nic = new VirtioNet({ mac: [2, 0, 0, 0, 0, 9] });
    const mmio = new MmioTransport(nic, mem);
    new MockDriver(mem, new MmioDriverTransport(mmio)).init();
    nic.setLink(false);
    const s = JSON.parse(JSON.stringify(mmio.save()));
    const nic2 = new VirtioNet({ mac: [2, 0, 0, 0, 0, 9] });
    MmioTransport.restore(nic2, mem, new RecordingIrq(), s);
    expect(nic2.linkUp).toBe(false);
    expect(nic2.readConfig(NetConfig.MAC + 5, 1)).toBe(9);
    s.core.config = [1, 2];
    expect(() =>
      MmioTransport.restore(new VirtioNet({ mac: [2, 0, 0, 0, 0, 9] }), mem, new RecordingIrq(), s),
    ).toThrow("BadDeviceConfig");
  });
});
