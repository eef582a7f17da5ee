import { describe, expect, it } from "vitest";
import {
  BlkType,
  FlatGuestMemory,
  features,
  MemoryBlockBackend,
  MmioReg,
  MmioTransport,
  VirtioBlk,
  VirtioDevice,
} from "../src/index";
import { MmioDriverTransport, MockDriver, type MockQueue } from "../src/testing/index";
import { rig } from "./harness";

function blkHeader(type: number, sector: number): Uint8Array {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setUint32(0, type, true);
  new DataView(b.buffer).setUint32(8, sector, true);
  return b;
}

describe("device-side ring rules", () => {
  it("2.7.5.1 the device writes neither device-readable buffers nor the descriptor table", () => {
    const r = rig("mmio", new VirtioBlk(new MemoryBlockBackend(1 << 20)));
    r.drv.init({ queueSize: 8 });
    const q = r.drv.queue(0) as MockQueue;
    const data = new Uint8Array(1024).fill(0x3c);
    const mark = r.drv.arena.mark;
    q.add([blkHeader(BlkType.OUT, 2), data], [1], 1, { noKick: true });
    const table = r.mem.bytes.slice(q.descAddr, q.descAddr + 16 * q.size);
    const readable = r.mem.bytes.slice(mark, r.drv.arena.mark - 8); // header + data, not the status byte
    q.kick();
    expect(q.used()).toHaveLength(1);
    expect(r.mem.bytes.slice(q.descAddr, q.descAddr + 16 * q.size)).toEqual(table);
    expect(r.mem.bytes.slice(mark, mark + readable.length)).toEqual(readable);
  });

  it("2.7.8.2 used.len counts the bytes written to the device-writable part", () => {
    const r = rig("mmio", new VirtioBlk(new MemoryBlockBackend(1 << 20)));
    r.drv.init();
    r.drv.queue(0).add([blkHeader(BlkType.IN, 0)], [2048, 1], 1);
    expect(r.drv.queue(0).used()[0]!.len).toBe(2049);
  });

  it("2.1.2 after DEVICE_NEEDS_RESET the device ignores notifications until the driver resets it", () => {
    const r = rig("mmio", new VirtioBlk(new MemoryBlockBackend(1 << 20)));
    r.drv.init({ queueSize: 4 });
    const q = r.drv.queue(0) as MockQueue;
    r.drv.writeU16(q.availAddr + 2, 50);
    r.t.notify(0);
    expect(r.drv.needsReset).toBe(true);
    r.t.notify(0);
    expect(r.transportMetrics["notifyIgnored"]).toBe(1);
    expect(r.drv.init()).toBe(true);
    r.drv.queue(0).add([blkHeader(BlkType.IN, 0)], [512, 1], 1);
    expect(r.drv.queue(0).used()).toHaveLength(1);
  });

  it("a device bug (an exception) never escapes the transport: it becomes NEEDS_RESET and is counted", () => {
    class Buggy extends VirtioDevice {
      readonly deviceType = 4;
      readonly queueSizes = [8];
      readonly offered = features(32);
      constructor() {
        super(0);
      }
      protected onReset(): void {}
      queueNotify(): void {
        throw new Error("bug");
      }
    }
    const mem = new FlatGuestMemory(1 << 20);
    const mmio = new MmioTransport(new Buggy(), mem);
    const drv = new MockDriver(mem, new MmioDriverTransport(mmio));
    drv.init();
    expect(() => mmio.write(MmioReg.QUEUE_NOTIFY, 4, 0)).not.toThrow();
    expect(mmio.core.metrics["deviceInternalError"]).toBe(1);
    expect(drv.needsReset).toBe(true);
  });

  it("a device's queue sizes must be powers of two (Linux refuses others)", () => {
    expect(
      () =>
        new MmioTransport(
          new VirtioBlk(new MemoryBlockBackend(4096), { queueSize: 100 }),
          new FlatGuestMemory(4096),
        ),
    ).toThrow(RangeError);
  });
});
