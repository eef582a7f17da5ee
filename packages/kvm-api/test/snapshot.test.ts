import { describe, expect, it } from "vitest";
import { DeterministicClock } from "../src/clock.js";
import { Kvm } from "../src/kvm.js";
import { fromJsonable, restoreVm, saveVm, toJsonable, type VmSnapshot } from "../src/snapshot.js";
import { errOf, linuxApicSetup } from "./helpers.js";

function busyVm() {
  const clock = new DeterministicClock();
  const vm = new Kvm({ xcr0Supported: 7n }).createVm({ clock });
  const ram = new ArrayBuffer(1 << 20);
  vm.setUserMemoryRegion({ slot: 0, flags: 1, guestPhysAddr: 0, memorySize: 1 << 20, memory: ram });
  vm.setTssAddr(0xfffbd000);
  vm.createIrqchip();
  vm.createPit2(1);
  const a = vm.createVcpu(0);
  const b = vm.createVcpu(1);
  linuxApicSetup(a.lapic!, 0);
  linuxApicSetup(b.lapic!, 1);
  a.setCpuid2([{ function: 0, index: 0, flags: 0, eax: 1, ebx: 2, ecx: 3, edx: 4 }]);
  a.setRegs({ ...a.getRegs(), rip: 0xffffffff81000000n, rax: 42n });
  a.setXcrs([{ xcr: 0, value: 7n }]);
  a.writeMsr(0x4b564d01, 0x2001n);
  vm.ioOut(0x43, 1, 0x34);
  vm.ioOut(0x40, 1, 0xa9);
  vm.ioOut(0x40, 1, 0x04);
  vm.mmioWrite(0, 0xfee003e0, 4, 0xb);
  vm.mmioWrite(0, 0xfee00320, 4, 0x200ec);
  vm.mmioWrite(0, 0xfee00380, 4, 1_000_000);
  vm.mmioWrite(0, 0xfec00000, 4, 0x14);
  vm.mmioWrite(0, 0xfec00010, 4, 0x8055);
  vm.irqLine(2, true);
  clock.advance(1_234_567);
  vm.tick();
  return { vm, ram, clock };
}

describe("VM snapshot (save -> JSON -> restore -> save)", () => {
  it("round trips every device and vCPU field through JSON", () => {
    const { vm, ram } = busyVm();
    const snap = saveVm(vm);
    const json = JSON.stringify(toJsonable(snap));
    const parsed = fromJsonable<VmSnapshot>(JSON.parse(json));
    const ram2 = ram.slice(0);
    const vm2 = restoreVm(new Kvm({ xcr0Supported: 7n }), parsed, () => ram2, { clock: "deterministic" });
    const again = saveVm(vm2);
    expect(toJsonable(again)).toEqual(toJsonable(snap));
    expect(vm2.nextDeadlineNs()).toBe(vm.nextDeadlineNs());
    expect(vm2.vcpus[0]!.getRegs().rip).toBe(0xffffffff81000000n);
  });

  it("a restored VM keeps running the same way: next timer interrupts match", () => {
    const { vm, ram, clock } = busyVm();
    const snap = fromJsonable<VmSnapshot>(JSON.parse(JSON.stringify(toJsonable(saveVm(vm)))));
    const vm2 = restoreVm(new Kvm({ xcr0Supported: 7n }), snap, () => ram.slice(0), {
      clock: "deterministic",
    });
    const c2 = vm2.clock as DeterministicClock;
    for (let i = 0; i < 3; i++) {
      const t = vm.nextDeadlineNs();
      expect(vm2.nextDeadlineNs()).toBe(t);
      clock.advanceTo(t);
      c2.advanceTo(t);
      vm.tick();
      vm2.tick();
      expect(vm2.vcpus[0]!.hasInterrupt()).toBe(vm.vcpus[0]!.hasInterrupt());
    }
  });

  it("a snapshot of another version is refused", () => {
    const { vm } = busyVm();
    const snap = { ...saveVm(vm), version: 99 };
    expect(errOf(() => restoreVm(new Kvm(), snap, () => new ArrayBuffer(1 << 20))).reason).toBe("BadVersion");
  });
});
