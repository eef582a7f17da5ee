/**
 * Intel 8254 programmable interval timer (ports 0x40-0x43) with the PC wiring: channel 0 OUT ->
 * IRQ0, channel 2 GATE and OUT on port 0x61 (PIIX4 "NMI status and control", bit 0 gate, bit 1
 * speaker data, bit 4 refresh toggle, bit 5 OUT2). Sources: Intel 8254 datasheet (modes 0-5,
 * counter latch, read-back, status byte, BCD); Linux arch/x86/kernel/i8253.c and
 * drivers/clocksource/i8253.c (how it is programmed), tsc.c pit_calibrate_tsc (channel 2);
 * KVM arch/x86/kvm/i8254.c. Time comes from the VM clock: no timers inside.
 */
import type { VmClock } from "../clock.js";

/** Input clock, as Linux's PIT_TICK_RATE (14.31818 MHz / 12). */
export const PIT_HZ = 1193182;
export const PIT_PORT_BASE = 0x40;
export const PIT_PORT_CONTROL = 0x43;
export const PORT_SPEAKER = 0x61;
/** KVM_CREATE_PIT2 flag: the PIT also answers port 0x61. */
export const KVM_PIT_SPEAKER_DUMMY = 1;

/** Read/write state machine values, as KVM's RW_STATE_*. */
const RW_LSB = 1;
const RW_MSB = 2;
const RW_WORD0 = 3;
const RW_WORD1 = 4;

/** One counter, close to `struct kvm_pit_channel_state`, plus what the datasheet needs beyond it. */
export interface PitChannelState {
  /** Initial count in counts (1..65536, or 1..10000 in BCD). */
  count: number;
  latchedCount: number;
  /** 0, or the RW state the latched count is read in. */
  countLatched: number;
  statusLatched: number;
  status: number;
  readState: number;
  writeState: number;
  writeLatch: number;
  rwMode: number;
  mode: number;
  bcd: number;
  gate: number;
  /** VM time (ns) at which the count was loaded or the counter was (re)triggered. */
  countLoadTime: number;
  /** Status bit 6: a count was written and not yet loaded into the counting element. */
  nullCount: number;
  /** Counting: a count is loaded (and, in modes 1 and 5, a gate trigger arrived). */
  armed: number;
  /** Ticks counted before the gate went low (modes 0 and 4 pause), else -1. */
  pausedTicks: number;
  /** Ticks since load at which IRQ0 was last raised (channel 0). */
  irqTick: number;
}

export interface PitState {
  channels: PitChannelState[];
  /** KVM_PIT_FLAGS_*; bit 1 (SPEAKER_DATA_ON) mirrors port 0x61 bit 1. */
  flags: number;
}

function freshChannel(gate: number): PitChannelState {
  return {
    count: 0x10000,
    latchedCount: 0,
    countLatched: 0,
    statusLatched: 0,
    status: 0,
    readState: RW_WORD0,
    writeState: RW_WORD0,
    writeLatch: 0,
    rwMode: 3,
    mode: 0,
    bcd: 0,
    gate,
    countLoadTime: 0,
    nullCount: 1,
    armed: 0,
    pausedTicks: -1,
    irqTick: 0,
  };
}

/** Ticks of the 1.193 MHz clock in `ns` (split so the product stays exact). */
export function nsToPitTicks(ns: number): number {
  if (ns <= 0) return 0;
  const s = Math.floor(ns / 1e9);
  return s * PIT_HZ + Math.floor(((ns - s * 1e9) * PIT_HZ) / 1e9);
}
/** First ns at which `ticks` ticks have elapsed. */
export function pitTicksToNs(ticks: number): number {
  const q = Math.floor(ticks / PIT_HZ);
  return q * 1e9 + Math.ceil(((ticks - q * PIT_HZ) * 1e9) / PIT_HZ);
}

function toBcd(v: number): number {
  return (
    (v % 10) |
    ((Math.floor(v / 10) % 10) << 4) |
    ((Math.floor(v / 100) % 10) << 8) |
    ((Math.floor(v / 1000) % 10) << 12)
  );
}
function fromBcd(v: number): number {
  return (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000;
}

/** The 8254. `raiseIrq0` pulses GSI 0 (edge: assert then deassert, as KVM's pit_do_work). */
export class Pit {
  private ch: PitChannelState[] = [freshChannel(1), freshChannel(1), freshChannel(0)];
  private speakerData = 0;
  /** KVM_PIT_FLAGS_HPET_LEGACY: channel 0 stops raising IRQ0 (the HPET took over). */
  hpetLegacy = false;

  constructor(
    private readonly clock: VmClock,
    private readonly raiseIrq0: () => void = () => {},
    readonly speakerDummy = false,
  ) {}

  static handlesPort(port: number, speakerDummy: boolean): boolean {
    return (port >= 0x40 && port <= 0x43) || (speakerDummy && port === PORT_SPEAKER);
  }

  private ticks(c: PitChannelState, now: number): number {
    if (c.pausedTicks >= 0) return c.pausedTicks;
    return nsToPitTicks(now - c.countLoadTime);
  }

  /** OUT pin of channel `i` at `now` (datasheet "Mode definitions"). */
  out(i: number, now = this.clock.nowNs()): boolean {
    const c = this.ch[i]!;
    if (!c.armed) return c.mode !== 0;
    const d = this.ticks(c, now);
    const n = c.count;
    switch (c.mode) {
      case 0: // interrupt on terminal count: low until the count expires
        return d >= n;
      case 1: // hardware retriggerable one-shot: low from trigger to terminal count
        return d >= n;
      case 2: // rate generator: low for one clock when the counter reaches 1
        if (!c.gate) return true;
        return d % n !== n - 1;
      case 3: // square wave: high for the first half (rounded up)
        if (!c.gate) return true;
        return d % n < (n + 1) >> 1;
      default: // 4, 5: strobe: low for one clock at terminal count
        return d !== n;
    }
  }

  /** Current counter value (binary; BCD encoding is applied on read). */
  private counter(c: PitChannelState, now: number): number {
    if (!c.armed) return c.count & 0xffff;
    const d = this.ticks(c, now);
    const n = c.count;
    const mod = c.bcd ? 10000 : 0x10000;
    switch (c.mode) {
      case 2:
        return n - (d % n);
      case 3: // counts down by two per clock (datasheet mode 3); odd counts approximated as KVM does
        return (n - ((2 * d) % n)) % mod;
      default:
        return (((n - d) % mod) + mod) % mod;
    }
  }

  ioRead(port: number): number {
    const now = this.clock.nowNs();
    if (port === PORT_SPEAKER) {
      // Bit 4 toggles every 15.085 us (DRAM refresh request, PIIX4 NMI_SC); bit 5 is OUT2.
      const refresh = Math.floor(now / 15085) & 1;
      const c2 = this.ch[2]!;
      return c2.gate | (this.speakerData << 1) | (refresh << 4) | ((this.out(2, now) ? 1 : 0) << 5);
    }
    if (port < 0x40 || port > 0x42) return 0xff; // the control port cannot be read (datasheet)
    const c = this.ch[port - 0x40]!;
    if (c.statusLatched) {
      c.statusLatched = 0;
      return c.status;
    }
    if (c.countLatched) {
      const l = c.latchedCount;
      switch (c.countLatched) {
        case RW_LSB:
          c.countLatched = 0;
          return l & 0xff;
        case RW_MSB:
          c.countLatched = 0;
          return (l >> 8) & 0xff;
        default: // WORD0: LSB now, MSB next
          c.countLatched = RW_MSB;
          return l & 0xff;
      }
    }
    const v = this.encoded(c, now);
    switch (c.readState) {
      case RW_LSB:
        return v & 0xff;
      case RW_MSB:
        return (v >> 8) & 0xff;
      case RW_WORD0:
        c.readState = RW_WORD1;
        return v & 0xff;
      default:
        c.readState = RW_WORD0;
        return (v >> 8) & 0xff;
    }
  }

  private encoded(c: PitChannelState, now: number): number {
    const v = this.counter(c, now) & 0xffff;
    return c.bcd ? toBcd(v % 10000) : v;
  }

  ioWrite(port: number, value: number): void {
    const v = value & 0xff;
    const now = this.clock.nowNs();
    if (port === PORT_SPEAKER) {
      this.setGate2((v & 1) as 0 | 1, now);
      this.speakerData = (v >> 1) & 1;
      return;
    }
    if (port === PIT_PORT_CONTROL) {
      this.control(v, now);
      return;
    }
    if (port < 0x40 || port > 0x42) return;
    const c = this.ch[port - 0x40]!;
    switch (c.writeState) {
      case RW_LSB:
        this.load(c, v, now);
        break;
      case RW_MSB:
        this.load(c, v << 8, now);
        break;
      case RW_WORD0:
        c.writeLatch = v;
        c.writeState = RW_WORD1;
        break;
      default:
        this.load(c, c.writeLatch | (v << 8), now);
        c.writeState = RW_WORD0;
        break;
    }
  }

  private control(v: number, now: number): void {
    const sc = v >> 6;
    if (sc === 3) {
      // Read-back command (datasheet): bit 5 clear latches counts, bit 4 clear latches status.
      for (let i = 0; i < 3; i++) {
        if (!(v & (2 << i))) continue;
        const c = this.ch[i]!;
        if (!(v & 0x20)) this.latchCount(c, now);
        if (!(v & 0x10) && !c.statusLatched) {
          c.status = this.statusByte(i, now);
          c.statusLatched = 1;
        }
      }
      return;
    }
    const c = this.ch[sc]!;
    const rw = (v >> 4) & 3;
    if (rw === 0) {
      this.latchCount(c, now); // counter latch command
      return;
    }
    c.rwMode = rw;
    c.readState = rw;
    c.writeState = rw;
    let mode = (v >> 1) & 7;
    if (mode >= 6) mode -= 4; // modes 6 and 7 are 2 and 3 (datasheet: "X10", "X11")
    c.mode = mode;
    c.bcd = v & 1;
    // A control word stops the counter until a new count is written; OUT goes to its initial state.
    c.armed = 0;
    c.nullCount = 1;
    c.pausedTicks = -1;
  }

  private latchCount(c: PitChannelState, now: number): void {
    if (c.countLatched) return; // a second latch before the read is ignored (datasheet)
    c.latchedCount = this.encoded(c, now);
    c.countLatched = c.rwMode;
  }

  private statusByte(i: number, now: number): number {
    const c = this.ch[i]!;
    return ((this.out(i, now) ? 1 : 0) << 7) | (c.nullCount << 6) | (c.rwMode << 4) | (c.mode << 1) | c.bcd;
  }

  private load(c: PitChannelState, raw: number, now: number): void {
    let n = c.bcd ? fromBcd(raw) : raw;
    if (n === 0) n = c.bcd ? 10000 : 0x10000;
    c.count = n;
    c.nullCount = 0;
    c.countLoadTime = now;
    c.irqTick = 0;
    c.pausedTicks = -1;
    // Modes 1 and 5 wait for a gate trigger; the others count at once (gate permitting).
    c.armed = c.mode === 1 || c.mode === 5 ? 0 : 1;
    if (!c.gate && (c.mode === 0 || c.mode === 4)) c.pausedTicks = 0;
  }

  private setGate2(g: 0 | 1, now: number): void {
    const c = this.ch[2]!;
    if (g === c.gate) return;
    if (g) {
      switch (c.mode) {
        case 0:
        case 4: // resume counting
          if (c.pausedTicks >= 0) c.countLoadTime = now - pitTicksToNs(c.pausedTicks);
          c.pausedTicks = -1;
          break;
        case 1:
        case 5: // rising edge triggers (only once a count was written)
          if (c.nullCount === 0) {
            c.armed = 1;
            c.countLoadTime = now;
          }
          break;
        default: // 2, 3: rising edge reloads
          c.countLoadTime = now;
      }
    } else if (c.armed && (c.mode === 0 || c.mode === 4)) {
      c.pausedTicks = this.ticks(c, now);
    }
    c.gate = g;
  }

  /** VM time at which channel 0 next raises IRQ0, or +Infinity. */
  nextDeadlineNs(): number {
    const t = this.nextIrqTick();
    return t < 0 ? Number.POSITIVE_INFINITY : this.ch[0]!.countLoadTime + pitTicksToNs(t);
  }

  private nextIrqTick(): number {
    const c = this.ch[0]!;
    if (!c.armed || this.hpetLegacy || c.pausedTicks >= 0) return -1;
    const n = c.count;
    switch (c.mode) {
      case 0: // OUT rises once, at terminal count
        return c.irqTick < n ? n : -1;
      case 4: // OUT rises after the one-clock strobe
        return c.irqTick < n + 1 ? n + 1 : -1;
      case 2:
      case 3: // OUT rises once per period
        return (Math.floor(c.irqTick / n) + 1) * n;
      default:
        return -1;
    }
  }

  /** Raises IRQ0 if channel 0's OUT rose by `now`. Missed periods collapse into one edge. */
  tick(now: number): boolean {
    const t = this.nextIrqTick();
    if (t < 0) return false;
    const c = this.ch[0]!;
    const d = this.ticks(c, now);
    if (d < t) return false;
    c.irqTick = c.mode === 2 || c.mode === 3 ? d - (d % c.count) : d;
    this.raiseIrq0();
    return true;
  }

  save(): PitState {
    return {
      channels: this.ch.map((c) => ({ ...c })),
      flags: (this.hpetLegacy ? 1 : 0) | (this.speakerData << 1),
    };
  }

  restore(s: PitState): void {
    if (!Array.isArray(s.channels) || s.channels.length !== 3)
      throw new RangeError("PIT state needs 3 channels");
    this.ch = s.channels.map((c, i) => {
      const f = freshChannel(i === 2 ? 0 : 1);
      const n = Math.min(Math.max(Math.floor(c.count) || 0x10000, 1), 0x10000);
      // KVM reports an unprogrammed counter as mode 0xff (kvm_pit_reset); modes 6 and 7 are 2 and 3.
      const unprogrammed = c.mode === 0xff;
      let mode = c.mode & 7;
      if (mode >= 6) mode -= 4;
      return {
        ...f,
        ...c,
        count: n,
        mode: unprogrammed ? 0 : mode,
        armed: unprogrammed ? 0 : c.armed,
        rwMode: c.rwMode & 3 || 3,
        gate: i === 2 ? c.gate & 1 : 1,
      };
    });
    this.hpetLegacy = (s.flags & 1) !== 0;
    this.speakerData = (s.flags >> 1) & 1;
  }
}
