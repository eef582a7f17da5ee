/**
 * Guest input is hostile: arbitrary port and MMIO traffic to every in-kernel device must never
 * throw, and the register invariants must hold. Userspace input to ioctl() must end in a value
 * or -errno, never an exception. Longer runs: TSKVM_LONG=1.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DeterministicClock } from "../src/clock.js";
import { Kvm } from "../src/kvm.js";
import * as I from "../src/uapi/ioctl.js";
import { KvmFds } from "../src/uapi/kvm-fd.js";

const RUNS = process.env.TSKVM_LONG ? 20_000 : 300;

const PORTS = [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1, 0x40, 0x41, 0x42, 0x43, 0x61];
const op = fc.oneof(
  fc.record({
    k: fc.constant("out" as const),
    port: fc.constantFrom(...PORTS),
    v: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ k: fc.constant("in" as const), port: fc.constantFrom(...PORTS) }),
  fc.record({
    k: fc.constant("lapicw" as const),
    off: fc.integer({ min: 0, max: 0xfff }),
    size: fc.constantFrom(1, 2, 4, 8),
    v: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({
    k: fc.constant("lapicr" as const),
    off: fc.integer({ min: 0, max: 0xfff }),
    size: fc.constantFrom(1, 2, 4),
  }),
  fc.record({
    k: fc.constant("ioapicw" as const),
    off: fc.constantFrom(0, 0x10, 0x20, 0x40),
    v: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({ k: fc.constant("irq" as const), gsi: fc.integer({ min: 0, max: 30 }), level: fc.boolean() }),
  fc.record({
    k: fc.constant("msr" as const),
    idx: fc.oneof(
      fc.integer({ min: 0x800, max: 0x8ff }),
      fc.constantFrom(0x1b, 0x6e0, 0x10, 0x4b564d01, 0x12),
    ),
    v: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  }),
  fc.record({ k: fc.constant("time" as const), ns: fc.integer({ min: 0, max: 5_000_000 }) }),
  fc.record({ k: fc.constant("inta" as const) }),
);

describe("fuzz: guest traffic to the in-kernel devices", () => {
  it("never throws; INTA vectors are bytes; PIC registers stay bytes", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const vm = new Kvm().createVm({ clock: "deterministic" });
        vm.setUserMemoryRegion({
          slot: 0,
          flags: 0,
          guestPhysAddr: 0,
          memorySize: 1 << 16,
          memory: new ArrayBuffer(1 << 16),
        });
        vm.createIrqchip();
        vm.createPit2(1);
        const v = vm.createVcpu(0);
        vm.createVcpu(1);
        const clock = vm.clock as DeterministicClock;
        for (const o of ops) {
          switch (o.k) {
            case "out":
              vm.ioOut(o.port, 1, o.v);
              break;
            case "in":
              expect(vm.ioIn(o.port, 1)! & ~0xff).toBe(0);
              break;
            case "lapicw":
              vm.mmioWrite(0, 0xfee00000 + o.off, o.size, o.v);
              break;
            case "lapicr":
              vm.mmioRead(0, 0xfee00000 + o.off, o.size);
              break;
            case "ioapicw":
              vm.mmioWrite(0, 0xfec00000 + o.off, 4, o.v);
              break;
            case "irq":
              vm.irqLine(o.gsi, o.level);
              break;
            case "msr":
              v.writeMsr(o.idx, o.v);
              v.readMsr(o.idx);
              break;
            case "time":
              clock.advance(o.ns);
              vm.tick();
              break;
            case "inta": {
              const x = v.acknowledgeInterrupt();
              expect(x >= -1 && x <= 255).toBe(true);
              break;
            }
          }
          v.acceptEvents();
        }
        const pic = vm.getIrqchip(0);
        if (pic.chipId !== 2) for (const x of Object.values(pic.pic)) expect(x & ~0xff).toBe(0);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("fuzz: ioctl() with arbitrary arguments", () => {
  const reqs = Object.values(I.IOCTLS).filter((r) => r !== I.KVM_RUN);
  it("returns a number (>= 0 or -errno) and never throws", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            target: fc.constantFrom("kvm", "vm", "vcpu"),
            req: fc.constantFrom(...reqs),
            arg: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.uint8Array({ minLength: 0, maxLength: 5000 })),
          }),
          { maxLength: 30 },
        ),
        (calls) => {
          const k = new KvmFds();
          const kvm = k.openKvm();
          const vm = k.ioctl(kvm, I.KVM_CREATE_VM, 0);
          k.ioctl(vm, I.KVM_CREATE_IRQCHIP, 0);
          const cpu = k.ioctl(vm, I.KVM_CREATE_VCPU, 0);
          const fds = { kvm, vm, vcpu: cpu };
          for (const c of calls) {
            const r = k.ioctl(fds[c.target], c.req, c.arg);
            expect(Number.isInteger(r)).toBe(true);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
