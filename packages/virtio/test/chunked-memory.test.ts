import { describe, expect, it } from "vitest";
import { BALLOON_PAGE, ChunkedGuestMemory, MmioTransport, VirtioBalloon } from "../src/index";
import { MmioDriverTransport, MockDriver } from "../src/testing/index";

const CHUNK = 64 * 1024;

function pfns(from: number, n: number): Uint8Array {
  const b = new Uint8Array(4 * n);
  const d = new DataView(b.buffer);
  for (let i = 0; i < n; i++) d.setUint32(4 * i, from + i, true);
  return b;
}

describe("ChunkedGuestMemory", () => {
  it("reads and writes across chunk boundaries; slice only within one chunk; bounds are checked", () => {
    const m = new ChunkedGuestMemory(4 * CHUNK, { chunkSize: CHUNK, base: 0x1000_0000 });
    const data = new Uint8Array(100).map((_, i) => i);
    expect(m.write(0x1000_0000 + CHUNK - 50, data)).toBe(true);
    const back = new Uint8Array(100);
    expect(m.read(0x1000_0000 + CHUNK - 50, back)).toBe(true);
    expect(back).toEqual(data);
    expect(m.slice(0x1000_0000 + CHUNK - 50, 100)).toBeUndefined();
    expect(m.slice(0x1000_0000, 16)).toHaveLength(16);
    expect(m.read(0x1000_0000 + 4 * CHUNK - 1, new Uint8Array(2))).toBe(false);
    expect(m.read(0xfff_ffff, new Uint8Array(1))).toBe(false);
  });

  it("the balloon frees a chunk once every page in it is inflated, and deflate brings it back zeroed", () => {
    const ram = new ChunkedGuestMemory(16 << 20, { chunkSize: CHUNK });
    const balloon = new VirtioBalloon(ram);
    const mmio = new MmioTransport(balloon, ram);
    const drv = new MockDriver(ram, new MmioDriverTransport(mmio));
    drv.init();
    const before = ram.residentBytes;
    const firstPfn = (8 << 20) / BALLOON_PAGE; // chunk-aligned, away from the driver's rings
    ram.write(8 << 20, new Uint8Array([0xaa]));
    drv.queue(0).add([pfns(firstPfn, CHUNK / BALLOON_PAGE + 1)], [], 1);
    expect(drv.queue(0).used()).toHaveLength(1);
    expect(balloon.reclaimedBytes).toBe(CHUNK + BALLOON_PAGE);
    expect(ram.residentBytes).toBe(before - CHUNK);
    drv.queue(1).add([pfns(firstPfn, 1)], [], 2);
    expect(drv.queue(1).used()).toHaveLength(1);
    expect(ram.residentBytes).toBe(before);
    const b = new Uint8Array(1);
    ram.read(8 << 20, b);
    expect(b[0]).toBe(0);
  });

  it("free page reporting drops whole chunks and zeroes partial ones; unaligned ranges are refused", () => {
    const ram = new ChunkedGuestMemory(4 * CHUNK, { chunkSize: CHUNK });
    ram.write(CHUNK + 10, new Uint8Array([7]));
    ram.write(10, new Uint8Array([7]));
    ram.discard(CHUNK, CHUNK);
    ram.discard(0, BALLOON_PAGE);
    expect(ram.residentBytes).toBe(3 * CHUNK);
    const b = new Uint8Array(1);
    ram.read(10, b);
    expect(b[0]).toBe(0);
    expect(ram.reclaim(100, BALLOON_PAGE)).toBe(false);
    expect(ram.reclaim(4 * CHUNK, BALLOON_PAGE)).toBe(false);
  });
});
