/**
 * KVM_REGISTER_COALESCED_MMIO / KVM_UNREGISTER_COALESCED_MMIO and KVM_CAP_COALESCED_PIO
 * (coalesced-mmio.ts): writes into a zone are queued in the ring instead of exiting, reads still
 * exit, a full ring falls back to the normal exit, and the ring page has the kernel's layout.
 */
import { describe, expect, it } from "vitest";
import {
  type CoalescedWrite,
  drainCoalesced,
  KVM_COALESCED_MMIO_MAX,
  KVM_COALESCED_MMIO_PAGE_OFFSET,
} from "../src/coalesced-mmio.js";
import { Errno, KvmError } from "../src/errors.js";
import { Kvm } from "../src/kvm.js";
import * as I from "../src/uapi/ioctl.js";
import { KvmFds } from "../src/uapi/kvm-fd.js";
import { StructView } from "../src/uapi/layout.js";
import * as T from "../src/uapi/structs.js";
import type { Vcpu } from "../src/vcpu.js";
import { flat32, machine, realMode, runLog } from "./run-helpers.js";

const hex = (w: CoalescedWrite) =>
  `${w.pio ? "pio" : "mmio"} 0x${w.addr.toString(16)} ${w.len} ${Array.from(w.data, (b) => b.toString(16).padStart(2, "0")).join("")}`;

function drain(page: Uint8Array): string[] {
  const out: string[] = [];
  drainCoalesced(page, (w) => out.push(hex(w)));
  return out;
}

describe("the ring (object API)", () => {
  it("queues writes inside a zone, in order, with the kernel's entry layout", () => {
    const vm = new Kvm().createVm();
    vm.registerCoalescedMmio({ addr: 0xd0000000, size: 0x100 });
    vm.registerCoalescedMmio({ addr: 0x70, size: 2, pio: true });
    expect(vm.mmioWrite(0, 0xd0000010, 4, 0x11223344)).toBe(true);
    expect(vm.ioOut(0x71, 1, 0xab)).toBe(true);
    expect(vm.mmioWrite(0, 0xd00000f8, 8, 0x55667788, 0x01020304)).toBe(true);
    // Outside, straddling the end, or the other kind: the usual exit.
    expect(vm.mmioWrite(0, 0xd0000100, 4, 1)).toBe(false);
    expect(vm.mmioWrite(0, 0xd00000fe, 4, 1)).toBe(false);
    expect(vm.ioOut(0x72, 1, 1)).toBe(false);
    expect(vm.ioOut(0x71, 2, 1)).toBe(false);
    const page = vm.coalescedMmio.page;
    const v = new DataView(page.buffer);
    expect([v.getUint32(0, true), v.getUint32(4, true)]).toEqual([0, 3]);
    // struct kvm_coalesced_mmio: u64 phys_addr, u32 len, u32 pio, u8 data[8].
    expect([
      v.getUint32(8, true),
      v.getUint32(12, true),
      v.getUint32(16, true),
      v.getUint32(20, true),
    ]).toEqual([0xd0000010, 0, 4, 0]);
    expect([...page.subarray(24, 32)]).toEqual([0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0]);
    expect(drain(page)).toEqual([
      "mmio 0xd0000010 4 44332211",
      "pio 0x71 1 ab",
      "mmio 0xd00000f8 8 8877665504030201",
    ]);
    expect([v.getUint32(0, true), v.getUint32(4, true)]).toEqual([3, 3]);
    expect(drain(page)).toEqual([]);
  });

  it("keeps one slot free: a full ring makes the write exit, draining makes room", () => {
    const vm = new Kvm().createVm();
    vm.registerCoalescedMmio({ addr: 0x80, size: 1, pio: true });
    const v = new DataView(vm.coalescedMmio.page.buffer);
    // Start part-way round, so the ring wraps.
    v.setUint32(0, 100, true);
    v.setUint32(4, 100, true);
    let n = 0;
    while (vm.ioOut(0x80, 1, n & 0xff)) n++;
    expect(n).toBe(KVM_COALESCED_MMIO_MAX - 1);
    expect(v.getUint32(4, true)).toBe(99);
    const got = drain(vm.coalescedMmio.page);
    expect(got).toHaveLength(KVM_COALESCED_MMIO_MAX - 1);
    expect(got[0]).toBe("pio 0x80 1 00");
    expect(got.at(-1)).toBe(`pio 0x80 1 ${((KVM_COALESCED_MMIO_MAX - 2) & 0xff).toString(16)}`);
    expect(vm.ioOut(0x80, 1, 7)).toBe(true);
  });

  it("indexes userspace left out of range are not written through: the write exits", () => {
    const vm = new Kvm().createVm();
    vm.registerCoalescedMmio({ addr: 0x80, size: 1, pio: true });
    const v = new DataView(vm.coalescedMmio.page.buffer);
    v.setUint32(4, KVM_COALESCED_MMIO_MAX, true);
    expect(vm.ioOut(0x80, 1, 1)).toBe(false);
    v.setUint32(4, 0xffffffff, true);
    expect(vm.ioOut(0x80, 1, 1)).toBe(false);
    // And the drain stops at a bad index instead of reading past the page.
    expect(drain(vm.coalescedMmio.page)).toEqual([]);
  });

  it("unregister drops the zones of that kind containing the range; in-kernel devices come first", () => {
    const vm = new Kvm().createVm();
    vm.createIrqchip();
    vm.registerCoalescedMmio({ addr: 0x3f8, size: 8, pio: true });
    vm.registerCoalescedMmio({ addr: 0x3f8, size: 8 });
    vm.unregisterCoalescedMmio({ addr: 0x3f9, size: 2, pio: true });
    expect(vm.coalescedMmio.list()).toEqual([{ addr: 0x3f8, size: 8, pio: false }]);
    expect(vm.ioOut(0x3f8, 1, 0x41)).toBe(false);
    // A zone over the PIC's ports: the PIC still takes them.
    vm.registerCoalescedMmio({ addr: 0x20, size: 2, pio: true });
    expect(vm.ioOut(0x21, 1, 0xff)).toBe(true);
    expect(vm.ioIn(0x21, 1)).toBe(0xff);
    expect(drain(vm.coalescedMmio.page)).toEqual([]);
    expect(() => vm.registerCoalescedMmio({ addr: -1, size: 4 })).toThrow(KvmError);
    expect(() => vm.registerCoalescedMmio({ addr: 0, size: 2 ** 32 })).toThrow(KvmError);
  });
});

describe("a guest's writes under KVM_RUN", () => {
  it("OUTs into a PIO zone do not exit; the next exit finds them queued in order; INs still exit", () => {
    const m = machine();
    // biome-ignore format: one instruction per line
    m.ram.set([
      0xb0, 0x11, 0xe6, 0x70, // mov al, 0x11; out 0x70, al
      0xb0, 0x22, 0xe6, 0x71, // mov al, 0x22; out 0x71, al
      0xb0, 0x33, 0xe6, 0x70, // mov al, 0x33; out 0x70, al
      0xe6, 0x10, //             out 0x10, al
      0xe4, 0x70, //             in al, 0x70
      0xf4, //                   hlt
    ], 0x1000);
    realMode(m, 0x1000);
    m.vm.registerCoalescedMmio({ addr: 0x70, size: 2, pio: true });
    const first = m.vcpu.run();
    expect(first.kind === "io" && first.port).toBe(0x10);
    expect(drain(m.vm.coalescedMmio.page)).toEqual(["pio 0x70 1 11", "pio 0x71 1 22", "pio 0x70 1 33"]);
    expect(runLog(m)).toEqual(["io in 0x70 1", "hlt"]);
    expect(drain(m.vm.coalescedMmio.page)).toEqual([]);
  });

  it("a store into an MMIO zone does not exit; a load from it does", () => {
    const m = machine();
    // biome-ignore format: one instruction per line
    m.ram.set([
      0xc7, 0x05, 0x08, 0x00, 0x00, 0xd0, 0x44, 0x33, 0x22, 0x11, // mov dword [0xd0000008], 0x11223344
      0x66, 0xc7, 0x05, 0x0c, 0x00, 0x00, 0xd0, 0xef, 0xbe, //       mov word [0xd000000c], 0xbeef
      0xa1, 0x08, 0x00, 0x00, 0xd0, //                                mov eax, [0xd0000008]
      0xf4, //                                                        hlt
    ], 0x1000);
    flat32(m, 0x1000);
    m.vm.registerCoalescedMmio({ addr: 0xd0000000, size: 0x1000 });
    expect(runLog(m, { "mmio 0xd0000008": 0x11223344 })).toEqual(["mmio read 0xd0000008 4", "hlt"]);
    expect(drain(m.vm.coalescedMmio.page)).toEqual(["mmio 0xd0000008 4 44332211", "mmio 0xd000000c 2 efbe"]);
  });

  it("without a zone the same OUT exits", () => {
    const m = machine();
    m.ram.set([0xb0, 0x11, 0xe6, 0x70, 0xf4], 0x1000);
    realMode(m, 0x1000);
    expect(runLog(m)).toEqual(["io out 0x70 1 11", "hlt"]);
  });
});

describe("through ioctl(): the zone struct and the ring page in every vCPU's mmap", () => {
  function setup() {
    const k = new KvmFds();
    const kvm = k.openKvm();
    const vm = k.ioctl(kvm, I.KVM_CREATE_VM, 0);
    const cpus = [k.ioctl(vm, I.KVM_CREATE_VCPU, 0), k.ioctl(vm, I.KVM_CREATE_VCPU, 1)];
    const vcpus = cpus.map(
      (fd) => (k as unknown as { fds: Map<number, { vcpu?: Vcpu }> }).fds.get(fd)!.vcpu!,
    );
    return { k, kvm, vm, cpus, vcpus };
  }
  const zone = (addr: number, size: number, pio: number) => {
    const z = new StructView(T.kvm_coalesced_mmio_zone);
    z.set("addr", addr);
    z.set("size", size);
    z.set("pio", pio);
    return z.bytes;
  };

  it("KVM_CHECK_EXTENSION names the ring's page; the mmap is three pages", () => {
    const { k, kvm } = setup();
    expect(k.ioctl(kvm, I.KVM_CHECK_EXTENSION, 15 /* COALESCED_MMIO */)).toBe(KVM_COALESCED_MMIO_PAGE_OFFSET);
    expect(k.ioctl(kvm, I.KVM_CHECK_EXTENSION, 162 /* COALESCED_PIO */)).toBe(1);
    expect(k.ioctl(kvm, I.KVM_GET_VCPU_MMAP_SIZE, 0)).toBe(3 * 4096);
  });

  it("registers, queues, mirrors the ring into each vCPU's mapping, and takes userspace's `first` back", () => {
    const { k, vm, cpus, vcpus } = setup();
    expect(k.ioctl(vm, I.KVM_REGISTER_COALESCED_MMIO, zone(0x70, 2, 2))).toBe(-Errno.EINVAL);
    expect(k.ioctl(vm, I.KVM_REGISTER_COALESCED_MMIO, zone(0x70, 2, 1))).toBe(0);
    // A backend standing in for the guest: two OUTs the kernel completes, then HLT.
    const v0 = vcpus[0]!;
    let outs = [0x61, 0x62];
    v0.backend = {
      run: (vcpu) => {
        for (const b of outs) expect(vcpu.vm.ioOut(0x70, 1, b)).toBe(true);
        return { kind: "hlt", reason: 5 };
      },
    };
    expect(k.ioctl(cpus[0]!, I.KVM_RUN, 0)).toBe(0);
    const at = KVM_COALESCED_MMIO_PAGE_OFFSET * 4096;
    // Both vCPUs' mappings show the VM's one ring.
    for (const fd of cpus) expect(drain(k.mmapRun(fd).slice(at))).toEqual(["pio 0x70 1 61", "pio 0x70 1 62"]);
    // Userspace drains through vCPU 1's mapping: `first` moves there only.
    expect(drain(k.mmapRun(cpus[1]!).subarray(at))).toHaveLength(2);
    outs = [0x63];
    expect(k.ioctl(cpus[0]!, I.KVM_RUN, 0)).toBe(0);
    expect(drain(k.mmapRun(cpus[0]!).subarray(at))).toEqual(["pio 0x70 1 63"]);
    expect(k.ioctl(vm, I.KVM_UNREGISTER_COALESCED_MMIO, zone(0x70, 1, 1))).toBe(0);
    expect(vcpus[0]!.vm.coalescedMmio.list()).toEqual([]);
  });
});
