import { describe, expect, it } from "vitest";
import { DeterministicClock } from "../src/clock.js";
import { nsToPitTicks, PIT_HZ, Pit, pitTicksToNs } from "../src/devices/pit.js";

function setup() {
  const clock = new DeterministicClock();
  let irqs = 0;
  const pit = new Pit(clock, () => irqs++, true);
  return { clock, pit, irqs: () => irqs };
}
/** Advance by whole PIT ticks. */
function ticks(clock: DeterministicClock, n: number): void {
  clock.advanceTo(pitTicksToNs(nsToPitTicks(clock.nowNs()) + n));
}
function read16(pit: Pit, port: number): number {
  const lo = pit.ioRead(port);
  return lo | (pit.ioRead(port) << 8);
}

describe("8254 PIT", () => {
  it("Linux pit_calibrate_tsc: channel 2 mode 0, 50 ms, OUT2 on port 0x61 bit 5 rises at terminal count", () => {
    const { clock, pit } = setup();
    const latch = Math.floor(PIT_HZ / (1000 / 50));
    pit.ioWrite(0x61, (pit.ioRead(0x61) & ~0x02) | 0x01); // gate high, speaker off
    pit.ioWrite(0x43, 0xb0); // channel 2, LSB then MSB, mode 0, binary
    pit.ioWrite(0x42, latch & 0xff);
    pit.ioWrite(0x42, latch >> 8);
    expect(pit.ioRead(0x61) & 0x20).toBe(0);
    clock.advance(49_999_000);
    expect(pit.ioRead(0x61) & 0x20).toBe(0);
    clock.advance(2_000);
    expect(pit.ioRead(0x61) & 0x20).toBe(0x20);
  });

  it("Linux quick_pit_calibrate: the MSB read after the LSB counts down from 0xff", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x61, 0x01);
    pit.ioWrite(0x43, 0xb0);
    pit.ioWrite(0x42, 0xff);
    pit.ioWrite(0x42, 0xff);
    pit.ioRead(0x42);
    expect(pit.ioRead(0x42)).toBe(0xff);
    ticks(clock, 256 * 3 + 10);
    pit.ioRead(0x42);
    expect(pit.ioRead(0x42)).toBe(0xfc);
  });

  it("mode 0 gate low pauses counting (datasheet mode 0: GATE=0 disables counting)", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x61, 0x01);
    pit.ioWrite(0x43, 0xb0);
    pit.ioWrite(0x42, 0x00);
    pit.ioWrite(0x42, 0x10); // 4096
    ticks(clock, 96);
    pit.ioWrite(0x61, 0x00);
    ticks(clock, 1000);
    pit.ioWrite(0x43, 0x80); // latch channel 2
    expect(read16(pit, 0x42)).toBe(4000);
  });

  it("PIT mode 2 rate generator period: Linux periodic clockevent (0x34, LATCH 1193) raises IRQ0 every 1193 ticks", () => {
    const { clock, pit, irqs } = setup();
    pit.ioWrite(0x43, 0x34);
    pit.ioWrite(0x40, 1193 & 0xff);
    pit.ioWrite(0x40, 1193 >> 8);
    expect(pit.nextDeadlineNs()).toBe(pitTicksToNs(1193));
    clock.advanceTo(pit.nextDeadlineNs() - 1);
    expect(pit.tick(clock.nowNs())).toBe(false);
    clock.advanceTo(pit.nextDeadlineNs());
    expect(pit.tick(clock.nowNs())).toBe(true);
    expect(pit.nextDeadlineNs()).toBe(pitTicksToNs(2 * 1193));
    clock.advanceTo(pitTicksToNs(10 * 1193 + 5));
    expect(pit.tick(clock.nowNs())).toBe(true); // missed periods collapse
    expect(irqs()).toBe(2);
    expect(pit.nextDeadlineNs()).toBe(pitTicksToNs(11 * 1193));
  });

  it("mode 2 OUT is low for exactly one clock when the counter reaches 1", () => {
    const p = new Pit(new DeterministicClock());
    p.ioWrite(0x43, 0x14); // channel 0, LSB only, mode 2
    p.ioWrite(0x40, 10);
    const outs: boolean[] = [];
    for (let d = 0; d < 21; d++) outs.push(p.out(0, pitTicksToNs(d)));
    expect(outs.map((o) => (o ? 1 : 0)).join("")).toBe("111111111011111111101");
  });

  it("mode 3 square wave: OUT high for the first half of the count", () => {
    const clock = new DeterministicClock();
    const p = new Pit(clock);
    p.ioWrite(0x43, 0x16);
    p.ioWrite(0x40, 6);
    const outs: string[] = [];
    for (let d = 0; d < 12; d++) outs.push(p.out(0, pitTicksToNs(d)) ? "1" : "0");
    expect(outs.join("")).toBe("111000111000");
  });

  it("mode 4 software strobe (Linux oneshot 0x38): one IRQ0, after the one-clock low pulse", () => {
    const { clock, pit, irqs } = setup();
    pit.ioWrite(0x43, 0x38);
    pit.ioWrite(0x40, 100);
    pit.ioWrite(0x40, 0);
    expect(pit.out(0, pitTicksToNs(100))).toBe(false);
    expect(pit.out(0, pitTicksToNs(101))).toBe(true);
    clock.advanceTo(pit.nextDeadlineNs());
    pit.tick(clock.nowNs());
    expect(pit.nextDeadlineNs()).toBe(Number.POSITIVE_INFINITY);
    expect(irqs()).toBe(1);
  });

  it("Linux shutdown (0x30, count 0): mode 0 with a 65536 count, OUT low", () => {
    const { pit } = setup();
    pit.ioWrite(0x43, 0x30);
    expect(pit.out(0)).toBe(false);
    pit.ioWrite(0x40, 0);
    pit.ioWrite(0x40, 0);
    pit.ioWrite(0x43, 0x00);
    expect(read16(pit, 0x40)).toBe(0);
  });

  it("mode 1 and 5 wait for a gate rising edge (channel 2)", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x43, 0xb2); // ch2, mode 1
    pit.ioWrite(0x42, 50);
    pit.ioWrite(0x42, 0);
    ticks(clock, 100);
    expect(pit.ioRead(0x61) & 0x20).toBe(0x20); // not triggered: OUT high
    pit.ioWrite(0x61, 1); // trigger
    expect(pit.ioRead(0x61) & 0x20).toBe(0); // one-shot pulse low
    ticks(clock, 51);
    expect(pit.ioRead(0x61) & 0x20).toBe(0x20);
  });

  it("counter latch command freezes the value until both bytes are read", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x43, 0x34);
    pit.ioWrite(0x40, 0x00);
    pit.ioWrite(0x40, 0x10);
    ticks(clock, 0x100);
    pit.ioWrite(0x43, 0x00);
    ticks(clock, 0x50);
    pit.ioWrite(0x43, 0x00); // ignored: already latched
    expect(read16(pit, 0x40)).toBe(0x1000 - 0x100);
    expect(read16(pit, 0x40)).toBe(0x1000 - 0x150);
  });

  it("PIT read-back latches status: OUT, null count, RW, mode, BCD; status is read before the count", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x43, 0x34);
    pit.ioWrite(0x43, 0xe2); // read-back status only, channel 0
    expect(pit.ioRead(0x40)).toBe(0x80 | 0x40 | (3 << 4) | (2 << 1)); // OUT high, null count
    pit.ioWrite(0x40, 100);
    pit.ioWrite(0x40, 0);
    ticks(clock, 10);
    pit.ioWrite(0x43, 0xc2); // count and status
    expect(pit.ioRead(0x40)).toBe(0x80 | (3 << 4) | (2 << 1));
    expect(read16(pit, 0x40)).toBe(90);
  });

  it("BCD counting: counts are written and read as BCD digits", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x43, 0x31); // mode 0, BCD
    pit.ioWrite(0x40, 0x00);
    pit.ioWrite(0x40, 0x10); // 1000 decimal
    ticks(clock, 1);
    pit.ioWrite(0x43, 0x00);
    expect(read16(pit, 0x40)).toBe(0x0999);
  });

  it("LSB-only and MSB-only access modes", () => {
    const { pit } = setup();
    pit.ioWrite(0x43, 0x20 | 0x04); // ch0 MSB only, mode 2
    pit.ioWrite(0x40, 0x12);
    expect(pit.save().channels[0]!.count).toBe(0x1200);
    expect(pit.ioRead(0x40)).toBe(0x12);
    expect(pit.ioRead(0x40)).toBe(0x12);
  });

  it("port 0x61: gate and speaker bits read back, refresh bit toggles", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x61, 0x03);
    expect(pit.ioRead(0x61) & 3).toBe(3);
    const a = pit.ioRead(0x61) & 0x10;
    clock.advance(15085);
    expect(pit.ioRead(0x61) & 0x10).not.toBe(a);
  });

  it("restore takes KVM's unprogrammed mode 0xff and modes 6/7 as the datasheet's 2/3", () => {
    const { pit } = setup();
    const s = pit.save();
    s.channels[0]!.mode = 0xff;
    s.channels[1]!.mode = 6;
    s.channels[2]!.mode = 7;
    pit.restore(s);
    expect(pit.save().channels.map((c) => c.mode)).toEqual([0, 2, 3]);
    expect(pit.nextDeadlineNs()).toBe(Number.POSITIVE_INFINITY);
  });

  it("save -> restore -> save round trip", () => {
    const { clock, pit } = setup();
    pit.ioWrite(0x43, 0x34);
    pit.ioWrite(0x40, 0x9b);
    pit.ioWrite(0x40, 0x2e);
    ticks(clock, 7);
    const s = pit.save();
    const p2 = new Pit(clock);
    p2.restore(s);
    expect(p2.save()).toEqual(s);
    expect(p2.nextDeadlineNs()).toBe(pit.nextDeadlineNs());
  });
});
