/**
 * kvmclock, the paravirtual clock (Documentation/virt/kvm/x86/msr.rst; the pvclock ABI shared with
 * Xen, arch/x86/include/asm/pvclock-abi.h; guest side arch/x86/kernel/pvclock.c, kvmclock.c).
 *
 * - MSR_KVM_WALL_CLOCK(_NEW): the guest writes a GPA; the host stores there
 *   `struct pvclock_wall_clock { u32 version; u32 sec; u32 nsec; }`, the wall time at kvmclock 0.
 * - MSR_KVM_SYSTEM_TIME(_NEW): GPA | enable bit 0; the host keeps
 *   `struct pvclock_vcpu_time_info` (32 bytes) there. The area must be 32-byte aligned
 *   (so it never crosses a page); otherwise the MSR keeps the value but the clock stays off.
 *
 * Here TSC and kvmclock derive from the same VM clock, so one (tsc_timestamp, system_time)
 * pair stays exact forever and PVCLOCK_TSC_STABLE_BIT is honest.
 */
import type { VmClock } from "../clock.js";

export const MSR_KVM_WALL_CLOCK = 0x11;
export const MSR_KVM_SYSTEM_TIME = 0x12;
export const MSR_KVM_WALL_CLOCK_NEW = 0x4b564d00;
export const MSR_KVM_SYSTEM_TIME_NEW = 0x4b564d01;
export const PVCLOCK_TSC_STABLE_BIT = 1 << 0;
export const PVCLOCK_GUEST_STOPPED = 1 << 1;
/** sizeof(struct pvclock_vcpu_time_info). */
export const PVCLOCK_VCPU_TIME_INFO_SIZE = 32;
export const PVCLOCK_WALL_CLOCK_SIZE = 12;

/** KVM_GET_CLOCK / KVM_SET_CLOCK flags (api.rst 4.50). */
export const KVM_CLOCK_TSC_STABLE = 2;
export const KVM_CLOCK_REALTIME = 4;
export const KVM_CLOCK_HOST_TSC = 8;

/** `struct kvm_clock_data`, with 64-bit fields as numbers (ns fit in 2^53). */
export interface ClockData {
  clock: number;
  flags: number;
  realtime: number;
  hostTsc: number;
}

/** Guest memory as kvmclock needs it; `GuestPhysMemory` satisfies it. */
export interface PvclockMemory {
  write(gpa: number, src: Uint8Array): boolean;
  read(gpa: number, dst: Uint8Array): boolean;
}

/**
 * pvclock scale for a TSC of `tscKhz`: `ns = ((delta << shift) * mul) >> 32` (shift may be
 * negative: a right shift), the form the guest's pvclock_scale_delta() evaluates. We take the
 * smallest shift for which 10^6/kHz * 2^(32-shift) fits in 32 bits, which keeps the most precision.
 */
export function pvclockScale(tscKhz: number): { mul: number; shift: number } {
  if (!(tscKhz > 0)) throw new RangeError("tscKhz must be > 0");
  let shift = 32;
  // ratio * 2^(32-shift) < 2^32  <=>  1e6 < kHz * 2^shift
  while (shift > -32 && 1e6 < tscKhz * 2 ** (shift - 1)) shift--;
  const mul = ((10n ** 6n) << BigInt(32 - shift)) / BigInt(tscKhz);
  return { mul: Number(mul), shift };
}

/** The guest's computation (pvclock_scale_delta), for tests and for the host's own reads. */
export function pvclockScaleDelta(delta: bigint, mul: number, shift: number): bigint {
  const d = shift < 0 ? delta >> BigInt(-shift) : delta << BigInt(shift);
  return (d * BigInt(mul)) >> 32n;
}

/** VM-wide kvmclock: the offset set by KVM_SET_CLOCK and the wall time of kvmclock 0. */
export class KvmClockVm {
  /** kvmclock ns = clock.nowNs() + offsetNs. */
  offsetNs = 0;
  /** Wall-clock ns (Unix epoch) at which kvmclock read 0. */
  bootWallNs: number;

  constructor(
    private readonly clock: VmClock,
    /** Unix-epoch ns now; the deterministic mode passes a fixed epoch. */
    realtimeNs: () => number = () => Date.now() * 1e6,
  ) {
    this.bootWallNs = realtimeNs() - clock.nowNs();
  }

  nowNs(): number {
    return this.clock.nowNs() + this.offsetNs;
  }

  /** Wall-clock ns now, following the VM clock (so the deterministic mode stays deterministic). */
  realtimeNow(): number {
    return this.bootWallNs + this.clock.nowNs();
  }

  /** KVM_GET_CLOCK. */
  get(): ClockData {
    const now = this.nowNs();
    return {
      clock: now,
      flags: KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME,
      realtime: this.realtimeNow(),
      hostTsc: 0,
    };
  }

  /**
   * KVM_SET_CLOCK: kvmclock reads `data.clock` now. With KVM_CLOCK_REALTIME the time elapsed
   * since `data.realtime` is added (api.rst 4.51). Returns false for unknown flags (EINVAL).
   */
  set(data: ClockData): boolean {
    if (data.flags & ~(KVM_CLOCK_REALTIME | KVM_CLOCK_TSC_STABLE | KVM_CLOCK_HOST_TSC)) return false;
    let target = data.clock;
    if (data.flags & KVM_CLOCK_REALTIME) {
      const elapsed = this.realtimeNow() - data.realtime;
      if (elapsed > 0) target += elapsed;
    }
    this.offsetNs = target - this.clock.nowNs();
    return true;
  }

  /** Writes `struct pvclock_wall_clock` at `gpa` (version odd while writing, then even). */
  writeWallClock(mem: PvclockMemory, gpa: number): void {
    const buf = new Uint8Array(PVCLOCK_WALL_CLOCK_SIZE);
    const dv = new DataView(buf.buffer);
    mem.read(gpa, buf);
    const version = (dv.getUint32(0, true) + 1) | 1;
    dv.setUint32(0, version >>> 0, true);
    if (!mem.write(gpa, buf.subarray(0, 4))) return;
    // Wall time at kvmclock 0, so the guest adds its kvmclock reading to get "now".
    const boot = this.bootWallNs - this.offsetNs;
    const sec = Math.floor(boot / 1e9);
    dv.setUint32(4, sec >>> 0, true);
    dv.setUint32(8, Math.floor(boot - sec * 1e9), true);
    dv.setUint32(0, (version + 1) >>> 0, true);
    mem.write(gpa, buf);
  }
}

/** Per-vCPU kvmclock state: the two MSRs and the time-info area. */
export class KvmClockVcpu {
  systemTimeMsr = 0;
  wallClockMsr = 0;
  private version = 0;
  /** Set by KVM_KVMCLOCK_CTRL: the guest was paused; reported once as PVCLOCK_GUEST_STOPPED. */
  guestStopped = false;

  constructor(
    private readonly vmClock: KvmClockVm,
    /** The vCPU's TSC at VM ns, and its rate in kHz. */
    private readonly tsc: { at(ns: number): number; khz(): number },
  ) {}

  /** The area is live: enable bit set and 32-byte aligned. */
  get active(): boolean {
    return (this.systemTimeMsr & 1) === 1 && this.systemTimeMsr % PVCLOCK_VCPU_TIME_INFO_SIZE === 1;
  }

  /** Handles a write to one of the four kvmclock MSRs; returns false if `index` is not one. */
  wrmsr(index: number, value: number, mem: PvclockMemory): boolean {
    switch (index) {
      case MSR_KVM_WALL_CLOCK:
      case MSR_KVM_WALL_CLOCK_NEW:
        this.wallClockMsr = value;
        this.vmClock.writeWallClock(mem, value);
        return true;
      case MSR_KVM_SYSTEM_TIME:
      case MSR_KVM_SYSTEM_TIME_NEW:
        this.systemTimeMsr = value;
        this.update(mem);
        return true;
    }
    return false;
  }

  rdmsr(index: number): number | undefined {
    switch (index) {
      case MSR_KVM_WALL_CLOCK:
      case MSR_KVM_WALL_CLOCK_NEW:
        return this.wallClockMsr;
      case MSR_KVM_SYSTEM_TIME:
      case MSR_KVM_SYSTEM_TIME_NEW:
        return this.systemTimeMsr;
    }
    return undefined;
  }

  /**
   * Writes `struct pvclock_vcpu_time_info` (kvm_guest_time_update): version (odd during the
   * update), tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags.
   */
  update(mem: PvclockMemory): void {
    if (!this.active) return;
    const gpa = this.systemTimeMsr - 1;
    const buf = new Uint8Array(PVCLOCK_VCPU_TIME_INFO_SIZE);
    const dv = new DataView(buf.buffer);
    this.version = ((this.version + 1) | 1) >>> 0;
    dv.setUint32(0, this.version, true);
    if (!mem.write(gpa, buf.subarray(0, 4))) return;
    const hostNs = this.vmClock.nowNs() - this.vmClock.offsetNs;
    const { mul, shift } = pvclockScale(this.tsc.khz());
    dv.setBigUint64(8, BigInt(this.tsc.at(hostNs)), true);
    dv.setBigUint64(16, BigInt(this.vmClock.nowNs()), true);
    dv.setUint32(24, mul >>> 0, true);
    dv.setInt8(28, shift);
    let flags = PVCLOCK_TSC_STABLE_BIT;
    if (this.guestStopped) {
      flags |= PVCLOCK_GUEST_STOPPED;
      this.guestStopped = false;
    }
    dv.setUint8(29, flags);
    this.version = (this.version + 1) >>> 0;
    dv.setUint32(0, this.version, true);
    mem.write(gpa, buf);
  }
}
