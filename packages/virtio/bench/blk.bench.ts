// virtio-blk over the memory backend: one request per iteration, so hz = IOPS and
// throughput = hz x request size. The chain (header | data | status) is built once at fixed
// guest addresses; each iteration publishes its head, notifies through the mmio register and
// reaps the used element, as a driver with one request in flight would.
import { bench, describe } from "vitest";
import {
  BlkType,
  FlatGuestMemory,
  MemoryBlockBackend,
  MmioReg,
  MmioTransport,
  VirtioBlk,
} from "../src/index";
import { MmioDriverTransport, MockDriver } from "../src/testing/index";

function setup(dataLen: number, write: boolean) {
  const mem = new FlatGuestMemory(8 << 20);
  const mmio = new MmioTransport(new VirtioBlk(new MemoryBlockBackend(64 << 20)), mem);
  const drv = new MockDriver(mem, new MmioDriverTransport(mmio), 0x1000, 0x10_0000);
  drv.init({ queueSize: 256 });
  const q = drv.queue(0);
  const dv = new DataView(mem.bytes.buffer);
  const HDR = 0x20_0000;
  const DATA = 0x30_0000;
  const STATUS = 0x28_0000;
  dv.setUint32(HDR, write ? BlkType.OUT : BlkType.IN, true);
  const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
    const at = q.descAddr + 16 * i;
    dv.setUint32(at, addr, true);
    dv.setUint32(at + 4, 0, true);
    dv.setUint32(at + 8, len, true);
    dv.setUint16(at + 12, flags, true);
    dv.setUint16(at + 14, next, true);
  };
  desc(0, HDR, 16, 1, 1);
  desc(1, DATA, dataLen, 1 | (write ? 0 : 2), 2);
  desc(2, STATUS, 1, 2, 0);
  let idx = 0;
  let sector = 0;
  const sectors = dataLen / 512;
  return () => {
    // Walk the disk so the backend copy is not always the same cache lines.
    sector = (sector + sectors) % ((64 << 20) / 512 - sectors);
    dv.setUint32(HDR + 8, sector, true);
    dv.setUint16(q.availAddr + 4 + 2 * (idx % 256), 0, true);
    idx = (idx + 1) & 0xffff;
    dv.setUint16(q.availAddr + 2, idx, true);
    mmio.write(MmioReg.QUEUE_NOTIFY, 4, 0);
    if (dv.getUint16(q.usedAddr + 2, true) !== idx || mem.bytes[STATUS] !== 0)
      throw new Error("request failed");
    mmio.write(MmioReg.INTERRUPT_ACK, 4, 1);
  };
}

describe("virtio-blk, memory backend, 1 request per iteration (hz = IOPS)", () => {
  bench("read 4 KiB", setup(4096, false), { time: 2000 });
  bench("write 4 KiB", setup(4096, true), { time: 2000 });
  bench("read 64 KiB", setup(65536, false), { time: 2000 });
  bench("write 64 KiB", setup(65536, true), { time: 2000 });
});
