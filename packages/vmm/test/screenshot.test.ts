import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { encodePng, GpuFormat, ScreenshotError, writeScreenshot } from "../src/screenshot.js";

describe("--screenshot PNG encoding", () => {
  it("B8G8R8X8 (Linux's XRGB8888) pixels come out as RGB, opaque, honouring the stride", async () => {
    const width = 3;
    const height = 2;
    const stride = 16; // 4 bytes of row padding
    const bytes = new Uint8Array(stride * height);
    // (0,0) red, (1,0) green, (2,1) blue, in memory order B, G, R, X.
    bytes.set([0, 0, 255, 0], 0);
    bytes.set([0, 255, 0, 0], 4);
    bytes.set([255, 0, 0, 0], stride + 8);
    const dir = mkdtempSync(join(tmpdir(), "tskvm-shot-"));
    try {
      const path = join(dir, "shot.png");
      await writeScreenshot(path, { width, height, stride, format: GpuFormat.B8G8R8X8_UNORM, data: bytes });
      const png = PNG.sync.read(readFileSync(path));
      expect([png.width, png.height]).toEqual([3, 2]);
      const px = (x: number, y: number) => [
        ...png.data.subarray((y * width + x) * 4, (y * width + x) * 4 + 4),
      ];
      expect(px(0, 0)).toEqual([255, 0, 0, 255]);
      expect(px(1, 0)).toEqual([0, 255, 0, 255]);
      expect(px(2, 1)).toEqual([0, 0, 255, 255]);
      expect(px(0, 1)).toEqual([0, 0, 0, 255]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("formats with alpha keep it", () => {
    const png = PNG.sync.read(
      encodePng({
        width: 1,
        height: 1,
        stride: 4,
        format: GpuFormat.R8G8B8A8_UNORM,
        data: new Uint8Array([1, 2, 3, 4]),
      }),
    );
    expect([...png.data]).toEqual([1, 2, 3, 4]);
    const argb = PNG.sync.read(
      encodePng({
        width: 1,
        height: 1,
        stride: 4,
        format: GpuFormat.A8R8G8B8_UNORM,
        data: new Uint8Array([4, 1, 2, 3]),
      }),
    );
    expect([...argb.data]).toEqual([1, 2, 3, 4]);
  });

  it("crops to the scanout rectangle", () => {
    const data = new Uint8Array(4 * 4 * 4);
    data.set([9, 8, 7, 0], (2 * 4 + 3) * 4); // pixel (3, 2) in B, G, R, X
    const png = PNG.sync.read(
      encodePng({
        width: 4,
        height: 4,
        stride: 16,
        format: GpuFormat.B8G8R8X8_UNORM,
        data,
        rect: { x: 3, y: 2, width: 1, height: 2 },
      }),
    );
    expect([png.width, png.height]).toEqual([1, 2]);
    expect([...png.data.subarray(0, 4)]).toEqual([7, 8, 9, 255]);
    expect(() =>
      encodePng({
        width: 4,
        height: 4,
        stride: 16,
        format: 2,
        data,
        rect: { x: 3, y: 3, width: 2, height: 1 },
      }),
    ).toThrow("outside");
  });

  it("refuses unknown formats and short buffers", () => {
    expect(() => encodePng({ width: 1, height: 1, stride: 4, format: 99, data: new Uint8Array(4) })).toThrow(
      ScreenshotError,
    );
    expect(() => encodePng({ width: 2, height: 2, stride: 8, format: 2, data: new Uint8Array(12) })).toThrow(
      "less than 2 rows",
    );
    expect(() => encodePng({ width: 2, height: 1, stride: 4, format: 2, data: new Uint8Array(8) })).toThrow(
      "stride 4 < 8",
    );
  });
});
