import { DeviceType, Feature } from "../constants";
import { type DeviceContext, VirtioDevice } from "../device";
import { type Features, features, hasFeature } from "../features";
import type { FlatGuestMemory, GuestMemory } from "../memory";
import type { DescriptorChain, Segment } from "../queue/chain";

/** virtio 1.2 5.5.3: balloon feature bits. */
export const BalloonFeature = {
  MUST_TELL_HOST: 0,
  STATS_VQ: 1,
  DEFLATE_ON_OOM: 2,
  FREE_PAGE_HINT: 3,
  PAGE_POISON: 4,
  PAGE_REPORTING: 5,
} as const;

/** virtio 1.2 5.5.4: configuration layout. */
export const BalloonConfig = {
  NUM_PAGES: 0,
  ACTUAL: 4,
  FREE_PAGE_HINT_CMD_ID: 8,
  POISON_VAL: 12,
  SIZE: 16,
} as const;

/** virtio 1.2 5.5.4 free_page_hint_cmd_id: the two reserved command ids (Linux uapi virtio_balloon.h). */
export const BalloonCmdId = {
  /** The device is not asking for hints; from the driver, "end of this run of hints". */
  STOP: 0,
  /** The device no longer needs the hinted pages: the driver may use them again. */
  DONE: 1,
} as const;

/** virtio 1.2 5.5.6.3: statistics tags. */
export const BalloonStat = {
  SWAP_IN: 0,
  SWAP_OUT: 1,
  MAJFLT: 2,
  MINFLT: 3,
  MEMFREE: 4,
  MEMTOT: 5,
  AVAIL: 6,
  CACHES: 7,
  HTLB_PGALLOC: 8,
  HTLB_PGFAIL: 9,
} as const;

/** VIRTIO_BALLOON_PFN_SHIFT: page frame numbers are in 4 KiB units whatever the guest's page size. */
export const BALLOON_PAGE = 4096;
/** Most statistics entries read from one buffer (Firecracker #5794 bounds the stats descriptor). */
const MAX_STATS = 64;
const STAT_SIZE = 10;
const TWO_32 = 0x1_0000_0000;

/**
 * What the VMM does with ballooned memory. Every range comes from the guest: validate it (the
 * device only checks page alignment). The VMM backs guest RAM with chunked slots so that a
 * fully reclaimed chunk can really be freed.
 */
export interface BalloonMemory {
  /** Inflate: the guest gave [gpa, gpa+len) up. False when the range is not guest RAM. */
  reclaim(gpa: number, len: number): boolean;
  /** Deflate: the guest takes [gpa, gpa+len) back; it must be usable again (contents may be zero). */
  restore(gpa: number, len: number): void;
  /**
   * Free page reporting and hinting: the contents of [gpa, gpa+len) (whole 4 KiB pages) may be
   * dropped, and the guest may reuse the pages at any time (they then read as zero). False, with
   * nothing discarded, when any part of the range is not guest RAM.
   */
  discard(gpa: number, len: number): boolean;
}

/**
 * BalloonMemory over a FlatGuestMemory: reclaimed and discarded pages are zeroed (a flat
 * buffer cannot give memory back; the VMM's chunked memory can). For tests and simple hosts.
 */
export class FlatBalloonMemory implements BalloonMemory {
  constructor(private readonly mem: FlatGuestMemory) {}
  private fill(gpa: number, len: number): boolean {
    const v = this.mem.slice(gpa, len);
    if (v === undefined) return false;
    v.fill(0);
    return true;
  }
  reclaim(gpa: number, len: number): boolean {
    return this.fill(gpa, len);
  }
  restore(): void {}
  discard(gpa: number, len: number): boolean {
    return this.fill(gpa, len);
  }
}

/**
 * A buffer on reporting_vq or free_page_vq that the device refused, named after the step that
 * refused it. Ranges are checked one by one: a bad range is skipped, the others still count.
 */
export type BalloonRequestError =
  /** Linux virtballoon_free_page_report / get_free_page_and_send (virtqueue_add_inbuf): reported and hinted pages are device-writable buffers. */
  | { kind: "DeviceReadablePages"; queue: "reporting" | "freePage"; bytes: number }
  /** A cmd id buffer on free_page_vq is one device-readable le32 (Linux send_cmd_id_start/stop). */
  | { kind: "BadCmdIdBuffer"; bytes: number }
  /** A free page range must be whole 4 KiB pages (VIRTIO_BALLOON_PFN_SHIFT units), start and length. */
  | { kind: "UnalignedRange"; gpa: number; len: number }
  /** Some of the range is not guest RAM (BalloonMemory.discard refused it). */
  | { kind: "NotRam"; gpa: number; len: number };

/**
 * Free page hinting (virtio 1.2 5.5, "Free Page Hinting"), as the device runs it. The host asks for hints by
 * writing a new command id to config (requested); the driver echoes that id on free_page_vq
 * (hinting), sends free page blocks, then VIRTIO_BALLOON_CMD_ID_STOP (stopped). When the host
 * no longer needs the hinted pages it writes VIRTIO_BALLOON_CMD_ID_DONE (done) and the driver
 * frees them again.
 */
export type FreePageHintState =
  | { tag: "idle" }
  | { tag: "requested"; cmdId: number }
  | { tag: "hinting"; cmdId: number }
  | { tag: "stopped"; cmdId: number }
  | { tag: "done" };

/** What the balloon holds and has been told, for the VMM's status and metrics. */
export interface BalloonStatus {
  /** num_pages (the host's target) in bytes. */
  targetBytes: number;
  /** actual (what the guest says the balloon holds) in bytes. */
  actualBytes: number;
  /** Bytes currently inflated (reclaimed from the guest). */
  reclaimedBytes: number;
  /** Bytes reported free on reporting_vq and discarded, since the device was created (cumulative). */
  reportedBytes: number;
  /** Bytes hinted free on free_page_vq and discarded, since the device was created (cumulative). */
  hintedBytes: number;
  freePageHint: FreePageHintState;
}

/** Options for VirtioBalloon. */
export interface VirtioBalloonOptions {
  /** Offer VIRTIO_BALLOON_F_STATS_VQ (default true). */
  stats?: boolean;
  /** Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (default true). */
  deflateOnOom?: boolean;
  /** Offer VIRTIO_BALLOON_F_PAGE_REPORTING (default true). */
  pageReporting?: boolean;
  /** Offer VIRTIO_BALLOON_F_FREE_PAGE_HINT (default false: hints are only sent when the host asks, see requestFreePageHints). */
  freePageHint?: boolean;
}

type Role = "inflate" | "deflate" | "stats" | "freePage" | "reporting";

/** The first command id the device hands out; 0 and 1 are STOP and DONE. */
const FIRST_CMD_ID = 2;
const CMD_ID_BYTES = 4;

/**
 * virtio-balloon (virtio 1.2 5.5): the host sets a target (num_pages), the guest inflates
 * (gives pages up, which the host reclaims through BalloonMemory) or deflates (takes them
 * back); statistics and free page reporting are offered; deflate-on-oom lets the guest
 * deflate under memory pressure.
 *
 * Queue indices follow the negotiated features as Linux assigns them (virtio 1.2 5.5.2, and
 * Linux init_vqs, which leaves no gap for a queue whose feature is off): inflateq, deflateq,
 * then statsq, free_page_vq and reporting_vq, each present only when its feature was negotiated.
 *
 * Free page reporting (F_PAGE_REPORTING): every buffer on reporting_vq is a list of free guest
 * ranges (Linux page_reporting: up to 32 blocks of 2 MiB on x86, as device-writable buffers);
 * the device discards whole, aligned, in-RAM ranges through BalloonMemory.discard, counts them
 * and returns the buffer.
 *
 * Free page hinting (F_FREE_PAGE_HINT, see FreePageHintState): hinted blocks are discarded
 * when they arrive. virtio 1.2 5.5 ("Free Page Hinting", device requirements) lets the device drop a hinted page only while the
 * driver has not written it since; this device acts on the notification itself, before the
 * vCPU that kicked runs again, and never discards a hinted page later, so a write after the
 * hint always lands on (zeroed) memory the device keeps. The driver holds the blocks until
 * DONE, so nothing of the guest's is lost either way.
 */
export class VirtioBalloon extends VirtioDevice {
  readonly deviceType = DeviceType.BALLOON;
  readonly queueSizes: readonly number[];
  readonly offered: Features;
  /** Ballooned 4 KiB page numbers. */
  private readonly pages = new Set<number>();
  private roles: Role[] = [];
  private statsChain: DescriptorChain | undefined;
  /** The latest statistics the guest reported, by tag. */
  readonly stats = new Map<number, number>();
  private readonly buf = new Uint8Array(4 * 256);
  private readonly bufView = new DataView(this.buf.buffer);
  private onStats: (() => void) | undefined;
  private reported = 0;
  private hinted = 0;
  private hint: FreePageHintState = { tag: "idle" };
  private nextCmdId = FIRST_CMD_ID;
  /** The latest buffer the device refused on reporting_vq or free_page_vq (also counted in metrics). */
  lastError: BalloonRequestError | undefined;

  constructor(
    private readonly memory: BalloonMemory,
    opts: VirtioBalloonOptions = {},
  ) {
    super(BalloonConfig.SIZE);
    const bits: number[] = [Feature.VERSION_1, Feature.INDIRECT_DESC, Feature.EVENT_IDX];
    if (opts.stats !== false) bits.push(BalloonFeature.STATS_VQ);
    if (opts.deflateOnOom !== false) bits.push(BalloonFeature.DEFLATE_ON_OOM);
    if (opts.pageReporting !== false) bits.push(BalloonFeature.PAGE_REPORTING);
    if (opts.freePageHint === true) bits.push(BalloonFeature.FREE_PAGE_HINT);
    this.offered = features(...bits);
    const n =
      2 +
      (opts.stats !== false ? 1 : 0) +
      (opts.freePageHint === true ? 1 : 0) +
      (opts.pageReporting !== false ? 1 : 0);
    this.queueSizes = new Array<number>(n).fill(128);
  }

  /** Bytes currently held by the balloon (reclaimed from the guest). */
  get reclaimedBytes(): number {
    return this.pages.size * BALLOON_PAGE;
  }

  /** The guest's `actual` (pages it says are in the balloon). */
  get actualPages(): number {
    return this.configView.getUint32(BalloonConfig.ACTUAL, true);
  }

  get targetPages(): number {
    return this.configView.getUint32(BalloonConfig.NUM_PAGES, true);
  }

  /** Bytes the guest has reported free (reporting_vq) and the device discarded, cumulative. */
  get reportedBytes(): number {
    return this.reported;
  }

  /** Bytes the guest has hinted free (free_page_vq) and the device discarded, cumulative. */
  get hintedBytes(): number {
    return this.hinted;
  }

  get freePageHint(): FreePageHintState {
    return this.hint;
  }

  /** Everything the VMM shows about the balloon, in bytes. */
  status(): BalloonStatus {
    return {
      targetBytes: this.targetPages * BALLOON_PAGE,
      actualBytes: this.actualPages * BALLOON_PAGE,
      reclaimedBytes: this.reclaimedBytes,
      reportedBytes: this.reported,
      hintedBytes: this.hinted,
      freePageHint: this.hint,
    };
  }

  /**
   * Ask the guest for free page hints (virtio 1.2 5.5, "Free Page Hinting"): a fresh command id in
   * free_page_hint_cmd_id, with a config change. Returns the id, or undefined when the driver
   * did not negotiate F_FREE_PAGE_HINT (or is not running).
   */
  requestFreePageHints(): number | undefined {
    if (!this.roles.includes("freePage")) return undefined;
    // virtio 1.2 5.5 "Free Page Hinting": a command id is not reused until the driver has stopped the run that used it;
    // ids only grow (skipping STOP and DONE on wrap), so none is reused within 2^32 - 2 requests.
    const id = this.nextCmdId;
    this.nextCmdId = id >= 0xffff_ffff ? FIRST_CMD_ID : id + 1;
    this.setHint({ tag: "requested", cmdId: id }, id);
    return id;
  }

  /** Stop a hinting run early: free_page_hint_cmd_id = STOP; later hints are ignored. */
  stopFreePageHints(): void {
    if (this.hint.tag !== "requested" && this.hint.tag !== "hinting") return;
    this.setHint({ tag: "stopped", cmdId: this.hint.cmdId }, BalloonCmdId.STOP);
  }

  /** The host is done with the hinted pages: free_page_hint_cmd_id = DONE, so the driver frees them. */
  freePageHintsDone(): void {
    if (!this.roles.includes("freePage") || this.hint.tag === "done") return;
    this.setHint({ tag: "done" }, BalloonCmdId.DONE);
  }

  private setHint(next: FreePageHintState, configValue: number): void {
    this.hint = next;
    this.configView.setUint32(BalloonConfig.FREE_PAGE_HINT_CMD_ID, configValue, true);
    this.host.configChanged();
  }

  /** Ask the guest to hold `pages` 4 KiB pages in the balloon (5.5.6: num_pages), with a config change. */
  setTarget(pages: number): void {
    this.configView.setUint32(BalloonConfig.NUM_PAGES, pages >>> 0, true);
    this.host.configChanged();
  }

  protected override onConfigWrite(offset: number, size: number, value: number): boolean {
    // 5.5.4: actual is the one field the driver writes.
    if (offset === BalloonConfig.ACTUAL && size === 4) {
      this.configView.setUint32(BalloonConfig.ACTUAL, value, true);
      return true;
    }
    return false;
  }

  protected override onActivate(ctx: DeviceContext): boolean {
    const f = ctx.features;
    this.roles = ["inflate", "deflate"];
    if (hasFeature(f, BalloonFeature.STATS_VQ)) this.roles.push("stats");
    if (hasFeature(f, BalloonFeature.FREE_PAGE_HINT)) this.roles.push("freePage");
    if (hasFeature(f, BalloonFeature.PAGE_REPORTING)) this.roles.push("reporting");
    return true;
  }

  protected onReset(): void {
    // A device reset returns every ballooned page: the driver starts again from an empty balloon.
    this.giveBackAll();
    this.roles = [];
    this.statsChain = undefined;
    this.configView.setUint32(BalloonConfig.ACTUAL, 0, true);
    // A reset driver starts with no hinting run (Linux probe: cmd_id_received = STOP).
    this.hint = { tag: "idle" };
    this.configView.setUint32(BalloonConfig.FREE_PAGE_HINT_CMD_ID, BalloonCmdId.STOP, true);
  }

  private giveBackAll(): void {
    for (const pfn of this.pages) this.memory.restore(pfn * BALLOON_PAGE, BALLOON_PAGE);
    this.pages.clear();
  }

  /**
   * The ballooned pages and the config fields. The host memory itself (which chunks are freed)
   * is the VMM's to save; on load the page set is taken as is, without BalloonMemory calls.
   */
  override saveState(): BalloonState {
    return {
      pages: [...this.pages].sort((a, b) => a - b),
      numPages: this.targetPages,
      actual: this.actualPages,
      reportedBytes: this.reported,
      hintedBytes: this.hinted,
      freePageHint: this.hint,
      nextCmdId: this.nextCmdId,
    };
  }

  override loadState(s: unknown): boolean {
    if (s === null || typeof s !== "object") return false;
    const st = s as Partial<Record<keyof BalloonState, unknown>>;
    const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
    const bytes = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0);
    if (!Array.isArray(st.pages) || !st.pages.every(u32) || !u32(st.numPages) || !u32(st.actual))
      return false;
    // Snapshots from before free page hinting have none of the fields below.
    if (!bytes(st.reportedBytes) || !bytes(st.hintedBytes)) return false;
    const hint = st.freePageHint === undefined ? { tag: "idle" as const } : parseHintState(st.freePageHint);
    if (hint === undefined) return false;
    if (st.nextCmdId !== undefined && (!u32(st.nextCmdId) || (st.nextCmdId as number) < FIRST_CMD_ID))
      return false;
    this.pages.clear();
    for (const p of st.pages as number[]) this.pages.add(p);
    this.configView.setUint32(BalloonConfig.NUM_PAGES, st.numPages as number, true);
    this.configView.setUint32(BalloonConfig.ACTUAL, st.actual as number, true);
    this.reported = (st.reportedBytes as number | undefined) ?? 0;
    this.hinted = (st.hintedBytes as number | undefined) ?? 0;
    this.hint = hint;
    this.nextCmdId = (st.nextCmdId as number | undefined) ?? FIRST_CMD_ID;
    return true;
  }

  override queueReset(q: number): void {
    if (this.roles[q] === "stats") this.statsChain = undefined;
  }

  queueNotify(q: number): void {
    switch (this.roles[q]) {
      case "inflate":
        this.pfnQueue(q, true);
        return;
      case "deflate":
        this.pfnQueue(q, false);
        return;
      case "stats":
        this.statsQueue(q);
        return;
      case "freePage":
        this.freePageQueue(q);
        return;
      case "reporting":
        this.reportingQueue(q);
        return;
      default:
        this.count("notifyUnusedQueue");
    }
  }

  /**
   * Ask the guest for fresh statistics (5.5.6.3): return the buffer it left in statsq; it
   * refills and re-adds it. `done` runs when the new statistics arrive.
   */
  requestStats(done?: () => void): boolean {
    const q = this.roles.indexOf("stats");
    const queue = this.ctx?.queues[q];
    if (q < 0 || queue === undefined || this.statsChain === undefined) return false;
    const chain = this.statsChain;
    this.statsChain = undefined;
    this.onStats = done;
    queue.pushUsed(chain, 0);
    this.signal(q);
    return true;
  }

  private pfnQueue(qi: number, inflate: boolean): void {
    const ctx = this.ctx!;
    const q = ctx.queues[qi]!;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      const rd = chain.reader(ctx.mem);
      let runStart = -1;
      let runLen = 0;
      const flush = () => {
        if (runLen > 0) this.applyRun(runStart, runLen, inflate);
        runLen = 0;
      };
      // The PFN array is read in bounded pieces: a long chain never makes a big allocation.
      for (;;) {
        const n = rd.read(this.buf) & ~3;
        if (n === 0) break;
        for (let i = 0; i < n; i += 4) {
          const pfn = this.bufView.getUint32(i, true);
          if (runLen > 0 && pfn === runStart + runLen) runLen++;
          else {
            flush();
            runStart = pfn;
            runLen = 1;
          }
        }
        if (n < this.buf.length) break;
      }
      flush();
      if (rd.faulted) this.count("badBuffer");
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  private applyRun(start: number, len: number, inflate: boolean): void {
    // Split the run where membership changes so each host call is one contiguous, uniform range.
    let i = 0;
    while (i < len) {
      let j = i;
      if (inflate) {
        while (j < len && !this.pages.has(start + j)) j++;
        if (j > i) {
          if (this.memory.reclaim((start + i) * BALLOON_PAGE, (j - i) * BALLOON_PAGE)) {
            for (let k = i; k < j; k++) this.pages.add(start + k);
            this.count("inflatedPages", j - i);
          } else this.count("badPfn", j - i);
        }
        while (j < len && this.pages.has(start + j)) j++;
      } else {
        while (j < len && this.pages.has(start + j)) j++;
        if (j > i) {
          for (let k = i; k < j; k++) this.pages.delete(start + k);
          this.memory.restore((start + i) * BALLOON_PAGE, (j - i) * BALLOON_PAGE);
          this.count("deflatedPages", j - i);
        }
        const before = j;
        while (j < len && !this.pages.has(start + j)) j++;
        if (j > before) this.count("deflateNotInBalloon", j - before);
      }
      i = j;
    }
  }

  private statsQueue(qi: number): void {
    const ctx = this.ctx!;
    const q = ctx.queues[qi]!;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      // A second buffer while one is held: give the old one back (the driver uses only one).
      if (this.statsChain !== undefined) q.pushUsed(this.statsChain, 0);
      const rd = chain.reader(ctx.mem);
      const entry = new Uint8Array(STAT_SIZE);
      const d = new DataView(entry.buffer);
      for (let i = 0; i < MAX_STATS && rd.read(entry) === STAT_SIZE; i++) {
        const hi = d.getUint32(6, true);
        this.stats.set(d.getUint16(0, true), hi * TWO_32 + d.getUint32(2, true));
      }
      if (rd.faulted) this.count("badBuffer");
      // Keep the buffer: returning it is how the host asks for the next update.
      this.statsChain = chain;
      const done = this.onStats;
      this.onStats = undefined;
      done?.();
    }
    if (q.error !== undefined) this.signal(qi);
  }

  private reportingQueue(qi: number): void {
    const ctx = this.ctx!;
    const q = ctx.queues[qi]!;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      // Linux virtballoon_free_page_report posts the free blocks with virtqueue_add_inbuf.
      if (chain.readableBytes > 0 || chain.readable.length > 0) {
        this.refuse({ kind: "DeviceReadablePages", queue: "reporting", bytes: chain.readableBytes }, true);
      } else this.reported += this.discardRanges(chain.writable);
      // The device writes nothing into the pages it was given: used.len is 0.
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  private freePageQueue(qi: number): void {
    const ctx = this.ctx!;
    const q = ctx.queues[qi]!;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      const req = parseHintRequest(chain, ctx.mem);
      if ("kind" in req) this.refuse(req, true);
      else if (req.tag === "cmdId") this.hintCmdId(req.cmdId);
      else if (this.hint.tag === "hinting") this.hinted += this.discardRanges(req.ranges);
      // virtio 1.2 5.5 "Free Page Hinting": hints that do not belong to the current command id are ignored.
      else this.count("hintIgnoredBytes", req.bytes);
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  /** The driver echoed a command id: the start of a run (the current id) or its end (STOP). */
  private hintCmdId(id: number): void {
    const h = this.hint;
    if (id === BalloonCmdId.STOP) {
      // A STOP while a newer id is only requested ends the older run: the new one still stands.
      if (h.tag === "hinting") this.hint = { tag: "stopped", cmdId: h.cmdId };
      return;
    }
    if (h.tag === "requested" && id === h.cmdId) {
      this.hint = { tag: "hinting", cmdId: id };
      return;
    }
    this.count("hintStaleCmdId");
  }

  /**
   * Validate and discard free page ranges one by one (hinting and reporting: whole 4 KiB pages of
   * guest RAM); a bad range is skipped and recorded. Returns the bytes discarded.
   */
  private discardRanges(ranges: readonly Segment[]): number {
    let bytes = 0;
    for (const r of ranges) {
      if (r.len === 0 || r.addr % BALLOON_PAGE !== 0 || r.len % BALLOON_PAGE !== 0) {
        this.refuse({ kind: "UnalignedRange", gpa: r.addr, len: r.len }, false);
      } else if (!this.memory.discard(r.addr, r.len)) {
        this.refuse({ kind: "NotRam", gpa: r.addr, len: r.len }, false);
      } else bytes += r.len;
    }
    return bytes;
  }

  /**
   * Record a refused buffer or range. A buffer of the wrong shape means the driver does not
   * follow the protocol at all: the device asks for a reset (2.1.2: DEVICE_NEEDS_RESET when it
   * cannot go on) but still returns the buffer, so the guest never waits on it forever.
   */
  private refuse(e: BalloonRequestError, broken: boolean): void {
    this.lastError = e;
    this.count(`refused.${e.kind}`);
    if (broken) this.host.needsReset(`balloon: ${e.kind}`);
  }
}

/** Saved device state (see VirtioBalloon.saveState). */
export interface BalloonState {
  pages: number[];
  numPages: number;
  actual: number;
  reportedBytes: number;
  hintedBytes: number;
  freePageHint: FreePageHintState;
  nextCmdId: number;
}

function parseHintState(v: unknown): FreePageHintState | undefined {
  if (v === null || typeof v !== "object") return undefined;
  const h = v as { tag?: unknown; cmdId?: unknown };
  if (h.tag === "idle" || h.tag === "done") return Object.keys(h).length === 1 ? { tag: h.tag } : undefined;
  if (h.tag !== "requested" && h.tag !== "hinting" && h.tag !== "stopped") return undefined;
  const id = h.cmdId;
  if (!Number.isInteger(id) || (id as number) < FIRST_CMD_ID || (id as number) > 0xffff_ffff)
    return undefined;
  return { tag: h.tag, cmdId: id as number };
}

/** A buffer on free_page_vq: a command id (start or STOP) or a run of hinted free pages. */
type HintRequest =
  | { tag: "cmdId"; cmdId: number }
  | { tag: "pages"; ranges: readonly Segment[]; bytes: number }
  | BalloonRequestError;

/** Linux send_cmd_id_start/stop: one device-readable le32; get_free_page_and_send: one device-writable block. */
function parseHintRequest(chain: DescriptorChain, mem: GuestMemory): HintRequest {
  if (chain.writable.length === 0) {
    if (chain.readableBytes !== CMD_ID_BYTES) return { kind: "BadCmdIdBuffer", bytes: chain.readableBytes };
    const b = new Uint8Array(CMD_ID_BYTES);
    const rd = chain.reader(mem);
    if (rd.read(b) !== CMD_ID_BYTES) return { kind: "BadCmdIdBuffer", bytes: chain.readableBytes };
    return { tag: "cmdId", cmdId: new DataView(b.buffer).getUint32(0, true) };
  }
  if (chain.readable.length > 0)
    return { kind: "DeviceReadablePages", queue: "freePage", bytes: chain.readableBytes };
  return { tag: "pages", ranges: chain.writable, bytes: chain.writableBytes };
}
