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
  private last: Range | undefined;
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
    // Ranges never overlap or go away, so the last one hit answers again while it matches: a
    // guest polls one device (the UART's LSR and THR) for long stretches.
    const last = this.last;
    if (last !== undefined && port >= last.base && port < last.base + last.len) return last;
    for (const r of this.ranges)
      if (port >= r.base && port < r.base + r.len) {
        this.last = r;
        return r;
      }
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

/**
 * A device on the MMIO bus; the same method names as `@tskvm/virtio`'s MmioTransport, so a
 * transport registers as it is. `offset` is relative to the registered base.
 */
export interface MmioDevice {
  read(offset: number, size: number): number;
  write(offset: number, size: number, value: number): void;
}

interface MmioRange {
  base: number;
  len: number;
  dev: MmioDevice;
  name: string;
}

/**
 * Guest-physical MMIO dispatch for what KVM hands to userspace as KVM_EXIT_MMIO (addresses
 * that are neither RAM nor an in-kernel device). Ranges can move (PCI BARs), so they can be
 * unregistered. Unclaimed reads return all ones, unclaimed writes are dropped; both are counted.
 */
export class MmioBus {
  private ranges: MmioRange[] = [];
  unclaimed = 0;

  register(base: number, len: number, dev: MmioDevice, name: string): void {
    if (
      !Number.isSafeInteger(base) ||
      !Number.isSafeInteger(len) ||
      base < 0 ||
      len < 1 ||
      base + len > 2 ** 52
    ) {
      throw new PortBusError(`${name}: bad MMIO range ${base}+${len}`);
    }
    for (const r of this.ranges) {
      if (base < r.base + r.len && r.base < base + len) {
        throw new PortBusError(
          `${name}: MMIO 0x${base.toString(16)}+0x${len.toString(16)} overlaps ${r.name}`,
        );
      }
    }
    this.ranges.push({ base, len, dev, name });
  }

  /** Remove every range registered under `name`; returns how many were removed. */
  unregister(name: string): number {
    const before = this.ranges.length;
    this.ranges = this.ranges.filter((r) => r.name !== name);
    return before - this.ranges.length;
  }

  private find(gpa: number, size: number): MmioRange | undefined {
    for (const r of this.ranges) if (gpa >= r.base && gpa - r.base + size <= r.len) return r;
    return undefined;
  }

  read(gpa: number, size: 1 | 2 | 4): number {
    const r = this.find(gpa, size);
    if (!r) {
      this.unclaimed++;
      return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    }
    return r.dev.read(gpa - r.base, size) >>> 0;
  }

  write(gpa: number, size: 1 | 2 | 4, value: number): void {
    const r = this.find(gpa, size);
    if (!r) {
      this.unclaimed++;
      return;
    }
    r.dev.write(gpa - r.base, size, value >>> 0);
  }

  /** A KVM_EXIT_MMIO read of `data.length` (1, 2, 4 or 8) bytes, little-endian; 8 is two dwords. */
  readBytes(gpa: number, data: Uint8Array): void {
    for (let off = 0; off < data.length; ) {
      const size = data.length - off >= 4 ? 4 : data.length - off >= 2 ? 2 : 1;
      const v = this.read(gpa + off, size);
      for (let i = 0; i < size; i++) data[off + i] = (v >>> (8 * i)) & 0xff;
      off += size;
    }
  }

  /** A KVM_EXIT_MMIO write of `data` (1, 2, 4 or 8 bytes), little-endian; 8 is two dwords. */
  writeBytes(gpa: number, data: Uint8Array): void {
    for (let off = 0; off < data.length; ) {
      const size = data.length - off >= 4 ? 4 : data.length - off >= 2 ? 2 : 1;
      let v = 0;
      for (let i = 0; i < size; i++) v |= data[off + i]! << (8 * i);
      this.write(gpa + off, size, v >>> 0);
      off += size;
    }
  }
}
