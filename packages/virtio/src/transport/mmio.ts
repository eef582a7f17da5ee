import { InterruptReason } from "../constants";
import type { VirtioDevice } from "../device";
import { type IrqLine, NO_IRQ } from "../irq";
import type { GuestMemory } from "../memory";
import { TransportCore, type TransportCoreState, type TransportOptions, TransportRestoreError } from "./core";

/** Saved virtio-mmio state. */
export interface MmioTransportState {
  kind: "virtio-mmio";
  core: TransportCoreState;
  interruptStatus: number;
}

/** virtio 1.2 4.2.2: virtio-mmio (version 2) register offsets. */
export const MmioReg = {
  /** 0x74726976, "virt". */
  MAGIC_VALUE: 0x000,
  /** 2 for the non-legacy interface. */
  VERSION: 0x004,
  DEVICE_ID: 0x008,
  VENDOR_ID: 0x00c,
  DEVICE_FEATURES: 0x010,
  DEVICE_FEATURES_SEL: 0x014,
  DRIVER_FEATURES: 0x020,
  DRIVER_FEATURES_SEL: 0x024,
  QUEUE_SEL: 0x030,
  QUEUE_NUM_MAX: 0x034,
  QUEUE_NUM: 0x038,
  QUEUE_READY: 0x044,
  QUEUE_NOTIFY: 0x050,
  INTERRUPT_STATUS: 0x060,
  INTERRUPT_ACK: 0x064,
  STATUS: 0x070,
  QUEUE_DESC_LOW: 0x080,
  QUEUE_DESC_HIGH: 0x084,
  QUEUE_DRIVER_LOW: 0x090,
  QUEUE_DRIVER_HIGH: 0x094,
  QUEUE_DEVICE_LOW: 0x0a0,
  QUEUE_DEVICE_HIGH: 0x0a4,
  /** Shared memory regions: none here, so SHMLen reads all ones (4.2.2 "region does not exist"). */
  SHM_SEL: 0x0ac,
  SHM_LEN_LOW: 0x0b0,
  SHM_LEN_HIGH: 0x0b4,
  SHM_BASE_LOW: 0x0b8,
  SHM_BASE_HIGH: 0x0bc,
  QUEUE_RESET: 0x0c0,
  CONFIG_GENERATION: 0x0fc,
  /** Device-specific configuration starts here. */
  CONFIG: 0x100,
} as const;

/** "virt" little-endian. */
export const MMIO_MAGIC = 0x74726976;
/** Vendor id reported by our devices ("QEMU" style id 0x554d4551 is QEMU's; ours spells "tskv"). */
export const TSKVM_VENDOR_ID = 0x766b7374;
/** The size of one virtio-mmio window, as Linux's cmdline form `4K@0x...:irq` uses. */
export const MMIO_WINDOW_SIZE = 0x1000;

const TWO_32 = 0x1_0000_0000;

/**
 * The Linux kernel command-line parameter that announces a virtio-mmio window at `base` with
 * interrupt `irq` (drivers/virtio/virtio_mmio.c, `virtio_mmio.device=<size>@<base>:<irq>`).
 *
 * @example
 * ```ts
 * import { mmioKernelParam } from "@tskvm/virtio";
 * mmioKernelParam(0xd000_0000, 5); // "virtio_mmio.device=4K@0xd0000000:5"
 * ```
 */
export function mmioKernelParam(base: number, irq: number): string {
  return `virtio_mmio.device=4K@0x${base.toString(16)}:${irq}`;
}

/**
 * The virtio-mmio version 2 transport (virtio 1.2 4.2): a 4 KiB register window and one
 * level-triggered interrupt line that is high while InterruptStatus is non-zero.
 *
 * The VMM maps it at a guest-physical base and forwards MMIO exits as `read(offset, size)` /
 * `write(offset, size, value)`; Linux finds it with `virtio_mmio.device=4K@<base>:<irq>`.
 *
 * @example
 * ```ts
 * import { FlatGuestMemory, MmioTransport, VirtioRng } from "@tskvm/virtio";
 * const mem = new FlatGuestMemory(1 << 20);
 * const mmio = new MmioTransport(new VirtioRng(), mem, { set: (level) => console.log("irq", level) });
 * mmio.read(0x000, 4).toString(16); // "74726976"
 * ```
 */
export class MmioTransport {
  readonly core: TransportCore;
  private interruptStatus = 0;

  constructor(
    readonly device: VirtioDevice,
    readonly mem: GuestMemory,
    private readonly irq: IrqLine = NO_IRQ,
    opts: TransportOptions = {},
  ) {
    this.core = new TransportCore(device, mem, opts);
    this.core.attachSink({
      queueInterrupt: () => this.raise(InterruptReason.USED_BUFFER),
      configInterrupt: () => this.raise(InterruptReason.CONFIG_CHANGE),
      resetInterrupts: () => {
        this.interruptStatus = 0;
        this.irq.set(false);
      },
    });
  }

  /** Plain, JSON-able state for snapshots. */
  save(): MmioTransportState {
    return { kind: "virtio-mmio", core: this.core.save(), interruptStatus: this.interruptStatus };
  }

  /**
   * A transport for `device` with a saved state loaded (validated, see TransportCore.load).
   * Throws TransportRestoreError naming the failed step.
   */
  static restore(
    device: VirtioDevice,
    mem: GuestMemory,
    irq: IrqLine,
    state: MmioTransportState,
    opts: TransportOptions = {},
  ): MmioTransport {
    if (state === null || typeof state !== "object" || state.kind !== "virtio-mmio") {
      throw new TransportRestoreError("NotMmioState");
    }
    const t = new MmioTransport(device, mem, irq, opts);
    const err = t.core.load(state.core);
    if (err !== undefined) throw new TransportRestoreError(err);
    t.interruptStatus |= state.interruptStatus & 3;
    t.irq.set(t.interruptStatus !== 0);
    // Chains made available before the snapshot are processed now (Firecracker #5958).
    t.core.resume();
    return t;
  }

  /** Current level of the interrupt line. */
  get irqLevel(): boolean {
    return this.interruptStatus !== 0;
  }

  private raise(reason: number): void {
    this.interruptStatus |= reason;
    this.irq.set(true);
  }

  /** A guest read of size bytes (1, 2, 4) at offset in the window; never throws. */
  read(offset: number, size: number): number {
    if (offset >= MmioReg.CONFIG) return this.device.readConfig(offset - MmioReg.CONFIG, size);
    // 4.2.2.2: "The driver MUST only use 32 bit wide and aligned reads and writes to access the
    // control registers"; anything else reads 0 here.
    if (size !== 4 || offset % 4 !== 0) {
      this.core.count("badRegisterAccess");
      return 0;
    }
    const c = this.core;
    const q = c.selectedQueue();
    switch (offset) {
      case MmioReg.MAGIC_VALUE:
        return MMIO_MAGIC;
      case MmioReg.VERSION:
        return 2;
      case MmioReg.DEVICE_ID:
        return this.device.deviceType;
      case MmioReg.VENDOR_ID:
        return TSKVM_VENDOR_ID;
      case MmioReg.DEVICE_FEATURES:
        return c.readDeviceFeatures();
      case MmioReg.QUEUE_NUM_MAX:
        // 4.2.2: 0 means the queue is not available.
        return q?.maxSize ?? 0;
      case MmioReg.QUEUE_READY:
        return q?.ready ? 1 : 0;
      case MmioReg.INTERRUPT_STATUS:
        return this.interruptStatus;
      case MmioReg.STATUS:
        return c.status;
      case MmioReg.SHM_LEN_LOW:
      case MmioReg.SHM_LEN_HIGH:
        return 0xffffffff;
      case MmioReg.SHM_BASE_LOW:
      case MmioReg.SHM_BASE_HIGH:
        return 0xffffffff;
      case MmioReg.QUEUE_RESET:
        return c.queueResetting[c.queueSel] ? 1 : 0;
      case MmioReg.CONFIG_GENERATION:
        return c.configGeneration;
      default:
        c.count("readUnknownRegister");
        return 0;
    }
  }

  /** A guest write of size bytes (1, 2, 4) at offset in the window; never throws. */
  write(offset: number, size: number, value: number): void {
    value >>>= 0;
    if (offset >= MmioReg.CONFIG) {
      this.device.writeConfig(offset - MmioReg.CONFIG, size, value);
      return;
    }
    if (size !== 4 || offset % 4 !== 0) {
      this.core.count("badRegisterAccess");
      return;
    }
    const c = this.core;
    switch (offset) {
      case MmioReg.DEVICE_FEATURES_SEL:
        c.deviceFeatureSel = value;
        return;
      case MmioReg.DRIVER_FEATURES:
        c.writeDriverFeatures(value);
        return;
      case MmioReg.DRIVER_FEATURES_SEL:
        c.driverFeatureSel = value;
        return;
      case MmioReg.QUEUE_SEL:
        c.queueSel = value;
        return;
      case MmioReg.QUEUE_NUM:
        this.queueWrite((q) => {
          q.size = value;
        });
        return;
      case MmioReg.QUEUE_READY:
        c.writeQueueReady((value & 1) === 1);
        return;
      case MmioReg.QUEUE_NOTIFY:
        // 4.2.2: the value is the queue index (without NOTIFICATION_DATA, not offered here);
        // all 32 bits count, so 0x10000 names no queue rather than queue 0.
        c.notify(value);
        return;
      case MmioReg.INTERRUPT_ACK:
        this.interruptStatus &= ~value;
        if (this.interruptStatus === 0) this.irq.set(false);
        return;
      case MmioReg.STATUS:
        c.writeStatus(value);
        return;
      case MmioReg.QUEUE_DESC_LOW:
        this.queueWrite((q) => {
          q.descAddr = q.descAddr - (q.descAddr % TWO_32) + value;
        });
        return;
      case MmioReg.QUEUE_DESC_HIGH:
        this.queueWrite((q) => {
          q.descAddr = hiAddr(q.descAddr, value);
        });
        return;
      case MmioReg.QUEUE_DRIVER_LOW:
        this.queueWrite((q) => {
          q.availAddr = q.availAddr - (q.availAddr % TWO_32) + value;
        });
        return;
      case MmioReg.QUEUE_DRIVER_HIGH:
        this.queueWrite((q) => {
          q.availAddr = hiAddr(q.availAddr, value);
        });
        return;
      case MmioReg.QUEUE_DEVICE_LOW:
        this.queueWrite((q) => {
          q.usedAddr = q.usedAddr - (q.usedAddr % TWO_32) + value;
        });
        return;
      case MmioReg.QUEUE_DEVICE_HIGH:
        this.queueWrite((q) => {
          q.usedAddr = hiAddr(q.usedAddr, value);
        });
        return;
      case MmioReg.SHM_SEL:
        return;
      case MmioReg.QUEUE_RESET:
        if ((value & 1) === 1) c.resetSelectedQueue();
        return;
      default:
        c.count("writeUnknownRegister");
    }
  }

  private queueWrite(fn: (q: NonNullable<ReturnType<TransportCore["selectedQueue"]>>) => void): void {
    const q = this.core.selectedQueue();
    if (q === undefined || !this.core.queueConfigurable()) {
      this.core.rejectQueueWrite();
      return;
    }
    fn(q);
  }
}

/**
 * Replace the high 32 bits of a 64-bit address. Addresses at or above 2^53 cannot be guest RAM;
 * they are pinned to an unmappable value so that later checks fail instead of rounding.
 */
export function hiAddr(addr: number, hi: number): number {
  const lo = addr % TWO_32;
  if (hi >= 0x20_0000) return Number.MAX_SAFE_INTEGER;
  return hi * TWO_32 + lo;
}
