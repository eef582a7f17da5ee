import { DeviceType, Feature } from "../constants";
import { VirtioDevice } from "../device";
import { features } from "../features";

/** virtio 1.2 5.3.3: console feature bits. */
export const ConsoleFeature = {
  /** cols and rows are valid. */
  SIZE: 0,
  /** Multiple ports and control queues (not offered: one port). */
  MULTIPORT: 1,
  /** emerg_wr writes a character without queues. */
  EMERG_WRITE: 2,
} as const;

/** virtio 1.2 5.3.4: configuration layout. */
export const ConsoleConfig = { COLS: 0, ROWS: 2, MAX_NR_PORTS: 4, EMERG_WR: 8, SIZE: 12 } as const;

/** Options for VirtioConsole. */
export interface VirtioConsoleOptions {
  /** Bytes the guest wrote (transmitq or emerg_wr). */
  onOutput?: (bytes: Uint8Array) => void;
  cols?: number;
  rows?: number;
  /**
   * Most input bytes held while the guest has no receive buffer; input() accepts no more
   * (Firecracker CVE-2020-27174 was unbounded console buffering).
   */
  maxPendingInput?: number;
}

const RX = 0;
const TX = 1;
/** Bytes read from one transmit chain at a time (bounded host allocation). */
const TX_CHUNK = 4096;

/**
 * virtio-console (virtio 1.2 5.3) with a single port: receiveq0 carries host input to the
 * guest, transmitq0 guest output to the host; SIZE and EMERG_WRITE are offered.
 *
 * @example
 * ```ts
 * import { VirtioConsole } from "@tskvm/virtio";
 * const con = new VirtioConsole({ onOutput: (b) => process.stdout.write(b) });
 * con.input(new TextEncoder().encode("root\n"));
 * ```
 */
export class VirtioConsole extends VirtioDevice {
  readonly deviceType = DeviceType.CONSOLE;
  readonly queueSizes = [256, 256];
  readonly offered = features(
    Feature.VERSION_1,
    Feature.EVENT_IDX,
    Feature.INDIRECT_DESC,
    Feature.RING_RESET,
    ConsoleFeature.SIZE,
    ConsoleFeature.EMERG_WRITE,
  );
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private readonly maxPending: number;
  private readonly onOutput: (bytes: Uint8Array) => void;
  private readonly chunk = new Uint8Array(TX_CHUNK);

  constructor(opts: VirtioConsoleOptions = {}) {
    super(ConsoleConfig.SIZE);
    this.onOutput = opts.onOutput ?? (() => {});
    this.maxPending = opts.maxPendingInput ?? 64 * 1024;
    this.configView.setUint16(ConsoleConfig.COLS, opts.cols ?? 80, true);
    this.configView.setUint16(ConsoleConfig.ROWS, opts.rows ?? 25, true);
    this.configView.setUint32(ConsoleConfig.MAX_NR_PORTS, 1, true);
  }

  /** Bytes waiting for a guest receive buffer. */
  get pendingInput(): number {
    return this.pendingBytes;
  }

  /** Queue host input for the guest; returns how many bytes were accepted (the rest is dropped). */
  input(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.maxPending - this.pendingBytes);
    if (n < bytes.length) this.count("inputDropped", bytes.length - n);
    if (n > 0) {
      this.pending.push(bytes.slice(0, n));
      this.pendingBytes += n;
    }
    this.deliver();
    return n;
  }

  /** A new terminal size: config change notification (5.3.6.1? SIZE). */
  resize(cols: number, rows: number): void {
    this.configView.setUint16(ConsoleConfig.COLS, cols, true);
    this.configView.setUint16(ConsoleConfig.ROWS, rows, true);
    this.host.configChanged();
  }

  protected override onConfigWrite(offset: number, size: number, value: number): boolean {
    // 5.3.4: emerg_wr: "a write to this field will cause the driver to output a single character".
    if (offset === ConsoleConfig.EMERG_WR && size === 4) {
      this.onOutput(new Uint8Array([value & 0xff]));
      return true;
    }
    return false;
  }

  protected onReset(): void {}

  queueNotify(q: number): void {
    if (q === TX) this.transmit();
    else if (q === RX) this.deliver();
  }

  private transmit(): void {
    const ctx = this.ctx;
    const q = ctx?.queues[TX];
    if (ctx === undefined || q === undefined || !q.ready) return;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      // The whole chain, every descriptor (Cloud Hypervisor #7803 read only the first).
      const rd = chain.reader(ctx.mem);
      while (rd.remaining > 0) {
        const n = rd.read(this.chunk);
        if (n === 0) break;
        this.onOutput(this.chunk.slice(0, n));
      }
      if (rd.faulted) this.count("badBuffer");
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(TX);
  }

  private deliver(): void {
    const ctx = this.ctx;
    const q = ctx?.queues[RX];
    if (ctx === undefined || q === undefined || !q.ready) return;
    let done = 0;
    while (this.pendingBytes > 0) {
      const chain = q.pop();
      if (chain === undefined) break;
      const w = chain.writer(ctx.mem);
      let written = 0;
      while (this.pending.length > 0 && w.remaining > 0 && !w.faulted) {
        const head = this.pending[0]!;
        const n = w.write(head);
        written += n;
        this.pendingBytes -= n;
        if (n === head.length) this.pending.shift();
        else this.pending[0] = head.subarray(n);
        if (n === 0) break;
      }
      if (w.faulted) this.count("badBuffer");
      q.pushUsed(chain, written);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(RX);
  }
}
