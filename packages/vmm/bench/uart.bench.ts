import { bench, describe } from "vitest";
import { PortBus } from "../src/devices/bus.js";
import { Uart16550 } from "../src/devices/uart16550.js";

let sink = 0;
const uart = new Uart16550({ onTransmit: (b) => (sink += b) });
const bus = new PortBus();
bus.register(0x3f8, 8, uart, "ttyS0", { byteWide: true });

describe("16550A", () => {
  // What a guest printk costs per character: poll LSR, write THR (Linux serial8250_console_putchar).
  bench("console putchar (LSR read + THR write) x1000", () => {
    for (let i = 0; i < 1000; i++) {
      bus.read(0x3fd, 1);
      bus.write(0x3f8, 1, 0x41);
    }
  });
});
