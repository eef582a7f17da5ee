import { DeviceType, Feature } from "../constants";
import { VirtioDevice } from "../device";
import { type Features, features, hasFeature, setFeature } from "../features";
import type { GuestMemory } from "../memory";
import type { DescriptorChain } from "../queue/chain";
import {
  type AnyBlockBackend,
  type AsyncBlockBackend,
  type BlockBackend,
  isAsyncBackend,
} from "./blk-backend";

/** virtio 1.2 5.2.3: block device feature bits. */
export const BlkFeature = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/** virtio 1.2 5.2.6: request types. */
export const BlkType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
  GET_LIFETIME: 10,
  DISCARD: 11,
  WRITE_ZEROES: 13,
  SECURE_ERASE: 14,
} as const;

/** virtio 1.2 5.2.6: the status byte. */
export const BlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;

/** virtio 1.2 5.2.4: configuration layout offsets. */
export const BlkConfig = {
  CAPACITY: 0,
  SIZE_MAX: 8,
  SEG_MAX: 12,
  BLK_SIZE: 20,
  /** le16 num_queues (with VIRTIO_BLK_F_MQ). */
  NUM_QUEUES: 34,
  MAX_DISCARD_SECTORS: 36,
  MAX_DISCARD_SEG: 40,
  DISCARD_SECTOR_ALIGNMENT: 44,
  MAX_WRITE_ZEROES_SECTORS: 48,
  MAX_WRITE_ZEROES_SEG: 52,
  WRITE_ZEROES_MAY_UNMAP: 56,
  SIZE: 60,
} as const;

/** VIRTIO_BLK_ID_BYTES: the serial number length GET_ID returns. */
export const BLK_ID_BYTES = 20;
const SECTOR = 512;
const HEADER = 16;
/** Largest single segment the device advertises (size_max). */
const SIZE_MAX = 1 << 20;
/** Most sectors in one discard / write-zeroes range (what max_*_sectors advertise). */
const MAX_RANGE_SECTORS = 0x3f_ffff;
/** Most ranges per discard / write-zeroes request (max_*_seg). */
const MAX_RANGE_SEGS = 32;
/** VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP. */
const FLAG_UNMAP = 1;

/** Options for VirtioBlk. */
export interface VirtioBlkOptions {
  /** The serial GET_ID returns (at most 20 bytes of it). */
  id?: string;
  /** Queue size (power of two, default 256). */
  queueSize?: number;
  /** Request queues (default 1); more than one offers VIRTIO_BLK_F_MQ (Linux maps one per vCPU). */
  queues?: number;
  /** Async backends: most request data in flight, in bytes (default 64 MiB); beyond, the device waits. */
  asyncInflightBytes?: number;
  /** Async backends: largest read/write data of one request (default 16 MiB); larger answers IOERR. */
  asyncMaxRequest?: number;
}

/** One parsed request (5.2.6), before validation. */
export type BlkRequest =
  | { kind: "read"; sector: number; len: number }
  | { kind: "write"; sector: number; len: number }
  | { kind: "flush" }
  | { kind: "getId" }
  | { kind: "discard" | "writeZeroes"; ranges: { sector: number; sectors: number; flags: number }[] }
  | { kind: "unsupported"; type: number }
  | { kind: "malformed"; why: string };

/**
 * virtio-blk (virtio 1.2 5.2): read, write, flush, get-id, discard and write-zeroes over a
 * BlockBackend. Feature bits are honest: DISCARD and WRITE_ZEROES only when the backend can, RO
 * for read-only backends. Every request goes parse -> validate -> execute -> complete; a backend
 * exception or a bad guest address answers VIRTIO_BLK_S_IOERR.
 *
 * @example
 * ```ts
 * import { FlatGuestMemory, MemoryBlockBackend, MmioTransport, VirtioBlk } from "@tskvm/virtio";
 * const mem = new FlatGuestMemory(16 << 20);
 * const mmio = new MmioTransport(new VirtioBlk(new MemoryBlockBackend(1 << 20), { id: "disk0" }), mem);
 * ```
 */
export class VirtioBlk extends VirtioDevice {
  readonly deviceType = DeviceType.BLOCK;
  readonly queueSizes: readonly number[];
  readonly offered: Features;
  private readonly id: Uint8Array;
  private readonly status = new Uint8Array(1);
  private readonly hdr = new Uint8Array(HEADER);
  private readonly hdrView = new DataView(this.hdr.buffer);
  /** Bumped by device and queue resets: async completions from before are dropped. */
  private generation = 0;
  private inflight = 0;
  private inflightBytes = 0;
  /** Queues that stopped popping because too much async data was in flight. */
  private readonly stalled = new Set<number>();
  /** Largest read/write data handed to an async backend in one request (its bounce buffer). */
  private readonly maxAsyncRequest: number;
  /** Host bytes of async request data in flight at most; beyond, the device waits for completions. */
  private readonly maxInflightBytes: number;

  constructor(
    readonly backend: AnyBlockBackend,
    opts: VirtioBlkOptions = {},
  ) {
    super(BlkConfig.SIZE);
    const qs = opts.queueSize ?? 256;
    this.maxAsyncRequest = opts.asyncMaxRequest ?? 16 << 20;
    this.maxInflightBytes = opts.asyncInflightBytes ?? 64 << 20;
    const nq = Math.max(1, Math.min(opts.queues ?? 1, 256));
    this.queueSizes = new Array<number>(nq).fill(qs);
    this.id = new Uint8Array(BLK_ID_BYTES);
    this.id.set(new TextEncoder().encode(opts.id ?? "tskvm").subarray(0, BLK_ID_BYTES));
    const f = features(
      Feature.VERSION_1,
      Feature.EVENT_IDX,
      Feature.INDIRECT_DESC,
      Feature.RING_RESET,
      BlkFeature.SIZE_MAX,
      BlkFeature.SEG_MAX,
      BlkFeature.BLK_SIZE,
      BlkFeature.FLUSH,
    );
    if (backend.readOnly) setFeature(f, BlkFeature.RO);
    if (nq > 1) setFeature(f, BlkFeature.MQ);
    if (!backend.readOnly && backend.discard !== undefined) setFeature(f, BlkFeature.DISCARD);
    if (!backend.readOnly && backend.writeZeroes !== undefined) setFeature(f, BlkFeature.WRITE_ZEROES);
    this.offered = f;
    const c = this.configView;
    const sectors = Math.floor(backend.size / SECTOR);
    c.setUint32(BlkConfig.CAPACITY, sectors % 0x1_0000_0000, true);
    c.setUint32(BlkConfig.CAPACITY + 4, Math.floor(sectors / 0x1_0000_0000), true);
    c.setUint32(BlkConfig.SIZE_MAX, SIZE_MAX, true);
    // Two descriptors carry the header and the status byte (QEMU and Linux use size - 2).
    c.setUint32(BlkConfig.SEG_MAX, qs - 2, true);
    c.setUint32(BlkConfig.BLK_SIZE, SECTOR, true);
    c.setUint32(BlkConfig.MAX_DISCARD_SECTORS, MAX_RANGE_SECTORS, true);
    c.setUint32(BlkConfig.MAX_DISCARD_SEG, MAX_RANGE_SEGS, true);
    c.setUint32(BlkConfig.DISCARD_SECTOR_ALIGNMENT, 1, true);
    c.setUint32(BlkConfig.MAX_WRITE_ZEROES_SECTORS, MAX_RANGE_SECTORS, true);
    c.setUint32(BlkConfig.MAX_WRITE_ZEROES_SEG, MAX_RANGE_SEGS, true);
    c.setUint8(BlkConfig.WRITE_ZEROES_MAY_UNMAP, 1);
    c.setUint16(BlkConfig.NUM_QUEUES, nq, true);
  }

  /** Capacity in 512-byte sectors. */
  get sectors(): number {
    return Math.floor(this.backend.size / SECTOR);
  }

  protected onReset(): void {
    // In-flight async requests belong to the old driver: their completions are dropped.
    this.generation++;
    this.stalled.clear();
  }

  override queueReset(_q: number): void {
    this.generation++;
  }

  /** Requests handed to an async backend and not yet completed. */
  get inFlight(): number {
    return this.inflight;
  }

  queueNotify(qi: number): void {
    if (isAsyncBackend(this.backend)) {
      this.queueNotifyAsync(qi, this.backend);
      return;
    }
    const ctx = this.ctx;
    const q = ctx?.queues[qi];
    if (ctx === undefined || q === undefined) return;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      const len = this.handle(ctx.mem, chain, ctx.features);
      q.pushUsed(chain, len);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  /** One request end to end; returns used.len (bytes written to the chain). */
  handle(mem: GuestMemory, chain: DescriptorChain, negotiated: Features): number {
    const req = this.parse(mem, chain);
    if (req.kind === "malformed") {
      this.count(`malformed.${req.why}`);
      // Without a writable byte there is nowhere to put a status: return the chain untouched.
      if (chain.writableBytes === 0) return 0;
      return this.complete(mem, chain, BlkStatus.IOERR, 0);
    }
    const bad = this.validate(req, negotiated);
    if (bad !== undefined || req.kind === "unsupported")
      return this.complete(mem, chain, bad ?? BlkStatus.UNSUPP, 0);
    const r = this.execute(mem, chain, req);
    return this.complete(mem, chain, r.status, r.written);
  }

  /** Step 1: read the header (the first 16 device-readable bytes) and find the data. */
  parse(mem: GuestMemory, chain: DescriptorChain): BlkRequest {
    if (chain.writableBytes < 1) return { kind: "malformed", why: "noStatusByte" };
    const rd = chain.reader(mem);
    if (rd.read(this.hdr) !== HEADER)
      return { kind: "malformed", why: rd.faulted ? "headerFault" : "shortHeader" };
    const h = this.hdrView;
    const type = h.getUint32(0, true);
    const lo = h.getUint32(8, true);
    const hi = h.getUint32(12, true);
    // A sector number >= 2^32 * 2^21 cannot be within any capacity; keep it exact below that.
    const sector = hi < 0x20_0000 ? hi * 0x1_0000_0000 + lo : Number.MAX_SAFE_INTEGER;
    switch (type) {
      case BlkType.IN:
        return { kind: "read", sector, len: chain.writableBytes - 1 };
      case BlkType.OUT:
        return { kind: "write", sector, len: chain.readableBytes - HEADER };
      case BlkType.FLUSH:
        return { kind: "flush" };
      case BlkType.GET_ID:
        return { kind: "getId" };
      case BlkType.DISCARD:
      case BlkType.WRITE_ZEROES: {
        const body = chain.readableBytes - HEADER;
        // 5.2.6: the data is an array of struct virtio_blk_discard_write_zeroes (16 bytes).
        if (body === 0 || body % 16 !== 0 || body / 16 > MAX_RANGE_SEGS) {
          return { kind: "malformed", why: "rangeList" };
        }
        const ranges: { sector: number; sectors: number; flags: number }[] = [];
        const seg = new Uint8Array(16);
        const d = new DataView(seg.buffer);
        for (let i = 0; i < body / 16; i++) {
          if (rd.read(seg) !== 16) return { kind: "malformed", why: "rangeFault" };
          const shi = d.getUint32(4, true);
          ranges.push({
            sector: shi < 0x20_0000 ? shi * 0x1_0000_0000 + d.getUint32(0, true) : Number.MAX_SAFE_INTEGER,
            sectors: d.getUint32(8, true),
            flags: d.getUint32(12, true),
          });
        }
        return { kind: type === BlkType.DISCARD ? "discard" : "writeZeroes", ranges };
      }
      default:
        return { kind: "unsupported", type };
    }
  }

  /** Step 2: the spec's checks; a status to answer with, or undefined when the request may run. */
  validate(req: Exclude<BlkRequest, { kind: "malformed" }>, negotiated: Features): number | undefined {
    const cap = this.sectors;
    const inRange = (sector: number, bytes: number) =>
      bytes % SECTOR === 0 && sector <= cap && bytes / SECTOR <= cap - sector;
    switch (req.kind) {
      case "read":
        // 5.2.6.1: data lengths are multiples of 512 and never past capacity (Firecracker fixed
        // an off-by-one exactly here; the comparison is subtraction-based, so no overflow).
        return inRange(req.sector, req.len) ? undefined : this.bad("outOfRange", BlkStatus.IOERR);
      case "write":
        // 5.2.6.2: "A device MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request if
        // the VIRTIO_BLK_F_RO feature if offered, and MUST NOT write any data."
        if (this.backend.readOnly) return this.bad("writeReadOnly", BlkStatus.IOERR);
        return inRange(req.sector, req.len) ? undefined : this.bad("outOfRange", BlkStatus.IOERR);
      case "flush":
      case "getId":
        return undefined;
      case "discard":
      case "writeZeroes": {
        const feat = req.kind === "discard" ? BlkFeature.DISCARD : BlkFeature.WRITE_ZEROES;
        if (!hasFeature(negotiated, feat)) return this.bad("notNegotiated", BlkStatus.UNSUPP);
        for (const r of req.ranges) {
          // 5.2.6.2: UNSUPP for unknown flags, and for discard with the unmap flag set.
          if ((r.flags & ~FLAG_UNMAP) !== 0) return this.bad("unknownFlags", BlkStatus.UNSUPP);
          if (req.kind === "discard" && r.flags !== 0) return this.bad("discardUnmap", BlkStatus.UNSUPP);
          // 5.2.6.2: IOERR when num_sectors exceeds max_*_sectors or the range leaves the disk.
          if (r.sectors > MAX_RANGE_SECTORS) return this.bad("rangeTooLong", BlkStatus.IOERR);
          if (!inRange(r.sector, r.sectors * SECTOR)) return this.bad("outOfRange", BlkStatus.IOERR);
        }
        return undefined;
      }
      case "unsupported":
        // 5.2.6.2: "A device MUST set the status byte to VIRTIO_BLK_S_UNSUPP for ... unknown types".
        return this.bad("unsupportedType", BlkStatus.UNSUPP);
    }
  }

  private bad(metric: string, status: number): number {
    this.count(`rejected.${metric}`);
    return status;
  }

  /** Step 3: do it. Returns the status and how many data bytes went into the chain. */
  execute(
    mem: GuestMemory,
    chain: DescriptorChain,
    req: Exclude<BlkRequest, { kind: "malformed" | "unsupported" }>,
  ): { status: number; written: number } {
    // Only reached with a synchronous backend (async requests go through startAsync).
    const b = this.backend as BlockBackend;
    try {
      switch (req.kind) {
        case "read": {
          const off = req.sector * SECTOR;
          const w = chain.writer(mem);
          const n = w.fillViews(req.len, (view, at) => {
            b.read(off + at, view);
            return true;
          });
          this.count("readBytes", n);
          return { status: w.faulted || n !== req.len ? BlkStatus.IOERR : BlkStatus.OK, written: n };
        }
        case "write": {
          const off = req.sector * SECTOR;
          const rd = chain.reader(mem);
          rd.skip(HEADER);
          const n = rd.forEachView(req.len, (view, at) => b.write(off + at, view));
          this.count("writeBytes", n);
          return { status: rd.faulted || n !== req.len ? BlkStatus.IOERR : BlkStatus.OK, written: 0 };
        }
        case "flush":
          b.flush();
          return { status: BlkStatus.OK, written: 0 };
        case "getId": {
          // 5.2.6: the id is 20 bytes, NUL-padded, not NUL-terminated when all 20 are used.
          const w = chain.writer(mem);
          const n = w.write(this.id.subarray(0, Math.min(BLK_ID_BYTES, chain.writableBytes - 1)));
          return { status: w.faulted ? BlkStatus.IOERR : BlkStatus.OK, written: n };
        }
        case "discard":
          for (const r of req.ranges) b.discard!(r.sector * SECTOR, r.sectors * SECTOR);
          return { status: BlkStatus.OK, written: 0 };
        case "writeZeroes":
          for (const r of req.ranges)
            b.writeZeroes!(r.sector * SECTOR, r.sectors * SECTOR, (r.flags & 1) === 1);
          return { status: BlkStatus.OK, written: 0 };
      }
    } catch {
      // The backend failed: the guest sees an I/O error, the VMM keeps running.
      this.count("backendError");
      return { status: BlkStatus.IOERR, written: 0 };
    }
  }

  private queueNotifyAsync(qi: number, b: AsyncBlockBackend): void {
    const ctx = this.ctx;
    const q = ctx?.queues[qi];
    if (ctx === undefined || q === undefined) return;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      const req = this.parse(ctx.mem, chain);
      if (req.kind === "malformed") {
        this.count(`malformed.${req.why}`);
        q.pushUsed(chain, chain.writableBytes === 0 ? 0 : this.complete(ctx.mem, chain, BlkStatus.IOERR, 0));
        done++;
        continue;
      }
      const bad = this.validate(req, ctx.features);
      if (bad !== undefined || req.kind === "unsupported") {
        q.pushUsed(chain, this.complete(ctx.mem, chain, bad ?? BlkStatus.UNSUPP, 0));
        done++;
        continue;
      }
      if (req.kind === "getId") {
        const r = this.execute(ctx.mem, chain, req);
        q.pushUsed(chain, this.complete(ctx.mem, chain, r.status, r.written));
        done++;
        continue;
      }
      const bytes = req.kind === "read" || req.kind === "write" ? req.len : 0;
      // Async data needs a host buffer: bound each request and the total in flight
      // (CVE-2016-5403: requests submitted without waiting must not exhaust host memory).
      if (bytes > this.maxAsyncRequest) {
        q.pushUsed(chain, this.complete(ctx.mem, chain, this.bad("asyncTooLarge", BlkStatus.IOERR), 0));
        done++;
        continue;
      }
      if (this.inflight > 0 && this.inflightBytes + bytes > this.maxInflightBytes) {
        q.undoPop(chain);
        this.stalled.add(qi);
        this.count("asyncBackpressure");
        break;
      }
      this.startAsync(qi, chain, req, bytes, b);
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  private startAsync(
    qi: number,
    chain: DescriptorChain,
    req: Exclude<BlkRequest, { kind: "malformed" | "unsupported" | "getId" }>,
    bytes: number,
    b: AsyncBlockBackend,
  ): void {
    const gen = this.generation;
    const mem = this.ctx!.mem;
    this.inflight++;
    this.inflightBytes += bytes;
    let buf: Uint8Array | undefined;
    let p: Promise<unknown>;
    try {
      switch (req.kind) {
        case "read":
          buf = new Uint8Array(req.len);
          p = b.read(req.sector * SECTOR, buf);
          break;
        case "write": {
          // Gather now: the guest may reuse its buffer once the request completes, not before,
          // but reading at submission keeps the backend away from guest memory.
          buf = new Uint8Array(req.len);
          const rd = chain.reader(mem);
          rd.skip(HEADER);
          p =
            rd.read(buf) === req.len
              ? b.write(req.sector * SECTOR, buf)
              : Promise.reject(new Error("guest fault"));
          break;
        }
        case "flush":
          p = b.flush();
          break;
        case "discard":
          p = Promise.all(req.ranges.map((r) => b.discard!(r.sector * SECTOR, r.sectors * SECTOR)));
          break;
        case "writeZeroes":
          p = Promise.all(
            req.ranges.map((r) => b.writeZeroes!(r.sector * SECTOR, r.sectors * SECTOR, (r.flags & 1) === 1)),
          );
          break;
      }
    } catch (e) {
      p = Promise.reject(e);
    }
    Promise.resolve(p).then(
      () => this.finishAsync(qi, chain, req, buf, gen, bytes, true),
      () => this.finishAsync(qi, chain, req, buf, gen, bytes, false),
    );
  }

  private finishAsync(
    qi: number,
    chain: DescriptorChain,
    req: BlkRequest,
    buf: Uint8Array | undefined,
    gen: number,
    bytes: number,
    ok: boolean,
  ): void {
    this.inflight--;
    this.inflightBytes -= bytes;
    // A reset since submission: the chain belongs to a driver that is gone. Touch nothing.
    if (gen !== this.generation || this.ctx === undefined) {
      this.count("completionAfterReset");
      return;
    }
    try {
      const ctx = this.ctx;
      const q = ctx.queues[qi];
      if (q === undefined) return;
      let status: number = ok ? BlkStatus.OK : BlkStatus.IOERR;
      let written = 0;
      if (!ok) this.count("backendError");
      if (ok && req.kind === "read" && buf !== undefined) {
        const w = chain.writer(ctx.mem);
        written = w.write(buf);
        if (w.faulted || written !== buf.length) status = BlkStatus.IOERR;
        this.count("readBytes", written);
      } else if (ok && req.kind === "write") this.count("writeBytes", bytes);
      q.pushUsed(chain, this.complete(ctx.mem, chain, status, written));
      this.signal(qi);
      if (this.stalled.size > 0 && this.inflightBytes < this.maxInflightBytes) {
        const again = [...this.stalled];
        this.stalled.clear();
        for (const i of again) this.queueNotify(i);
      }
    } catch (e) {
      // Outside the transport's guard (a promise callback): never let it escape.
      this.count("deviceInternalError");
      this.host.needsReset(`internal: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Step 4: the status byte goes in the last device-writable byte; returns used.len. */
  private complete(mem: GuestMemory, chain: DescriptorChain, status: number, written: number): number {
    this.status[0] = status;
    const w = chain.writer(mem);
    w.skip(chain.writableBytes - 1);
    if (w.write(this.status) !== 1) this.count("statusFault");
    if (status !== BlkStatus.OK) this.count(`status.${status}`);
    return Math.min(written, chain.writableBytes - 1) + 1;
  }
}
