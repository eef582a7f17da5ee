import { Feature } from "./constants";
import { type Features, hasFeature } from "./features";
import type { GuestMemory } from "./memory";
import type { QueueError } from "./queue/split";
import type { Virtqueue } from "./queue/virtqueue";

/** What a transport offers the device it carries. */
export interface DeviceHost {
  /** The device's configuration space changed: bump the generation and interrupt (2.5 config generation; 4.2.2 / 4.1.4.3). */
  configChanged(): void;
  /** The device hit an error it cannot recover from: set DEVICE_NEEDS_RESET (2.1.1). */
  needsReset(reason: string): void;
  /** Deliver the used-buffer interrupt for queue q (suppression already decided by the caller). */
  interruptQueue(q: number): void;
}

/** What the transport hands a device at DRIVER_OK. */
export interface DeviceContext {
  readonly mem: GuestMemory;
  /** One per queue the device declared; a queue the driver did not enable has ready = false. */
  readonly queues: readonly Virtqueue[];
  /** The negotiated features (acked, masked to offered). */
  readonly features: Features;
}

/** Counters a device keeps of what the guest did wrong or what it dropped (never thrown). */
export type Metrics = Record<string, number>;

const NO_HOST: DeviceHost = { configChanged: () => {}, needsReset: () => {}, interruptQueue: () => {} };

/**
 * The device half of a virtio device: type, queues, features, configuration space and the
 * request handling. Transports (mmio, pci) carry it; it never sees a register.
 *
 * Subclasses fill `config` (little-endian, 2.4: all 1.x fields are little-endian), declare
 * `queueSizes`, and handle `queueNotify`. Nothing reachable from the guest may throw out of
 * a device: requests answer with the spec's status, ring violations set DEVICE_NEEDS_RESET.
 */
export abstract class VirtioDevice {
  abstract readonly deviceType: number;
  /** Maximum size of each queue, in queue-index order. */
  abstract readonly queueSizes: readonly number[];
  /** Features the device offers (transport bits included). */
  abstract readonly offered: Features;
  /** The device-specific configuration space. */
  protected config: Uint8Array;
  protected configView: DataView;
  protected host: DeviceHost = NO_HOST;
  protected ctx: DeviceContext | undefined;
  readonly metrics: Metrics = {};

  constructor(configSize: number) {
    this.config = new Uint8Array(configSize);
    this.configView = new DataView(this.config.buffer);
  }

  /** Called by the transport that carries this device (once). */
  bind(host: DeviceHost): void {
    this.host = host;
  }

  get configSize(): number {
    return this.config.length;
  }

  /** Whether the driver has set DRIVER_OK and the device is running. */
  get active(): boolean {
    return this.ctx !== undefined;
  }

  /** The configuration space bytes (for snapshots). */
  saveConfig(): number[] {
    return [...this.config];
  }

  /** Load configuration space bytes saved by saveConfig; false if the size differs. */
  loadConfig(bytes: unknown): boolean {
    if (!Array.isArray(bytes) || bytes.length !== this.config.length) return false;
    if (!bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return false;
    this.config.set(bytes as number[]);
    return true;
  }

  /** Read size (1, 2 or 4) bytes little-endian at offset; out-of-range bytes read as 0. */
  readConfig(offset: number, size: number): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o >= 0 && o < this.config.length ? this.config[o]! : 0);
    }
    return v >>> 0;
  }

  /** A driver write to the configuration space; read-only by default (writes are counted). */
  writeConfig(offset: number, size: number, value: number): void {
    if (!this.onConfigWrite(offset, size, value >>> 0)) this.count("configWriteIgnored");
  }

  /** Device-specific writable config fields; return false when the write was not to one. */
  protected onConfigWrite(_offset: number, _size: number, _value: number): boolean {
    return false;
  }

  /**
   * Check the acked feature set at FEATURES_OK (3.1.1 step 6: the device may refuse it by
   * leaving FEATURES_OK clear), e.g. when a feature's dependency is missing.
   */
  validateFeatures(_acked: Features): boolean {
    return true;
  }

  /** DRIVER_OK: start. Return false when the device cannot run (the transport sets NEEDS_RESET). */
  activate(ctx: DeviceContext): boolean {
    this.ctx = ctx;
    for (const q of ctx.queues) {
      q.indirect = hasFeature(ctx.features, Feature.INDIRECT_DESC);
      q.eventIdx = hasFeature(ctx.features, Feature.EVENT_IDX);
    }
    return this.onActivate(ctx);
  }

  protected onActivate(_ctx: DeviceContext): boolean {
    return true;
  }

  /** Device reset (2.4): forget everything the driver set up; the transport resets queues. */
  reset(): void {
    this.ctx = undefined;
    this.onReset();
  }

  protected abstract onReset(): void;

  /** The driver notified queue q (only delivered while active and the queue is ready). */
  abstract queueNotify(q: number): void;

  /**
   * Device-internal state for snapshots (plain JSON), beyond config space and queues; undefined
   * when the device keeps none worth saving.
   */
  saveState(): unknown {
    return undefined;
  }

  /** Load what saveState returned (validated); false rejects the snapshot. */
  loadState(s: unknown): boolean {
    return s === undefined;
  }

  /** A queue was reset through RING_RESET (2.6.1); drop whatever the device held of it. */
  queueReset(_q: number): void {}

  /** A reset queue was enabled again while running (2.6.1.2). */
  queueEnabled(q: number): void {
    this.queueNotify(q);
  }

  protected count(name: string, n = 1): void {
    this.metrics[name] = (this.metrics[name] ?? 0) + n;
  }

  /**
   * After pushing used buffers on queue q: raise the interrupt if the driver wants one, or
   * report a broken ring as DEVICE_NEEDS_RESET.
   */
  protected signal(q: number): void {
    const queue = this.ctx?.queues[q];
    if (queue === undefined) return;
    if (queue.error !== undefined) {
      this.fail(queue.error);
      return;
    }
    if (queue.needsNotification()) this.host.interruptQueue(q);
  }

  /** A ring rule was broken: count it and ask the transport for DEVICE_NEEDS_RESET. */
  protected fail(e: QueueError): void {
    this.count(`queueError.${e.kind}`);
    this.host.needsReset(e.kind);
  }
}
