import { describe, expect, it } from "vitest";
import {
  BALLOON_PAGE,
  BalloonCmdId,
  BalloonConfig,
  BalloonFeature,
  type BalloonMemory,
  BalloonStat,
  DescFlag,
  FlatBalloonMemory,
  features,
  VirtioBalloon,
  type VirtioBalloonOptions,
} from "../src/index";
import type { MockQueue } from "../src/testing/index";
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
  discard(gpa: number, len: number): boolean {
    this.calls.push(`discard ${gpa.toString(16)}+${len / BALLOON_PAGE}`);
    return this.inner.discard(gpa, len);
  }
}

for (const kind of TRANSPORTS) {
  describe(`virtio-balloon over ${kind} (virtio 1.2 5.5)`, () => {
    const make = (want?: ReturnType<typeof features>, opts: VirtioBalloonOptions = {}) => {
      let spy: SpyMemory | undefined;
      const dev = new VirtioBalloon(
        {
          reclaim: (g, l) => spy!.reclaim(g, l),
          restore: (g, l) => spy!.restore(g, l),
          discard: (g, l) => spy!.discard(g, l),
        },
        opts,
      );
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
      const dev = new VirtioBalloon({ reclaim: () => true, restore: () => {}, discard: () => true });
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

const MiB = 1 << 20;
/** Linux page_reporting on x86: blocks of pageblock_order (2 MiB), up to 32 per buffer. */
const REPORT_BLOCK = 2 * MiB;
/** Linux VIRTIO_BALLOON_HINT_BLOCK_ORDER on x86 (MAX_ORDER - 1): 4 MiB blocks. */
const HINT_BLOCK = 4 * MiB;
const inbuf = (addr: number, len: number) => ({ addr, len, write: true });
const le32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
};

for (const kind of TRANSPORTS) {
  describe(`virtio-balloon free page reporting and hinting over ${kind}`, () => {
    const make = (opts: VirtioBalloonOptions = {}, want?: ReturnType<typeof features>) => {
      const dev = new VirtioBalloon(
        {
          reclaim: (g, l) => spy!.reclaim(g, l),
          restore: (g, l) => spy!.restore(g, l),
          discard: (g, l) => spy!.discard(g, l),
        },
        opts,
      );
      const r = rig(kind, dev);
      const spy: SpyMemory = new SpyMemory(new FlatBalloonMemory(r.mem));
      expect(r.drv.init(want ? { want } : {})).toBe(true);
      return { ...r, spy };
    };
    const filled = (mem: { bytes: Uint8Array }, at: number, len: number) => {
      mem.bytes.fill(0xaa, at, at + len);
      return () => mem.bytes.subarray(at, at + len).every((b) => b === 0);
    };

    for (const indirect of [false, true]) {
      it(`F_REPORTING: Linux's layout (device-writable 2 MiB blocks${indirect ? ", indirect" : ""}) is discarded, counted, returned`, () => {
        const { drv, dev, spy, mem, irqs } = make();
        const zeroA = filled(mem, 0x40_0000, REPORT_BLOCK);
        const zeroB = filled(mem, 0xa0_0000, REPORT_BLOCK);
        mem.bytes[0x9f_ffff] = 0xaa;
        const rq = drv.queue(3);
        irqs();
        expect(
          rq.addSegments([inbuf(0x40_0000, REPORT_BLOCK), inbuf(0xa0_0000, REPORT_BLOCK)], 7, { indirect }),
        ).toBe(true);
        expect(rq.used()).toEqual([{ token: 7, len: 0, in: [] }]);
        expect(irqs().used).toBe(true);
        expect(spy.calls).toEqual(["discard 400000+512", "discard a00000+512"]);
        expect(zeroA() && zeroB()).toBe(true);
        expect(mem.bytes[0x9f_ffff]).toBe(0xaa);
        expect(dev.reportedBytes).toBe(2 * REPORT_BLOCK);
        expect(dev.status()).toMatchObject({
          reportedBytes: 2 * REPORT_BLOCK,
          reclaimedBytes: 0,
          hintedBytes: 0,
        });
        expect(dev.lastError).toBeUndefined();
      });
    }

    it("F_REPORTING: ranges outside guest RAM are refused one by one; the rest still count", () => {
      const { drv, dev, spy } = make();
      const rq = drv.queue(3);
      rq.addSegments(
        [inbuf(0x40_0000, REPORT_BLOCK), inbuf(16 * MiB - 0x1000, 0x2000), inbuf(2 ** 52, REPORT_BLOCK)],
        1,
      );
      expect(rq.used()).toHaveLength(1);
      expect(dev.reportedBytes).toBe(REPORT_BLOCK);
      expect(dev.metrics["refused.NotRam"]).toBe(2);
      expect(dev.lastError).toEqual({ kind: "NotRam", gpa: 2 ** 52, len: REPORT_BLOCK });
      expect(spy.calls).toHaveLength(3);
      expect(drv.needsReset).toBe(false);
    });

    it("F_REPORTING: unaligned and empty ranges are refused before any memory is touched", () => {
      const { drv, dev, spy, mem } = make();
      mem.bytes.fill(0xaa, 0x40_0000, 0x40_3000);
      const rq = drv.queue(3);
      rq.addSegments([inbuf(0x40_0800, 0x1000), inbuf(0x40_1000, 0x800), inbuf(0x40_2000, 0)], 1);
      expect(rq.used()).toHaveLength(1);
      expect(spy.calls).toEqual([]);
      expect(dev.reportedBytes).toBe(0);
      expect(dev.metrics["refused.UnalignedRange"]).toBe(3);
      expect(mem.bytes[0x40_1000]).toBe(0xaa);
      expect(drv.needsReset).toBe(false);
    });

    it("F_REPORTING: a device-readable buffer is a protocol error: NEEDS_RESET, nothing discarded, buffer returned", () => {
      const { drv, dev, spy } = make();
      const rq = drv.queue(3);
      rq.addSegments([{ addr: 0x40_0000, len: REPORT_BLOCK, write: false }], 1);
      expect(rq.used()).toHaveLength(1);
      expect(spy.calls).toEqual([]);
      expect(dev.lastError).toEqual({ kind: "DeviceReadablePages", queue: "reporting", bytes: REPORT_BLOCK });
      expect(drv.needsReset).toBe(true);
    });

    it("virtio 1.2 2.7.4.2: a reporting chain with a readable part after the writable one is NEEDS_RESET", () => {
      const { drv, dev, spy } = make();
      const rq = drv.queue(3);
      rq.addSegments([inbuf(0x40_0000, REPORT_BLOCK), { addr: 0x60_0000, len: 0x1000, write: false }], 1);
      expect(drv.needsReset).toBe(true);
      expect(dev.reportedBytes).toBe(0);
      expect(spy.calls).toEqual([]);
    });

    if (!kind.endsWith("packed")) {
      it("virtio 1.2 2.7.5.3.1: a looping reporting chain ends after queue-size links with NEEDS_RESET", () => {
        const { drv, dev, mem } = make();
        const rq = drv.queue(3) as MockQueue;
        const d = new DataView(mem.bytes.buffer);
        // Descriptor 0 points at itself; publish it by hand.
        d.setUint32(rq.descAddr, 0x40_0000, true);
        d.setUint32(rq.descAddr + 4, 0, true);
        d.setUint32(rq.descAddr + 8, REPORT_BLOCK, true);
        d.setUint16(rq.descAddr + 12, DescFlag.WRITE | DescFlag.NEXT, true);
        d.setUint16(rq.descAddr + 14, 0, true);
        const idx = d.getUint16(rq.availAddr + 2, true);
        d.setUint16(rq.availAddr + 4 + 2 * (idx % rq.size), 0, true);
        d.setUint16(rq.availAddr + 2, idx + 1, true);
        drv.transport.notify(3);
        expect(drv.needsReset).toBe(true);
        expect(dev.reportedBytes).toBe(0);
      });
    }

    it("5.5.2 queue indices: no gap for a queue whose feature is off (Linux init_vqs)", () => {
      const S = BalloonFeature.STATS_VQ;
      const H = BalloonFeature.FREE_PAGE_HINT;
      const R = BalloonFeature.PAGE_REPORTING;
      const cases: { feats: number[]; freePage?: number; reporting?: number }[] = [
        { feats: [] },
        { feats: [S] },
        { feats: [R], reporting: 2 },
        { feats: [H], freePage: 2 },
        { feats: [S, R], reporting: 3 },
        { feats: [S, H], freePage: 3 },
        { feats: [H, R], freePage: 2, reporting: 3 },
        { feats: [S, H, R], freePage: 3, reporting: 4 },
      ];
      for (const c of cases) {
        const { drv, dev, mem } = make({ freePageHint: true }, features(32, ...c.feats));
        mem.bytes.set(le32(9), 0x50_0000);
        expect(dev.requestStats()).toBe(false);
        for (let q = 2; q < drv.queues.length; q++) {
          drv.queue(q).addSegments([inbuf(0x40_0000, REPORT_BLOCK)], q);
          drv.queue(q).addSegments([{ addr: 0x50_0000, len: 4, write: false }], q);
        }
        expect(dev.reportedBytes, `features ${c.feats}`).toBe(c.reporting === undefined ? 0 : REPORT_BLOCK);
        // Only the free page queue takes the le32 cmd id without complaint; hints before a run are ignored.
        expect(dev.metrics["hintStaleCmdId"] ?? 0, `features ${c.feats}`).toBe(
          c.freePage === undefined ? 0 : 1,
        );
        expect(dev.metrics["hintIgnoredBytes"] ?? 0).toBe(c.freePage === undefined ? 0 : REPORT_BLOCK);
        expect(dev.requestFreePageHints() !== undefined).toBe(c.freePage !== undefined);
        if (c.reporting !== undefined) expect(drv.queue(c.reporting).used()).toHaveLength(2);
      }
    });

    it("F_FREE_PAGE_HINT: cmd id in config, start, 4 MiB hints discarded, STOP, then DONE (Linux's sequence)", () => {
      const { drv, dev, spy, mem, irqs } = make({ freePageHint: true });
      // With stats, hinting and reporting: free_page_vq is 3, reporting_vq 4.
      const fq = drv.queue(3);
      expect(drv.readConfigStable(BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4)).toBe(BalloonCmdId.STOP);
      irqs();
      const id = dev.requestFreePageHints()!;
      expect(id).toBeGreaterThan(BalloonCmdId.DONE);
      expect(irqs().config).toBe(true);
      expect(drv.readConfigStable(BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4)).toBe(id);
      expect(dev.freePageHint).toEqual({ tag: "requested", cmdId: id });
      fq.add([le32(id)], [], 1);
      expect(dev.freePageHint).toEqual({ tag: "hinting", cmdId: id });
      const zero = filled(mem, 0x40_0000, HINT_BLOCK);
      fq.addSegments([inbuf(0x40_0000, HINT_BLOCK)], 2);
      fq.addSegments([inbuf(0x80_0000, HINT_BLOCK)], 3);
      expect(zero()).toBe(true);
      expect(spy.calls).toEqual(["discard 400000+1024", "discard 800000+1024"]);
      expect(dev.hintedBytes).toBe(2 * HINT_BLOCK);
      fq.add([le32(BalloonCmdId.STOP)], [], 4);
      expect(dev.freePageHint).toEqual({ tag: "stopped", cmdId: id });
      expect(fq.used().map((u) => u.token)).toEqual([1, 2, 3, 4]);
      // Hints after STOP belong to no run.
      fq.addSegments([inbuf(0xc0_0000, HINT_BLOCK)], 5);
      expect(dev.hintedBytes).toBe(2 * HINT_BLOCK);
      irqs();
      dev.freePageHintsDone();
      expect(irqs().config).toBe(true);
      expect(drv.readConfigStable(BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4)).toBe(BalloonCmdId.DONE);
      expect(dev.status().hintedBytes).toBe(2 * HINT_BLOCK);
      expect(drv.needsReset).toBe(false);
    });

    it("5.5 Free Page Hinting: hints from an older command id are ignored; the older run's STOP leaves a new request standing", () => {
      const { drv, dev } = make({ freePageHint: true });
      const fq = drv.queue(3);
      const first = dev.requestFreePageHints()!;
      fq.add([le32(first)], [], 1);
      const second = dev.requestFreePageHints()!;
      expect(second).not.toBe(first);
      fq.addSegments([inbuf(0x40_0000, HINT_BLOCK)], 2);
      fq.add([le32(BalloonCmdId.STOP)], [], 3);
      expect(dev.freePageHint).toEqual({ tag: "requested", cmdId: second });
      expect(dev.hintedBytes).toBe(0);
      fq.add([le32(first)], [], 4);
      expect(dev.metrics["hintStaleCmdId"]).toBe(1);
      fq.add([le32(second)], [], 5);
      fq.addSegments([inbuf(0x40_0000, HINT_BLOCK)], 6);
      expect(dev.hintedBytes).toBe(HINT_BLOCK);
      // The host may stop a run early; what comes after is ignored.
      dev.stopFreePageHints();
      expect(drv.readConfigStable(BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4)).toBe(BalloonCmdId.STOP);
      fq.addSegments([inbuf(0x80_0000, HINT_BLOCK)], 7);
      expect(dev.hintedBytes).toBe(HINT_BLOCK);
      expect(dev.metrics["hintIgnoredBytes"]).toBe(2 * HINT_BLOCK);
    });

    it("F_FREE_PAGE_HINT: bad hints are refused by range; a cmd id that is not one le32 is NEEDS_RESET", () => {
      const { drv, dev } = make({ freePageHint: true });
      const fq = drv.queue(3);
      fq.add([le32(dev.requestFreePageHints()!)], [], 1);
      fq.addSegments([inbuf(0x40_0001, HINT_BLOCK), inbuf(2 ** 40, HINT_BLOCK)], 2);
      expect(dev.metrics["refused.UnalignedRange"]).toBe(1);
      expect(dev.metrics["refused.NotRam"]).toBe(1);
      expect(dev.hintedBytes).toBe(0);
      expect(drv.needsReset).toBe(false);
      fq.add([new Uint8Array(2)], [], 3);
      expect(dev.lastError).toEqual({ kind: "BadCmdIdBuffer", bytes: 2 });
      expect(drv.needsReset).toBe(true);
      expect(fq.used()).toHaveLength(3);
    });

    it("F_FREE_PAGE_HINT: mixed readable and writable buffers are NEEDS_RESET; not offered unless asked", () => {
      const { drv, dev } = make({ freePageHint: true });
      drv.queue(3).add([le32(5)], [HINT_BLOCK], 1);
      expect(dev.lastError).toEqual({ kind: "DeviceReadablePages", queue: "freePage", bytes: 4 });
      expect(drv.needsReset).toBe(true);
      const plain = make();
      expect(plain.dev.requestFreePageHints()).toBeUndefined();
      expect(plain.drv.queues).toHaveLength(4);
    });

    it("2.4 reset ends a hinting run: cmd id back to STOP", () => {
      const { drv, dev } = make({ freePageHint: true });
      drv.queue(3).add([le32(dev.requestFreePageHints()!)], [], 1);
      drv.init();
      expect(dev.freePageHint).toEqual({ tag: "idle" });
      expect(drv.readConfigStable(BalloonConfig.FREE_PAGE_HINT_CMD_ID, 4)).toBe(BalloonCmdId.STOP);
    });
  });
}

describe("virtio-balloon free page state in snapshots", () => {
  const make = () =>
    new VirtioBalloon(
      { reclaim: () => true, restore: () => {}, discard: () => true },
      { freePageHint: true },
    );
  const base = { pages: [], numPages: 0, actual: 0 };

  it("reported/hinted bytes and the hinting run survive save -> restore -> save", () => {
    const s = {
      ...base,
      reportedBytes: 3 * MiB,
      hintedBytes: 8 * MiB,
      freePageHint: { tag: "hinting", cmdId: 7 },
      nextCmdId: 8,
    };
    const dev = make();
    expect(dev.loadState(JSON.parse(JSON.stringify(s)))).toBe(true);
    expect(dev.saveState()).toEqual(s);
    expect(dev.status()).toMatchObject({ reportedBytes: 3 * MiB, hintedBytes: 8 * MiB });
  });

  it("a snapshot from before free page hinting loads with zero counters", () => {
    const dev = make();
    expect(dev.loadState(base)).toBe(true);
    expect(dev.saveState()).toMatchObject({
      reportedBytes: 0,
      hintedBytes: 0,
      freePageHint: { tag: "idle" },
    });
  });

  it.each([
    ["negative reported bytes", { reportedBytes: -1 }],
    ["fractional hinted bytes", { hintedBytes: 0.5 }],
    ["unknown hint tag", { freePageHint: { tag: "hinted", cmdId: 3 } }],
    ["reserved cmd id in a run", { freePageHint: { tag: "requested", cmdId: BalloonCmdId.DONE } }],
    ["extra field on idle", { freePageHint: { tag: "idle", cmdId: 3 } }],
    ["next cmd id reserved", { nextCmdId: 1 }],
  ])("refuses %s", (_name, extra) => {
    expect(make().loadState({ ...base, ...extra })).toBe(false);
  });
});
