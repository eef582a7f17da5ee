/**
 * The one clock of a VM. Every in-kernel timer (PIT, LAPIC timer, TSC, kvmclock) derives its
 * time from `nowNs()`; devices hold no timers of their own, they report their next deadline and
 * are serviced by the run loop (ARCHITECTURE.md "Time").
 *
 * Nanoseconds are kept as JS numbers: exact up to 2^53 ns (104 days of guest uptime).
 */
export interface VmClock {
  /** Monotonic nanoseconds since the clock was created. Never decreases. */
  nowNs(): number;
  /**
   * Tell the clock that the CPU retired `count` instructions. Only the deterministic clock uses
   * it; the host clock ignores it. Called on the run loop's exits, not per instruction.
   */
  retire(count: number): void;
  /** `"host"` or `"deterministic"`. */
  readonly mode: "host" | "deterministic";
}

function hostNowNs(): number {
  // performance.now() exists in Node >= 16 and every browser; sub-microsecond resolution where allowed.
  return performance.now() * 1e6;
}

/** Follows the host's monotonic clock (the default, like KVM's ktime_get()). */
export class HostClock implements VmClock {
  readonly mode = "host" as const;
  private readonly origin: number;
  private last = 0;
  constructor(private readonly source: () => number = hostNowNs) {
    this.origin = source();
  }
  nowNs(): number {
    const t = Math.floor(this.source() - this.origin);
    // Guard against a source that steps back (browsers clamp and jitter performance.now()).
    if (t > this.last) this.last = t;
    return this.last;
  }
  retire(_count: number): void {
    // Host time flows by itself; retired instructions do not move it.
  }
}

/**
 * Derives time from the retired-instruction count (`nsPerInstruction` each) plus explicit
 * `advance()` calls, so that a run can be replayed exactly. Tests use it to step time.
 */
export class DeterministicClock implements VmClock {
  readonly mode = "deterministic" as const;
  private ns = 0;
  private frac = 0;
  constructor(readonly nsPerInstruction = 1) {
    if (!(nsPerInstruction > 0)) throw new RangeError("nsPerInstruction must be > 0");
  }
  nowNs(): number {
    return this.ns;
  }
  retire(count: number): void {
    const t = count * this.nsPerInstruction + this.frac;
    const whole = Math.floor(t);
    this.frac = t - whole;
    this.ns += whole;
  }
  /** Moves time forward by `ns` nanoseconds (e.g. while every vCPU is halted). */
  advance(ns: number): void {
    if (ns < 0) throw new RangeError("time only moves forward");
    this.ns += Math.floor(ns);
  }
  /** Jumps to an absolute time, which must not be in the past. */
  advanceTo(ns: number): void {
    if (ns > this.ns) this.ns = Math.floor(ns);
  }
}

/**
 * TSC value at `ns` for a TSC of `tscKhz` kHz: ns * kHz / 1e6, computed in two parts so that
 * the product never leaves the exact range of a double for realistic uptimes.
 */
export function nsToTsc(ns: number, tscKhz: number): number {
  const ms = Math.floor(ns / 1e6);
  const rem = ns - ms * 1e6;
  return ms * tscKhz + Math.floor((rem * tscKhz) / 1e6);
}

/** Inverse of {@link nsToTsc}: the first ns at which the TSC reaches `tsc`. */
export function tscToNs(tsc: number, tscKhz: number): number {
  const ms = Math.floor(tsc / tscKhz);
  const rem = tsc - ms * tscKhz;
  return ms * 1e6 + Math.ceil((rem * 1e6) / tscKhz);
}
