/**
 * `--screenshot`: encode a scanout's pixels as a PNG (pngjs). The pixels come from the
 * virtio-gpu resource attached to the scanout, in one of the virtio-gpu formats (virtio 1.2,
 * 5.7.6.8: the name gives the byte order in memory, e.g. B8G8R8X8 = B, G, R, X — what Linux's
 * virtio-gpu driver uses for DRM_FORMAT_XRGB8888).
 */
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import type { PNG as PngType } from "pngjs";

/**
 * pngjs, loaded on the first screenshot: it is CommonJS across a dozen modules, and importing it
 * with the monitor cost every boot ~10 ms before the first guest instruction.
 */
let pngModule: { PNG: typeof PngType } | undefined;
const png = () => {
  pngModule ??= createRequire(import.meta.url)("pngjs") as { PNG: typeof PngType };
  return pngModule.PNG;
};

/** virtio-gpu 2D formats (virtio 1.2, 5.7.6.8, enum virtio_gpu_formats). */
export const GpuFormat = {
  B8G8R8A8_UNORM: 1,
  B8G8R8X8_UNORM: 2,
  A8R8G8B8_UNORM: 3,
  X8R8G8B8_UNORM: 4,
  R8G8B8A8_UNORM: 67,
  X8B8G8R8_UNORM: 68,
  A8B8G8R8_UNORM: 121,
  R8G8B8X8_UNORM: 134,
} as const;

/** Byte offsets of R, G, B and alpha (-1: opaque) within a pixel, per format. */
const LAYOUT: Record<number, readonly [number, number, number, number]> = {
  [GpuFormat.B8G8R8A8_UNORM]: [2, 1, 0, 3],
  [GpuFormat.B8G8R8X8_UNORM]: [2, 1, 0, -1],
  [GpuFormat.A8R8G8B8_UNORM]: [1, 2, 3, 0],
  [GpuFormat.X8R8G8B8_UNORM]: [1, 2, 3, -1],
  [GpuFormat.R8G8B8A8_UNORM]: [0, 1, 2, 3],
  [GpuFormat.X8B8G8R8_UNORM]: [3, 2, 1, -1],
  [GpuFormat.A8B8G8R8_UNORM]: [3, 2, 1, 0],
  [GpuFormat.R8G8B8X8_UNORM]: [0, 1, 2, -1],
};

/**
 * A scanout's pixels; the same shape as `@tskvm/virtio`'s `Framebuffer`, so a VirtioGpu
 * framebuffer can be passed as it is.
 */
export interface Framebuffer {
  /** Size of the resource. */
  width: number;
  height: number;
  /** Bytes per row of `data` (>= width * 4). */
  stride: number;
  format: number;
  data: Uint8Array;
  /** The part of the resource the scanout shows; the whole resource when absent. */
  rect?: { x: number; y: number; width: number; height: number };
}

export class ScreenshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScreenshotError";
  }
}

/** Convert a framebuffer to a PNG file's bytes (8-bit RGBA). */
export function encodePng(fb: Framebuffer): Buffer {
  const layout = LAYOUT[fb.format];
  if (!layout) throw new ScreenshotError(`screenshot: unsupported virtio-gpu format ${fb.format}`);
  const { stride } = fb;
  const rect = fb.rect ?? { x: 0, y: 0, width: fb.width, height: fb.height };
  const { width, height } = rect;
  const dims = [fb.width, fb.height, rect.x, rect.y, width, height];
  if (
    !dims.every((n) => Number.isInteger(n) && n >= 0) ||
    width < 1 ||
    height < 1 ||
    width > 16384 ||
    height > 16384
  ) {
    throw new ScreenshotError(`screenshot: bad size ${width}x${height}`);
  }
  if (rect.x + width > fb.width || rect.y + height > fb.height) {
    throw new ScreenshotError(
      `screenshot: scanout rectangle lies outside the ${fb.width}x${fb.height} resource`,
    );
  }
  if (!Number.isInteger(stride) || stride < fb.width * 4) {
    throw new ScreenshotError(`screenshot: stride ${stride} < ${fb.width * 4}`);
  }
  if (fb.data.length < stride * (fb.height - 1) + fb.width * 4) {
    throw new ScreenshotError(
      `screenshot: ${fb.data.length} bytes is less than ${fb.height} rows of ${stride}`,
    );
  }
  const PNG = png();
  const out = new PNG({ width, height });
  const [r, g, b, a] = layout;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (rect.y + y) * stride + (rect.x + x) * 4;
      const d = (y * width + x) * 4;
      out.data[d] = fb.data[s + r]!;
      out.data[d + 1] = fb.data[s + g]!;
      out.data[d + 2] = fb.data[s + b]!;
      out.data[d + 3] = a < 0 ? 0xff : fb.data[s + a]!;
    }
  }
  return PNG.sync.write(out);
}

/** Write a PNG of the framebuffer to `path`. */
export async function writeScreenshot(path: string, fb: Framebuffer): Promise<void> {
  await writeFile(path, encodePng(fb));
}
