import { DeviceType, Feature } from "../constants";
import { type DeviceContext, VirtioDevice } from "../device";
import { type Features, features, hasFeature, setFeature } from "../features";

/** virtio 1.2 5.3.3: console feature bits. */
export const ConsoleFeature = {
  /** cols and rows are valid. */
  SIZE: 0,
  /** Multiple ports and control queues (offered when more than one port is configured). */
  MULTIPORT: 1,
  /** emerg_wr writes a character without queues. */
  EMERG_WRITE: 2,
} as const;

/** virtio 1.2 5.3.4: configuration layout. */
export const ConsoleConfig = { COLS: 0, ROWS: 2, MAX_NR_PORTS: 4, EMERG_WR: 8, SIZE: 12 } as const;

/** virtio 1.2 5.3.6.2: control message events. */
export const ConsoleControl = {
  DEVICE_READY: 0,
  DEVICE_ADD: 1,
  DEVICE_REMOVE: 2,
  PORT_READY: 3,
  CONSOLE_PORT: 4,
  RESIZE: 5,
  PORT_OPEN: 6,
  PORT_NAME: 7,
} as const;

/** One port of a multiport console. */
export interface ConsolePortOptions {
  /** Sent as VIRTIO_CONSOLE_PORT_NAME (Linux shows it as /dev/virtio-ports/<name>). */
  name?: string;
  /** Announce the port as a console (hvc) with VIRTIO_CONSOLE_CONSOLE_PORT. */
  console?: boolean;
  /** Bytes the guest wrote to this port. */
  onOutput?: (bytes: Uint8Array) => void;
}

/** Options for VirtioConsole. */
export interface VirtioConsoleOptions {
  /** Bytes the guest wrote to port 0 (transmitq0 or emerg_wr). */
  onOutput?: (bytes: Uint8Array) => void;
  cols?: number;
  rows?: number;
  /**
   * Most input bytes held per port while the guest has no receive buffer; input() accepts no
   * more (Firecracker CVE-2020-27174 was unbounded console buffering).
   */
  maxPendingInput?: number;
  /**
   * Extra ports 1..n (5.3.6.2 multiport). With any, VIRTIO_CONSOLE_F_MULTIPORT is offered and
   * port 0 (the console, `onOutput`) is announced like the others.
   */
  ports?: ConsolePortOptions[];
}

/** Bytes read from one transmit chain at a time (bounded host allocation). */
const TX_CHUNK = 4096;
const CONTROL_RX = 2;
const CONTROL_TX = 3;
/** Most control messages waiting for a control receive buffer. */
const MAX_CONTROL_PENDING = 256;

interface Port {
  opts: ConsolePortOptions;
  pending: Uint8Array[];
  pendingBytes: number;
  /** The guest opened the port (PORT_OPEN 1); port 0 without multiport counts as open. */
  guestOpen: boolean;
}

/**
 * virtio-console (virtio 1.2 5.3): port 0's receiveq carries host input to the guest and its
 * transmitq guest output to the host; with extra ports, the multiport control protocol
 * (5.3.6.2) announces them (DEVICE_ADD, CONSOLE_PORT, PORT_NAME, PORT_OPEN). SIZE and
 * EMERG_WRITE are offered.
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
  readonly queueSizes: readonly number[];
  readonly offered: Features;
  private readonly ports: Port[];
  private readonly maxPending: number;
  private readonly chunk = new Uint8Array(TX_CHUNK);
  private multiport = false;
  private readonly control: Uint8Array[] = [];

  constructor(opts: VirtioConsoleOptions = {}) {
    super(ConsoleConfig.SIZE);
    const extra = opts.ports ?? [];
    this.ports = [{ console: true, onOutput: opts.onOutput }, ...extra].map((o) => ({
      opts: o,
      pending: [],
      pendingBytes: 0,
      guestOpen: false,
    }));
    this.maxPending = opts.maxPendingInput ?? 64 * 1024;
    const f = features(
      Feature.VERSION_1,
      Feature.EVENT_IDX,
      Feature.INDIRECT_DESC,
      Feature.RING_RESET,
      ConsoleFeature.SIZE,
      ConsoleFeature.EMERG_WRITE,
    );
    // 5.3.2: queues 0/1 are port 0, 2/3 the control queues, then 2 per further port.
    const n = extra.length > 0 ? 4 + 2 * extra.length : 2;
    if (extra.length > 0) setFeature(f, ConsoleFeature.MULTIPORT);
    this.offered = f;
    this.queueSizes = new Array<number>(n).fill(128);
    this.configView.setUint16(ConsoleConfig.COLS, opts.cols ?? 80, true);
    this.configView.setUint16(ConsoleConfig.ROWS, opts.rows ?? 25, true);
    this.configView.setUint32(ConsoleConfig.MAX_NR_PORTS, this.ports.length, true);
  }

  /** Bytes of port 0 input waiting for a guest receive buffer. */
  get pendingInput(): number {
    return this.ports[0]!.pendingBytes;
  }

  /** Whether the guest has opened port p (multiport PORT_OPEN). */
  isOpen(p: number): boolean {
    return this.ports[p]?.guestOpen === true;
  }

  /** Queue host input for port p (default 0); returns how many bytes were accepted. */
  input(bytes: Uint8Array, p = 0): number {
    const port = this.ports[p];
    if (port === undefined) return 0;
    const n = Math.min(bytes.length, this.maxPending - port.pendingBytes);
    if (n < bytes.length) this.count("inputDropped", bytes.length - n);
    if (n > 0) {
      port.pending.push(bytes.slice(0, n));
      port.pendingBytes += n;
    }
    this.deliver(p);
    return n;
  }

  /** A new terminal size: config change notification (5.3.4, with SIZE). */
  resize(cols: number, rows: number): void {
    this.configView.setUint16(ConsoleConfig.COLS, cols, true);
    this.configView.setUint16(ConsoleConfig.ROWS, rows, true);
    this.host.configChanged();
  }

  protected override onConfigWrite(offset: number, size: number, value: number): boolean {
    // 5.3.4: emerg_wr: "a write to this field will cause the driver to output a single character".
    if (offset === ConsoleConfig.EMERG_WR && size === 4) {
      this.ports[0]!.opts.onOutput?.(new Uint8Array([value & 0xff]));
      return true;
    }
    return false;
  }

  protected override onActivate(ctx: DeviceContext): boolean {
    this.multiport = hasFeature(ctx.features, ConsoleFeature.MULTIPORT);
    if (!this.multiport) this.ports[0]!.guestOpen = true;
    return true;
  }

  protected onReset(): void {
    this.multiport = false;
    this.control.length = 0;
    for (const p of this.ports) p.guestOpen = false;
  }

  /** Queue index -> (port, direction), or the control queues. */
  private route(q: number): { port: number; rx: boolean } | "controlRx" | "controlTx" | undefined {
    if (q === 0 || q === 1) return { port: 0, rx: q === 0 };
    if (!this.multiport) return undefined;
    if (q === CONTROL_RX) return "controlRx";
    if (q === CONTROL_TX) return "controlTx";
    const port = (q >>> 1) - 1;
    return port < this.ports.length ? { port, rx: q % 2 === 0 } : undefined;
  }

  private rxQueue(p: number): number {
    return p === 0 ? 0 : 2 + 2 * p;
  }

  queueNotify(q: number): void {
    const r = this.route(q);
    if (r === undefined) this.count("notifyUnusedQueue");
    else if (r === "controlRx") this.flushControl();
    else if (r === "controlTx") this.controlIn();
    else if (r.rx) this.deliver(r.port);
    else this.transmit(q, r.port);
  }

  private transmit(qi: number, p: number): void {
    const ctx = this.ctx;
    const q = ctx?.queues[qi];
    if (ctx === undefined || q === undefined || !q.ready) return;
    const out = this.ports[p]!.opts.onOutput;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      // The whole chain, every descriptor (Cloud Hypervisor #7803 read only the first).
      const rd = chain.reader(ctx.mem);
      while (rd.remaining > 0) {
        const n = rd.read(this.chunk);
        if (n === 0) break;
        out?.(this.chunk.slice(0, n));
      }
      if (rd.faulted) this.count("badBuffer");
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  private deliver(p: number): void {
    const ctx = this.ctx;
    const port = this.ports[p];
    const qi = this.rxQueue(p);
    const q = ctx?.queues[qi];
    if (ctx === undefined || port === undefined || q === undefined || !q.ready) return;
    if (p !== 0 && !this.multiport) return;
    let done = 0;
    while (port.pendingBytes > 0) {
      const chain = q.pop();
      if (chain === undefined) break;
      const w = chain.writer(ctx.mem);
      let written = 0;
      while (port.pending.length > 0 && w.remaining > 0 && !w.faulted) {
        const head = port.pending[0]!;
        const n = w.write(head);
        written += n;
        port.pendingBytes -= n;
        if (n === head.length) port.pending.shift();
        else port.pending[0] = head.subarray(n);
        if (n === 0) break;
      }
      if (w.faulted) this.count("badBuffer");
      q.pushUsed(chain, written);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(qi);
  }

  /** Queue a control message for the driver (5.3.6.2: struct virtio_console_control [+ name]). */
  private sendControl(id: number, event: number, value: number, extra?: Uint8Array): void {
    if (this.control.length >= MAX_CONTROL_PENDING) {
      this.count("controlDropped");
      return;
    }
    const m = new Uint8Array(8 + (extra?.length ?? 0));
    const d = new DataView(m.buffer);
    d.setUint32(0, id, true);
    d.setUint16(4, event, true);
    d.setUint16(6, value, true);
    if (extra) m.set(extra, 8);
    this.control.push(m);
  }

  private flushControl(): void {
    const ctx = this.ctx;
    const q = ctx?.queues[CONTROL_RX];
    if (ctx === undefined || q === undefined || !q.ready) return;
    let done = 0;
    while (this.control.length > 0) {
      const chain = q.pop();
      if (chain === undefined) break;
      const w = chain.writer(ctx.mem);
      const n = w.write(this.control.shift()!);
      q.pushUsed(chain, n);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(CONTROL_RX);
  }

  /** Messages from the driver on the control transmit queue (5.3.6.2, driver to device). */
  private controlIn(): void {
    const ctx = this.ctx;
    const q = ctx?.queues[CONTROL_TX];
    if (ctx === undefined || q === undefined || !q.ready) return;
    const msg = new Uint8Array(8);
    const d = new DataView(msg.buffer);
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      if (chain.reader(ctx.mem).read(msg) === 8)
        this.handleControl(d.getUint32(0, true), d.getUint16(4, true), d.getUint16(6, true));
      else this.count("shortControl");
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(CONTROL_TX);
    this.flushControl();
  }

  private handleControl(id: number, event: number, value: number): void {
    switch (event) {
      case ConsoleControl.DEVICE_READY:
        // The driver is ready: announce every port (5.3.6.2: "the device ... sends
        // VIRTIO_CONSOLE_DEVICE_ADD for each port").
        if (value === 1)
          for (let p = 0; p < this.ports.length; p++) this.sendControl(p, ConsoleControl.DEVICE_ADD, 1);
        return;
      case ConsoleControl.PORT_READY: {
        const port = this.ports[id];
        if (port === undefined) {
          this.count("badPortId");
          return;
        }
        if (value !== 1) return;
        if (port.opts.console) this.sendControl(id, ConsoleControl.CONSOLE_PORT, 1);
        if (port.opts.name !== undefined) {
          this.sendControl(id, ConsoleControl.PORT_NAME, 1, new TextEncoder().encode(port.opts.name));
        }
        // The host end is always connected.
        this.sendControl(id, ConsoleControl.PORT_OPEN, 1);
        return;
      }
      case ConsoleControl.PORT_OPEN: {
        const port = this.ports[id];
        if (port === undefined) {
          this.count("badPortId");
          return;
        }
        port.guestOpen = value === 1;
        if (port.guestOpen) this.deliver(id);
        return;
      }
      default:
        this.count("unknownControl");
    }
  }

  /** Control messages waiting for a control receive buffer. */
  get pendingControl(): number {
    return this.control.length;
  }
}
