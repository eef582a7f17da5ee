/**
 * PCI bus 0 behind configuration mechanism #1 (ports 0xCF8 CONFIG_ADDRESS, 0xCFC-0xCFF
 * CONFIG_DATA; PCI Local Bus Specification 3.0, 3.2.2.3.2), a host bridge at 00:00.0, and
 * `PciConfigSpace`, a type-0 configuration header with the BAR sizing protocol (PCI 3.0,
 * 6.2.5.1) and a capability list, for devices such as virtio-pci to build on.
 * Linux finds the bus with pci_check_type1() (arch/x86/pci/direct.c): a dword write of
 * 0x80000000 to 0xCF8 must read back, and pci_sanity_check() looks for a host bridge.
 */
import type { PortDevice } from "./bus.js";

export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;
/** CONFIG_ADDRESS bit 31: enable configuration space mapping. */
export const PCI_CONFIG_ENABLE = 0x80000000;
/** Slots on one bus and functions per slot. */
export const PCI_SLOTS = 32;
export const PCI_FUNCTIONS = 8;

/** Type-0 configuration header offsets (PCI 3.0, 6.1). */
export const PciCfg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  PROG_IF: 0x09,
  SUBCLASS: 0x0a,
  CLASS: 0x0b,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITIES: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  SIZE: 0x100,
} as const;

/** Command register bits (PCI 3.0, 6.2.2). */
export const PciCommand = {
  IO: 0x0001,
  MEMORY: 0x0002,
  BUS_MASTER: 0x0004,
  PARITY: 0x0040,
  SERR: 0x0100,
  INTX_DISABLE: 0x0400,
} as const;
const COMMAND_WRITABLE =
  PciCommand.IO |
  PciCommand.MEMORY |
  PciCommand.BUS_MASTER |
  PciCommand.PARITY |
  PciCommand.SERR |
  PciCommand.INTX_DISABLE;

/** Status register bits. */
export const PciStatus = {
  INTERRUPT: 0x0008,
  CAP_LIST: 0x0010,
  /** Error bits, write-1-to-clear (PCI 3.0, 6.2.3). */
  W1C: 0xf900,
} as const;

/** BAR low bits (PCI 3.0, 6.2.5.1). */
const BAR_IO = 0x1;
const BAR_MEM_64 = 0x4;
const BAR_PREFETCH = 0x8;

/** A function's configuration space as the bus sees it. `offset` is 0-255 and the access never crosses a dword. */
export interface PciFunction {
  configRead(offset: number, size: 1 | 2 | 4): number;
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

export type BarKind = "io" | "mem32" | "mem64";
export interface BarSpec {
  kind: BarKind;
  /** Power of two; at least 16 for memory, 4 for I/O. */
  size: number;
  prefetchable?: boolean;
}

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  /** 24-bit class code: class << 16 | subclass << 8 | prog-if. */
  classCode: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** 1 = INTA# ... 4 = INTD#, 0 = none. */
  interruptPin?: number;
}

/** A device-setup mistake (never guest input). */
export class PciConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PciConfigError";
  }
}

/**
 * A type-0 configuration header with byte-granular write masks. BARs keep only the address bits
 * their size allows, so writing all ones and reading back gives the size (the sizing protocol).
 */
export class PciConfigSpace implements PciFunction {
  readonly bytes = new Uint8Array(PciCfg.SIZE);
  private readonly wmask = new Uint8Array(PciCfg.SIZE);
  private readonly w1cmask = new Uint8Array(PciCfg.SIZE);
  private readonly bars: (BarSpec | undefined)[] = new Array(6).fill(undefined);
  private nextCap = 0x40;
  private lastCap = 0;
  /** Called after the guest writes a BAR or toggles decoding in COMMAND, for the VMM to remap. */
  onMappingChange: () => void = () => {};
  /** Called after any guest write, for capabilities with side effects (MSI-X enable...). */
  onWrite: (offset: number, size: 1 | 2 | 4, value: number) => void = () => {};

  constructor(id: PciIdentity) {
    const dv = this.view();
    dv.setUint16(PciCfg.VENDOR_ID, id.vendorId, true);
    dv.setUint16(PciCfg.DEVICE_ID, id.deviceId, true);
    this.bytes[PciCfg.REVISION_ID] = id.revision ?? 0;
    this.bytes[PciCfg.PROG_IF] = id.classCode & 0xff;
    this.bytes[PciCfg.SUBCLASS] = (id.classCode >> 8) & 0xff;
    this.bytes[PciCfg.CLASS] = (id.classCode >> 16) & 0xff;
    dv.setUint16(PciCfg.SUBSYSTEM_VENDOR_ID, id.subsystemVendorId ?? 0, true);
    dv.setUint16(PciCfg.SUBSYSTEM_ID, id.subsystemId ?? 0, true);
    this.bytes[PciCfg.INTERRUPT_PIN] = id.interruptPin ?? 0;
    this.setMask(PciCfg.COMMAND, 2, COMMAND_WRITABLE);
    this.w1cmask[PciCfg.STATUS] = PciStatus.W1C & 0xff;
    this.w1cmask[PciCfg.STATUS + 1] = PciStatus.W1C >> 8;
    this.wmask[PciCfg.CACHE_LINE_SIZE] = 0xff;
    this.wmask[PciCfg.LATENCY_TIMER] = 0xff;
    this.wmask[PciCfg.INTERRUPT_LINE] = 0xff;
  }

  private view(): DataView {
    return new DataView(this.bytes.buffer);
  }

  private setMask(offset: number, len: number, mask: number): void {
    for (let i = 0; i < len; i++) this.wmask[offset + i] = (mask >>> (8 * i)) & 0xff;
  }

  /** Declare BAR `index` (0-5; a 64-bit BAR also takes index + 1). */
  setBar(index: number, spec: BarSpec): void {
    const { size, kind } = spec;
    const last = kind === "mem64" ? index + 1 : index;
    if (!Number.isInteger(index) || index < 0 || last > 5)
      throw new PciConfigError(`BAR ${index}: index out of range`);
    if (!Number.isInteger(size) || size <= 0 || !Number.isInteger(Math.log2(size))) {
      throw new PciConfigError(`BAR ${index}: size ${size} is not a power of two`);
    }
    if (kind === "io" ? size < 4 || size > 256 : size < 16)
      throw new PciConfigError(`BAR ${index}: size ${size} out of range for ${kind}`);
    if (kind !== "mem64" && size > 2 ** 31)
      throw new PciConfigError(`BAR ${index}: 32-bit BAR of ${size} bytes`);
    this.bars[index] = spec;
    const off = PciCfg.BAR0 + index * 4;
    const low =
      kind === "io" ? BAR_IO : (kind === "mem64" ? BAR_MEM_64 : 0) | (spec.prefetchable ? BAR_PREFETCH : 0);
    this.view().setUint32(off, low, true);
    // Address bits below the size are hardwired 0: the sizing protocol reads them back as 0.
    const lowMask = size >= 2 ** 32 ? 0 : (~(size - 1) & (kind === "io" ? ~0x3 : ~0xf)) >>> 0;
    this.setMask(off, 4, lowMask);
    if (kind === "mem64") {
      const hiMask = size > 2 ** 32 ? ~(size / 2 ** 32 - 1) >>> 0 : 0xffffffff;
      this.setMask(off + 4, 4, hiMask);
    }
  }

  /** The guest-assigned address of BAR `index`, or undefined if it has none or decoding is off. */
  barAddress(index: number): number | undefined {
    const spec = this.bars[index];
    if (!spec) return undefined;
    const dv = this.view();
    const cmd = dv.getUint16(PciCfg.COMMAND, true);
    if (!(cmd & (spec.kind === "io" ? PciCommand.IO : PciCommand.MEMORY))) return undefined;
    const off = PciCfg.BAR0 + index * 4;
    const lo = dv.getUint32(off, true) & (spec.kind === "io" ? ~0x3 : ~0xf);
    const hi = spec.kind === "mem64" ? dv.getUint32(off + 4, true) : 0;
    return hi * 2 ** 32 + (lo >>> 0);
  }

  /** The BAR declared at `index`. */
  bar(index: number): BarSpec | undefined {
    return this.bars[index];
  }

  /**
   * Append a capability (PCI 3.0, 6.7): `body` is everything after the ID and next-pointer
   * bytes; `writeMask` (same length as body) marks guest-writable bits. Returns its offset.
   */
  addCapability(id: number, body: Uint8Array, writeMask?: Uint8Array): number {
    const at = this.nextCap;
    const len = 2 + body.length;
    if (at + len > PciCfg.SIZE)
      throw new PciConfigError("capabilities overflow the 256-byte configuration space");
    this.bytes[at] = id;
    this.bytes[at + 1] = 0;
    this.bytes.set(body, at + 2);
    if (writeMask) this.wmask.set(writeMask.subarray(0, body.length), at + 2);
    if (this.lastCap === 0) this.bytes[PciCfg.CAPABILITIES] = at;
    else this.bytes[this.lastCap + 1] = at;
    this.lastCap = at;
    this.nextCap = (at + len + 3) & ~3;
    const st = this.view().getUint16(PciCfg.STATUS, true);
    this.view().setUint16(PciCfg.STATUS, st | PciStatus.CAP_LIST, true);
    return at;
  }

  /** Set or clear the status register's interrupt bit (INTx pending), as the device's IRQ state. */
  setInterruptStatus(pending: boolean): void {
    const st = this.view().getUint16(PciCfg.STATUS, true);
    this.view().setUint16(
      PciCfg.STATUS,
      pending ? st | PciStatus.INTERRUPT : st & ~PciStatus.INTERRUPT,
      true,
    );
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > PciCfg.SIZE) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.bytes[offset + i]! << (8 * i);
    return v >>> 0;
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 0 || offset + size > PciCfg.SIZE) return;
    let mapping = false;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      const wm = this.wmask[o]!;
      const w1c = this.w1cmask[o]!;
      const old = this.bytes[o]!;
      this.bytes[o] = ((old & ~wm) | (b & wm)) & ~(b & w1c) & 0xff;
      if ((o >= PciCfg.BAR0 && o < PciCfg.BAR0 + 24) || o === PciCfg.COMMAND)
        mapping ||= old !== this.bytes[o];
    }
    if (mapping) this.onMappingChange();
    this.onWrite(offset, size, value);
  }
}

/** Intel vendor ID and the host-bridge device ID Cloud Hypervisor uses for its virtual host bridge. */
export const HOST_BRIDGE_VENDOR = 0x8086;
export const HOST_BRIDGE_DEVICE = 0x0d57;
/** Class 06 (bridge), subclass 00 (host bridge). */
export const CLASS_HOST_BRIDGE = 0x060000;

/**
 * Configuration mechanism #1 and bus 0. Register at 0xCF8 with length 8: offset 0-3 is
 * CONFIG_ADDRESS (dword accesses only; byte and word accesses there are not configuration
 * cycles on a PC), offsets 4-7 are CONFIG_DATA for the addressed dword.
 */
export class PciHostBridge implements PortDevice {
  private address = 0;
  private readonly slots: (PciFunction | undefined)[][] = Array.from({ length: PCI_SLOTS }, () =>
    new Array(PCI_FUNCTIONS).fill(undefined),
  );
  /** The host bridge's own function, 00:00.0. */
  readonly hostBridge: PciConfigSpace;

  constructor() {
    this.hostBridge = new PciConfigSpace({
      vendorId: HOST_BRIDGE_VENDOR,
      deviceId: HOST_BRIDGE_DEVICE,
      classCode: CLASS_HOST_BRIDGE,
    });
    this.slots[0]![0] = this.hostBridge;
  }

  /** Plug a function in at bus 0, `slot` (1-31), function `fn`. */
  attach(slot: number, fn: PciFunction, func = 0): void {
    if (!Number.isInteger(slot) || slot < 1 || slot >= PCI_SLOTS)
      throw new PciConfigError(`slot ${slot} out of range 1-31`);
    if (!Number.isInteger(func) || func < 0 || func >= PCI_FUNCTIONS)
      throw new PciConfigError(`function ${func} out of range`);
    if (this.slots[slot]![func])
      throw new PciConfigError(`00:${slot.toString(16).padStart(2, "0")}.${func} is taken`);
    this.slots[slot]![func] = fn;
  }

  /** The first slot with nothing in it, or undefined when the bus is full. */
  freeSlot(): number | undefined {
    for (let s = 1; s < PCI_SLOTS; s++) if (this.slots[s]!.every((f) => !f)) return s;
    return undefined;
  }

  /** The function CONFIG_ADDRESS selects, or undefined (disabled, other bus, empty slot). */
  private selected(): PciFunction | undefined {
    const a = this.address;
    if (!(a & PCI_CONFIG_ENABLE)) return undefined;
    if (((a >>> 16) & 0xff) !== 0) return undefined; // only bus 0 exists
    const slot = (a >>> 11) & 0x1f;
    const func = (a >>> 8) & 0x7;
    const row = this.slots[slot]!;
    // PCI 3.0, 6.2.1: function 0 must exist for the other functions of a slot to be seen.
    if (func !== 0 && !row[0]) return undefined;
    return row[func];
  }

  ioRead(offset: number, size: 1 | 2 | 4): number {
    const ones = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    if (offset < 4) return offset === 0 && size === 4 ? this.address : ones;
    const fn = this.selected();
    const reg = (this.address & 0xfc) + (offset - 4);
    if (!fn || offset - 4 + size > 4) return ones; // master abort: all ones
    return fn.configRead(reg, size) >>> 0;
  }

  ioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 4) {
      // Bits 30:24 are reserved (read 0) and bits 1:0 read 0 (PCI 3.0, 3.2.2.3.2).
      if (offset === 0 && size === 4) this.address = (value & 0x80fffffc) >>> 0;
      return;
    }
    const fn = this.selected();
    if (!fn || offset - 4 + size > 4) return;
    fn.configWrite((this.address & 0xfc) + (offset - 4), size, value);
  }
}
