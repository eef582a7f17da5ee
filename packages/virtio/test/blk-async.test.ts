import { describe, expect, it } from "vitest";
import { type AsyncBlockBackend, BlkStatus, BlkType, VirtioBlk } from "../src/index";
import type { MockDriver } from "../src/testing/index";
import { rig, TRANSPORTS } from "./harness";

/** An async disk whose operations finish only when the test says so. */
class DeferredDisk implements AsyncBlockBackend {
  readonly async = true as const;
  readonly readOnly = false;
  readonly bytes: Uint8Array;
  private readonly waiting: (() => void)[] = [];
  fail = false;
  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
  }
  private later(op: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push(() => {
        if (this.fail) reject(new Error("EIO"));
        else {
          op();
          resolve();
        }
      });
    });
  }
  read(offset: number, dst: Uint8Array): Promise<void> {
    return this.later(() => dst.set(this.bytes.subarray(offset, offset + dst.length)));
  }
  write(offset: number, src: Uint8Array): Promise<void> {
    return this.later(() => this.bytes.set(src, offset));
  }
  flush(): Promise<void> {
    return this.later(() => {});
  }
  get pending(): number {
    return this.waiting.length;
  }
  /** Finish everything outstanding and let the completions run. */
  async settle(): Promise<void> {
    for (const f of this.waiting.splice(0)) f();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }
}

function hdr(type: number, sector: number): Uint8Array {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setUint32(0, type, true);
  new DataView(b.buffer).setUint32(8, sector, true);
  return b;
}

const status = (drv: MockDriver) =>
  drv
    .queue(0)
    .used()
    .map((u) => u.in.at(-1)!.at(-1));

for (const kind of TRANSPORTS) {
  describe(`virtio-blk with an async backend over ${kind}`, () => {
    it("requests complete when the backend settles, with the data read", async () => {
      const disk = new DeferredDisk(1 << 20);
      const dev = new VirtioBlk(disk);
      const r = rig(kind, dev);
      r.drv.init();
      r.drv.queue(0).add([hdr(BlkType.OUT, 4), new Uint8Array(512).fill(0x5e)], [1], 1);
      expect(r.drv.queue(0).used()).toHaveLength(0);
      expect(dev.inFlight).toBe(1);
      await disk.settle();
      expect(status(r.drv)).toEqual([BlkStatus.OK]);
      r.drv.queue(0).add([hdr(BlkType.IN, 4)], [512, 1], 2);
      await disk.settle();
      const u = r.drv.queue(0).used();
      expect(u[0]!.in[0]![511]).toBe(0x5e);
      expect(u[0]!.len).toBe(513);
      expect(r.irqs().used).toBe(true);
    });

    it("a rejected operation answers IOERR; validation failures answer at once", async () => {
      const disk = new DeferredDisk(1 << 20);
      const r = rig(kind, new VirtioBlk(disk));
      r.drv.init();
      r.drv.queue(0).add([hdr(BlkType.IN, 1 << 30)], [512, 1], 1);
      expect(status(r.drv)).toEqual([BlkStatus.IOERR]);
      disk.fail = true;
      r.drv.queue(0).add([hdr(BlkType.FLUSH, 0)], [1], 2);
      await disk.settle();
      expect(status(r.drv)).toEqual([BlkStatus.IOERR]);
    });

    it("a completion after a device reset touches neither the used ring nor guest memory", async () => {
      const disk = new DeferredDisk(1 << 20);
      disk.bytes.fill(0x77);
      const dev = new VirtioBlk(disk);
      const r = rig(kind, dev);
      r.drv.init();
      const q = r.drv.queue(0);
      q.add([hdr(BlkType.IN, 0)], [512, 1], 1);
      const usedBefore = r.mem.bytes.slice(q.usedAddr, q.usedAddr + 64);
      const snapshot = r.mem.bytes.slice(0, 1 << 20);
      r.t.reset();
      await disk.settle();
      expect(dev.metrics["completionAfterReset"]).toBe(1);
      expect(r.mem.bytes.slice(q.usedAddr, q.usedAddr + 64)).toEqual(usedBefore);
      expect(Buffer.compare(Buffer.from(r.mem.bytes.subarray(0, 1 << 20)), Buffer.from(snapshot))).toBe(0);
      // The device works again after the driver re-initialises it.
      expect(r.drv.init()).toBe(true);
      r.drv.queue(0).add([hdr(BlkType.IN, 0)], [512, 1], 2);
      await disk.settle();
      expect(r.drv.queue(0).used()[0]!.in[0]![0]).toBe(0x77);
    });

    it("in-flight data is bounded: the queue waits, then resumes as completions arrive (CVE-2016-5403)", async () => {
      const disk = new DeferredDisk(1 << 20);
      const dev = new VirtioBlk(disk, { asyncInflightBytes: 8192, asyncMaxRequest: 16384 });
      const r = rig(kind, dev);
      r.drv.init();
      const q = r.drv.queue(0);
      for (let i = 0; i < 4; i++) q.add([hdr(BlkType.IN, i * 8)], [4096, 1], i, { noKick: i < 3 });
      expect(dev.inFlight).toBe(2);
      expect(dev.metrics["asyncBackpressure"]).toBe(1);
      await disk.settle();
      expect(dev.inFlight).toBe(2);
      await disk.settle();
      expect(dev.inFlight).toBe(0);
      expect(status(r.drv)).toEqual([0, 0, 0, 0]);
      q.add([hdr(BlkType.IN, 0)], [16384 + 512, 1], 9);
      expect(status(r.drv)).toEqual([BlkStatus.IOERR]);
    });
  });
}

describe("async backend under random interleavings", () => {
  it("submissions, completions, failures and resets in any order never break the device", async () => {
    const fc = (await import("fast-check")).default;
    type Op =
      | { op: "req"; type: number; sector: number; len: number }
      | { op: "settle" }
      | { op: "fail"; on: boolean }
      | { op: "reset" };
    const opArb: import("fast-check").Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constant("req" as const),
        type: fc.constantFrom(BlkType.IN, BlkType.OUT, BlkType.FLUSH, BlkType.GET_ID, 99),
        sector: fc.integer({ min: 0, max: 2100 }),
        len: fc.constantFrom(0, 512, 4096, 100),
      }),
      fc.constant({ op: "settle" as const }),
      fc.record({ op: fc.constant("fail" as const), on: fc.boolean() }),
      fc.constant({ op: "reset" as const }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...TRANSPORTS),
        fc.array(opArb, { maxLength: 30 }),
        async (kind, ops) => {
          const disk = new DeferredDisk(1 << 20);
          const dev = new VirtioBlk(disk, { asyncInflightBytes: 16384 });
          const r = rig(kind, dev, 2 << 20);
          r.drv.init({ queueSize: 16 });
          let token = 0;
          for (const o of ops) {
            if (o.op === "req") {
              const q = r.drv.queue(0);
              if (q.numFree < 3) continue;
              const out =
                o.type === BlkType.OUT
                  ? [hdr(o.type, o.sector), new Uint8Array(o.len)]
                  : [hdr(o.type, o.sector)];
              const ins = o.type === BlkType.OUT || o.type === BlkType.FLUSH ? [1] : [Math.max(o.len, 1), 1];
              try {
                q.add(out, ins, token++);
              } catch {
                // The mock's arena is full: a driver-model limit, not the device's.
              }
            } else if (o.op === "settle") {
              await disk.settle();
              for (const u of r.drv.queue(0).used()) expect([0, 1, 2]).toContain(u.in.at(-1)!.at(-1));
              r.drv.tryRecycle();
            } else if (o.op === "fail") disk.fail = o.on;
            else r.drv.init({ queueSize: 16 });
          }
          await disk.settle();
          expect(dev.metrics["deviceInternalError"]).toBeUndefined();
          expect(r.transportMetrics["deviceInternalError"]).toBeUndefined();
          expect(r.drv.needsReset).toBe(false);
        },
      ),
      { numRuns: 150 },
    );
  });
});
