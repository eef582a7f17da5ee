import { describe, expect, it } from "vitest";
import { nsToTsc } from "../src/clock.js";
import {
  MSR_KVM_SYSTEM_TIME_NEW,
  MSR_KVM_WALL_CLOCK_NEW,
  PVCLOCK_TSC_STABLE_BIT,
  pvclockScale,
  pvclockScaleDelta,
} from "../src/devices/kvmclock.js";
import { Kvm } from "../src/kvm.js";

function vmWithRam() {
  const vm = new Kvm().createVm({ clock: "deterministic", epochNs: 1_700_000_000_000_000_000 });
  const ram = new ArrayBuffer(1 << 16);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 1 << 16, memory: ram });
  return { vm, dv: new DataView(ram), clock: vm.clock as import("../src/clock.js").DeterministicClock };
}

/** The guest's read (arch/x86/kernel/pvclock.c __pvclock_read_cycles), from the bytes in RAM. */
function guestRead(dv: DataView, gpa: number, tsc: bigint): bigint {
  const tscTimestamp = dv.getBigUint64(gpa + 8, true);
  const systemTime = dv.getBigUint64(gpa + 16, true);
  const mul = dv.getUint32(gpa + 24, true);
  const shift = dv.getInt8(gpa + 28);
  return systemTime + pvclockScaleDelta(tsc - tscTimestamp, mul, shift);
}

describe("kvmclock (msr.rst, pvclock-abi.h)", () => {
  it("pvclock scale converts TSC ticks to ns for common rates", () => {
    for (const khz of [1_000_000, 2_000_000, 2_899_999, 3_500_000, 100_000, 25_000]) {
      const { mul, shift } = pvclockScale(khz);
      expect(mul).toBeLessThan(2 ** 32);
      expect(mul).toBeGreaterThanOrEqual(2 ** 31);
      const oneSecondTicks = BigInt(khz) * 1000n;
      const ns = pvclockScaleDelta(oneSecondTicks, mul, shift);
      expect(Number(1_000_000_000n - ns)).toBeLessThanOrEqual(1);
      expect(Number(1_000_000_000n - ns)).toBeGreaterThanOrEqual(0);
    }
  });

  it("MSR_KVM_SYSTEM_TIME_NEW with bit 0 writes pvclock_vcpu_time_info; the guest's formula tracks the clock", () => {
    const { vm, dv, clock } = vmWithRam();
    const v = vm.createVcpu(0);
    v.setTscKhz(2_500_000);
    clock.advance(123_456_789);
    expect(v.writeMsr(MSR_KVM_SYSTEM_TIME_NEW, 0x1000n | 1n)).toBe(true);
    expect(dv.getUint32(0x1000, true) % 2).toBe(0); // version even: stable
    expect(dv.getUint32(0x1000, true)).toBeGreaterThan(0);
    expect(dv.getUint8(0x1000 + 29) & PVCLOCK_TSC_STABLE_BIT).toBe(PVCLOCK_TSC_STABLE_BIT);
    clock.advance(987_654_321);
    const t = guestRead(dv, 0x1000, BigInt(v.tsc()));
    expect(Math.abs(Number(t) - vm.getClock().clock)).toBeLessThanOrEqual(1);
    expect(v.readMsr(MSR_KVM_SYSTEM_TIME_NEW)).toBe(0x1001n);
  });

  it("a system-time area that is not 32-byte aligned is not written (the MSR keeps the value)", () => {
    const { vm, dv } = vmWithRam();
    const v = vm.createVcpu(0);
    expect(v.writeMsr(MSR_KVM_SYSTEM_TIME_NEW, 0x1010n | 1n)).toBe(true);
    expect(v.kvmclock.active).toBe(false);
    expect(dv.getUint32(0x1010, true)).toBe(0);
    expect(v.readMsr(MSR_KVM_SYSTEM_TIME_NEW)).toBe(0x1011n);
  });

  it("legacy MSR 0x12 behaves like the new one", () => {
    const { vm, dv } = vmWithRam();
    const v = vm.createVcpu(0);
    v.writeMsr(0x12, 0x2001n);
    expect(dv.getUint32(0x2000, true)).toBe(2);
  });

  it("MSR_KVM_WALL_CLOCK_NEW: pvclock_wall_clock holds the wall time at kvmclock 0", () => {
    const { vm, dv, clock } = vmWithRam();
    const v = vm.createVcpu(0);
    clock.advance(5_000_000_000);
    v.writeMsr(MSR_KVM_WALL_CLOCK_NEW, 0x3000n);
    expect(dv.getUint32(0x3000, true) % 2).toBe(0);
    const sec = dv.getUint32(0x3004, true);
    const nsec = dv.getUint32(0x3008, true);
    expect(BigInt(sec) * 1_000_000_000n + BigInt(nsec)).toBe(1_700_000_000_000_000_000n);
  });

  it("KVM_SET_CLOCK moves kvmclock and rewrites the vCPU areas; KVM_GET_CLOCK reads it back", () => {
    const { vm, dv, clock } = vmWithRam();
    const v = vm.createVcpu(0);
    v.writeMsr(MSR_KVM_SYSTEM_TIME_NEW, 0x1001n);
    vm.setClock({ clock: 10_000_000_000, flags: 0, realtime: 0, hostTsc: 0 });
    expect(vm.getClock().clock).toBe(10_000_000_000);
    clock.advance(1000);
    expect(vm.getClock().clock).toBe(10_000_001_000);
    const t = guestRead(dv, 0x1000, BigInt(v.tsc()));
    expect(Math.abs(Number(t) - 10_000_001_000)).toBeLessThanOrEqual(1);
    expect(() => vm.setClock({ clock: 0, flags: 1, realtime: 0, hostTsc: 0 })).toThrow(/EINVAL/);
  });

  it("KVM_KVMCLOCK_CTRL sets PVCLOCK_GUEST_STOPPED once; EINVAL while kvmclock is off", () => {
    const { vm, dv } = vmWithRam();
    const v = vm.createVcpu(0);
    expect(() => v.kvmclockCtrl()).toThrow(/EINVAL/);
    v.writeMsr(MSR_KVM_SYSTEM_TIME_NEW, 0x1001n);
    v.kvmclockCtrl();
    expect(dv.getUint8(0x1000 + 29) & 2).toBe(2);
    v.kvmclock.update(vm.memory);
    expect(dv.getUint8(0x1000 + 29) & 2).toBe(0);
  });

  it("TSC follows the VM clock at the vCPU's rate; writing IA32_TSC moves it", () => {
    const { vm, clock } = vmWithRam();
    const v = vm.createVcpu(0);
    v.setTscKhz(3_000_000);
    clock.advance(1_000_000);
    expect(v.tsc()).toBe(nsToTsc(1_000_000, 3_000_000));
    v.writeMsr(0x10, 1_000_000_000n);
    clock.advance(1000);
    expect(v.readMsr(0x10)).toBe(1_000_003_000n);
  });
});
