import { DeviceType, Feature } from "../constants";
import { type DeviceContext, VirtioDevice } from "../device";
import { type Features, features, hasFeature } from "../features";
import type { FlatGuestMemory } from "../memory";
import type { DescriptorChain } from "../queue/chain";

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
  /** Free page reporting: the contents may be dropped, but the guest may reuse the pages at any time. */
  discard(gpa: number, len: number): void;
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
  discard(gpa: number, len: number): void {
    this.fill(gpa, len);
  }
}

/** Options for VirtioBalloon. */
export interface VirtioBalloonOptions {
  /** Offer VIRTIO_BALLOON_F_STATS_VQ (default true). */
  stats?: boolean;
  /** Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (default true). */
  deflateOnOom?: boolean;
  /** Offer VIRTIO_BALLOON_F_PAGE_REPORTING (default true). */
  pageReporting?: boolean;
}

type Role = "inflate" | "deflate" | "stats" | "reporting";

/**
 * virtio-balloon (virtio 1.2 5.5): the host sets a target (num_pages), the guest inflates
 * (gives pages up, which the host reclaims through BalloonMemory) or deflates (takes them
 * back); statistics and free page reporting are offered; deflate-on-oom lets the guest
 * deflate under memory pressure.
 *
 * Queue indices follow the negotiated features as Linux assigns them: inflateq, deflateq,
 * then statsq, then reporting_vq, each present only when its feature was negotiated.
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

  constructor(
    private readonly memory: BalloonMemory,
    opts: VirtioBalloonOptions = {},
  ) {
    super(BalloonConfig.SIZE);
    const bits: number[] = [Feature.VERSION_1, Feature.INDIRECT_DESC, Feature.EVENT_IDX];
    if (opts.stats !== false) bits.push(BalloonFeature.STATS_VQ);
    if (opts.deflateOnOom !== false) bits.push(BalloonFeature.DEFLATE_ON_OOM);
    if (opts.pageReporting !== false) bits.push(BalloonFeature.PAGE_REPORTING);
    this.offered = features(...bits);
    const n = 2 + (opts.stats !== false ? 1 : 0) + (opts.pageReporting !== false ? 1 : 0);
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
    if (hasFeature(f, BalloonFeature.PAGE_REPORTING)) this.roles.push("reporting");
    return true;
  }

  protected onReset(): void {
    // A device reset returns every ballooned page: the driver starts again from an empty balloon.
    this.giveBackAll();
    this.roles = [];
    this.statsChain = undefined;
    this.configView.setUint32(BalloonConfig.ACTUAL, 0, true);
  }

  private giveBackAll(): void {
    for (const pfn of this.pages) this.memory.restore(pfn * BALLOON_PAGE, BALLOON_PAGE);
    this.pages.clear();
  }

  /**
   * The ballooned pages and the config fields. The host memory itself (which chunks are freed)
   * is the VMM's to save; on load the page set is taken as is, without BalloonMemory calls.
   */
  override saveState(): { pages: number[]; numPages: number; actual: number } {
    return {
      pages: [...this.pages].sort((a, b) => a - b),
      numPages: this.targetPages,
      actual: this.actualPages,
    };
  }

  override loadState(s: unknown): boolean {
    if (s === null || typeof s !== "object") return false;
    const st = s as { pages?: unknown; numPages?: unknown; actual?: unknown };
    const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
    if (!Array.isArray(st.pages) || !st.pages.every(u32) || !u32(st.numPages) || !u32(st.actual))
      return false;
    this.pages.clear();
    for (const p of st.pages as number[]) this.pages.add(p);
    this.configView.setUint32(BalloonConfig.NUM_PAGES, st.numPages as number, true);
    this.configView.setUint32(BalloonConfig.ACTUAL, st.actual as number, true);
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
      // virtio 1.2 5.5 (free page reporting): each buffer is a run of free guest pages; the host may
      // drop their contents. Only whole 4 KiB pages inside the buffer are discarded.
      for (const s of [...chain.readable, ...chain.writable]) {
        const start = Math.ceil(s.addr / BALLOON_PAGE) * BALLOON_PAGE;
        const end = Math.floor((s.addr + s.len) / BALLOON_PAGE) * BALLOON_PAGE;
        if (end > start) {
          this.memory.discard(start, end - start);
          this.count("reportedBytes", end - start);
        }
      }
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }
}
