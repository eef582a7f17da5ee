/**
 * Intel 8042 keyboard controller with a PS/2 keyboard behind it and no mouse, as a register +
 * state model. Enough of the controller for Linux's i8042 probe (drivers/input/serio/i8042.c:
 * flush, CTL_TEST, read/write CTR, AUX loop and toggles, KBD_TEST) and atkbd's identify/reset,
 * and the reset line: command 0xFE on port 0x64 (or any 0xF0-0xFF pulse with bit 0 clear, or an
 * output-port write with bit 0 clear) raises a reset event — how Linux's `reboot` resets a PC
 * (arch/x86/kernel/reboot.c, BOOT_KBD) and how the VMM learns the guest wants to restart.
 *
 * Commands are processed at once, so the input buffer is never full (IBF stays 0).
 */
import { type IrqLine, NO_IRQ, type PortDevice } from "./bus.js";

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
export const I8042_KBD_IRQ = 1;
export const I8042_AUX_IRQ = 12;

/** Status register bits (Linux i8042.h I8042_STR_*). */
export const I8042Str = {
  OBF: 0x01, // output buffer full
  IBF: 0x02, // input buffer full
  SYS: 0x04, // system flag: self-test passed
  CMDDAT: 0x08, // last write was to the command port
  KEYLOCK: 0x10, // 1 = keyboard not inhibited
  AUXDATA: 0x20, // the output byte comes from the AUX port
  TIMEOUT: 0x40,
  PARITY: 0x80,
} as const;

/** Controller command byte (CTR) bits (Linux i8042.h I8042_CTR_*). */
export const I8042Ctr = {
  KBDINT: 0x01,
  AUXINT: 0x02,
  SYS: 0x04,
  IGNKEYLOCK: 0x08,
  KBDDIS: 0x10,
  AUXDIS: 0x20,
  XLATE: 0x40,
} as const;

/** Controller commands written to port 0x64. */
export const I8042Cmd = {
  READ_CTR: 0x20,
  WRITE_CTR: 0x60,
  AUX_DISABLE: 0xa7,
  AUX_ENABLE: 0xa8,
  AUX_TEST: 0xa9,
  SELF_TEST: 0xaa,
  KBD_TEST: 0xab,
  KBD_DISABLE: 0xad,
  KBD_ENABLE: 0xae,
  READ_INPUT_PORT: 0xc0,
  READ_OUTPUT_PORT: 0xd0,
  WRITE_OUTPUT_PORT: 0xd1,
  KBD_LOOP: 0xd2,
  AUX_LOOP: 0xd3,
  AUX_SEND: 0xd4,
  PULSE_RESET: 0xfe,
} as const;

/** Controller replies. */
const SELF_TEST_OK = 0x55;
const INTERFACE_TEST_OK = 0x00;
/** Keyboard replies (PS/2). */
const KBD_ACK = 0xfa;
const KBD_RESEND = 0xfe;
const KBD_BAT_OK = 0xaa;
const KBD_ECHO = 0xee;
/** MF2 keyboard id (atkbd: 0xab 0x83). */
const KBD_ID = [0xab, 0x83] as const;
/** Output port: bit 0 = reset line (0 resets the CPU), bit 1 = A20 gate. */
const OUTPORT_RESET = 0x01;
const OUTPORT_A20 = 0x02;
/** The output queue is bounded: a guest spamming commands cannot grow host memory. */
const MAX_QUEUE = 16;

export interface I8042State {
  ctr: number;
  outputPort: number;
  status: number;
  queue: { byte: number; aux: boolean }[];
  pendingCommand: number;
  kbdPendingCommand: number;
  lastData: number;
  scanSet: number;
}

export interface I8042Deps {
  /** The guest pulsed the CPU reset line. */
  onReset?: () => void;
  kbdIrq?: IrqLine;
  auxIrq?: IrqLine;
}

export class I8042 {
  // What a PC BIOS leaves: keyboard interrupt on, system flag, scan-code translation.
  private ctr = I8042Ctr.KBDINT | I8042Ctr.SYS | I8042Ctr.XLATE;
  private outputPort = OUTPORT_RESET | OUTPORT_A20;
  private status = I8042Str.SYS | I8042Str.KEYLOCK;
  private queue: { byte: number; aux: boolean }[] = [];
  /** A controller command waiting for its parameter byte on port 0x60 (0 = none). */
  private pendingCommand = 0;
  /** A keyboard command waiting for its parameter (0xED LEDs, 0xF0 scan set, 0xF3 typematic). */
  private kbdPendingCommand = 0;
  private lastData = 0;
  private scanSet = 2;
  private kbdLevel = false;
  private auxLevel = false;
  private readonly onReset: () => void;
  private readonly kbdIrq: IrqLine;
  private readonly auxIrq: IrqLine;
  /** Reset pulses seen. */
  resets = 0;

  constructor(deps: I8042Deps = {}) {
    this.onReset = deps.onReset ?? (() => {});
    this.kbdIrq = deps.kbdIrq ?? NO_IRQ;
    this.auxIrq = deps.auxIrq ?? NO_IRQ;
  }

  /** Whether the A20 gate is open (output port bit 1). */
  get a20(): boolean {
    return (this.outputPort & OUTPORT_A20) !== 0;
  }

  /** The controller command byte. */
  get commandByte(): number {
    return this.ctr;
  }

  /**
   * The two port-bus devices: data at 0x60 and status/command at 0x64 (not contiguous: 0x61
   * is the PIT's speaker port). Register each with length 1.
   */
  portDevices(): { data: PortDevice; command: PortDevice } {
    return {
      data: { ioRead: () => this.readData(), ioWrite: (_o, _s, v) => this.writeData(v & 0xff) },
      command: { ioRead: () => this.readStatus(), ioWrite: (_o, _s, v) => this.writeCommand(v & 0xff) },
    };
  }

  /** The status register (port 0x64 read). */
  private readStatus(): number {
    let s = this.status & ~(I8042Str.OBF | I8042Str.AUXDATA);
    const head = this.queue[0];
    if (head) s |= I8042Str.OBF | (head.aux ? I8042Str.AUXDATA : 0);
    return s;
  }

  private readData(): number {
    const head = this.queue.shift();
    if (head) {
      this.lastData = head.byte;
      // Reading empties the output buffer, which drops IRQ 1/12; the next queued byte then loads
      // and raises its line again. The drop matters: the IOAPIC and PIC see these IRQs as edges,
      // so a line held high across two keyboard bytes would never announce the second one, and
      // Linux's i8042 driver (which reads one byte per interrupt) would stall.
      this.setLevels(false, false);
    }
    this.update();
    // An empty buffer reads the last byte again, as the real latch does.
    return this.lastData;
  }

  private push(byte: number, aux: boolean): void {
    if (this.queue.length < MAX_QUEUE) this.queue.push({ byte: byte & 0xff, aux });
  }

  private writeCommand(cmd: number): void {
    this.status |= I8042Str.CMDDAT;
    this.pendingCommand = 0;
    switch (cmd) {
      case I8042Cmd.READ_CTR:
        this.push(this.ctr, false);
        break;
      case I8042Cmd.WRITE_CTR:
      case I8042Cmd.WRITE_OUTPUT_PORT:
      case I8042Cmd.KBD_LOOP:
      case I8042Cmd.AUX_LOOP:
      case I8042Cmd.AUX_SEND:
        this.pendingCommand = cmd;
        break;
      case I8042Cmd.AUX_DISABLE:
        this.ctr |= I8042Ctr.AUXDIS;
        break;
      case I8042Cmd.AUX_ENABLE:
        this.ctr &= ~I8042Ctr.AUXDIS;
        break;
      case I8042Cmd.AUX_TEST:
      case I8042Cmd.KBD_TEST:
        this.push(INTERFACE_TEST_OK, false);
        break;
      case I8042Cmd.SELF_TEST:
        this.status |= I8042Str.SYS;
        this.push(SELF_TEST_OK, false);
        break;
      case I8042Cmd.KBD_DISABLE:
        this.ctr |= I8042Ctr.KBDDIS;
        break;
      case I8042Cmd.KBD_ENABLE:
        this.ctr &= ~I8042Ctr.KBDDIS;
        break;
      case I8042Cmd.READ_INPUT_PORT:
        this.push(0x80, false); // bit 7: keyboard not inhibited
        break;
      case I8042Cmd.READ_OUTPUT_PORT:
        this.push(this.outputPort, false);
        break;
      default:
        if (cmd >= 0x21 && cmd <= 0x3f) {
          this.push(0, false); // controller RAM bytes other than the CTR: nothing stored
        } else if (cmd >= 0xf0) {
          // Pulse output-port lines for 6 us; bit 0 clear pulses the CPU reset line (0xFE).
          if (!(cmd & 1)) this.reset();
        }
      // Other commands (0x61-0x7f RAM writes, vendor commands) are accepted and ignored.
    }
    this.update();
  }

  private writeData(v: number): void {
    this.status &= ~I8042Str.CMDDAT;
    const cmd = this.pendingCommand;
    this.pendingCommand = 0;
    switch (cmd) {
      case I8042Cmd.WRITE_CTR:
        this.ctr = v;
        // The SYS flag in the status register follows CTR bit 2.
        this.status = (this.status & ~I8042Str.SYS) | (v & I8042Ctr.SYS ? I8042Str.SYS : 0);
        break;
      case I8042Cmd.WRITE_OUTPUT_PORT:
        this.outputPort = v;
        if (!(v & OUTPORT_RESET)) this.reset();
        break;
      case I8042Cmd.KBD_LOOP:
        this.push(v, false);
        break;
      case I8042Cmd.AUX_LOOP:
        this.push(v, true);
        break;
      case I8042Cmd.AUX_SEND:
        // No mouse: the controller reports no acknowledgement from the AUX device.
        this.push(KBD_RESEND, true);
        break;
      default:
        this.keyboardCommand(v);
    }
    this.update();
  }

  /** The PS/2 keyboard's side of a byte written to port 0x60. */
  private keyboardCommand(v: number): void {
    const param = this.kbdPendingCommand;
    if (param) {
      this.kbdPendingCommand = 0;
      if (param === 0xf0) {
        if (v === 0) {
          this.push(KBD_ACK, false);
          this.push(this.scanSet, false);
          return;
        }
        if (v >= 1 && v <= 3) this.scanSet = v;
      }
      this.push(KBD_ACK, false);
      return;
    }
    switch (v) {
      case 0xff: // reset and self-test (BAT)
        this.scanSet = 2;
        this.push(KBD_ACK, false);
        this.push(KBD_BAT_OK, false);
        break;
      case 0xf2: // identify
        this.push(KBD_ACK, false);
        for (const b of KBD_ID) this.push(b, false);
        break;
      case 0xee:
        this.push(KBD_ECHO, false);
        break;
      case 0xed: // set LEDs
      case 0xf0: // scan-code set
      case 0xf3: // typematic rate
        this.kbdPendingCommand = v;
        this.push(KBD_ACK, false);
        break;
      case 0xf4: // enable scanning
      case 0xf5: // disable scanning
      case 0xf6: // set defaults
        this.push(KBD_ACK, false);
        break;
      default:
        this.push(KBD_RESEND, false);
    }
  }

  private reset(): void {
    this.resets++;
    this.onReset();
  }

  /** Drives IRQ 1 and 12 to these levels, signalling only the lines that change. */
  private setLevels(kbd: boolean, aux: boolean): void {
    if (kbd !== this.kbdLevel) {
      this.kbdLevel = kbd;
      this.kbdIrq.set(kbd);
    }
    if (aux !== this.auxLevel) {
      this.auxLevel = aux;
      this.auxIrq.set(aux);
    }
  }

  private update(): void {
    const head = this.queue[0];
    this.setLevels(
      !!head && !head.aux && (this.ctr & I8042Ctr.KBDINT) !== 0,
      !!head && head.aux && (this.ctr & I8042Ctr.AUXINT) !== 0,
    );
  }

  save(): I8042State {
    return {
      ctr: this.ctr,
      outputPort: this.outputPort,
      status: this.status,
      queue: this.queue.map((q) => ({ ...q })),
      pendingCommand: this.pendingCommand,
      kbdPendingCommand: this.kbdPendingCommand,
      lastData: this.lastData,
      scanSet: this.scanSet,
    };
  }

  static restore(deps: I8042Deps, s: I8042State): I8042 {
    const byte = (n: unknown, what: string) => {
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 0xff)
        throw new Error(`i8042 state: bad ${what}`);
      return n;
    };
    const d = new I8042(deps);
    d.ctr = byte(s.ctr, "ctr");
    d.outputPort = byte(s.outputPort, "outputPort");
    d.status = byte(s.status, "status");
    if (!Array.isArray(s.queue) || s.queue.length > MAX_QUEUE) throw new Error("i8042 state: bad queue");
    d.queue = s.queue.map((q) => ({ byte: byte(q.byte, "queue byte"), aux: !!q.aux }));
    d.pendingCommand = byte(s.pendingCommand, "pendingCommand");
    d.kbdPendingCommand = byte(s.kbdPendingCommand, "kbdPendingCommand");
    d.lastData = byte(s.lastData, "lastData");
    d.scanSet = byte(s.scanSet, "scanSet");
    d.update();
    return d;
  }
}
