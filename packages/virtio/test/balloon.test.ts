import { describe, expect, it } from "vitest";
import {
  BALLOON_PAGE,
  BalloonConfig,
  BalloonFeature,
  type BalloonMemory,
  BalloonStat,
  FlatBalloonMemory,
  features,
  VirtioBalloon,
} from "../src/index";
import { rig, TRANSPORTS } from "./harness";

function pfns(...p: number[]): Uint8Array {
  const b = new Uint8Array(4 * p.length);
  const d = new DataView(b.buffer);
  p.forEach((v, i) => {
    d.setUint32(4 * i, v, true);
  });
  return b;
}

function statsBuf(entries: [number, number][]): Uint8Array {
  const b = new Uint8Array(10 * entries.length);
  const d = new DataView(b.buffer);
  entries.forEach(([tag, val], i) => {
    d.setUint16(10 * i, tag, true);
    d.setUint32(10 * i + 2, val % 0x1_0000_0000, true);
    d.setUint32(10 * i + 6, Math.floor(val / 0x1_0000_0000), true);
  });
  return b;
}

/** Records host calls and zeroes pages like FlatBalloonMemory. */
class SpyMemory implements BalloonMemory {
  calls: string[] = [];
  constructor(private readonly inner: BalloonMemory) {}
  reclaim(gpa: number, len: number): boolean {
    this.calls.push(`reclaim ${gpa.toString(16)}+${len / BALLOON_PAGE}`);
    return this.inner.reclaim(gpa, len);
  }
  restore(gpa: number, len: number): void {
    this.calls.push(`restore ${gpa.toString(16)}+${len / BALLOON_PAGE}`);
    this.inner.restore(gpa, len);
  }
  discard(gpa: number, len: number): void {
    this.calls.push(`discard ${gpa.toString(16)}+${len / BALLOON_PAGE}`);
    this.inner.discard(gpa, len);
  }
}

for (const kind of TRANSPORTS) {
  describe(`virtio-balloon over ${kind} (virtio 1.2 5.5)`, () => {
    const make = (want?: ReturnType<typeof features>) => {
      let spy: SpyMemory | undefined;
      const dev = new VirtioBalloon({
        reclaim: (g, l) => spy!.reclaim(g, l),
        restore: (g, l) => spy!.restore(g, l),
        discard: (g, l) => spy!.discard(g, l),
      });
      const r = rig(kind, dev);
      spy = new SpyMemory(new FlatBalloonMemory(r.mem));
      expect(r.drv.init(want ? { want } : {})).toBe(true);
      return { ...r, spy };
    };

    it("5.5.6.1 inflate: PFNs are reclaimed in contiguous runs and counted", () => {
      const { drv, dev, spy, mem } = make();
      mem.bytes.fill(0x77, 0x80_0000, 0x80_3000);
      drv.queue(0).add([pfns(0x800, 0x801, 0x802, 0x900)], [], 1);
      expect(drv.queue(0).used()).toHaveLength(1);
      expect(spy.calls).toEqual(["reclaim 800000+3", "reclaim 900000+1"]);
      expect(dev.reclaimedBytes).toBe(4 * BALLOON_PAGE);
      expect(mem.bytes[0x80_1000]).toBe(0);
      // Inflating the same page again does not count twice.
      drv.queue(0).add([pfns(0x801)], [], 2);
      expect(dev.reclaimedBytes).toBe(4 * BALLOON_PAGE);
    });

    it("5.5.6.1 deflate gives pages back; unknown PFNs are ignored and counted", () => {
      const { drv, dev, spy } = make();
      drv.queue(0).add([pfns(0x800, 0x801)], [], 1);
      drv.queue(1).add([pfns(0x801, 0x802)], [], 2);
      expect(spy.calls).toContain("restore 801000+1");
      expect(dev.reclaimedBytes).toBe(BALLOON_PAGE);
      expect(dev.metrics["deflateNotInBalloon"]).toBe(1);
    });

    it("PFNs outside guest RAM are refused, never reclaimed", () => {
      const { drv, dev } = make();
      drv.queue(0).add([pfns(0xffff_fff0, 0x10_0000)], [], 1);
      expect(dev.reclaimedBytes).toBe(0);
      expect(dev.metrics["badPfn"]).toBe(2);
      expect(drv.needsReset).toBe(false);
    });

    it("5.5.4 num_pages set by the host raises a config change; actual is written by the driver", () => {
      const { drv, dev, irqs, t } = make();
      dev.setTarget(256);
      expect(irqs().config).toBe(true);
      expect(drv.readConfigStable(BalloonConfig.NUM_PAGES, 4)).toBe(256);
      t.configWrite(BalloonConfig.ACTUAL, 4, 100);
      expect(dev.actualPages).toBe(100);
      t.configWrite(BalloonConfig.NUM_PAGES, 4, 1);
      expect(dev.targetPages).toBe(256);
    });

    it("5.5.6.3 statistics: the guest's buffer is held, returned on request, and re-read", () => {
      const { drv, dev } = make();
      const sq = drv.queue(2);
      sq.add([statsBuf([[BalloonStat.MEMFREE, 123 * 2 ** 32 + 5]])], [], 1);
      expect(dev.stats.get(BalloonStat.MEMFREE)).toBe(123 * 2 ** 32 + 5);
      expect(sq.used()).toHaveLength(0);
      let updated = false;
      expect(dev.requestStats(() => (updated = true))).toBe(true);
      expect(sq.used()).toHaveLength(1);
      sq.add([statsBuf([[BalloonStat.MEMTOT, 4096]])], [], 2);
      expect(updated).toBe(true);
      expect(dev.stats.get(BalloonStat.MEMTOT)).toBe(4096);
    });

    it("5.5.6.3 the stats buffer Linux primes and kicks before DRIVER_OK is taken at DRIVER_OK", () => {
      const dev = new VirtioBalloon({ reclaim: () => true, restore: () => {}, discard: () => {} });
      const r = rig(kind, dev);
      expect(
        r.drv.init({
          beforeDriverOk: (d) => {
            d.queue(2).add([statsBuf([[BalloonStat.MEMFREE, 77]])], [], 1);
          },
        }),
      ).toBe(true);
      expect(dev.stats.get(BalloonStat.MEMFREE)).toBe(77);
      expect(dev.requestStats()).toBe(true);
    });

    it("5.5.6.3 a huge stats buffer is read only up to a bound (Firecracker #5794)", () => {
      const { drv, dev } = make();
      const many: [number, number][] = [];
      for (let i = 0; i < 500; i++) many.push([1000 + i, i]);
      drv.queue(2).add([statsBuf(many)], [], 1);
      expect(dev.stats.size).toBe(64);
    });

    it("5.5 free page reporting discards whole pages and returns the buffer", () => {
      const { drv, spy, mem } = make();
      mem.bytes.fill(0x55, 0x40_0000, 0x40_4000);
      const rq = drv.queue(3);
      // The mock allocates buffers itself; report its (page-aligned) 16 KiB buffer.
      rq.add([], [4 * BALLOON_PAGE + BALLOON_PAGE], 1);
      expect(rq.used()).toHaveLength(1);
      expect(spy.calls.some((c) => c.startsWith("discard"))).toBe(true);
    });

    it("5.5.2 queue indices shift: without STATS_VQ, the reporting queue is index 2", () => {
      const { drv, dev, spy } = make(features(32, BalloonFeature.PAGE_REPORTING));
      expect(dev.requestStats()).toBe(false);
      drv.queue(2).add([], [2 * BALLOON_PAGE], 1);
      expect(spy.calls.some((c) => c.startsWith("discard"))).toBe(true);
    });

    it("2.4 device reset returns every ballooned page", () => {
      const { drv, dev, spy } = make();
      drv.queue(0).add([pfns(0x800, 0x900)], [], 1);
      drv.transport.reset();
      expect(dev.reclaimedBytes).toBe(0);
      expect(spy.calls.filter((c) => c.startsWith("restore"))).toHaveLength(2);
    });
  });
}

describe("virtio-balloon snapshot", () => {
  it("the ballooned page set and config survive save -> restore; garbage is refused", async () => {
    const { FlatGuestMemory, MmioTransport, TransportRestoreError } = await import("../src/index");
    const { MmioDriverTransport, MockDriver } = await import("../src/testing/index");
    const mem = new FlatGuestMemory(16 << 20);
    const dev = new VirtioBalloon(new FlatBalloonMemory(mem));
    const mmio = new MmioTransport(dev, mem);
    const drv = new MockDriver(mem, new MmioDriverTransport(mmio));
    drv.init();
    dev.setTarget(10);
    drv.queue(0).add([pfns(0x800, 0x801, 0x900)], [], 1);
    const s = JSON.parse(JSON.stringify(mmio.save()));
    const dev2 = new VirtioBalloon(new FlatBalloonMemory(mem));
    MmioTransport.restore(dev2, mem, { set: () => {} }, s);
    expect(dev2.reclaimedBytes).toBe(3 * BALLOON_PAGE);
    expect(dev2.targetPages).toBe(10);
    s.core.device.pages = [-1];
    expect(() =>
      MmioTransport.restore(new VirtioBalloon(new FlatBalloonMemory(mem)), mem, { set: () => {} }, s),
    ).toThrow(TransportRestoreError);
  });
});
