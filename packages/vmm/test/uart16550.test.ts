import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PortBus } from "../src/devices/bus.js";
import { COM1_PORT, Ier, Iir, Lsr, Mcr, Msr, Uart16550, UartReg } from "../src/devices/uart16550.js";

const R = UartReg;

function setup() {
  const tx: number[] = [];
  const irq: boolean[] = [];
  const uart = new Uart16550({ onTransmit: (b) => tx.push(b), irq: { set: (l) => irq.push(l) } });
  const bus = new PortBus();
  bus.register(COM1_PORT, 8, uart, "ttyS0", { byteWide: true });
  const inb = (r: number) => bus.read(COM1_PORT + r, 1);
  const outb = (r: number, v: number) => bus.write(COM1_PORT + r, 1, v);
  return { uart, bus, tx, irq, inb, outb };
}

/**
 * Linux 6.1 drivers/tty/serial/8250/8250_port.c autoconfig() + autoconfig_16550a() + size_fifo(),
 * the register accesses in order (with CONFIG_SERIAL_8250_16550A_VARIANTS, the full probe).
 * Returns the port type Linux would settle on.
 */
function linuxAutoconfig(inb: (r: number) => number, outb: (r: number, v: number) => void): string {
  // IER scratch test.
  const scratch = inb(R.IER);
  outb(R.IER, 0);
  const scratch2 = inb(R.IER) & 0x0f;
  outb(R.IER, 0x0f);
  const scratch3 = inb(R.IER) & 0x0f;
  outb(R.IER, scratch);
  if (scratch2 !== 0 || scratch3 !== 0x0f) return "none (IER test failed)";
  const saveMcr = inb(R.MCR);
  const saveLcr = inb(R.LCR);
  // Loopback test.
  outb(R.MCR, Mcr.LOOP | 0x0a);
  const status1 = inb(R.MSR) & 0xf0;
  outb(R.MCR, saveMcr);
  if (status1 !== 0x90) return `none (LOOP test failed ${status1.toString(16)})`;
  outb(R.LCR, 0xbf); // UART_LCR_CONF_MODE_B
  outb(2, 0); // EFR
  outb(R.LCR, 0);
  outb(R.IIR_FCR, 0x01);
  const iir = inb(R.IIR_FCR);
  let type: string;
  switch (iir >> 6) {
    case 0:
      type = "8250/16450";
      break;
    case 1:
      type = "unknown";
      break;
    case 2:
      type = "16550";
      break;
    default:
      type = autoconfig16550a(inb, outb);
  }
  outb(R.LCR, saveLcr);
  return type;
}

function autoconfig16550a(inb: (r: number) => number, outb: (r: number, v: number) => void): string {
  outb(R.LCR, 0x80); // CONF_MODE_A
  if (inb(2) === 0) return "16650 or FSL64 (EFR at DLAB)";
  outb(R.LCR, 0xbf);
  if (inb(2) === 0) return "EFRv2 (16650V2/16850)";
  outb(R.LCR, 0);
  let status1 = inb(R.MCR);
  outb(R.LCR, 0xe0);
  let status2 = inb(0x02);
  if (!((status2 ^ status1) & Mcr.LOOP)) {
    outb(R.LCR, 0);
    outb(R.MCR, status1 ^ Mcr.LOOP);
    outb(R.LCR, 0xe0);
    status2 = inb(0x02);
    outb(R.LCR, 0);
    outb(R.MCR, status1);
    if ((status2 ^ status1) & Mcr.LOOP) return "NS16550A";
  }
  outb(R.LCR, 0);
  outb(R.IIR_FCR, 0x01 | 0x20);
  status1 = inb(R.IIR_FCR) >> 5;
  outb(R.IIR_FCR, 0x01);
  outb(R.LCR, 0x80);
  outb(R.IIR_FCR, 0x01 | 0x20);
  status2 = inb(R.IIR_FCR) >> 5;
  outb(R.IIR_FCR, 0x01);
  outb(R.LCR, 0);
  if (status1 === 6 && status2 === 7) return "16750";
  const iersave = inb(R.IER);
  outb(R.IER, iersave & ~0x40);
  if (!(inb(R.IER) & 0x40)) {
    outb(R.IER, iersave | 0x40);
    if (inb(R.IER) & 0x40) return "XScale";
  }
  outb(R.IER, iersave);
  if (sizeFifo(inb, outb) === 64) return "U6_16550A";
  return "16550A";
}

function sizeFifo(inb: (r: number) => number, outb: (r: number, v: number) => void): number {
  const oldLcr = inb(R.LCR);
  outb(R.LCR, 0);
  const oldFcr = inb(R.IIR_FCR);
  const oldMcr = inb(R.MCR);
  outb(R.IIR_FCR, 0x01 | 0x02 | 0x04);
  outb(R.MCR, Mcr.LOOP);
  outb(R.LCR, 0x80);
  const oldDl = inb(0) | (inb(1) << 8);
  outb(0, 1);
  outb(1, 0);
  outb(R.LCR, 0x03);
  for (let c = 0; c < 256; c++) outb(R.RBR_THR, c);
  let count = 0;
  for (; inb(R.LSR) & Lsr.DR && count < 256; count++) inb(R.RBR_THR);
  outb(R.IIR_FCR, oldFcr);
  outb(R.MCR, oldMcr);
  outb(R.LCR, 0x80);
  outb(0, oldDl & 0xff);
  outb(1, oldDl >> 8);
  outb(R.LCR, oldLcr);
  return count;
}

describe("16550A as Linux's 8250 autoconfig probes it", () => {
  it("autoconfig() + autoconfig_16550a() + size_fifo() detect a 16550A", () => {
    const { inb, outb, tx } = setup();
    expect(linuxAutoconfig(inb, outb)).toBe("16550A");
    expect(tx).toEqual([]); // the loopback FIFO test must not leak to the console
  });

  it("size_fifo() counts 16 bytes and sets OE for the rest", () => {
    const { inb, outb, uart } = setup();
    expect(sizeFifo(inb, outb)).toBe(16);
    expect(uart.overruns).toBe(240);
  });

  it("serial8250_do_startup THRE test: ETBEI raises THRI at once, IIR read clears it, re-enable re-raises", () => {
    const { inb, outb } = setup();
    outb(R.IIR_FCR, 0x01);
    outb(R.IER, Ier.ETBEI);
    const iir1 = inb(R.IIR_FCR);
    outb(R.IER, 0);
    outb(R.IER, Ier.ETBEI);
    const iir = inb(R.IIR_FCR);
    outb(R.IER, 0);
    // Neither UART_BUG_THRE (iir has NO_INT with TEMT) nor UART_BUG_TXEN (iir1 pending, iir not).
    expect(iir1 & Iir.NO_INT).toBe(0);
    expect(iir & Iir.NO_INT).toBe(0);
    expect(iir & 0x0f).toBe(Iir.THRI);
    // The read cleared it: with ETBEI still set, the next read shows nothing pending.
    outb(R.IER, Ier.ETBEI);
    inb(R.IIR_FCR);
    expect(inb(R.IIR_FCR)).toBe(0xc1);
    // "LSR safety check": LSR must not read 0xff.
    expect(inb(R.LSR)).not.toBe(0xff);
  });

  it("an unclaimed port floats 0xff and fails the IER test (no UART there)", () => {
    const bus = new PortBus();
    const inb = (r: number) => bus.read(0x2f8 + r, 1);
    const outb = (r: number, v: number) => bus.write(0x2f8 + r, 1, v);
    expect(linuxAutoconfig(inb, outb)).toMatch(/^none/);
  });
});

describe("16550A registers", () => {
  it("DLAB switches offsets 0/1 to the divisor latch", () => {
    const { inb, outb, uart } = setup();
    outb(R.LCR, 0x83);
    outb(0, 0x01);
    outb(1, 0x00);
    expect(uart.divisor).toBe(1);
    outb(R.LCR, 0x03);
    outb(R.IER, 0x05);
    expect(inb(R.IER)).toBe(0x05);
    outb(R.LCR, 0x83);
    expect(inb(1)).toBe(0);
  });

  it("transmits bytes to the host with THRE and TEMT set", () => {
    const { outb, inb, tx } = setup();
    for (const c of "hi\n") outb(R.RBR_THR, c.charCodeAt(0));
    expect(String.fromCharCode(...tx)).toBe("hi\n");
    expect(inb(R.LSR) & (Lsr.THRE | Lsr.TEMT)).toBe(Lsr.THRE | Lsr.TEMT);
  });

  it("receive: FIFO of 16, DR, trigger levels, RDA vs character timeout, back-pressure", () => {
    const { uart, inb, outb } = setup();
    outb(R.IIR_FCR, 0x01 | 0x80); // FIFO on, trigger 8
    outb(R.IER, Ier.ERBFI);
    expect(uart.receive(new Uint8Array([1, 2, 3]))).toBe(3);
    expect(inb(R.LSR) & Lsr.DR).toBe(Lsr.DR);
    expect(inb(R.IIR_FCR)).toBe(0xc0 | Iir.CTI); // below trigger: timeout indication
    expect(uart.receive(new Uint8Array(20).fill(7))).toBe(13); // 16 - 3 accepted, rest held by the host
    expect(inb(R.IIR_FCR)).toBe(0xc0 | Iir.RDA);
    expect(uart.rxSpace()).toBe(0);
    expect(inb(R.RBR_THR)).toBe(1);
    expect(inb(R.RBR_THR)).toBe(2);
    expect(inb(R.RBR_THR)).toBe(3);
    for (let i = 0; i < 13; i++) expect(inb(R.RBR_THR)).toBe(7);
    expect(inb(R.LSR) & Lsr.DR).toBe(0);
    expect(inb(R.IIR_FCR)).toBe(0xc1);
  });

  it("FCR clears the receive FIFO; FCR0=0 makes it a one-byte 16450 holding register", () => {
    const { uart, inb, outb } = setup();
    outb(R.IIR_FCR, 0x01);
    uart.receive(new Uint8Array([1, 2]));
    outb(R.IIR_FCR, 0x03);
    expect(inb(R.LSR) & Lsr.DR).toBe(0);
    outb(R.IIR_FCR, 0x00);
    expect(inb(R.IIR_FCR) & 0xc0).toBe(0);
    expect(uart.receive(new Uint8Array([5, 6]))).toBe(1);
  });

  it("overrun in loopback sets OE, reported as a line-status interrupt and cleared by reading LSR", () => {
    const { inb, outb, uart } = setup();
    outb(R.IIR_FCR, 0x00); // 16450 mode: one byte
    outb(R.MCR, Mcr.LOOP);
    outb(R.IER, Ier.ELSI | Ier.ERBFI);
    outb(R.RBR_THR, 0x41);
    outb(R.RBR_THR, 0x42);
    expect(inb(R.IIR_FCR) & 0x0f).toBe(Iir.RLS);
    expect(inb(R.LSR) & (Lsr.OE | Lsr.DR)).toBe(Lsr.OE | Lsr.DR);
    expect(inb(R.LSR) & Lsr.OE).toBe(0);
    expect(inb(R.RBR_THR)).toBe(0x42); // 16450: the new byte overwrote the old
    expect(uart.overruns).toBe(1);
  });

  it("loopback reflects MCR into MSR with deltas, TERI on RI's trailing edge; reading MSR clears deltas", () => {
    const { inb, outb } = setup();
    inb(R.MSR);
    outb(R.MCR, Mcr.LOOP);
    expect(inb(R.MSR)).toBe(Msr.DCTS | Msr.DDSR | Msr.DDCD); // all four lines dropped (RI was off)
    outb(R.MCR, Mcr.LOOP | Mcr.DTR | Mcr.RTS | Mcr.OUT1 | Mcr.OUT2);
    expect(inb(R.MSR)).toBe(0xf0 | Msr.DCTS | Msr.DDSR | Msr.DDCD);
    outb(R.MCR, Mcr.LOOP | Mcr.DTR | Mcr.RTS | Mcr.OUT2);
    expect(inb(R.MSR)).toBe(Msr.CTS | Msr.DSR | Msr.DCD | Msr.TERI);
    expect(inb(R.MSR) & Msr.DELTA).toBe(0);
  });

  it("modem-status interrupt from host line changes", () => {
    const { uart, inb, outb } = setup();
    inb(R.MSR);
    outb(R.IER, Ier.EDSSI);
    outb(R.MCR, Mcr.OUT2);
    expect(inb(R.IIR_FCR) & 0x0f).toBe(Iir.NO_INT);
    uart.setModemLines({ dcd: false });
    expect(inb(R.IIR_FCR) & 0x0f).toBe(Iir.MSI);
    expect(uart.irqAsserted).toBe(true);
    expect(inb(R.MSR) & Msr.DDCD).toBe(Msr.DDCD);
    expect(uart.irqAsserted).toBe(false);
  });

  it("the IRQ output is gated by OUT2 and silenced in loopback", () => {
    const { uart, outb, irq } = setup();
    outb(R.IER, Ier.ETBEI);
    expect(uart.irqAsserted).toBe(false); // OUT2 clear
    outb(R.MCR, Mcr.OUT2);
    expect(uart.irqAsserted).toBe(true);
    outb(R.MCR, Mcr.OUT2 | Mcr.LOOP);
    expect(uart.irqAsserted).toBe(false);
    expect(irq).toEqual([true, false]);
  });

  it("interrupt priority: line status > received data > THRE > modem status", () => {
    const { uart, inb, outb } = setup();
    outb(R.IIR_FCR, 0x01);
    outb(R.MCR, Mcr.OUT2);
    outb(R.IER, Ier.MASK);
    uart.setModemLines({ cts: false });
    uart.receive(new Uint8Array([9]));
    expect(inb(R.IIR_FCR) & 0x0f).toBe(Iir.RDA); // trigger level 1 reached
    inb(R.RBR_THR);
    expect(inb(R.IIR_FCR) & 0x0f).toBe(Iir.THRI); // this read clears THRI
    expect(inb(R.IIR_FCR) & 0x0f).toBe(Iir.MSI);
    inb(R.MSR);
    expect(inb(R.IIR_FCR)).toBe(0xc1);
  });

  it("scratch register, MCR upper bits read 0, IER bits 4-7 read 0", () => {
    const { inb, outb } = setup();
    outb(R.SCR, 0xa5);
    expect(inb(R.SCR)).toBe(0xa5);
    outb(R.MCR, 0xff);
    expect(inb(R.MCR)).toBe(0x1f);
    outb(R.IER, 0xff);
    expect(inb(R.IER)).toBe(0x0f);
  });

  it("save -> restore -> save round-trips", () => {
    const { uart, outb } = setup();
    outb(R.IIR_FCR, 0xc1);
    outb(R.IER, 0x03);
    outb(R.MCR, 0x0b);
    uart.receive(new Uint8Array([1, 2, 3]));
    const s = uart.save();
    const again = Uart16550.restore({}, JSON.parse(JSON.stringify(s))).save();
    expect(again).toEqual(s);
    expect(() => Uart16550.restore({}, { ...s, ier: 300 })).toThrow("uart state: bad ier");
  });

  it("fuzz: any register access sequence never throws and keeps LSR.DR consistent with the FIFO", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("in" as const), reg: fc.nat(7) }),
            fc.record({ op: fc.constant("out" as const), reg: fc.nat(7), v: fc.nat(255) }),
            fc.record({ op: fc.constant("rx" as const), n: fc.nat(20) }),
          ),
          { maxLength: 60 },
        ),
        (ops) => {
          const { uart, inb, outb } = setup();
          for (const o of ops) {
            if (o.op === "in") inb(o.reg);
            else if (o.op === "out") outb(o.reg, o.v);
            else uart.receive(new Uint8Array(o.n));
            const s = uart.save();
            expect(s.rx.length).toBeLessThanOrEqual(16);
          }
          const lcr = inb(R.LCR);
          const dr = inb(R.LSR) & Lsr.DR;
          expect(dr !== 0).toBe(uart.save().rx.length > 0);
          outb(R.LCR, lcr);
        },
      ),
      { numRuns: 300 },
    );
  });
});
