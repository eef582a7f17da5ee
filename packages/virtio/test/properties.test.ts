import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BlkStatus,
  BlkType,
  GpuCmd,
  GpuFormat,
  GpuResp,
  L2Switch,
  MemoryBlockBackend,
  NetHdr,
  VirtioBlk,
  VirtioGpu,
  VirtioNet,
} from "../src/index";
import type { MockDriver } from "../src/testing/index";
import { rig, TRANSPORTS } from "./harness";

const SECTORS = 64;

type BlkOp =
  | { t: "read"; sector: number; n: number; split: number }
  | { t: "write"; sector: number; n: number; fill: number; split: number }
  | { t: "zero"; sector: number; n: number }
  | { t: "flush" };

const blkOp: fc.Arbitrary<BlkOp> = fc.oneof(
  fc.record({
    t: fc.constant("read" as const),
    sector: fc.integer({ min: 0, max: SECTORS + 4 }),
    n: fc.integer({ min: 1, max: 8 }),
    split: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({
    t: fc.constant("write" as const),
    sector: fc.integer({ min: 0, max: SECTORS + 4 }),
    n: fc.integer({ min: 1, max: 8 }),
    fill: fc.integer({ min: 1, max: 255 }),
    split: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({
    t: fc.constant("zero" as const),
    sector: fc.integer({ min: 0, max: SECTORS + 4 }),
    n: fc.integer({ min: 1, max: 8 }),
  }),
  fc.constant({ t: "flush" as const }),
);

/** Byte equality without vitest's generic deep-equal (far too slow on large typed arrays). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

function hdr(type: number, sector: number): Uint8Array {
  const b = new Uint8Array(16);
  new DataView(b.buffer).setUint32(0, type, true);
  new DataView(b.buffer).setUint32(8, sector, true);
  return b;
}

/** Split `len` bytes into `parts` descriptor lengths (multiples of 512 where possible). */
function splitLens(len: number, parts: number): number[] {
  const out: number[] = [];
  let left = len;
  for (let i = 0; i < parts - 1 && left > 512; i++) {
    out.push(512);
    left -= 512;
  }
  out.push(left);
  return out;
}

function blkReq(drv: MockDriver, out: Uint8Array[], ins: number[], indirect: boolean) {
  const q = drv.queue(0);
  expect(q.add(out, ins, 1, { indirect })).toBe(true);
  const u = q.used();
  drv.tryRecycle();
  const last = u[0]!.in.at(-1)!;
  return { status: last[last.length - 1]!, ins: u[0]!.in };
}

describe("properties", () => {
  for (const kind of TRANSPORTS) {
    it(`blk over ${kind}: reads always return what a plain model of the disk holds`, () => {
      fc.assert(
        fc.property(fc.array(blkOp, { maxLength: 30 }), fc.boolean(), (ops, indirect) => {
          const backend = new MemoryBlockBackend(SECTORS * 512);
          const r = rig(kind, new VirtioBlk(backend), 4 << 20);
          r.drv.init();
          const model = new Uint8Array(SECTORS * 512);
          for (const o of ops) {
            const inRange = "n" in o && o.sector + o.n <= SECTORS;
            if (o.t === "read") {
              const res = blkReq(
                r.drv,
                [hdr(BlkType.IN, o.sector)],
                [...splitLens(o.n * 512, o.split), 1],
                indirect,
              );
              expect(res.status).toBe(inRange ? BlkStatus.OK : BlkStatus.IOERR);
              if (inRange) {
                const got = new Uint8Array(o.n * 512);
                let at = 0;
                for (const part of res.ins.slice(0, -1)) {
                  got.set(part, at);
                  at += part.length;
                }
                expect(same(got, model.subarray(o.sector * 512, (o.sector + o.n) * 512))).toBe(true);
              }
            } else if (o.t === "write") {
              const data = new Uint8Array(o.n * 512).fill(o.fill);
              const parts: Uint8Array[] = [];
              let at = 0;
              for (const l of splitLens(data.length, o.split)) {
                parts.push(data.subarray(at, at + l));
                at += l;
              }
              const res = blkReq(r.drv, [hdr(BlkType.OUT, o.sector), ...parts], [1], indirect);
              expect(res.status).toBe(inRange ? BlkStatus.OK : BlkStatus.IOERR);
              if (inRange) model.set(data, o.sector * 512);
            } else if (o.t === "zero") {
              const range = new Uint8Array(16);
              new DataView(range.buffer).setUint32(0, o.sector, true);
              new DataView(range.buffer).setUint32(8, o.n, true);
              const res = blkReq(r.drv, [hdr(BlkType.WRITE_ZEROES, 0), range], [1], indirect);
              expect(res.status).toBe(inRange ? BlkStatus.OK : BlkStatus.IOERR);
              if (inRange) model.fill(0, o.sector * 512, (o.sector + o.n) * 512);
            } else {
              expect(blkReq(r.drv, [hdr(BlkType.FLUSH, 0)], [1], indirect).status).toBe(BlkStatus.OK);
            }
          }
          expect(same(backend.bytes, model)).toBe(true);
        }),
        { numRuns: 40 },
      );
    });

    it(`net over ${kind}: every frame arrives intact and in order, whatever the rx buffer sizes`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 14, max: 3000 }), { minLength: 1, maxLength: 12 }),
          fc.integer({ min: 64, max: 2048 }),
          fc.boolean(),
          (lens, bufLen, mrg) => {
            const sw = new L2Switch();
            const mk = (last: number) => {
              const nic = new VirtioNet({ mac: [2, 0, 0, 0, 0, last], mergeableRxBuffers: mrg });
              nic.setBackend(sw.attach(nic));
              const r = rig(kind, nic, 4 << 20);
              r.drv.init({ queueSize: 64 });
              return r;
            };
            const a = mk(1);
            const b = mk(2);
            const frames = lens.map((len, k) => {
              const f = new Uint8Array(len).map((_, i) => (i * 31 + k) & 0xff);
              f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 0);
              return f;
            });
            const got: Uint8Array[] = [];
            let pending: { len: number; buf: Uint8Array }[] = [];
            let want = 0;
            for (const f of frames) {
              // Enough buffers for this frame (merged) or one big enough buffer (not merged).
              const size = mrg ? bufLen : Math.max(bufLen, f.length + NetHdr.SIZE);
              const need = mrg ? Math.ceil((f.length + NetHdr.SIZE) / size) : 1;
              for (let i = 0; i < need; i++) expect(b.drv.queue(0).add([], [size], i)).toBe(true);
              expect(a.drv.queue(1).add([new Uint8Array(NetHdr.SIZE), f], [], 0)).toBe(true);
              a.drv.queue(1).used();
              for (const u of b.drv.queue(0).used()) pending.push({ len: u.len, buf: u.in[0]! });
              while (pending.length > 0) {
                const first = pending[0]!;
                const nb = first.buf[10]! | (first.buf[11]! << 8);
                if (pending.length < nb) break;
                const parts = pending
                  .slice(0, nb)
                  .map((p, k) => p.buf.subarray(k === 0 ? NetHdr.SIZE : 0, p.len));
                const frame = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
                let at = 0;
                for (const p of parts) {
                  frame.set(p, at);
                  at += p.length;
                }
                got.push(frame);
                pending = pending.slice(nb);
              }
              want++;
              b.drv.tryRecycle();
              a.drv.tryRecycle();
            }
            expect(got.length).toBe(want);
            got.forEach((g, i) => {
              expect(same(g, frames[i]!)).toBe(true);
            });
          },
        ),
        { numRuns: 30 },
      );
    });
  }

  it("gpu: random command streams never break the device, and the host copy matches the guest backing", () => {
    const cmdArb = fc.oneof(
      fc.record({
        c: fc.constant(GpuCmd.RESOURCE_CREATE_2D),
        id: fc.integer({ min: 0, max: 3 }),
        w: fc.integer({ min: 0, max: 40 }),
        h: fc.integer({ min: 0, max: 40 }),
      }),
      fc.record({ c: fc.constant(GpuCmd.RESOURCE_UNREF), id: fc.integer({ min: 0, max: 3 }) }),
      fc.record({
        c: fc.constant(GpuCmd.RESOURCE_ATTACH_BACKING),
        id: fc.integer({ min: 0, max: 3 }),
        pieces: fc.integer({ min: 1, max: 5 }),
      }),
      fc.record({ c: fc.constant(GpuCmd.RESOURCE_DETACH_BACKING), id: fc.integer({ min: 0, max: 3 }) }),
      fc.record({
        c: fc.constant(GpuCmd.TRANSFER_TO_HOST_2D),
        id: fc.integer({ min: 0, max: 3 }),
        x: fc.integer({ min: 0, max: 40 }),
        y: fc.integer({ min: 0, max: 40 }),
        w: fc.integer({ min: 0, max: 40 }),
        h: fc.integer({ min: 0, max: 40 }),
      }),
      fc.record({
        c: fc.constant(GpuCmd.SET_SCANOUT),
        id: fc.integer({ min: 0, max: 3 }),
        w: fc.integer({ min: 0, max: 40 }),
        h: fc.integer({ min: 0, max: 40 }),
      }),
      fc.record({
        c: fc.constant(GpuCmd.RESOURCE_FLUSH),
        id: fc.integer({ min: 0, max: 3 }),
        w: fc.integer({ min: 0, max: 40 }),
        h: fc.integer({ min: 0, max: 40 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(cmdArb, { maxLength: 40 }), (cmds) => {
        const gpu = new VirtioGpu({ maxHostMemory: 16 << 10 });
        const r = rig("mmio", gpu, 4 << 20);
        r.drv.init();
        const sizes = new Map<number, { w: number; h: number; backed: boolean }>();
        const backingOf = (id: number) => 0x20_0000 + id * 0x2_0000;
        // Guest backing contents: a pattern per resource.
        for (let id = 1; id <= 3; id++) r.mem.bytes.fill(id * 17, backingOf(id), backingOf(id) + 0x2_0000);
        const send = (body: number[], type: number, extra?: Uint8Array) => {
          const b = new Uint8Array(24 + 4 * body.length);
          const d = new DataView(b.buffer);
          d.setUint32(0, type, true);
          body.forEach((v, i) => {
            d.setUint32(24 + 4 * i, v >>> 0, true);
          });
          r.drv.queue(0).add(extra ? [b, extra] : [b], [24], 0);
          const u = r.drv.queue(0).used();
          r.drv.tryRecycle();
          return new DataView(u[0]!.in[0]!.buffer).getUint32(0, true);
        };
        for (const c of cmds) {
          let resp: number;
          switch (c.c) {
            case GpuCmd.RESOURCE_CREATE_2D:
              resp = send([c.id, GpuFormat.B8G8R8A8_UNORM, c.w, c.h], c.c);
              if (resp === GpuResp.OK_NODATA) sizes.set(c.id, { w: c.w, h: c.h, backed: false });
              break;
            case GpuCmd.RESOURCE_UNREF:
              resp = send([c.id, 0], c.c);
              if (resp === GpuResp.OK_NODATA) sizes.delete(c.id);
              break;
            case GpuCmd.RESOURCE_ATTACH_BACKING: {
              const s = sizes.get(c.id);
              const total = s ? s.w * s.h * 4 : 64;
              const ents = new Uint8Array(16 * c.pieces);
              const dv = new DataView(ents.buffer);
              const per = Math.ceil(total / c.pieces);
              for (let i = 0; i < c.pieces; i++) {
                dv.setUint32(16 * i, backingOf(c.id) + i * per, true);
                dv.setUint32(16 * i + 8, Math.max(0, Math.min(per, total - i * per)) || 1, true);
              }
              resp = send([c.id, c.pieces], c.c, ents);
              if (resp === GpuResp.OK_NODATA && s) s.backed = true;
              break;
            }
            case GpuCmd.RESOURCE_DETACH_BACKING: {
              resp = send([c.id, 0], c.c);
              const s = sizes.get(c.id);
              if (resp === GpuResp.OK_NODATA && s) s.backed = false;
              break;
            }
            case GpuCmd.TRANSFER_TO_HOST_2D: {
              const s = sizes.get(c.id);
              const stride = (s?.w ?? 0) * 4;
              resp = send([c.x, c.y, c.w, c.h, c.y * stride + c.x * 4, 0, c.id, 0], c.c);
              const fits = s?.backed === true && c.x + c.w <= s.w && c.y + c.h <= s.h;
              expect(resp === GpuResp.OK_NODATA).toBe(fits);
              break;
            }
            case GpuCmd.SET_SCANOUT:
              resp = send([0, 0, c.w, c.h, 0, c.id], c.c);
              break;
            default:
              resp = send([0, 0, c.w, c.h, c.id, 0], c.c);
          }
          expect(resp === GpuResp.OK_NODATA || resp >= GpuResp.ERR_UNSPEC).toBe(true);
        }
        expect(r.drv.needsReset).toBe(false);
        // Whatever the scanout shows came from its resource's backing pattern (or is still zero).
        const img = gpu.toRGBA(0);
        const id = img ? gpu.framebuffer(0)!.data : undefined;
        if (id) expect(id.every((v) => v === 0 || v % 17 === 0)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
