/**
 * The two one-port devices: the POST diagnostic port 0x80 and QEMU's isa-debug-exit.
 */
import type { PortDevice } from "./bus.js";

/** Port 0x80: BIOS POST codes; Linux also writes it as an I/O delay (arch/x86/kernel/io_delay.c). */
export const POST_PORT = 0x80;

/**
 * Port 0x80. Writes are kept as the last POST code (for a debug log); reads float to 0xff, as
 * QEMU's ioport80 does: the port has no readable register on a PC.
 */
export class PostPort implements PortDevice {
  /** The last byte written. */
  lastCode = 0;
  /** How many writes were seen (Linux's io_delay touches it often). */
  writes = 0;

  ioRead(): number {
    return 0xff;
  }

  ioWrite(_offset: number, _size: 1 | 2 | 4, value: number): void {
    this.lastCode = value & 0xff;
    this.writes++;
  }
}

/** Where test kernels expect isa-debug-exit (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`). */
export const DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_SIZE = 4;

/**
 * QEMU's isa-debug-exit (hw/misc/debugexit.c): a write of `value` ends the VM with exit status
 * `(value << 1) | 1`, so a status is always odd and never collides with a clean exit 0. The
 * value is as wide as the access; the process exit status the CLI gives is its low 8 bits.
 */
export class DebugExit implements PortDevice {
  constructor(private readonly onExit: (status: number) => void) {}

  ioRead(): number {
    return 0xffffffff;
  }

  ioWrite(_offset: number, size: 1 | 2 | 4, value: number): void {
    const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    const v = (value & mask) >>> 0;
    // Computed in floating point: for a 32-bit value the status has 33 significant bits.
    this.onExit(v * 2 + 1);
  }
}
