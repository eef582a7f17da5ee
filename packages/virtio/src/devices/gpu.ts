import { DeviceType, Feature } from "../constants";
import { VirtioDevice } from "../device";
import { features } from "../features";
import type { GuestMemory } from "../memory";
import type { DescriptorChain } from "../queue/chain";
import { makeEdid } from "./gpu-edid";

/** virtio 1.2 5.7.3: GPU feature bits. */
export const GpuFeature = { VIRGL: 0, EDID: 1, RESOURCE_UUID: 2, RESOURCE_BLOB: 3, CONTEXT_INIT: 4 } as const;

/** virtio 1.2 5.7.6.7: command and response types. */
export const GpuCmd = {
  GET_DISPLAY_INFO: 0x0100,
  RESOURCE_CREATE_2D: 0x0101,
  RESOURCE_UNREF: 0x0102,
  SET_SCANOUT: 0x0103,
  RESOURCE_FLUSH: 0x0104,
  TRANSFER_TO_HOST_2D: 0x0105,
  RESOURCE_ATTACH_BACKING: 0x0106,
  RESOURCE_DETACH_BACKING: 0x0107,
  GET_CAPSET_INFO: 0x0108,
  GET_CAPSET: 0x0109,
  GET_EDID: 0x010a,
  UPDATE_CURSOR: 0x0300,
  MOVE_CURSOR: 0x0301,
} as const;

export const GpuResp = {
  OK_NODATA: 0x1100,
  OK_DISPLAY_INFO: 0x1101,
  OK_EDID: 0x1104,
  ERR_UNSPEC: 0x1200,
  ERR_OUT_OF_MEMORY: 0x1201,
  ERR_INVALID_SCANOUT_ID: 0x1202,
  ERR_INVALID_RESOURCE_ID: 0x1203,
  ERR_INVALID_CONTEXT_ID: 0x1204,
  ERR_INVALID_PARAMETER: 0x1205,
} as const;

/** virtio 1.2 5.7.6.8: 2D formats (all 4 bytes per pixel); names give byte order in memory. */
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

/** virtio 1.2 5.7.4: configuration layout. */
export const GpuConfig = {
  EVENTS_READ: 0,
  EVENTS_CLEAR: 4,
  NUM_SCANOUTS: 8,
  NUM_CAPSETS: 12,
  SIZE: 16,
} as const;
/** VIRTIO_GPU_EVENT_DISPLAY: the display configuration changed. */
export const GPU_EVENT_DISPLAY = 1;
/** VIRTIO_GPU_MAX_SCANOUTS. */
export const GPU_MAX_SCANOUTS = 16;
/** VIRTIO_GPU_FLAG_FENCE. */
const FLAG_FENCE = 1;
const HDR = 24;
/** Most scatter entries in one ATTACH_BACKING (QEMU uses the same bound). */
const MAX_BACKING_ENTRIES = 16384;
const MAX_DIM = 16384;

/** A rectangle in pixels. */
export interface GpuRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Something changed on a scanout (after RESOURCE_FLUSH or SET_SCANOUT): redraw this rectangle. */
export interface GpuChangeEvent extends GpuRect {
  scanout: number;
}

/** Cursor state after UPDATE_CURSOR / MOVE_CURSOR. */
export interface GpuCursor {
  scanout: number;
  x: number;
  y: number;
  /** 0: hidden. */
  resourceId: number;
  hotX: number;
  hotY: number;
}

interface Resource {
  width: number;
  height: number;
  format: number;
  /** Host copy of the pixels, stride width * 4. */
  data: Uint8Array;
  /** Guest backing pages (the scatter list), with running offsets. */
  backing: { addr: number; len: number; start: number }[] | undefined;
  backingLen: number;
}

interface Scanout {
  width: number;
  height: number;
  enabled: boolean;
  resourceId: number;
  rect: GpuRect;
}

/** What the host reads to show a scanout. */
export interface Framebuffer {
  width: number;
  height: number;
  format: number;
  /** Bytes per row of `data`. */
  stride: number;
  /** The whole resource; the scanout shows `rect` of it. */
  data: Uint8Array;
  rect: GpuRect;
}

/** Saved gpu state (plain JSON). */
export interface GpuState {
  resources: {
    id: number;
    width: number;
    height: number;
    format: number;
    data: string;
    backing: { addr: number; len: number }[] | undefined;
  }[];
  scanouts: { width: number; height: number; enabled: boolean; resourceId: number; rect: GpuRect }[];
  cursor: GpuCursor;
}

/** Options for VirtioGpu. */
export interface VirtioGpuOptions {
  /** Display sizes, one per scanout (default one 1280x800). */
  displays?: { width: number; height: number }[];
  /** Most host memory for resources, in bytes (default 256 MiB); beyond: ERR_OUT_OF_MEMORY. */
  maxHostMemory?: number;
  /** Offer VIRTIO_GPU_F_EDID (default true). */
  edid?: boolean;
}

const CONTROL = 0;
const CURSOR = 1;

/**
 * virtio-gpu in 2D mode (virtio 1.2 5.7): display info, EDID, 2D resources with guest
 * backing, scanouts, transfers and flushes, and the cursor queue. The host reads pixels with
 * `framebuffer(scanout)` (raw, in the resource's format; `toRGBA` converts) and learns about
 * updates through `onChange`. Encoding (PNG, canvas) is the embedder's job.
 *
 * Every scatter entry of ATTACH_BACKING is checked against guest RAM, transfers are bounded
 * by the resource and its backing, and resource memory is capped.
 */
export class VirtioGpu extends VirtioDevice {
  readonly deviceType = DeviceType.GPU;
  readonly queueSizes = [256, 16];
  readonly offered;
  private readonly resources = new Map<number, Resource>();
  private readonly scanouts: Scanout[];
  private hostBytes = 0;
  private readonly maxHostMemory: number;
  private readonly listeners = new Set<(e: GpuChangeEvent) => void>();
  private readonly cursorListeners = new Set<(c: GpuCursor) => void>();
  cursor: GpuCursor = { scanout: 0, x: 0, y: 0, resourceId: 0, hotX: 0, hotY: 0 };
  private readonly resp = new Uint8Array(HDR + 8 + 1024);
  private readonly respView = new DataView(this.resp.buffer);
  private readonly cmd = new Uint8Array(64);
  private readonly cmdView = new DataView(this.cmd.buffer);

  constructor(opts: VirtioGpuOptions = {}) {
    super(GpuConfig.SIZE);
    const displays = (opts.displays ?? [{ width: 1280, height: 800 }]).slice(0, GPU_MAX_SCANOUTS);
    this.scanouts = displays.map((d) => ({
      width: d.width,
      height: d.height,
      enabled: false,
      resourceId: 0,
      rect: { x: 0, y: 0, width: 0, height: 0 },
    }));
    this.maxHostMemory = opts.maxHostMemory ?? 256 << 20;
    const bits: number[] = [Feature.VERSION_1, Feature.EVENT_IDX, Feature.INDIRECT_DESC, Feature.RING_RESET];
    if (opts.edid !== false) bits.push(GpuFeature.EDID);
    this.offered = features(...bits);
    this.configView.setUint32(GpuConfig.NUM_SCANOUTS, this.scanouts.length, true);
  }

  /** Listen for scanout changes; returns an unsubscribe function. */
  onChange(fn: (e: GpuChangeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onCursor(fn: (c: GpuCursor) => void): () => void {
    this.cursorListeners.add(fn);
    return () => this.cursorListeners.delete(fn);
  }

  /** The pixels a scanout shows, or undefined when it is disabled. */
  framebuffer(scanout = 0): Framebuffer | undefined {
    const s = this.scanouts[scanout];
    if (s === undefined || !s.enabled) return undefined;
    const r = this.resources.get(s.resourceId);
    if (r === undefined) return undefined;
    return {
      width: r.width,
      height: r.height,
      format: r.format,
      stride: r.width * 4,
      data: r.data,
      rect: { ...s.rect },
    };
  }

  /** The scanout's visible rectangle as tightly packed RGBA bytes (for PNG encoders, canvases). */
  toRGBA(scanout = 0): { width: number; height: number; rgba: Uint8Array } | undefined {
    const fb = this.framebuffer(scanout);
    if (fb === undefined) return undefined;
    const { rect, data, stride } = fb;
    const out = new Uint8Array(rect.width * rect.height * 4);
    // Byte positions of R, G, B, A (-1: opaque) in memory for each format (5.7.6.8).
    const order = rgbaOrder(fb.format);
    for (let y = 0; y < rect.height; y++) {
      let src = (rect.y + y) * stride + rect.x * 4;
      let dst = y * rect.width * 4;
      for (let x = 0; x < rect.width; x++, src += 4, dst += 4) {
        out[dst] = data[src + order[0]]!;
        out[dst + 1] = data[src + order[1]]!;
        out[dst + 2] = data[src + order[2]]!;
        out[dst + 3] = order[3] < 0 ? 255 : data[src + order[3]]!;
      }
    }
    return { width: rect.width, height: rect.height, rgba: out };
  }

  /** The host display changed size: VIRTIO_GPU_EVENT_DISPLAY and a config change (5.7.4). */
  resizeDisplay(scanout: number, width: number, height: number): void {
    const s = this.scanouts[scanout];
    if (s === undefined) return;
    s.width = width;
    s.height = height;
    const ev = this.configView.getUint32(GpuConfig.EVENTS_READ, true);
    this.configView.setUint32(GpuConfig.EVENTS_READ, ev | GPU_EVENT_DISPLAY, true);
    this.host.configChanged();
  }

  /** Host bytes held by resources. */
  get resourceBytes(): number {
    return this.hostBytes;
  }

  /** Resources (pixels base64), backing lists, scanouts and cursor, as plain JSON. */
  override saveState(): GpuState {
    return {
      resources: [...this.resources].map(([id, r]) => ({
        id,
        width: r.width,
        height: r.height,
        format: r.format,
        data: toBase64(r.data),
        backing: r.backing?.map((b) => ({ addr: b.addr, len: b.len })),
      })),
      scanouts: this.scanouts.map((s) => ({ ...s, rect: { ...s.rect } })),
      cursor: { ...this.cursor },
    };
  }

  override loadState(s: unknown): boolean {
    const st = s as GpuState;
    if (st === null || typeof st !== "object" || !Array.isArray(st.resources) || !Array.isArray(st.scanouts))
      return false;
    if (st.scanouts.length !== this.scanouts.length) return false;
    const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
    let bytes = 0;
    const resources = new Map<number, Resource>();
    for (const r of st.resources) {
      if (!u32(r.id) || r.id === 0 || resources.has(r.id) || rgbaOrderOrUndefined(r.format) === undefined)
        return false;
      if (
        !u32(r.width) ||
        !u32(r.height) ||
        r.width === 0 ||
        r.height === 0 ||
        r.width > MAX_DIM ||
        r.height > MAX_DIM
      ) {
        return false;
      }
      const data = fromBase64(r.data);
      if (data === undefined || data.length !== r.width * r.height * 4) return false;
      bytes += data.length;
      if (bytes > this.maxHostMemory) return false;
      let backing: Resource["backing"];
      let total = 0;
      if (r.backing !== undefined) {
        if (!Array.isArray(r.backing) || r.backing.length > MAX_BACKING_ENTRIES) return false;
        backing = [];
        for (const b of r.backing) {
          if (!Number.isSafeInteger(b.addr) || b.addr < 0 || !u32(b.len)) return false;
          backing.push({ addr: b.addr, len: b.len, start: total });
          total += b.len;
        }
      }
      resources.set(r.id, {
        width: r.width,
        height: r.height,
        format: r.format,
        data,
        backing,
        backingLen: total,
      });
    }
    for (const s of st.scanouts) {
      if (
        !u32(s.width) ||
        !u32(s.height) ||
        !u32(s.resourceId) ||
        s.rect === null ||
        typeof s.rect !== "object"
      )
        return false;
      if (s.enabled === true) {
        const r = resources.get(s.resourceId);
        if (r === undefined || !rectInside(s.rect, r.width, r.height)) return false;
      }
    }
    this.resources.clear();
    for (const [id, r] of resources) this.resources.set(id, r);
    this.hostBytes = bytes;
    st.scanouts.forEach((s, i) => {
      this.scanouts[i] = {
        width: s.width,
        height: s.height,
        enabled: s.enabled === true,
        resourceId: s.resourceId,
        rect: {
          x: s.rect.x >>> 0,
          y: s.rect.y >>> 0,
          width: s.rect.width >>> 0,
          height: s.rect.height >>> 0,
        },
      };
    });
    const c = st.cursor;
    if (c !== null && typeof c === "object") {
      this.cursor = {
        scanout: c.scanout >>> 0,
        x: c.x >>> 0,
        y: c.y >>> 0,
        resourceId: c.resourceId >>> 0,
        hotX: c.hotX >>> 0,
        hotY: c.hotY >>> 0,
      };
    }
    return true;
  }

  protected override onConfigWrite(offset: number, size: number, value: number): boolean {
    // 5.7.4: events_clear: writing a bit clears it in events_read.
    if (offset === GpuConfig.EVENTS_CLEAR && size === 4) {
      const ev = this.configView.getUint32(GpuConfig.EVENTS_READ, true);
      this.configView.setUint32(GpuConfig.EVENTS_READ, ev & ~value, true);
      return true;
    }
    return false;
  }

  protected onReset(): void {
    this.resources.clear();
    this.hostBytes = 0;
    for (const s of this.scanouts) {
      s.enabled = false;
      s.resourceId = 0;
    }
    this.cursor = { scanout: 0, x: 0, y: 0, resourceId: 0, hotX: 0, hotY: 0 };
  }

  queueNotify(qi: number): void {
    const ctx = this.ctx;
    const q = ctx?.queues[qi];
    if (ctx === undefined || q === undefined || (qi !== CONTROL && qi !== CURSOR)) return;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      q.pushUsed(chain, this.handle(ctx.mem, chain, qi === CURSOR));
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  /** One command: parse the header and body, execute, write the response; returns used.len. */
  private handle(mem: GuestMemory, chain: DescriptorChain, cursorQueue: boolean): number {
    const rd = chain.reader(mem);
    const n = rd.read(this.cmd);
    const c = this.cmdView;
    let respLen = HDR;
    let type: number = GpuResp.ERR_UNSPEC;
    if (n < HDR) this.count("shortCommand");
    else {
      const cmd = c.getUint32(0, true);
      const r = cursorQueue ? this.cursorCmd(cmd, n) : this.controlCmd(mem, cmd, n, chain);
      type = r.type;
      respLen = r.len;
      if (type >= GpuResp.ERR_UNSPEC) this.count(`err.${type.toString(16)}`);
    }
    if (chain.writableBytes === 0) return 0;
    // 5.7.6.7: the response header echoes the fence (and context / ring) when FENCE is set.
    const rv = this.respView;
    rv.setUint32(0, type, true);
    const flags = n >= HDR ? c.getUint32(4, true) & FLAG_FENCE : 0;
    rv.setUint32(4, flags, true);
    rv.setUint32(8, flags ? c.getUint32(8, true) : 0, true);
    rv.setUint32(12, flags ? c.getUint32(12, true) : 0, true);
    rv.setUint32(16, flags ? c.getUint32(16, true) : 0, true);
    rv.setUint32(20, flags ? c.getUint8(20) : 0, true);
    const w = chain.writer(mem);
    return w.write(this.resp.subarray(0, Math.min(respLen, chain.writableBytes)));
  }

  private ok(len = HDR): { type: number; len: number } {
    return { type: GpuResp.OK_NODATA, len };
  }

  private err(type: number): { type: number; len: number } {
    return { type, len: HDR };
  }

  private controlCmd(
    mem: GuestMemory,
    cmd: number,
    n: number,
    chain: DescriptorChain,
  ): { type: number; len: number } {
    const c = this.cmdView;
    const u32 = (o: number) => c.getUint32(o, true);
    const need = (len: number) => n >= len;
    switch (cmd) {
      case GpuCmd.GET_DISPLAY_INFO: {
        const r = this.respView;
        this.resp.fill(0, HDR, HDR + 24 * GPU_MAX_SCANOUTS);
        this.scanouts.forEach((s, i) => {
          const at = HDR + 24 * i;
          r.setUint32(at + 8, s.width, true);
          r.setUint32(at + 12, s.height, true);
          r.setUint32(at + 16, 1, true); // enabled
        });
        return { type: GpuResp.OK_DISPLAY_INFO, len: HDR + 24 * GPU_MAX_SCANOUTS };
      }
      case GpuCmd.GET_EDID: {
        if (!need(HDR + 8)) return this.err(GpuResp.ERR_UNSPEC);
        const s = this.scanouts[u32(HDR)];
        if (s === undefined) return this.err(GpuResp.ERR_INVALID_SCANOUT_ID);
        const edid = makeEdid(s.width, s.height, u32(HDR));
        this.resp.fill(0, HDR, HDR + 8 + 1024);
        this.respView.setUint32(HDR, edid.length, true);
        this.resp.set(edid, HDR + 8);
        return { type: GpuResp.OK_EDID, len: HDR + 8 + 1024 };
      }
      case GpuCmd.RESOURCE_CREATE_2D: {
        if (!need(HDR + 16)) return this.err(GpuResp.ERR_UNSPEC);
        const [id, format, width, height] = [u32(HDR), u32(HDR + 4), u32(HDR + 8), u32(HDR + 12)];
        if (id === 0 || this.resources.has(id)) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
        if (rgbaOrderOrUndefined(format) === undefined) return this.err(GpuResp.ERR_INVALID_PARAMETER);
        if (width === 0 || height === 0 || width > MAX_DIM || height > MAX_DIM) {
          return this.err(GpuResp.ERR_INVALID_PARAMETER);
        }
        const bytes = width * height * 4;
        if (this.hostBytes + bytes > this.maxHostMemory) return this.err(GpuResp.ERR_OUT_OF_MEMORY);
        this.hostBytes += bytes;
        this.resources.set(id, {
          width,
          height,
          format,
          data: new Uint8Array(bytes),
          backing: undefined,
          backingLen: 0,
        });
        return this.ok();
      }
      case GpuCmd.RESOURCE_UNREF: {
        if (!need(HDR + 8)) return this.err(GpuResp.ERR_UNSPEC);
        const id = u32(HDR);
        const r = this.resources.get(id);
        if (r === undefined) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
        this.hostBytes -= r.data.length;
        this.resources.delete(id);
        for (const s of this.scanouts) if (s.resourceId === id) this.disableScanout(s);
        return this.ok();
      }
      case GpuCmd.RESOURCE_ATTACH_BACKING:
        return this.attachBacking(mem, chain, n);
      case GpuCmd.RESOURCE_DETACH_BACKING: {
        if (!need(HDR + 8)) return this.err(GpuResp.ERR_UNSPEC);
        const r = this.resources.get(u32(HDR));
        if (r === undefined) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
        if (r.backing === undefined) return this.err(GpuResp.ERR_UNSPEC);
        r.backing = undefined;
        r.backingLen = 0;
        return this.ok();
      }
      case GpuCmd.SET_SCANOUT: {
        if (!need(HDR + 24)) return this.err(GpuResp.ERR_UNSPEC);
        const rect = readRect(c, HDR);
        const s = this.scanouts[u32(HDR + 16)];
        const id = u32(HDR + 20);
        if (s === undefined) return this.err(GpuResp.ERR_INVALID_SCANOUT_ID);
        if (id === 0) {
          // 5.7.6.8: resource_id 0 disables the scanout.
          this.disableScanout(s);
          return this.ok();
        }
        const r = this.resources.get(id);
        if (r === undefined) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
        if (!rectInside(rect, r.width, r.height) || rect.width === 0 || rect.height === 0) {
          return this.err(GpuResp.ERR_INVALID_PARAMETER);
        }
        s.enabled = true;
        s.resourceId = id;
        s.rect = rect;
        this.emit({ scanout: this.scanouts.indexOf(s), x: 0, y: 0, width: rect.width, height: rect.height });
        return this.ok();
      }
      case GpuCmd.TRANSFER_TO_HOST_2D: {
        if (!need(HDR + 32)) return this.err(GpuResp.ERR_UNSPEC);
        const rect = readRect(c, HDR);
        const offset = u32(HDR + 20) * 0x1_0000_0000 + u32(HDR + 16);
        const r = this.resources.get(u32(HDR + 24));
        if (r === undefined) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
        if (r.backing === undefined) return this.err(GpuResp.ERR_UNSPEC);
        if (!rectInside(rect, r.width, r.height)) return this.err(GpuResp.ERR_INVALID_PARAMETER);
        return this.transfer(mem, r, rect, offset) ? this.ok() : this.err(GpuResp.ERR_INVALID_PARAMETER);
      }
      case GpuCmd.RESOURCE_FLUSH: {
        if (!need(HDR + 24)) return this.err(GpuResp.ERR_UNSPEC);
        const rect = readRect(c, HDR);
        const id = u32(HDR + 16);
        const r = this.resources.get(id);
        if (r === undefined) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
        if (!rectInside(rect, r.width, r.height)) return this.err(GpuResp.ERR_INVALID_PARAMETER);
        this.scanouts.forEach((s, i) => {
          if (!s.enabled || s.resourceId !== id) return;
          const x0 = Math.max(rect.x, s.rect.x);
          const y0 = Math.max(rect.y, s.rect.y);
          const x1 = Math.min(rect.x + rect.width, s.rect.x + s.rect.width);
          const y1 = Math.min(rect.y + rect.height, s.rect.y + s.rect.height);
          if (x1 > x0 && y1 > y0) {
            this.emit({ scanout: i, x: x0 - s.rect.x, y: y0 - s.rect.y, width: x1 - x0, height: y1 - y0 });
          }
        });
        return this.ok();
      }
      default:
        // No 3D, capsets, blobs or UUIDs are offered.
        return this.err(GpuResp.ERR_UNSPEC);
    }
  }

  private disableScanout(s: Scanout): void {
    s.enabled = false;
    s.resourceId = 0;
  }

  /** ATTACH_BACKING: the scatter list follows the command; every entry must be guest RAM. */
  private attachBacking(mem: GuestMemory, chain: DescriptorChain, n: number): { type: number; len: number } {
    if (n < HDR + 8) return this.err(GpuResp.ERR_UNSPEC);
    const r = this.resources.get(this.cmdView.getUint32(HDR, true));
    const count = this.cmdView.getUint32(HDR + 4, true);
    if (r === undefined) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
    if (r.backing !== undefined) return this.err(GpuResp.ERR_UNSPEC);
    if (count === 0 || count > MAX_BACKING_ENTRIES) return this.err(GpuResp.ERR_UNSPEC);
    const rd = chain.reader(mem);
    rd.skip(HDR + 8);
    if (rd.remaining < 16 * count) return this.err(GpuResp.ERR_UNSPEC);
    const entry = new Uint8Array(16);
    const d = new DataView(entry.buffer);
    const backing: { addr: number; len: number; start: number }[] = [];
    let total = 0;
    for (let i = 0; i < count; i++) {
      if (rd.read(entry) !== 16) return this.err(GpuResp.ERR_UNSPEC);
      const hi = d.getUint32(4, true);
      const addr = hi < 0x20_0000 ? hi * 0x1_0000_0000 + d.getUint32(0, true) : Number.MAX_SAFE_INTEGER;
      const len = d.getUint32(8, true);
      total += len;
      // The backing never needs to be much larger than the resource; bounding it bounds the
      // page-wise check below.
      if (total > r.data.length + 0x10_0000 || !isRam(mem, addr, len)) {
        this.count("badBackingEntry");
        return this.err(GpuResp.ERR_UNSPEC);
      }
      backing.push({ addr, len, start: total - len });
    }
    r.backing = backing;
    r.backingLen = total;
    return this.ok();
  }

  /** TRANSFER_TO_HOST_2D: rows of rect from backing[offset + stride * row] into the resource. */
  private transfer(mem: GuestMemory, r: Resource, rect: GpuRect, offset: number): boolean {
    const stride = r.width * 4;
    const rowBytes = rect.width * 4;
    for (let row = 0; row < rect.height; row++) {
      const src = offset + stride * row;
      const dst = (rect.y + row) * stride + rect.x * 4;
      if (!this.readBacking(mem, r, src, r.data.subarray(dst, dst + rowBytes))) {
        this.count("transferOutOfBacking");
        return false;
      }
    }
    return true;
  }

  private readBacking(mem: GuestMemory, r: Resource, off: number, dst: Uint8Array): boolean {
    const b = r.backing!;
    if (off > r.backingLen || dst.length > r.backingLen - off) return false;
    // Binary search for the entry holding off.
    let lo = 0;
    let hi = b.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (b[mid]!.start <= off) lo = mid;
      else hi = mid - 1;
    }
    let done = 0;
    for (let i = lo; done < dst.length && i < b.length; i++) {
      const e = b[i]!;
      const from = off + done - e.start;
      const take = Math.min(e.len - from, dst.length - done);
      if (take <= 0) continue;
      if (!mem.read(e.addr + from, dst.subarray(done, done + take))) return false;
      done += take;
    }
    return done === dst.length;
  }

  private cursorCmd(cmd: number, n: number): { type: number; len: number } {
    if (n < HDR + 32) return this.err(GpuResp.ERR_UNSPEC);
    const c = this.cmdView;
    const u32 = (o: number) => c.getUint32(o, true);
    const scanout = u32(HDR);
    if (scanout >= this.scanouts.length) return this.err(GpuResp.ERR_INVALID_SCANOUT_ID);
    if (cmd === GpuCmd.UPDATE_CURSOR) {
      const id = u32(HDR + 16);
      if (id !== 0 && !this.resources.has(id)) return this.err(GpuResp.ERR_INVALID_RESOURCE_ID);
      this.cursor = {
        scanout,
        x: u32(HDR + 4),
        y: u32(HDR + 8),
        resourceId: id,
        hotX: u32(HDR + 20),
        hotY: u32(HDR + 24),
      };
    } else if (cmd === GpuCmd.MOVE_CURSOR) {
      this.cursor = { ...this.cursor, scanout, x: u32(HDR + 4), y: u32(HDR + 8) };
    } else return this.err(GpuResp.ERR_UNSPEC);
    for (const fn of this.cursorListeners) fn(this.cursor);
    return this.ok();
  }

  private emit(e: GpuChangeEvent): void {
    for (const fn of this.listeners) fn(e);
  }
}

function readRect(c: DataView, at: number): GpuRect {
  return {
    x: c.getUint32(at, true),
    y: c.getUint32(at + 4, true),
    width: c.getUint32(at + 8, true),
    height: c.getUint32(at + 12, true),
  };
}

/** Whether rect lies within width x height (u32 fields: plain numbers cannot overflow here). */
function rectInside(r: GpuRect, width: number, height: number): boolean {
  return r.x + r.width <= width && r.y + r.height <= height;
}

/** Whether [addr, addr+len) is guest RAM, checked page by page when it spans several slots. */
function isRam(mem: GuestMemory, addr: number, len: number): boolean {
  if (len === 0) return false;
  if (mem.slice(addr, len) !== undefined) return true;
  for (let at = addr; at < addr + len; ) {
    const next = Math.min(addr + len, (Math.floor(at / 4096) + 1) * 4096);
    if (mem.slice(at, next - at) === undefined) return false;
    at = next;
  }
  return true;
}

function rgbaOrderOrUndefined(format: number): readonly [number, number, number, number] | undefined {
  switch (format) {
    case GpuFormat.B8G8R8A8_UNORM:
      return [2, 1, 0, 3];
    case GpuFormat.B8G8R8X8_UNORM:
      return [2, 1, 0, -1];
    case GpuFormat.A8R8G8B8_UNORM:
      return [1, 2, 3, 0];
    case GpuFormat.X8R8G8B8_UNORM:
      return [1, 2, 3, -1];
    case GpuFormat.R8G8B8A8_UNORM:
      return [0, 1, 2, 3];
    case GpuFormat.X8B8G8R8_UNORM:
      return [3, 2, 1, -1];
    case GpuFormat.A8B8G8R8_UNORM:
      return [3, 2, 1, 0];
    case GpuFormat.R8G8B8X8_UNORM:
      return [0, 1, 2, -1];
    default:
      return undefined;
  }
}

function rgbaOrder(format: number): readonly [number, number, number, number] {
  return rgbaOrderOrUndefined(format) ?? [0, 1, 2, 3];
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: unknown): Uint8Array | undefined {
  if (typeof s !== "string") return undefined;
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}
