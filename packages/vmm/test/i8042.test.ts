import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PortBus } from "../src/devices/bus.js";
import {
  I8042,
  I8042_COMMAND_PORT,
  I8042_DATA_PORT,
  I8042Cmd,
  I8042Ctr,
  I8042Str,
} from "../src/devices/i8042.js";

function setup() {
  const events: string[] = [];
  const kbd: boolean[] = [];
  const dev = new I8042({ onReset: () => events.push("reset"), kbdIrq: { set: (l) => kbd.push(l) } });
  const bus = new PortBus();
  const { data, command } = dev.portDevices();
  bus.register(I8042_DATA_PORT, 1, data, "i8042 data");
  bus.register(I8042_COMMAND_PORT, 1, command, "i8042 command");
  const status = () => bus.read(I8042_COMMAND_PORT, 1);
  const readData = () => bus.read(I8042_DATA_PORT, 1);
  const writeData = (v: number) => bus.write(I8042_DATA_PORT, 1, v);
  const writeCmd = (v: number) => bus.write(I8042_COMMAND_PORT, 1, v);
  /** Linux's __i8042_command(): command, parameters, then replies (with the AUX_LOOP AUXDATA check). */
  const command_ = (cmd: number, params: number[] = []): number[] | "auxerr" | "timeout" => {
    if (status() & I8042Str.IBF) return "timeout";
    writeCmd(cmd & 0xff);
    for (let i = 0; i < ((cmd >> 12) & 0xf); i++) writeData(params[i]!);
    const out: number[] = [];
    for (let i = 0; i < ((cmd >> 8) & 0xf); i++) {
      if (!(status() & I8042Str.OBF)) return "timeout";
      if (cmd === 0x11d3 && !(status() & I8042Str.AUXDATA)) return "auxerr";
      out.push(readData());
    }
    return out;
  };
  return { dev, bus, status, readData, writeData, writeCmd, command: command_, events, kbd };
}

describe("i8042 as Linux's i8042 driver probes it", () => {
  it("flush, CTL_TEST, read/write CTR, AUX loop, AUX toggles, KBD_TEST", () => {
    const t = setup();
    // i8042_flush: nothing pending, status is not 0xff.
    expect(t.status() & I8042Str.OBF).toBe(0);
    expect(t.status()).not.toBe(0xff);
    expect(t.command(0x01aa)).toEqual([0x55]); // I8042_CMD_CTL_TEST -> I8042_RET_CTL_TEST
    const [ctr] = t.command(0x0120) as number[]; // I8042_CMD_CTL_RCTR
    expect(ctr! & I8042Ctr.KBDINT).toBe(I8042Ctr.KBDINT);
    expect(t.command(0x1060, [ctr! & ~I8042Ctr.KBDINT])).toEqual([]); // WCTR
    expect(t.command(0x0120)).toEqual([ctr! & ~I8042Ctr.KBDINT]);
    // i8042_check_aux: AUX_LOOP echoes 0x5a with AUXDATA set.
    expect(t.command(0x11d3, [0x5a])).toEqual([0x5a]);
    // i8042_toggle_aux(false/true): CTR.AUXDIS follows.
    t.command(0x00a7);
    expect((t.command(0x0120) as number[])[0]! & I8042Ctr.AUXDIS).toBe(I8042Ctr.AUXDIS);
    t.command(0x00a8);
    expect((t.command(0x0120) as number[])[0]! & I8042Ctr.AUXDIS).toBe(0);
    expect(t.command(0x01ab)).toEqual([0x00]); // KBD_TEST
    expect(t.command(0x01a9)).toEqual([0x00]); // AUX_TEST
  });

  it("KBD_LOOP bytes come back as keyboard data, not AUX", () => {
    const t = setup();
    t.writeCmd(I8042Cmd.KBD_LOOP);
    t.writeData(0x42);
    expect(t.status() & (I8042Str.OBF | I8042Str.AUXDATA)).toBe(I8042Str.OBF);
    expect(t.readData()).toBe(0x42);
  });

  it("the keyboard answers atkbd: reset -> ACK + BAT, identify -> ACK AB 83, set LEDs -> ACK ACK", () => {
    const t = setup();
    const drain = () => {
      const out: number[] = [];
      while (t.status() & I8042Str.OBF) out.push(t.readData());
      return out;
    };
    t.writeData(0xff);
    expect(drain()).toEqual([0xfa, 0xaa]);
    t.writeData(0xf2);
    expect(drain()).toEqual([0xfa, 0xab, 0x83]);
    t.writeData(0xed);
    t.writeData(0x07);
    expect(drain()).toEqual([0xfa, 0xfa]);
    t.writeData(0xf0);
    t.writeData(0x00);
    expect(drain()).toEqual([0xfa, 0xfa, 0x02]);
    t.writeData(0x12); // not a command
    expect(drain()).toEqual([0xfe]);
  });

  it("the keyboard IRQ follows OBF when CTR.KBDINT is set", () => {
    const t = setup();
    t.writeData(0xee);
    expect(t.kbd).toEqual([true]);
    expect(t.readData()).toBe(0xee);
    expect(t.kbd).toEqual([true, false]);
  });

  it("each byte read from port 0x60 ends its IRQ pulse; the next queued byte starts a new one", () => {
    // Linux's i8042_interrupt reads one byte per (edge-triggered) interrupt: identify's three
    // reply bytes need three rising edges, or atkbd's probe stalls (it did, and hung poweroff).
    const t = setup();
    t.writeData(0xf2); // identify -> ACK AB 83
    expect(t.kbd).toEqual([true]);
    expect([t.readData(), t.readData(), t.readData()]).toEqual([0xfa, 0xab, 0x83]);
    expect(t.kbd).toEqual([true, false, true, false, true, false]);
    // The AUX line too, for bytes from the AUX port, with AUXINT set.
    const aux: boolean[] = [];
    const d = new I8042({ auxIrq: { set: (l) => aux.push(l) } });
    const { data, command } = d.portDevices();
    command.ioWrite(0, 1, I8042Cmd.WRITE_CTR);
    data.ioWrite(0, 1, I8042Ctr.AUXINT | I8042Ctr.SYS);
    command.ioWrite(0, 1, I8042Cmd.AUX_SEND);
    data.ioWrite(0, 1, 0xf2);
    command.ioWrite(0, 1, I8042Cmd.AUX_SEND);
    data.ioWrite(0, 1, 0xf2);
    expect(aux).toEqual([true]);
    data.ioRead(0, 1);
    data.ioRead(0, 1);
    expect(aux).toEqual([true, false, true, false]);
  });

  it("reboot (arch/x86/kernel/reboot.c BOOT_KBD): wait for IBF clear, write 0xFE to 0x64 -> reset event", () => {
    const t = setup();
    expect(t.status() & I8042Str.IBF).toBe(0); // kb_wait()
    t.writeCmd(0xfe);
    expect(t.events).toEqual(["reset"]);
    t.writeCmd(0xff); // pulse nothing
    t.writeCmd(0xfc); // bit 0 clear: reset again
    expect(t.events).toEqual(["reset", "reset"]);
  });

  it("writing the output port with bit 0 clear resets; bit 1 is the A20 gate", () => {
    const t = setup();
    t.writeCmd(I8042Cmd.WRITE_OUTPUT_PORT);
    t.writeData(0x01);
    expect(t.dev.a20).toBe(false);
    expect(t.events).toEqual([]);
    t.writeCmd(I8042Cmd.READ_OUTPUT_PORT);
    expect(t.readData()).toBe(0x01);
    t.writeCmd(I8042Cmd.WRITE_OUTPUT_PORT);
    t.writeData(0x02);
    expect(t.events).toEqual(["reset"]);
  });

  it("save -> restore -> save round-trips; fuzzed port traffic never throws and keeps the queue bounded", () => {
    const t = setup();
    t.writeData(0xf2);
    const s = t.dev.save();
    expect(I8042.restore({}, JSON.parse(JSON.stringify(s))).save()).toEqual(s);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(3), fc.nat(255)), { maxLength: 80 }), (ops) => {
        const u = setup();
        for (const [op, v] of ops) {
          if (op === 0) u.writeCmd(v);
          else if (op === 1) u.writeData(v);
          else if (op === 2) u.readData();
          else u.status();
        }
        expect(u.dev.save().queue.length).toBeLessThanOrEqual(16);
      }),
      { numRuns: 300 },
    );
  });
});
