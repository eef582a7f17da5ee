import { describe, expect, it } from "vitest";
import {
  GPU_EVENT_DISPLAY,
  type GpuChangeEvent,
  GpuCmd,
  GpuConfig,
  GpuFormat,
  GpuResp,
  makeEdid,
  VirtioGpu,
} from "../src/index";
import type { MockDriver } from "../src/testing/index";
import { rig, TRANSPORTS } from "./harness";

function cmd(type: number, body: number[] = [], opts: { fence?: number } = {}): Uint8Array {
  const b = new Uint8Array(24 + 4 * body.length);
  const d = new DataView(b.buffer);
  d.setUint32(0, type, true);
  if (opts.fence !== undefined) {
    d.setUint32(4, 1, true);
    d.setUint32(8, opts.fence, true);
  }
  body.forEach((v, i) => {
    d.setUint32(24 + 4 * i, v >>> 0, true);
  });
  return b;
}

function entries(list: [number, number][]): Uint8Array {
  const b = new Uint8Array(16 * list.length);
  const d = new DataView(b.buffer);
  list.forEach(([addr, len], i) => {
    d.setUint32(16 * i, addr % 0x1_0000_0000, true);
    d.setUint32(16 * i + 4, Math.floor(addr / 0x1_0000_0000), true);
    d.setUint32(16 * i + 8, len, true);
  });
  return b;
}

/** Send on the control queue; returns the response type and bytes. */
function send(drv: MockDriver, out: Uint8Array[], respLen = 24, q = 0) {
  drv.queue(q).add(out, respLen > 0 ? [respLen] : [], 1);
  const u = drv.queue(q).used();
  expect(u).toHaveLength(1);
  drv.tryRecycle();
  const r = u[0]!.in[0] ?? new Uint8Array(0);
  const d = new DataView(r.buffer, r.byteOffset, r.byteLength);
  return { type: r.length >= 4 ? d.getUint32(0, true) : -1, len: u[0]!.len, resp: r, view: d };
}

const BACK_A = 0xc0_0000;
const BACK_B = 0xd0_0000;

for (const kind of TRANSPORTS) {
  describe(`virtio-gpu 2D over ${kind} (virtio 1.2 5.7)`, () => {
    const make = () => {
      const gpu = new VirtioGpu({ displays: [{ width: 1024, height: 768 }], maxHostMemory: 1 << 20 });
      const r = rig(kind, gpu);
      expect(r.drv.init()).toBe(true);
      return r;
    };

    /** Resource 1: 64x32 B8G8R8X8 with backing in two scattered pieces, filled with a pattern. */
    const setupResource = (r: ReturnType<typeof make>) => {
      const { drv, mem } = r;
      const bytes = 64 * 32 * 4;
      expect(send(drv, [cmd(GpuCmd.RESOURCE_CREATE_2D, [1, GpuFormat.B8G8R8X8_UNORM, 64, 32])]).type).toBe(
        GpuResp.OK_NODATA,
      );
      const half = bytes / 2;
      const attach = cmd(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 2]);
      expect(
        send(drv, [
          attach,
          entries([
            [BACK_A, half],
            [BACK_B, half],
          ]),
        ]).type,
      ).toBe(GpuResp.OK_NODATA);
      // Pixel (x, y) = B x, G y, R 0x80.
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 64; x++) {
          const off = (y * 64 + x) * 4;
          const gpa = off < half ? BACK_A + off : BACK_B + off - half;
          mem.bytes.set([x, y, 0x80, 0], gpa);
        }
      }
    };

    it("5.7.6.8 GET_DISPLAY_INFO reports the enabled display size", () => {
      const { drv } = make();
      const r = send(drv, [cmd(GpuCmd.GET_DISPLAY_INFO)], 408);
      expect(r.type).toBe(GpuResp.OK_DISPLAY_INFO);
      expect(r.len).toBe(408);
      expect([
        r.view.getUint32(24 + 8, true),
        r.view.getUint32(24 + 12, true),
        r.view.getUint32(24 + 16, true),
      ]).toEqual([1024, 768, 1]);
      expect(r.view.getUint32(24 + 24 + 16, true)).toBe(0);
    });

    it("5.7.6.8 GET_EDID returns a valid EDID 1.4 block for the display", () => {
      const { drv } = make();
      const r = send(drv, [cmd(GpuCmd.GET_EDID, [0, 0])], 24 + 8 + 1024);
      expect(r.type).toBe(GpuResp.OK_EDID);
      expect(r.view.getUint32(24, true)).toBe(128);
      const edid = r.resp.subarray(32, 160);
      expect([...edid.subarray(0, 8)]).toEqual([0, 255, 255, 255, 255, 255, 255, 0]);
      expect(edid.reduce((a, b) => a + b, 0) % 256).toBe(0);
      // Preferred timing: 1024 x 768.
      expect(edid[56]! | ((edid[58]! >> 4) << 8)).toBe(1024);
      expect(edid[59]! | ((edid[61]! >> 4) << 8)).toBe(768);
      expect(send(drv, [cmd(GpuCmd.GET_EDID, [5, 0])], 24).type).toBe(GpuResp.ERR_INVALID_SCANOUT_ID);
    });

    it("5.7.6.8 create, attach scattered backing, transfer, set scanout, flush: the host sees the pixels", () => {
      const r = make();
      const events: GpuChangeEvent[] = [];
      r.dev.onChange((e) => events.push(e));
      setupResource(r);
      expect(send(r.drv, [cmd(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 64, 32, 0, 0, 1, 0])]).type).toBe(
        GpuResp.OK_NODATA,
      );
      expect(send(r.drv, [cmd(GpuCmd.SET_SCANOUT, [0, 0, 64, 32, 0, 1])]).type).toBe(GpuResp.OK_NODATA);
      expect(send(r.drv, [cmd(GpuCmd.RESOURCE_FLUSH, [8, 4, 16, 8, 1, 0])]).type).toBe(GpuResp.OK_NODATA);
      expect(events.at(-1)).toEqual({ scanout: 0, x: 8, y: 4, width: 16, height: 8 });
      const img = r.dev.toRGBA(0)!;
      expect(img.width).toBe(64);
      const px = (x: number, y: number) => [...img.rgba.subarray((y * 64 + x) * 4, (y * 64 + x) * 4 + 4)];
      expect(px(5, 7)).toEqual([0x80, 7, 5, 255]);
      expect(px(63, 31)).toEqual([0x80, 31, 63, 255]);
    });

    it("5.7.6.8 a partial transfer copies only its rectangle (offset = y * stride + x * 4)", () => {
      const r = make();
      setupResource(r);
      const off = 10 * 256 + 4 * 4;
      expect(send(r.drv, [cmd(GpuCmd.TRANSFER_TO_HOST_2D, [4, 10, 2, 1, off, 0, 1, 0])]).type).toBe(
        GpuResp.OK_NODATA,
      );
      send(r.drv, [cmd(GpuCmd.SET_SCANOUT, [0, 0, 64, 32, 0, 1])]);
      const fb = r.dev.framebuffer(0)!;
      expect([...fb.data.subarray((10 * 64 + 4) * 4, (10 * 64 + 6) * 4)]).toEqual([
        4, 10, 0x80, 0, 5, 10, 0x80, 0,
      ]);
      expect(fb.data[(10 * 64 + 6) * 4]).toBe(0);
    });

    it("5.7.6.8 ATTACH_BACKING: an entry outside guest RAM is refused", () => {
      const { drv } = make();
      send(drv, [cmd(GpuCmd.RESOURCE_CREATE_2D, [1, GpuFormat.B8G8R8A8_UNORM, 16, 16])]);
      const attach = cmd(GpuCmd.RESOURCE_ATTACH_BACKING, [1, 2]);
      const r = send(drv, [
        attach,
        entries([
          [BACK_A, 512],
          [2 ** 40, 512],
        ]),
      ]);
      expect(r.type).toBe(GpuResp.ERR_UNSPEC);
      // A transfer without backing is refused too.
      expect(send(drv, [cmd(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 16, 16, 0, 0, 1, 0])]).type).toBe(
        GpuResp.ERR_UNSPEC,
      );
    });

    it("5.7.6.8 a transfer beyond the backing or the resource answers INVALID_PARAMETER", () => {
      const r = make();
      setupResource(r);
      expect(send(r.drv, [cmd(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 65, 1, 0, 0, 1, 0])]).type).toBe(
        GpuResp.ERR_INVALID_PARAMETER,
      );
      expect(send(r.drv, [cmd(GpuCmd.TRANSFER_TO_HOST_2D, [0, 0, 64, 32, 4096, 0, 1, 0])]).type).toBe(
        GpuResp.ERR_INVALID_PARAMETER,
      );
    });

    it("5.7.6.8 invalid resource ids, formats and sizes are refused; memory is capped", () => {
      const { drv } = make();
      const create = (id: number, fmt: number, w: number, h: number) =>
        send(drv, [cmd(GpuCmd.RESOURCE_CREATE_2D, [id, fmt, w, h])]).type;
      expect(create(0, 1, 8, 8)).toBe(GpuResp.ERR_INVALID_RESOURCE_ID);
      expect(create(2, 999, 8, 8)).toBe(GpuResp.ERR_INVALID_PARAMETER);
      expect(create(2, 1, 0, 8)).toBe(GpuResp.ERR_INVALID_PARAMETER);
      expect(create(2, 1, 1024, 1024)).toBe(GpuResp.ERR_OUT_OF_MEMORY);
      expect(create(2, 1, 8, 8)).toBe(GpuResp.OK_NODATA);
      expect(create(2, 1, 8, 8)).toBe(GpuResp.ERR_INVALID_RESOURCE_ID);
      expect(send(drv, [cmd(GpuCmd.SET_SCANOUT, [0, 0, 8, 8, 0, 9])]).type).toBe(
        GpuResp.ERR_INVALID_RESOURCE_ID,
      );
      expect(send(drv, [cmd(GpuCmd.SET_SCANOUT, [0, 0, 8, 8, 3, 2])]).type).toBe(
        GpuResp.ERR_INVALID_SCANOUT_ID,
      );
      expect(send(drv, [cmd(GpuCmd.SET_SCANOUT, [4, 0, 8, 8, 0, 2])]).type).toBe(
        GpuResp.ERR_INVALID_PARAMETER,
      );
      expect(send(drv, [cmd(GpuCmd.RESOURCE_UNREF, [2, 0])]).type).toBe(GpuResp.OK_NODATA);
      expect(send(drv, [cmd(GpuCmd.RESOURCE_UNREF, [2, 0])]).type).toBe(GpuResp.ERR_INVALID_RESOURCE_ID);
      expect(send(drv, [cmd(0x0207)]).type).toBe(GpuResp.ERR_UNSPEC);
    });

    it("5.7.6.7 a fenced command's response echoes VIRTIO_GPU_FLAG_FENCE and fence_id", () => {
      const { drv } = make();
      const r = send(drv, [cmd(GpuCmd.RESOURCE_CREATE_2D, [3, 1, 4, 4], { fence: 77 })]);
      expect(r.type).toBe(GpuResp.OK_NODATA);
      expect(r.view.getUint32(4, true) & 1).toBe(1);
      expect(r.view.getUint32(8, true)).toBe(77);
    });

    it("5.7.6.10 cursorq: UPDATE_CURSOR and MOVE_CURSOR without a response buffer", () => {
      const r = make();
      setupResource(r);
      const seen: number[] = [];
      r.dev.onCursor((c) => seen.push(c.x));
      send(r.drv, [cmd(GpuCmd.UPDATE_CURSOR, [0, 10, 20, 0, 1, 2, 3, 0])], 0, 1);
      send(r.drv, [cmd(GpuCmd.MOVE_CURSOR, [0, 30, 40, 0, 0, 0, 0, 0])], 0, 1);
      expect(r.dev.cursor).toEqual({ scanout: 0, x: 30, y: 40, resourceId: 1, hotX: 2, hotY: 3 });
      expect(seen).toEqual([10, 30]);
    });

    it("5.7.4 a display resize sets VIRTIO_GPU_EVENT_DISPLAY; events_clear clears it", () => {
      const r = make();
      r.dev.resizeDisplay(0, 800, 600);
      expect(r.irqs().config).toBe(true);
      expect(r.drv.readConfigStable(GpuConfig.EVENTS_READ, 4)).toBe(GPU_EVENT_DISPLAY);
      r.t.configWrite(GpuConfig.EVENTS_CLEAR, 4, GPU_EVENT_DISPLAY);
      expect(r.drv.readConfigStable(GpuConfig.EVENTS_READ, 4)).toBe(0);
      const d = send(r.drv, [cmd(GpuCmd.GET_DISPLAY_INFO)], 408);
      expect(d.view.getUint32(24 + 8, true)).toBe(800);
    });

    it("a command shorter than its header answers ERR_UNSPEC", () => {
      const { drv } = make();
      expect(send(drv, [new Uint8Array(10)]).type).toBe(GpuResp.ERR_UNSPEC);
    });
  });
}

describe("EDID", () => {
  it("large modes clamp to the 12-bit fields and keep a valid checksum", () => {
    const e = makeEdid(8000, 5000);
    expect(e.reduce((a, b) => a + b, 0) % 256).toBe(0);
    expect(e[56]! | ((e[58]! >> 4) << 8)).toBe(4095);
  });
});
