import { Feature, MAX_QUEUE_SIZE, Status } from "../constants";
import type { DeviceContext, DeviceHost, VirtioDevice } from "../device";
import { type Features, hasFeature, isSubset as isSubsetOf, setFeature } from "../features";
import type { GuestMemory } from "../memory";
import { PackedQueue, type PackedQueueState } from "../queue/packed";
import { SplitQueue, type SplitQueueState } from "../queue/split";
import type { Virtqueue } from "../queue/virtqueue";

/** How a transport raises its interrupts (mmio: InterruptStatus + line; pci: ISR/INTx or MSI-X). */
export interface InterruptSink {
  queueInterrupt(q: number): void;
  configInterrupt(): void;
  /** Device reset: clear pending interrupt state. */
  resetInterrupts(): void;
}

/** Transport state for snapshots (plain JSON). */
export interface TransportCoreState {
  status: number;
  driverFeatures: Features;
  configGeneration: number;
  queueSel: number;
  queues: (SplitQueueState | PackedQueueState)[];
  queueResetting: boolean[];
  /** The device's configuration space bytes. */
  config: number[];
  /** The device's own state (VirtioDevice.saveState), if it keeps any. */
  device?: unknown;
}

/**
 * What every transport shares: the device status state machine (2.1, 3.1.1), feature
 * negotiation (2.2), queue configuration, notifications and DEVICE_NEEDS_RESET.
 *
 * The status machine is Firecracker's strict one (its CHANGELOG #5818): a status write may only
 * add the next bit of the 3.1.1 sequence (or FAILED), never clear one except by writing 0
 * (reset); features are writable only in ACKNOWLEDGE|DRIVER; queues only between FEATURES_OK
 * and DRIVER_OK (or for a queue reset with RING_RESET while running).
 */
/** A snapshot that does not validate; `step` names what failed (e.g. "BadStatus", "BadQueue0"). */
export class TransportRestoreError extends Error {
  constructor(readonly step: string) {
    super(`virtio transport restore failed: ${step}`);
    this.name = "TransportRestoreError";
  }
}

/** Transport options. */
export interface TransportOptions {
  /**
   * Offer VIRTIO_F_RING_PACKED (2.8). Off by default: split rings are what every driver uses;
   * when the driver accepts it, all queues become packed at FEATURES_OK.
   */
  packedRings?: boolean;
}

export class TransportCore implements DeviceHost {
  status = 0;
  deviceFeatureSel = 0;
  driverFeatureSel = 0;
  driverFeatures: Features = { lo: 0, hi: 0 };
  queueSel = 0;
  configGeneration = 0;
  queues: Virtqueue[];
  /** Features offered: the device's plus transport ones (RING_PACKED when enabled). */
  readonly offered: Features;
  /** Per queue: reset through RING_RESET and not yet re-enabled (reads back 1, 4.2.2 QueueReset). */
  readonly queueResetting: boolean[];
  readonly metrics: Record<string, number> = {};
  private sink: InterruptSink | undefined;

  constructor(
    readonly device: VirtioDevice,
    readonly mem: GuestMemory,
    opts: TransportOptions = {},
  ) {
    this.offered = { ...device.offered };
    if (opts.packedRings === true) setFeature(this.offered, Feature.RING_PACKED);
    // Linux's vring_create_virtqueue_split refuses a length that is not a power of two, and
    // 2.7 caps split queues at 32768: a device configured otherwise could never be driven.
    for (const n of device.queueSizes) {
      if (!Number.isInteger(n) || n < 1 || n > MAX_QUEUE_SIZE || (n & (n - 1)) !== 0) {
        throw new RangeError(`queue size ${n} is not a power of two in 1..${MAX_QUEUE_SIZE}`);
      }
    }
    this.queues = device.queueSizes.map((n) => new SplitQueue(n, mem));
    this.queueResetting = this.queues.map(() => false);
    device.bind(this);
  }

  /** Set by the transport in its constructor. */
  attachSink(sink: InterruptSink): void {
    this.sink = sink;
  }

  count(name: string): void {
    this.metrics[name] = (this.metrics[name] ?? 0) + 1;
  }

  /** 2.4 device reset: status 0, queues and selectors cleared, device state dropped. */
  reset(): void {
    this.status = 0;
    this.deviceFeatureSel = 0;
    this.driverFeatureSel = 0;
    this.driverFeatures = { lo: 0, hi: 0 };
    this.queueSel = 0;
    if (this.queues.some((q) => q instanceof PackedQueue)) {
      this.queues = this.device.queueSizes.map((n) => new SplitQueue(n, this.mem));
    }
    for (const q of this.queues) q.reset();
    this.queueResetting.fill(false);
    this.device.reset();
    this.sink?.resetInterrupts();
  }

  readDeviceFeatures(): number {
    const f = this.offered;
    return this.deviceFeatureSel === 0 ? f.lo : this.deviceFeatureSel === 1 ? f.hi : 0;
  }

  writeDriverFeatures(v: number): void {
    // Firecracker #5818: feature writes only while the driver is negotiating.
    if (this.status !== (Status.ACKNOWLEDGE | Status.DRIVER)) {
      this.count("featureWriteOutOfOrder");
      return;
    }
    // 2.2.1: the driver must not accept a feature the device did not offer: mask it away.
    const f = this.offered;
    if (this.driverFeatureSel === 0) this.driverFeatures.lo = (v & f.lo) >>> 0;
    else if (this.driverFeatureSel === 1) this.driverFeatures.hi = (v & f.hi) >>> 0;
  }

  get negotiated(): boolean {
    return (this.status & Status.FEATURES_OK) !== 0;
  }

  hasFeature(bit: number): boolean {
    return this.negotiated && hasFeature(this.driverFeatures, bit);
  }

  /** The status register write, 2.1 / 3.1.1. */
  writeStatus(value: number): void {
    const v = value & 0xff & ~Status.DEVICE_NEEDS_RESET;
    if (v === 0) {
      this.reset();
      return;
    }
    const cur = this.status & ~Status.DEVICE_NEEDS_RESET;
    // "Reject device status writes that clear previously set bits ... except for reset".
    if ((cur & ~v) !== 0) {
      this.count("statusClearRejected");
      return;
    }
    const added = v & ~cur;
    if (added === 0) return;
    if (added === Status.FAILED) {
      this.status |= Status.FAILED;
      return;
    }
    const A = Status.ACKNOWLEDGE;
    const D = Status.DRIVER;
    const F = Status.FEATURES_OK;
    if (cur === 0 && added === A) this.status = A;
    else if (cur === A && added === D) this.status = A | D;
    else if (cur === (A | D) && added === F) {
      // 3.1.1 step 6: the device leaves FEATURES_OK clear when it cannot support the subset.
      if (this.featuresAcceptable()) {
        this.status |= F;
        // 2.8: with RING_PACKED every queue of the device uses the packed layout.
        if (hasFeature(this.driverFeatures, Feature.RING_PACKED)) {
          this.queues = this.device.queueSizes.map((n) => new PackedQueue(n, this.mem));
        }
      } else this.count("featuresRejected");
    } else if (cur === (A | D | F) && added === Status.DRIVER_OK) this.driverOk();
    else this.count("statusOutOfOrder");
  }

  private featuresAcceptable(): boolean {
    // This is a modern-only (non-transitional) device: without VERSION_1 the driver speaks the
    // legacy interface, which it does not implement (6.1: "A device MAY fail to operate further
    // if VIRTIO_F_VERSION_1 is not accepted").
    if (!hasFeature(this.driverFeatures, Feature.VERSION_1)) return false;
    return this.device.validateFeatures({ ...this.driverFeatures });
  }

  private driverOk(): void {
    this.status |= Status.DRIVER_OK;
    for (const q of this.queues) {
      if (q.ready && !q.isValid()) {
        this.needsReset("InvalidQueueConfig");
        return;
      }
    }
    const ctx: DeviceContext = { mem: this.mem, queues: this.queues, features: { ...this.driverFeatures } };
    if (!this.device.activate(ctx)) {
      this.needsReset("ActivateFailed");
      return;
    }
    // Drivers make buffers available, and even kick, before DRIVER_OK (Linux's virtio_balloon
    // primes and kicks its stats queue in probe): those kicks were ignored, so look now.
    this.rescan();
  }

  /** Let the device process whatever is already available on every ready queue. */
  private rescan(): void {
    for (let i = 0; i < this.queues.length; i++) {
      if (this.queues[i]!.ready) this.guard(() => this.device.queueNotify(i));
    }
  }

  /** Whether the driver may (re)configure the selected queue now. */
  queueConfigurable(): boolean {
    const q = this.selectedQueue();
    if (q === undefined) return false;
    const s = this.status;
    if ((s & Status.FEATURES_OK) !== 0 && (s & Status.DRIVER_OK) === 0) return true;
    // 2.6.1.2: after a queue reset the driver may set the queue up again and re-enable it.
    return (s & Status.DRIVER_OK) !== 0 && this.queueResetting[this.queueSel] === true;
  }

  /** The queue QueueSel points at, if it names one (unsigned compare: CVE-2011-2512). */
  selectedQueue(): Virtqueue | undefined {
    return this.queueSel >>> 0 < this.queues.length ? this.queues[this.queueSel] : undefined;
  }

  /** A queue configuration write arrived at a wrong time or for no queue. */
  rejectQueueWrite(): void {
    this.count("queueWriteOutOfOrder");
  }

  /** The driver set the selected queue ready (1) or not (0). */
  writeQueueReady(ready: boolean): void {
    const q = this.selectedQueue();
    if (q === undefined || !this.queueConfigurable()) {
      this.rejectQueueWrite();
      return;
    }
    q.ready = ready;
    if (ready && (this.status & Status.DRIVER_OK) !== 0) {
      // Re-enable after a queue reset (2.6.1.2) while the device runs.
      this.queueResetting[this.queueSel] = false;
      if (!q.isValid()) {
        this.needsReset("InvalidQueueConfig");
        return;
      }
      this.guard(() => this.device.queueEnabled(this.queueSel));
    }
  }

  /** RING_RESET: reset the selected queue (2.6.1.1). */
  resetSelectedQueue(): void {
    const q = this.selectedQueue();
    if (q === undefined || !this.hasFeature(Feature.RING_RESET)) {
      this.count("queueResetRejected");
      return;
    }
    const i = this.queueSel;
    q.reset();
    this.queueResetting[i] = true;
    this.guard(() => this.device.queueReset(i));
  }

  /** The driver notified queue index q. */
  notify(q: number): void {
    const queue = q >>> 0 < this.queues.length ? this.queues[q] : undefined;
    if (queue === undefined) {
      this.count("notifyBadQueue");
      return;
    }
    if (
      (this.status & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) !== Status.DRIVER_OK ||
      !queue.ready ||
      !this.device.active
    ) {
      this.count("notifyIgnored");
      return;
    }
    this.guard(() => this.device.queueNotify(q));
  }

  /** Last line of defence: a bug in a device must not crash the VMM; it becomes NEEDS_RESET. */
  guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.count("deviceInternalError");
      this.needsReset(`internal: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  // DeviceHost

  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if ((this.status & Status.DRIVER_OK) !== 0) this.sink?.configInterrupt();
  }

  needsReset(reason: string): void {
    this.count(`needsReset.${reason}`);
    if ((this.status & Status.DEVICE_NEEDS_RESET) !== 0) return;
    this.status |= Status.DEVICE_NEEDS_RESET;
    // 2.1.2: "If DRIVER_OK is set, after it sets DEVICE_NEEDS_RESET, the device MUST send a
    // device configuration change notification to the driver."
    if ((this.status & Status.DRIVER_OK) !== 0) this.sink?.configInterrupt();
  }

  interruptQueue(q: number): void {
    if ((this.status & Status.DEVICE_NEEDS_RESET) !== 0) return;
    this.sink?.queueInterrupt(q);
  }

  /**
   * Load a saved state into a freshly constructed core (the same device type and options).
   * Everything is validated: a status the 3.1.1 sequence cannot reach, features that were not
   * offered, queue states that do not fit. Returns the failed step, or undefined on success;
   * then call resume().
   */
  load(s: TransportCoreState): string | undefined {
    this.reset();
    const u32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff;
    const A = Status.ACKNOWLEDGE;
    const D = Status.DRIVER;
    const F = Status.FEATURES_OK;
    const base = s.status & ~(Status.FAILED | Status.DEVICE_NEEDS_RESET);
    if (
      !u32(s.status) ||
      s.status > 0xff ||
      ![0, A, A | D, A | D | F, A | D | F | Status.DRIVER_OK].includes(base)
    ) {
      return "BadStatus";
    }
    const f = s.driverFeatures;
    if (f === null || typeof f !== "object" || !u32(f.lo) || !u32(f.hi) || !isSubsetOf(f, this.offered)) {
      return "BadFeatures";
    }
    if (!u32(s.configGeneration) || !u32(s.queueSel)) return "BadRegisters";
    if (!Array.isArray(s.queues) || s.queues.length !== this.queues.length) return "QueueCount";
    if (!Array.isArray(s.queueResetting) || s.queueResetting.length !== this.queues.length)
      return "QueueCount";
    this.driverFeatures = { lo: f.lo, hi: f.hi };
    if ((base & F) !== 0 && hasFeature(this.driverFeatures, Feature.RING_PACKED)) {
      this.queues = this.device.queueSizes.map((n) => new PackedQueue(n, this.mem));
    }
    for (let i = 0; i < this.queues.length; i++) {
      if (!this.queues[i]!.load(s.queues[i]!)) {
        this.reset();
        return `BadQueue${i}`;
      }
      this.queueResetting[i] = s.queueResetting[i] === true;
    }
    if (!this.device.loadConfig(s.config)) {
      this.reset();
      return "BadDeviceConfig";
    }
    if (!this.device.loadState(s.device)) {
      this.reset();
      return "BadDeviceState";
    }
    this.status = s.status;
    this.configGeneration = s.configGeneration;
    this.queueSel = s.queueSel;
    return undefined;
  }

  /** After load and the transport's own state: re-activate a running device and re-scan its queues. */
  resume(): void {
    if ((this.status & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) === Status.DRIVER_OK) {
      const ctx: DeviceContext = { mem: this.mem, queues: this.queues, features: { ...this.driverFeatures } };
      if (!this.device.activate(ctx)) this.needsReset("ActivateFailed");
      else this.rescan();
    }
  }

  save(): TransportCoreState {
    return {
      status: this.status,
      driverFeatures: { ...this.driverFeatures },
      configGeneration: this.configGeneration,
      queueSel: this.queueSel,
      queues: this.queues.map((q) => q.save()),
      queueResetting: [...this.queueResetting],
      config: this.device.saveConfig(),
      device: this.device.saveState(),
    };
  }
}
