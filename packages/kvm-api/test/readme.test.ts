/** The README's "API in one screen" examples, kept compiling and running. */
import { expect, it } from "vitest";
import {
  drainCoalesced,
  Ioctl,
  KVM_MEM_LOG_DIRTY_PAGES,
  Kvm,
  type KvmError,
  KvmFds,
  StructView,
  Uapi,
} from "../src/index.js";

it("README: object API", () => {
  const kvm = new Kvm();
  expect(kvm.getApiVersion()).toBe(12);
  expect(kvm.checkExtension(0 /* KVM_CAP_IRQCHIP */)).toBe(1);
  const vm = kvm.createVm({ clock: "deterministic" });
  const ram = new SharedArrayBuffer(16 << 20);
  vm.setUserMemoryRegion({
    slot: 0,
    flags: KVM_MEM_LOG_DIRTY_PAGES,
    guestPhysAddr: 0,
    memorySize: ram.byteLength,
    memory: ram,
  });
  vm.createIrqchip();
  vm.createPit2(1 /* KVM_PIT_SPEAKER_DUMMY */);
  const vcpu = vm.createVcpu(0);
  vcpu.setRegs({ ...vcpu.getRegs(), rip: 0x100000n });
  vm.irqLine(4, true);
  const fd = vm.irqfd(5);
  fd.signal();
  let notified = 0;
  vm.ioeventfd({ addr: 0xd0000050, len: 4, pio: false, notify: () => notified++ });
  vm.registerCoalescedMmio({ addr: 0x70, size: 2, pio: true });
  expect(vm.ioOut(0x71, 1, 0x8f)).toBe(true);
  const queued: number[] = [];
  expect(drainCoalesced(vm.coalescedMmio.page, (w) => queued.push(w.addr, w.data[0]!))).toBe(1);
  expect(queued).toEqual([0x71, 0x8f]);
  expect(vm.getDirtyLog(0)).toHaveLength(((16 << 20) / 4096 / 8) | 0);
  try {
    vm.createIrqchip();
  } catch (e) {
    expect((e as KvmError).code).toBe("EEXIST");
  }
  expect(vm.mmioWrite(0, 0xd0000050, 4, 1)).toBe(true);
  expect(notified).toBe(1);
});

it("README: C-style ioctl()", () => {
  const k = new KvmFds();
  const kvmFd = k.openKvm();
  const vmFd = k.ioctl(kvmFd, Ioctl.KVM_CREATE_VM, 0);
  const region = new StructView(Uapi.kvm_userspace_memory_region);
  region.set("memory_size", 1 << 20);
  region.set("userspace_addr", k.map(new ArrayBuffer(1 << 20)));
  expect(k.ioctl(vmFd, Ioctl.KVM_SET_USER_MEMORY_REGION, region.bytes)).toBe(0);
  const cpuFd = k.ioctl(vmFd, Ioctl.KVM_CREATE_VCPU, 0);
  const run = new StructView(Uapi.kvm_run, k.mmapRun(cpuFd));
  expect(run.num("exit_reason")).toBe(0);
});
