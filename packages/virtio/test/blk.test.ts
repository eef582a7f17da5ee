import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  BlkConfig,
  BlkFeature,
  BlkStatus,
  BlkType,
  type BlockBackend,
  features,
  hasFeature,
  MemoryBlockBackend,
  ReadOnlyBlockBackend,
  VirtioBlk,
} from "../src/index";
import { FileBlockBackend } from "../src/node/index";
import type { MockDriver } from "../src/testing/index";
import { rig, TRANSPORTS } from "./harness";

function header(type: number, sector: number): Uint8Array {
  const b = new Uint8Array(16);
  const d = new DataView(b.buffer);
  d.setUint32(0, type, true);
  d.setUint32(8, sector % 0x1_0000_0000, true);
  d.setUint32(12, Math.floor(sector / 0x1_0000_0000), true);
  return b;
}

/** One request the way virtio_blk.c builds it: header | data | status, one descriptor each. */
function req(
  drv: MockDriver,
  type: number,
  sector: number,
  out: Uint8Array[] = [],
  inLen = 0,
  opts: { indirect?: boolean } = {},
) {
  const q = drv.queue(0);
  const ins = inLen > 0 ? [inLen, 1] : [1];
  expect(q.add([header(type, sector), ...out], ins, 7, opts)).toBe(true);
  const u = q.used();
  expect(u).toHaveLength(1);
  const last = u[0]!.in.at(-1)!;
  drv.tryRecycle();
  return { status: last[last.length - 1]!, len: u[0]!.len, data: inLen > 0 ? u[0]!.in[0]! : undefined };
}

function ranges(...r: [number, number, number][]): Uint8Array {
  const b = new Uint8Array(16 * r.length);
  const d = new DataView(b.buffer);
  r.forEach(([sector, n, flags], i) => {
    d.setUint32(16 * i, sector, true);
    d.setUint32(16 * i + 8, n, true);
    d.setUint32(16 * i + 12, flags, true);
  });
  return b;
}

const tmp = mkdtempSync(join(tmpdir(), "tskvm-blk-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

for (const kind of TRANSPORTS) {
  describe(`virtio-blk over ${kind} (virtio 1.2 5.2)`, () => {
    const make = (backend: BlockBackend = new MemoryBlockBackend(1 << 20)) => {
      const r = rig(kind, new VirtioBlk(backend, { id: "serial-0123456789abcdefXYZ" }));
      expect(r.drv.init()).toBe(true);
      return r;
    };

    it("5.2.4 capacity, seg_max and blk_size are in the config space", () => {
      const { drv } = make();
      expect(drv.readConfigStable(BlkConfig.CAPACITY, 4)).toBe(2048);
      expect(drv.readConfigStable(BlkConfig.CAPACITY + 4, 4)).toBe(0);
      expect(drv.readConfigStable(BlkConfig.BLK_SIZE, 4)).toBe(512);
      expect(drv.readConfigStable(BlkConfig.SEG_MAX, 4)).toBe(254);
    });

    it("5.2.6 write then read back the same sectors, direct and indirect", () => {
      const { drv } = make();
      const data = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
      expect(req(drv, BlkType.OUT, 8, [data]).status).toBe(BlkStatus.OK);
      const r = req(drv, BlkType.IN, 8, [], 4096, { indirect: true });
      expect(r.status).toBe(BlkStatus.OK);
      expect(r.len).toBe(4097);
      expect(r.data).toEqual(data);
    });

    it("5.2.6 data split over several descriptors (any layout)", () => {
      const { drv, dev } = make();
      const a = new Uint8Array(512).fill(1);
      const b = new Uint8Array(1024).fill(2);
      expect(req(drv, BlkType.OUT, 1, [a, b]).status).toBe(BlkStatus.OK);
      const bytes = (dev.backend as MemoryBlockBackend).bytes;
      expect(bytes[512]).toBe(1);
      expect(bytes[1024]).toBe(2);
      expect(bytes[2048]).toBe(0);
    });

    it("5.2.6.1 a read past capacity answers IOERR (the last sector is readable)", () => {
      const { drv } = make();
      expect(req(drv, BlkType.IN, 2047, [], 512).status).toBe(BlkStatus.OK);
      expect(req(drv, BlkType.IN, 2047, [], 1024).status).toBe(BlkStatus.IOERR);
      expect(req(drv, BlkType.IN, 2 ** 40, [], 512).status).toBe(BlkStatus.IOERR);
      expect(req(drv, BlkType.IN, 2 ** 63, [], 512).status).toBe(BlkStatus.IOERR);
    });

    it("5.2.6.1 a data length that is not a multiple of 512 answers IOERR", () => {
      const { drv } = make();
      expect(req(drv, BlkType.IN, 0, [], 100).status).toBe(BlkStatus.IOERR);
    });

    it("5.2.6.2 an unknown request type answers UNSUPP", () => {
      const { drv } = make();
      expect(req(drv, 0x77, 0, [], 0).status).toBe(BlkStatus.UNSUPP);
      expect(req(drv, BlkType.SECURE_ERASE, 0, [], 0).status).toBe(BlkStatus.UNSUPP);
    });

    it("5.2.6 GET_ID returns 20 bytes, not NUL-terminated when all are used", () => {
      const { drv } = make();
      const r = req(drv, BlkType.GET_ID, 0, [], 20);
      expect(r.status).toBe(BlkStatus.OK);
      expect(new TextDecoder().decode(r.data)).toBe("serial-0123456789abc");
    });

    it("5.2.6 FLUSH reaches the backend", () => {
      const backend = new MemoryBlockBackend(1 << 20);
      const { drv } = make(backend);
      expect(req(drv, BlkType.FLUSH, 0).status).toBe(BlkStatus.OK);
      expect(backend.flushes).toBe(1);
    });

    it("5.2.6.2 DISCARD and WRITE_ZEROES zero the ranges; unmap on discard is UNSUPP", () => {
      const backend = new MemoryBlockBackend(1 << 20);
      backend.bytes.fill(0xee);
      const { drv } = make(backend);
      expect(req(drv, BlkType.WRITE_ZEROES, 0, [ranges([0, 1, 1], [4, 2, 0])]).status).toBe(BlkStatus.OK);
      expect(backend.bytes[0]).toBe(0);
      expect(backend.bytes[512]).toBe(0xee);
      expect(backend.bytes[4 * 512 + 1023]).toBe(0);
      expect(req(drv, BlkType.DISCARD, 0, [ranges([10, 1, 0])]).status).toBe(BlkStatus.OK);
      expect(req(drv, BlkType.DISCARD, 0, [ranges([10, 1, 1])]).status).toBe(BlkStatus.UNSUPP);
      expect(req(drv, BlkType.WRITE_ZEROES, 0, [ranges([10, 1, 2])]).status).toBe(BlkStatus.UNSUPP);
      expect(req(drv, BlkType.DISCARD, 0, [ranges([2040, 9, 0])]).status).toBe(BlkStatus.IOERR);
    });

    it("5.2.6.2 DISCARD without the feature negotiated answers UNSUPP", () => {
      const r = rig(kind, new VirtioBlk(new MemoryBlockBackend(1 << 20)));
      expect(r.drv.init({ want: features(32, BlkFeature.FLUSH) })).toBe(true);
      expect(req(r.drv, BlkType.DISCARD, 0, [ranges([0, 1, 0])]).status).toBe(BlkStatus.UNSUPP);
    });

    it("5.2.6.2 a read-only backend offers RO and fails writes with IOERR without writing", () => {
      const inner = new MemoryBlockBackend(1 << 20);
      const { drv } = make(new ReadOnlyBlockBackend(inner));
      expect(hasFeature(drv.features, BlkFeature.RO)).toBe(true);
      expect(hasFeature(drv.features, BlkFeature.DISCARD)).toBe(false);
      expect(req(drv, BlkType.OUT, 0, [new Uint8Array(512).fill(9)]).status).toBe(BlkStatus.IOERR);
      expect(inner.bytes[0]).toBe(0);
      expect(req(drv, BlkType.IN, 0, [], 512).status).toBe(BlkStatus.OK);
    });

    it("a backend exception becomes VIRTIO_BLK_S_IOERR, not a crash", () => {
      const failing: BlockBackend = {
        size: 1 << 20,
        readOnly: false,
        read: () => {
          throw new Error("EIO");
        },
        write: () => {
          throw new Error("EIO");
        },
        flush: () => {
          throw new Error("EIO");
        },
      };
      const { drv, dev } = make(failing);
      expect(req(drv, BlkType.IN, 0, [], 512).status).toBe(BlkStatus.IOERR);
      expect(req(drv, BlkType.OUT, 0, [new Uint8Array(512)]).status).toBe(BlkStatus.IOERR);
      expect(req(drv, BlkType.FLUSH, 0).status).toBe(BlkStatus.IOERR);
      expect(dev.metrics["backendError"]).toBe(3);
      expect(drv.needsReset).toBe(false);
    });

    it("a short header answers IOERR; a chain with no writable byte is returned with len 0", () => {
      const { drv } = make();
      const q = drv.queue(0);
      q.add([new Uint8Array(8)], [1], 1);
      const u = q.used();
      expect(u[0]!.in[0]![0]).toBe(BlkStatus.IOERR);
      q.add([header(BlkType.IN, 0)], [], 2);
      expect(q.used()[0]!.len).toBe(0);
      expect(drv.needsReset).toBe(false);
    });

    it("a data buffer outside guest RAM answers IOERR", () => {
      const { drv, mem } = make();
      const q = drv.queue(0);
      // Point the data descriptor of a fresh read at 2^40 after building it normally.
      q.add([header(BlkType.IN, 0)], [512, 1], 3, { noKick: true });
      const table = q.descAddr;
      // Find the descriptor with len 512 and move it.
      for (let i = 0; i < q.size; i++) {
        const v = new DataView(mem.bytes.buffer, table + 16 * i, 16);
        if (v.getUint32(8, true) === 512) v.setUint32(4, 0x100, true);
      }
      q.kick();
      const u = q.used();
      expect(u[0]!.in[1]![0]).toBe(BlkStatus.IOERR);
    });

    it("the file backend: writes land in the file and FLUSH fsyncs", () => {
      const path = join(tmp, `disk-${kind}.img`);
      writeFileSync(path, new Uint8Array(64 * 1024));
      const backend = new FileBlockBackend(path);
      const { drv } = make(backend);
      expect(req(drv, BlkType.OUT, 3, [new Uint8Array(512).fill(0x5a)]).status).toBe(BlkStatus.OK);
      expect(req(drv, BlkType.FLUSH, 0).status).toBe(BlkStatus.OK);
      backend.close();
      const file = readFileSync(path);
      expect(file[3 * 512]).toBe(0x5a);
      expect(file[4 * 512]).toBe(0);
    });

    it("the file backend read-only mode offers RO", () => {
      const path = join(tmp, `ro-${kind}.img`);
      writeFileSync(path, new Uint8Array(4096).fill(3));
      const { drv } = make(new FileBlockBackend(path, { readOnly: true }));
      expect(hasFeature(drv.features, BlkFeature.RO)).toBe(true);
      expect(req(drv, BlkType.IN, 1, [], 512).data![0]).toBe(3);
      expect(req(drv, BlkType.OUT, 1, [new Uint8Array(512)]).status).toBe(BlkStatus.IOERR);
    });
  });
}

describe("virtio-blk multiqueue (5.2.3 VIRTIO_BLK_F_MQ)", () => {
  for (const kind of TRANSPORTS) {
    it(`over ${kind}: num_queues in config, every request queue serves requests`, () => {
      const backend = new MemoryBlockBackend(1 << 20);
      const r = rig(kind, new VirtioBlk(backend, { queues: 4 }));
      expect(r.drv.init()).toBe(true);
      expect(hasFeature(r.drv.features, BlkFeature.MQ)).toBe(true);
      expect(r.drv.readConfigStable(34, 2)).toBe(4);
      expect(r.drv.queues).toHaveLength(4);
      for (let q = 0; q < 4; q++) {
        r.drv.queue(q).add([header(BlkType.OUT, q), new Uint8Array(512).fill(q + 1)], [1], q);
        expect(r.drv.queue(q).used()[0]!.in[0]![0]).toBe(BlkStatus.OK);
      }
      expect([backend.bytes[0], backend.bytes[512], backend.bytes[1024], backend.bytes[1536]]).toEqual([
        1, 2, 3, 4,
      ]);
    });
  }
});
