/**
 * Port I/O dispatch and the small interfaces a device needs from the VMM. Declared here
 * (consumer-side); the kvm-api exit loop will call `PortBus.read`/`write` for each
 * KVM_EXIT_IO, and an `IrqLine` will be backed by the irqchip (KVM_IRQ_LINE).
 */

/** A level-triggered interrupt line; the same shape as `@tskvm/virtio`'s. */
export interface IrqLine {
  set(level: boolean): void;
}

/** An IrqLine that goes nowhere. */
export const NO_IRQ: IrqLine = { set: () => {} };

/** A device on the port bus; `offset` is relative to the base it was registered at. */
export interface PortDevice {
  ioRead(offset: number, size: 1 | 2 | 4): number;
  ioWrite(offset: number, size: 1 | 2 | 4, value: number): void;
}

interface Range {
  base: number;
  len: number;
  dev: PortDevice;
  name: string;
  /** Registers are bytes: wider accesses are split into consecutive byte accesses. */
  byteWide: boolean;
}

/** Why a registration was refused (a VMM wiring bug, never guest input). */
export class PortBusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PortBusError";
  }
}

/** The 64 KiB x86 I/O port space. Unclaimed reads float high (all ones), as on the ISA bus. */
export class PortBus {
  private readonly ranges: Range[] = [];
  /** Accesses that hit no device (the VMM may log them). */
  unclaimed = 0;

  register(
    base: number,
    len: number,
    dev: PortDevice,
    name: string,
    opts: { byteWide?: boolean } = {},
  ): void {
    if (!Number.isInteger(base) || !Number.isInteger(len) || base < 0 || len < 1 || base + len > 0x10000) {
      throw new PortBusError(`${name}: bad port range ${base}+${len}`);
    }
    for (const r of this.ranges) {
      if (base < r.base + r.len && r.base < base + len) {
        throw new PortBusError(`${name}: ports 0x${base.toString(16)}+${len} overlap ${r.name}`);
      }
    }
    this.ranges.push({ base, len, dev, name, byteWide: opts.byteWide ?? false });
  }

  private find(port: number): Range | undefined {
    for (const r of this.ranges) if (port >= r.base && port < r.base + r.len) return r;
    return undefined;
  }

  /** The device name at a port, for logs. */
  nameAt(port: number): string | undefined {
    return this.find(port)?.name;
  }

  read(port: number, size: 1 | 2 | 4): number {
    const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    const r = this.find(port);
    if (!r) {
      this.unclaimed++;
      return mask >>> 0;
    }
    if (r.byteWide && size > 1) {
      let v = 0;
      for (let i = 0; i < size; i++) v |= this.read((port + i) & 0xffff, 1) << (8 * i);
      return v >>> 0;
    }
    return (r.dev.ioRead(port - r.base, size) & mask) >>> 0;
  }

  write(port: number, size: 1 | 2 | 4, value: number): void {
    const r = this.find(port);
    if (!r) {
      this.unclaimed++;
      return;
    }
    if (r.byteWide && size > 1) {
      for (let i = 0; i < size; i++) this.write((port + i) & 0xffff, 1, (value >>> (8 * i)) & 0xff);
      return;
    }
    const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    r.dev.ioWrite(port - r.base, size, (value & mask) >>> 0);
  }
}
