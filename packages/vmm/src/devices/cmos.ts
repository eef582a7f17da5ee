/**
 * Motorola MC146818 real-time clock and CMOS RAM behind ports 0x70 (index, bit 7 = NMI disable)
 * and 0x71 (data), as on every PC. The time is the host's (an injected clock, UTC), shown in BCD
 * or binary and 12- or 24-hour form per register B; register A's update-in-progress bit follows
 * the real timing (set 244 us before each second's update and through the 1984 us update
 * cycle); register B's SET bit freezes the clock so the guest can write a new time. Periodic,
 * alarm and update-ended interrupts set register C's flags and drive IRQ 8; the device has no
 * timer of its own, so the VMM calls `poll()` (and every register-C read evaluates too).
 * Sources: MC146818A datasheet; Linux include/linux/mc146818rtc.h and drivers/rtc/rtc-mc146818-lib.c.
 */
import { type IrqLine, NO_IRQ, type PortDevice } from "./bus.js";

export const CMOS_INDEX_PORT = 0x70;
export const CMOS_DATA_PORT = 0x71;
export const RTC_IRQ = 8;

/** Register indices (MC146818A, Linux mc146818rtc.h). */
export const RtcReg = {
  SECONDS: 0x00,
  SECONDS_ALARM: 0x01,
  MINUTES: 0x02,
  MINUTES_ALARM: 0x03,
  HOURS: 0x04,
  HOURS_ALARM: 0x05,
  DAY_OF_WEEK: 0x06,
  DAY_OF_MONTH: 0x07,
  MONTH: 0x08,
  YEAR: 0x09,
  A: 0x0a,
  B: 0x0b,
  C: 0x0c,
  D: 0x0d,
  /** IBM PC convention (and QEMU/SeaBIOS): the century, in the same BCD/binary form. */
  CENTURY: 0x32,
} as const;

/** Register A bits. */
export const RegA = { UIP: 0x80, DV: 0x70, RS: 0x0f, DV_32KHZ: 0x20 } as const;
/** Register B bits. */
export const RegB = {
  SET: 0x80,
  PIE: 0x40,
  AIE: 0x20,
  UIE: 0x10,
  SQWE: 0x08,
  DM_BINARY: 0x04,
  HOUR_24: 0x02,
  DSE: 0x01,
} as const;
/** Register C bits (read-only, cleared by reading). */
export const RegC = { IRQF: 0x80, PF: 0x40, AF: 0x20, UF: 0x10 } as const;
/** Register D: VRT, valid RAM and time. */
export const REG_D_VRT = 0x80;
/** Port 0x70 bit 7: NMI disable. */
export const NMI_DISABLE = 0x80;

/** UIP is set this long before the update, and the update itself lasts 1984 us (MC146818A, Figure 16). */
const UIP_LEAD_MS = 0.244;
const UPDATE_CYCLE_MS = 1.984;
/** An alarm byte with both top bits set is "don't care" (datasheet: 0xC0-0xFF). */
const ALARM_DONT_CARE = 0xc0;

export interface CmosState {
  index: number;
  nmiDisabled: boolean;
  ram: number[];
  /** Guest time minus host time, in ms (the guest set the clock). */
  offsetMs: number;
  /** Time registers frozen while register B's SET bit is on, as the guest wrote them. */
  frozen: number[] | null;
  regC: number;
  lastUpdateSecond: number;
  lastPeriodicTick: number;
}

export interface CmosDeps {
  /** Host time in ms since the Unix epoch (may be fractional); default Date.now. */
  clock?: () => number;
  irq?: IrqLine;
  /** Guest RAM size, to fill the BIOS memory-size bytes (0x15-0x18, 0x30-0x31, 0x34-0x35, 0x5b-0x5d). */
  memBytes?: number;
}

const toBcd = (n: number) => ((Math.floor(n / 10) % 10) << 4) | (n % 10);
const fromBcd = (b: number) => (b >> 4) * 10 + (b & 0x0f);

export class Cmos implements PortDevice {
  private index = 0;
  private nmiDisabled = false;
  private readonly ram = new Uint8Array(128);
  private offsetMs = 0;
  private frozen: Uint8Array | null = null;
  private regC = 0;
  private lastUpdateSecond: number;
  private lastPeriodicTick: number;
  private irqLevel = false;
  private readonly clock: () => number;
  private readonly irq: IrqLine;

  constructor(deps: CmosDeps = {}) {
    this.clock = deps.clock ?? Date.now;
    this.irq = deps.irq ?? NO_IRQ;
    this.ram[RtcReg.A] = RegA.DV_32KHZ | 0x06; // 32.768 kHz time base, 1024 Hz periodic rate
    this.ram[RtcReg.B] = RegB.HOUR_24; // BCD, 24-hour: what a PC BIOS sets
    this.ram[RtcReg.D] = REG_D_VRT;
    if (deps.memBytes !== undefined) this.setMemorySize(deps.memBytes);
    const now = this.guestNow();
    this.lastUpdateSecond = Math.floor(now / 1000);
    this.lastPeriodicTick = now;
  }

  /** Whether the guest has masked NMIs (port 0x70 bit 7). */
  get nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  /** Register at 0x70 with length 2: offset 0 is the index port, offset 1 the data port. */
  ioRead(offset: number, _size: 1 | 2 | 4): number {
    // Port 0x70 is write-only on a PC; reads float.
    if (offset === 0) return 0xff;
    return this.readRegister(this.index);
  }

  ioWrite(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset === 0) {
      this.index = value & 0x7f;
      this.nmiDisabled = (value & NMI_DISABLE) !== 0;
      return;
    }
    this.writeRegister(this.index, value & 0xff);
  }

  /** Evaluate the periodic, alarm and update-ended conditions up to now and drive IRQ 8. */
  poll(): void {
    const now = this.guestNow();
    const b = this.ram[RtcReg.B]!;
    if (!(b & RegB.SET)) {
      const sec = Math.floor(now / 1000);
      if (sec > this.lastUpdateSecond) {
        // At least one update cycle ended: UF; the alarm is checked against the new time.
        this.regC |= RegC.UF;
        if (this.alarmMatches(now)) this.regC |= RegC.AF;
        this.lastUpdateSecond = sec;
      }
    }
    const period = this.periodMs();
    if (period > 0 && now - this.lastPeriodicTick >= period) {
      this.regC |= RegC.PF;
      this.lastPeriodicTick += Math.floor((now - this.lastPeriodicTick) / period) * period;
    } else if (period === 0) {
      this.lastPeriodicTick = now;
    }
    this.updateIrq();
  }

  private guestNow(): number {
    return this.clock() + this.offsetMs;
  }

  /** Periodic interrupt period from RS3-0 with the 32.768 kHz time base; 0 = off. */
  private periodMs(): number {
    const rs = this.ram[RtcReg.A]! & RegA.RS;
    if (rs === 0) return 0;
    // Datasheet Table 5: RS 1 and 2 repeat rates 8 and 9 (256 Hz, 128 Hz) with a 32.768 kHz base.
    const r = rs <= 2 ? rs + 7 : rs;
    return ((1 << (r - 1)) / 32768) * 1000;
  }

  private updateIrq(): void {
    const b = this.ram[RtcReg.B]!;
    const active =
      (this.regC & RegC.PF && b & RegB.PIE) ||
      (this.regC & RegC.AF && b & RegB.AIE) ||
      (this.regC & RegC.UF && b & RegB.UIE);
    if (active) this.regC |= RegC.IRQF;
    else this.regC &= ~RegC.IRQF;
    const level = !!active;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  private encode(n: number): number {
    return this.ram[RtcReg.B]! & RegB.DM_BINARY ? n : toBcd(n);
  }

  private decode(b: number): number {
    return this.ram[RtcReg.B]! & RegB.DM_BINARY ? b : fromBcd(b);
  }

  private encodeHour(h: number): number {
    if (this.ram[RtcReg.B]! & RegB.HOUR_24) return this.encode(h);
    // 12-hour: 1-12 with bit 7 for PM.
    const pm = h >= 12;
    const h12 = h % 12 === 0 ? 12 : h % 12;
    return this.encode(h12) | (pm ? 0x80 : 0);
  }

  private decodeHour(b: number): number {
    if (this.ram[RtcReg.B]! & RegB.HOUR_24) return this.decode(b);
    const h12 = this.decode(b & 0x7f) % 12;
    return b & 0x80 ? h12 + 12 : h12;
  }

  /** The time registers for the current guest time. */
  private timeRegisters(now: number): Map<number, number> {
    const d = new Date(now);
    return new Map([
      [RtcReg.SECONDS, this.encode(d.getUTCSeconds())],
      [RtcReg.MINUTES, this.encode(d.getUTCMinutes())],
      [RtcReg.HOURS, this.encodeHour(d.getUTCHours())],
      [RtcReg.DAY_OF_WEEK, this.encode(d.getUTCDay() + 1)], // 1 = Sunday
      [RtcReg.DAY_OF_MONTH, this.encode(d.getUTCDate())],
      [RtcReg.MONTH, this.encode(d.getUTCMonth() + 1)],
      [RtcReg.YEAR, this.encode(d.getUTCFullYear() % 100)],
      [RtcReg.CENTURY, this.encode(Math.floor(d.getUTCFullYear() / 100))],
    ]);
  }

  private alarmMatches(now: number): boolean {
    const t = this.timeRegisters(now);
    const match = (alarm: number, cur: number) =>
      (this.ram[alarm]! & ALARM_DONT_CARE) === ALARM_DONT_CARE || this.ram[alarm] === t.get(cur);
    return (
      match(RtcReg.SECONDS_ALARM, RtcReg.SECONDS) &&
      match(RtcReg.MINUTES_ALARM, RtcReg.MINUTES) &&
      match(RtcReg.HOURS_ALARM, RtcReg.HOURS)
    );
  }

  private isTimeRegister(i: number): boolean {
    return (
      i === RtcReg.SECONDS ||
      i === RtcReg.MINUTES ||
      i === RtcReg.HOURS ||
      (i >= RtcReg.DAY_OF_WEEK && i <= RtcReg.YEAR) ||
      i === RtcReg.CENTURY
    );
  }

  private readRegister(i: number): number {
    if (this.isTimeRegister(i)) {
      if (this.frozen) return this.frozen[i]!;
      return this.timeRegisters(this.guestNow()).get(i)!;
    }
    switch (i) {
      case RtcReg.A: {
        const a = this.ram[RtcReg.A]! & ~RegA.UIP;
        const running = !(this.ram[RtcReg.B]! & RegB.SET) && (a & RegA.DV) === RegA.DV_32KHZ;
        if (!running) return a;
        const frac = ((this.guestNow() % 1000) + 1000) % 1000;
        const uip = frac >= 1000 - UIP_LEAD_MS || frac < UPDATE_CYCLE_MS;
        return a | (uip ? RegA.UIP : 0);
      }
      case RtcReg.C: {
        this.poll();
        const c = this.regC;
        // Reading C clears every flag and releases IRQ 8 (datasheet, register C).
        this.regC = 0;
        this.updateIrq();
        return c;
      }
      case RtcReg.D:
        return REG_D_VRT;
      default:
        return this.ram[i]!;
    }
  }

  private writeRegister(i: number, v: number): void {
    if (this.isTimeRegister(i)) {
      if (this.frozen) {
        this.frozen[i] = v;
      } else {
        // Written while running: apply as a one-field clock change, as if SET were pulsed.
        this.freeze();
        this.frozen![i] = v;
        this.unfreeze();
      }
      return;
    }
    switch (i) {
      case RtcReg.A:
        this.ram[RtcReg.A] = v & ~RegA.UIP; // UIP is read-only
        break;
      case RtcReg.B: {
        const wasSet = (this.ram[RtcReg.B]! & RegB.SET) !== 0;
        // SET also clears UIE (datasheet, register B bit 7).
        this.ram[RtcReg.B] = v & RegB.SET ? v & ~RegB.UIE : v;
        if (v & RegB.SET && !wasSet) this.freeze();
        if (!(v & RegB.SET) && wasSet) this.unfreeze();
        this.updateIrq();
        break;
      }
      case RtcReg.C:
      case RtcReg.D:
        break; // read-only
      default:
        this.ram[i] = v;
    }
  }

  private freeze(): void {
    const regs = new Uint8Array(128);
    for (const [k, val] of this.timeRegisters(this.guestNow())) regs[k] = val;
    this.frozen = regs;
  }

  private unfreeze(): void {
    const f = this.frozen!;
    this.frozen = null;
    const year = this.decode(f[RtcReg.CENTURY]!) * 100 + this.decode(f[RtcReg.YEAR]!);
    const t = Date.UTC(
      year,
      this.decode(f[RtcReg.MONTH]!) - 1,
      this.decode(f[RtcReg.DAY_OF_MONTH]!),
      this.decodeHour(f[RtcReg.HOURS]!),
      this.decode(f[RtcReg.MINUTES]!),
      this.decode(f[RtcReg.SECONDS]!),
    );
    // Nonsense written by the guest (e.g. month 0x99) leaves the clock where it was.
    if (!Number.isFinite(t)) return;
    const host = this.clock();
    this.offsetMs = t - Math.floor(host / 1000) * 1000;
    this.lastUpdateSecond = Math.floor(this.guestNow() / 1000);
  }

  /** BIOS memory-size bytes (IBM PC/AT CMOS map; SeaBIOS/QEMU for 0x34-0x35 and 0x5b-0x5d). */
  private setMemorySize(memBytes: number): void {
    const KB = 1024;
    this.ram[0x15] = 640 & 0xff;
    this.ram[0x16] = 640 >> 8;
    const extKb = Math.min(Math.max(0, memBytes / KB - 1024), 0xffff);
    this.ram[0x17] = this.ram[0x30] = extKb & 0xff;
    this.ram[0x18] = this.ram[0x31] = extKb >> 8;
    const below4g = Math.min(memBytes, 3 * 1024 * 1024 * KB);
    const above16m = Math.min(Math.max(0, Math.floor((below4g - 16 * 1024 * KB) / (64 * KB))), 0xffff);
    this.ram[0x34] = above16m & 0xff;
    this.ram[0x35] = above16m >> 8;
    const above4g = Math.max(0, Math.floor((memBytes - below4g) / (64 * KB)));
    this.ram[0x5b] = above4g & 0xff;
    this.ram[0x5c] = (above4g >> 8) & 0xff;
    this.ram[0x5d] = (above4g >> 16) & 0xff;
  }

  save(): CmosState {
    return {
      index: this.index,
      nmiDisabled: this.nmiDisabled,
      ram: [...this.ram],
      offsetMs: this.offsetMs,
      frozen: this.frozen ? [...this.frozen] : null,
      regC: this.regC,
      lastUpdateSecond: this.lastUpdateSecond,
      lastPeriodicTick: this.lastPeriodicTick,
    };
  }

  static restore(deps: CmosDeps, s: CmosState): Cmos {
    const bytes = (a: unknown, what: string): Uint8Array => {
      if (
        !Array.isArray(a) ||
        a.length !== 128 ||
        !a.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xff)
      ) {
        throw new Error(`cmos state: bad ${what}`);
      }
      return Uint8Array.from(a);
    };
    if (!Number.isFinite(s.offsetMs)) throw new Error("cmos state: bad offsetMs");
    const c = new Cmos({ ...deps, memBytes: undefined });
    c.ram.set(bytes(s.ram, "ram"));
    c.index = Number(s.index) & 0x7f;
    c.nmiDisabled = !!s.nmiDisabled;
    c.offsetMs = s.offsetMs;
    c.frozen = s.frozen === null ? null : bytes(s.frozen, "frozen");
    c.regC = Number(s.regC) & 0xf0;
    c.lastUpdateSecond = Number(s.lastUpdateSecond) || 0;
    c.lastPeriodicTick = Number(s.lastPeriodicTick) || 0;
    c.updateIrq();
    return c;
  }
}
