/**
 * National Semiconductor PC16550D UART (the "16550A" Linux's 8250 driver detects), as a
 * register + state model: 16-byte receive FIFO, the four interrupt sources in IIR priority
 * order, modem control and status, loopback. Sources: the PC16550D datasheet (register
 * descriptions, section 8), and Linux drivers/tty/serial/8250/8250_port.c, whose autoconfig()
 * (IER scratch test, loopback test, IIR FIFO bits), autoconfig_16550a() (EFR, NS16550A,
 * TI16750 and XScale probes that a 16550A must fail) and size_fifo() this model answers exactly;
 * the tests replay those sequences.
 *
 * Deviations, both because the VMM feeds and drains the UART in whole chunks, not at a baud rate:
 * - transmission is instant: THR is empty again right after each write (THRE and TEMT stay 1,
 *   and the THRE interrupt re-arms at once), the byte goes to `onTransmit`;
 * - the character-timeout interrupt (IIR 0x0C) is reported as soon as the receive FIFO holds
 *   fewer bytes than the trigger level, as if four character times had already passed.
 */
import { type IrqLine, NO_IRQ, type PortDevice } from "./bus.js";

/** Standard COM1 base port and ISA IRQ. */
export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;

/** Register offsets (PC16550D Table II). With LCR.DLAB=1, offsets 0 and 1 are DLL and DLM. */
export const UartReg = {
  RBR_THR: 0, // receive buffer (read) / transmit holding (write)
  IER: 1, // interrupt enable
  IIR_FCR: 2, // interrupt identification (read) / FIFO control (write)
  LCR: 3, // line control
  MCR: 4, // modem control
  LSR: 5, // line status
  MSR: 6, // modem status
  SCR: 7, // scratch
} as const;

/** IER bits (only bits 0-3 exist on a 16550A: Linux's IER test and XScale UUE probe rely on it). */
export const Ier = { ERBFI: 0x01, ETBEI: 0x02, ELSI: 0x04, EDSSI: 0x08, MASK: 0x0f } as const;
/** IIR values: bit 0 set = no interrupt pending; bits 7:6 = 11 when the FIFOs are enabled. */
export const Iir = {
  NO_INT: 0x01,
  RLS: 0x06,
  RDA: 0x04,
  CTI: 0x0c,
  THRI: 0x02,
  MSI: 0x00,
  FIFO: 0xc0,
} as const;
/** FCR bits. FCR0 must be 1 for the other bits to be programmed (datasheet 8.5). */
export const Fcr = { ENABLE: 0x01, CLEAR_RCVR: 0x02, CLEAR_XMIT: 0x04, DMA: 0x08, TRIGGER: 0xc0 } as const;
/** LCR bits. */
export const Lcr = { WLEN: 0x03, STOP: 0x04, PARITY: 0x38, SBC: 0x40, DLAB: 0x80 } as const;
/** MCR bits (bits 5-7 are 0 on a 16550A). */
export const Mcr = { DTR: 0x01, RTS: 0x02, OUT1: 0x04, OUT2: 0x08, LOOP: 0x10, MASK: 0x1f } as const;
/** LSR bits. */
export const Lsr = {
  DR: 0x01,
  OE: 0x02,
  PE: 0x04,
  FE: 0x08,
  BI: 0x10,
  THRE: 0x20,
  TEMT: 0x40,
  FIFOE: 0x80,
} as const;
/** MSR bits: deltas in 3:0, line states in 7:4. */
export const Msr = {
  DCTS: 0x01,
  DDSR: 0x02,
  TERI: 0x04,
  DDCD: 0x08,
  CTS: 0x10,
  DSR: 0x20,
  RI: 0x40,
  DCD: 0x80,
  DELTA: 0x0f,
} as const;

/** Receive FIFO depth of a 16550A. */
export const FIFO_SIZE = 16;
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;

/** The modem input lines the host side drives when not in loopback. */
export interface ModemLines {
  cts: boolean;
  dsr: boolean;
  ri: boolean;
  dcd: boolean;
}

/** Plain, JSON-able UART state (save/restore). */
export interface Uart16550State {
  ier: number;
  lcr: number;
  mcr: number;
  scr: number;
  dll: number;
  dlm: number;
  fifoEnabled: boolean;
  triggerIndex: number;
  /** Received bytes not yet read, oldest first. */
  rx: number[];
  /** LSR error bits pending (OE, PE, FE, BI). */
  lsrErrors: number;
  /** MSR (line states and pending deltas). */
  msr: number;
  /** THRE interrupt latched (cleared by an IIR read that reports it). */
  threPending: boolean;
  lastRx: number;
  lines: ModemLines;
}

export interface Uart16550Deps {
  /** Where transmitted bytes go (the console). */
  onTransmit?: (byte: number) => void;
  /** The UART's interrupt output, already gated by MCR.OUT2 as on a PC. */
  irq?: IrqLine;
}

export class Uart16550 implements PortDevice {
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private dll = 0x0c; // 9600 baud at 1.8432 MHz, what a PC BIOS leaves behind
  private dlm = 0;
  private fifoEnabled = false;
  private triggerIndex = 0;
  private readonly rx = new Uint8Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  private lsrErrors = 0;
  private msr = 0;
  private threPending = false;
  private lastRx = 0;
  private lines: ModemLines = { cts: true, dsr: true, ri: false, dcd: true };
  private irqLevel = false;
  private readonly onTransmit: (byte: number) => void;
  private readonly irq: IrqLine;
  /** Bytes dropped because the receive FIFO was full (overrun). */
  overruns = 0;

  constructor(deps: Uart16550Deps = {}) {
    this.onTransmit = deps.onTransmit ?? (() => {});
    this.irq = deps.irq ?? NO_IRQ;
    this.msr = this.lineBits();
  }

  /** Free space in the receive FIFO: how many bytes `receive` will take now. */
  rxSpace(): number {
    if (this.mcr & Mcr.LOOP) return 0; // SIN is disconnected in loopback (datasheet 8.7, MCR4)
    return this.capacity() - this.rxCount;
  }

  /**
   * Bytes arriving on the serial line from the host. Takes as many as fit and returns that count
   * (the VMM holds the rest, so console input is never lost); nothing is taken in loopback mode.
   */
  receive(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.rxSpace());
    for (let i = 0; i < n; i++) this.pushRx(bytes[i]!);
    if (n > 0) this.update();
    return n;
  }

  /** Set the modem input lines (CTS, DSR, RI, DCD) as the far end drives them. */
  setModemLines(lines: Partial<ModemLines>): void {
    this.lines = { ...this.lines, ...lines };
    if (!(this.mcr & Mcr.LOOP)) this.setMsrLines(this.lineBits());
    this.update();
  }

  ioRead(offset: number, _size: 1 | 2 | 4): number {
    const dlab = (this.lcr & Lcr.DLAB) !== 0;
    switch (offset) {
      case UartReg.RBR_THR:
        return dlab ? this.dll : this.readRbr();
      case UartReg.IER:
        return dlab ? this.dlm : this.ier;
      case UartReg.IIR_FCR:
        return this.readIir();
      case UartReg.LCR:
        return this.lcr;
      case UartReg.MCR:
        return this.mcr;
      case UartReg.LSR:
        return this.readLsr();
      case UartReg.MSR: {
        // Reading MSR clears the delta bits (datasheet 8.8).
        const v = this.msr;
        this.msr &= ~Msr.DELTA;
        this.update();
        return v;
      }
      case UartReg.SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  ioWrite(offset: number, _size: 1 | 2 | 4, value: number): void {
    const v = value & 0xff;
    const dlab = (this.lcr & Lcr.DLAB) !== 0;
    switch (offset) {
      case UartReg.RBR_THR:
        if (dlab) this.dll = v;
        else this.writeThr(v);
        break;
      case UartReg.IER:
        if (dlab) this.dlm = v;
        else this.writeIer(v);
        break;
      case UartReg.IIR_FCR:
        this.writeFcr(v);
        break;
      case UartReg.LCR:
        this.lcr = v;
        break;
      case UartReg.MCR:
        this.writeMcr(v);
        break;
      case UartReg.SCR:
        this.scr = v;
        break;
      // LSR and MSR writes: factory test registers on the 16550; ignored.
    }
    this.update();
  }

  /** Whether the UART currently asserts its interrupt output. */
  get irqAsserted(): boolean {
    return this.irqLevel;
  }

  /** The baud-rate divisor (DLM:DLL). */
  get divisor(): number {
    return (this.dlm << 8) | this.dll;
  }

  save(): Uart16550State {
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rx[(this.rxHead + i) % FIFO_SIZE]!);
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      fifoEnabled: this.fifoEnabled,
      triggerIndex: this.triggerIndex,
      rx,
      lsrErrors: this.lsrErrors,
      msr: this.msr,
      threPending: this.threPending,
      lastRx: this.lastRx,
      lines: { ...this.lines },
    };
  }

  static restore(deps: Uart16550Deps, s: Uart16550State): Uart16550 {
    const byte = (n: unknown, what: string) => {
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 0xff)
        throw new Error(`uart state: bad ${what}`);
      return n;
    };
    const u = new Uart16550(deps);
    u.ier = byte(s.ier, "ier") & Ier.MASK;
    u.lcr = byte(s.lcr, "lcr");
    u.mcr = byte(s.mcr, "mcr") & Mcr.MASK;
    u.scr = byte(s.scr, "scr");
    u.dll = byte(s.dll, "dll");
    u.dlm = byte(s.dlm, "dlm");
    u.fifoEnabled = !!s.fifoEnabled;
    u.triggerIndex = byte(s.triggerIndex, "triggerIndex") & 3;
    if (!Array.isArray(s.rx) || s.rx.length > FIFO_SIZE) throw new Error("uart state: bad rx");
    for (const b of s.rx) u.pushRx(byte(b, "rx byte"));
    u.lsrErrors = byte(s.lsrErrors, "lsrErrors") & (Lsr.OE | Lsr.PE | Lsr.FE | Lsr.BI);
    u.msr = byte(s.msr, "msr");
    u.threPending = !!s.threPending;
    u.lastRx = byte(s.lastRx, "lastRx");
    u.lines = { cts: !!s.lines?.cts, dsr: !!s.lines?.dsr, ri: !!s.lines?.ri, dcd: !!s.lines?.dcd };
    u.update();
    return u;
  }

  // --- registers -------------------------------------------------------------------------

  private capacity(): number {
    // With the FIFOs off the UART is a 16450: a single receive holding register.
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  private pushRx(b: number): void {
    if (this.rxCount >= this.capacity()) {
      // Overrun (datasheet 8.6, LSR1): in FIFO mode the new character is lost; in 16450 mode it
      // overwrites the holding register.
      this.lsrErrors |= Lsr.OE;
      this.overruns++;
      if (!this.fifoEnabled) this.rx[this.rxHead] = b;
      return;
    }
    this.rx[(this.rxHead + this.rxCount) % FIFO_SIZE] = b;
    this.rxCount++;
  }

  private readRbr(): number {
    if (this.rxCount === 0) return this.lastRx;
    const b = this.rx[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
    this.rxCount--;
    this.lastRx = b;
    this.update();
    return b;
  }

  private writeThr(v: number): void {
    if (this.mcr & Mcr.LOOP) {
      // Loopback: the transmitter output is wired to the receiver input (datasheet 8.7, MCR4).
      this.pushRx(v);
    } else {
      this.onTransmit(v);
    }
    // Writing THR clears the THRE interrupt; the instant transmission empties THR again, which
    // raises it anew (datasheet Table IV: THRE interrupt set by "transmitter holding register empty").
    this.threPending = true;
  }

  private writeIer(v: number): void {
    const old = this.ier;
    this.ier = v & Ier.MASK;
    // Enabling ETBEI while THR is empty raises the THRE interrupt at once (Linux's
    // serial8250_do_startup THRE test expects exactly that); disabling it drops the latch.
    if (this.ier & Ier.ETBEI && !(old & Ier.ETBEI)) this.threPending = true;
    if (!(this.ier & Ier.ETBEI)) this.threPending = false;
  }

  private readIir(): number {
    const id = this.pendingInterrupt();
    // Reading IIR when it reports THRE clears that interrupt (datasheet Table IV).
    if (id === Iir.THRI) {
      this.threPending = false;
      this.update();
    }
    return (this.fifoEnabled ? Iir.FIFO : 0) | id;
  }

  private writeFcr(v: number): void {
    const enable = (v & Fcr.ENABLE) !== 0;
    if (enable !== this.fifoEnabled) {
      // Changing FCR0 resets both FIFOs (datasheet 8.5).
      this.fifoEnabled = enable;
      this.rxHead = 0;
      this.rxCount = 0;
    }
    if (!enable) return; // "FCR0 must be 1 when other FCR bits are written to or they will not be programmed"
    if (v & Fcr.CLEAR_RCVR) {
      this.rxHead = 0;
      this.rxCount = 0;
    }
    this.triggerIndex = (v & Fcr.TRIGGER) >> 6;
  }

  private readLsr(): number {
    let v = this.lsrErrors | Lsr.THRE | Lsr.TEMT;
    if (this.rxCount > 0) v |= Lsr.DR;
    // Reading LSR clears the error bits (datasheet 8.6).
    this.lsrErrors = 0;
    this.update();
    return v;
  }

  private writeMcr(v: number): void {
    this.mcr = v & Mcr.MASK;
    this.setMsrLines(this.mcr & Mcr.LOOP ? this.loopBits() : this.lineBits());
  }

  // --- modem status ------------------------------------------------------------------------

  private lineBits(): number {
    const l = this.lines;
    return (l.cts ? Msr.CTS : 0) | (l.dsr ? Msr.DSR : 0) | (l.ri ? Msr.RI : 0) | (l.dcd ? Msr.DCD : 0);
  }

  /** Loopback wiring (datasheet 8.7, MCR4): CTS<-RTS, DSR<-DTR, RI<-OUT1, DCD<-OUT2. */
  private loopBits(): number {
    const m = this.mcr;
    return (
      (m & Mcr.RTS ? Msr.CTS : 0) |
      (m & Mcr.DTR ? Msr.DSR : 0) |
      (m & Mcr.OUT1 ? Msr.RI : 0) |
      (m & Mcr.OUT2 ? Msr.DCD : 0)
    );
  }

  private setMsrLines(lines: number): void {
    const old = this.msr & 0xf0;
    const changed = old ^ lines;
    let delta = this.msr & Msr.DELTA;
    if (changed & Msr.CTS) delta |= Msr.DCTS;
    if (changed & Msr.DSR) delta |= Msr.DDSR;
    if (changed & Msr.DCD) delta |= Msr.DDCD;
    // TERI: RI went from on to off (trailing edge).
    if (old & Msr.RI && !(lines & Msr.RI)) delta |= Msr.TERI;
    this.msr = lines | delta;
  }

  // --- interrupts --------------------------------------------------------------------------

  /** The highest-priority pending interrupt's IIR id (datasheet Table IV), or NO_INT. */
  private pendingInterrupt(): number {
    if (this.ier & Ier.ELSI && this.lsrErrors) return Iir.RLS;
    if (this.ier & Ier.ERBFI && this.rxCount > 0) {
      if (!this.fifoEnabled || this.rxCount >= TRIGGER_LEVELS[this.triggerIndex]!) return Iir.RDA;
      return Iir.CTI;
    }
    if (this.ier & Ier.ETBEI && this.threPending) return Iir.THRI;
    if (this.ier & Ier.EDSSI && this.msr & Msr.DELTA) return Iir.MSI;
    return Iir.NO_INT;
  }

  private update(): void {
    // On a PC, OUT2 gates the UART's interrupt onto the ISA bus; in loopback the OUT pins are
    // forced inactive, so no interrupt leaves the chip (datasheet 8.7; IBM PC/AT serial adapter).
    const level = this.pendingInterrupt() !== Iir.NO_INT && (this.mcr & (Mcr.OUT2 | Mcr.LOOP)) === Mcr.OUT2;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
