import { describe, expect, it } from "vitest";
import { Errno } from "../src/errors.js";
import { Kvm } from "../src/kvm.js";
import * as I from "../src/uapi/ioctl.js";
import { KvmFds } from "../src/uapi/kvm-fd.js";
import { StructView } from "../src/uapi/layout.js";
import * as T from "../src/uapi/structs.js";

/** The opening of kvmtool's kvm__init / kvm_cpu__init, written the C way. */
function bootLikeKvmtool() {
  const k = new KvmFds();
  const kvm = k.openKvm();
  expect(k.ioctl(kvm, I.KVM_GET_API_VERSION, 0)).toBe(12);
  const vm = k.ioctl(kvm, I.KVM_CREATE_VM, 0);
  expect(vm).toBeGreaterThan(0);
  expect(k.ioctl(kvm, I.KVM_CHECK_EXTENSION, 25 /* IRQ_ROUTING */)).toBe(4096);
  const ram = new ArrayBuffer(1 << 20);
  const mem = new StructView(T.kvm_userspace_memory_region);
  mem.set("slot", 0);
  mem.set("flags", 1);
  mem.set("memory_size", 1 << 20);
  mem.set("userspace_addr", k.map(ram));
  expect(k.ioctl(vm, I.KVM_SET_USER_MEMORY_REGION, mem.bytes)).toBe(0);
  expect(k.ioctl(vm, I.KVM_CREATE_IRQCHIP, 0)).toBe(0);
  const pit = new StructView(T.kvm_pit_config);
  pit.set("flags", 1); // KVM_PIT_SPEAKER_DUMMY
  expect(k.ioctl(vm, I.KVM_CREATE_PIT2, pit.bytes)).toBe(0);
  const cpu = k.ioctl(vm, I.KVM_CREATE_VCPU, 0);
  expect(k.ioctl(kvm, I.KVM_GET_VCPU_MMAP_SIZE, 0)).toBe(12288);
  return { k, kvm, vm, cpu, ram };
}

describe("ioctl() over the object API", () => {
  it("kvmtool-style setup: memory, irqchip, PIT, vCPU; CPUID from GET_SUPPORTED_CPUID into SET_CPUID2", () => {
    const { k, kvm, cpu } = bootLikeKvmtool();
    const cpuid = new Uint8Array(8 + 100 * 40);
    new StructView(T.kvm_cpuid2, cpuid).set("nent", 100);
    expect(k.ioctl(kvm, I.KVM_GET_SUPPORTED_CPUID, cpuid)).toBe(0);
    // The same table the object API gives: the cpu-x86 model's leaves plus the KVM ones.
    expect(new StructView(T.kvm_cpuid2, cpuid).num("nent")).toBe(new Kvm().getSupportedCpuid().length);
    expect(k.ioctl(cpu, I.KVM_SET_CPUID2, cpuid)).toBe(0);
    const small = new Uint8Array(8 + 40);
    new StructView(T.kvm_cpuid2, small).set("nent", 1);
    expect(k.ioctl(kvm, I.KVM_GET_SUPPORTED_CPUID, small)).toBe(-Errno.E2BIG);
  });

  it("sregs/regs round trip through the byte structs (kvmtool kvm_cpu__setup_sregs: flat real mode at 0x1000)", () => {
    const { k, cpu } = bootLikeKvmtool();
    const sregs = new StructView(T.kvm_sregs);
    expect(k.ioctl(cpu, I.KVM_GET_SREGS, sregs.bytes)).toBe(0);
    expect(sregs.big("cs.base")).toBe(0xffff0000n);
    for (const s of ["cs", "ds", "es", "fs", "gs", "ss"]) {
      sregs.set(`${s}.selector`, 0x100);
      sregs.set(`${s}.base`, 0x1000);
    }
    expect(k.ioctl(cpu, I.KVM_SET_SREGS, sregs.bytes)).toBe(0);
    const regs = new StructView(T.kvm_regs);
    regs.set("rflags", 2);
    regs.set("rip", 0x100);
    regs.set("rsp", 0x8000);
    expect(k.ioctl(cpu, I.KVM_SET_REGS, regs.bytes)).toBe(0);
    const back = new StructView(T.kvm_regs);
    k.ioctl(cpu, I.KVM_GET_REGS, back.bytes);
    expect(back.bytes).toEqual(regs.bytes);
    const s2 = new StructView(T.kvm_sregs);
    k.ioctl(cpu, I.KVM_GET_SREGS, s2.bytes);
    expect(s2.bytes).toEqual(sregs.bytes);
  });

  it("kvmtool kvm_cpu__setup_fpu / LAPIC LINT0 ExtINT, LINT1 NMI through GET/SET_LAPIC", () => {
    const { k, cpu } = bootLikeKvmtool();
    const lapic = new Uint8Array(1024);
    expect(k.ioctl(cpu, I.KVM_GET_LAPIC, lapic)).toBe(0);
    const dv = new DataView(lapic.buffer);
    dv.setUint32(0x350, (dv.getUint32(0x350, true) & ~0x1_07ff) | 0x700, true);
    dv.setUint32(0x360, (dv.getUint32(0x360, true) & ~0x1_07ff) | 0x400, true);
    expect(k.ioctl(cpu, I.KVM_SET_LAPIC, lapic)).toBe(0);
    const back = new Uint8Array(1024);
    k.ioctl(cpu, I.KVM_GET_LAPIC, back);
    expect(new DataView(back.buffer).getUint32(0x350, true)).toBe(0x700);
    const fpu = new StructView(T.kvm_fpu);
    fpu.set("fcw", 0x37f);
    fpu.set("mxcsr", 0x1f80);
    expect(k.ioctl(cpu, I.KVM_SET_FPU, fpu.bytes)).toBe(0);
  });

  it("KVM_SET_MSRS returns the number written; GET_MSRS reads back", () => {
    const { k, cpu } = bootLikeKvmtool();
    const b = new Uint8Array(8 + 2 * 16);
    const hdr = new StructView(T.kvm_msrs, b);
    hdr.set("nmsrs", 2);
    const e0 = new StructView(T.kvm_msr_entry, b.subarray(8));
    e0.set("index", 0x4b564d00);
    e0.set("data", 0x5000);
    const e1 = new StructView(T.kvm_msr_entry, b.subarray(24));
    e1.set("index", 0xdead);
    expect(k.ioctl(cpu, I.KVM_SET_MSRS, b)).toBe(1);
    hdr.set("nmsrs", 1);
    e0.set("data", 0);
    expect(k.ioctl(cpu, I.KVM_GET_MSRS, b)).toBe(1);
    expect(e0.big("data")).toBe(0x5000n);
  });

  it("errors come back as -errno: IRQCHIP twice EEXIST, short argument EFAULT, bad fd EBADF, unknown vm ioctl ENOTTY", () => {
    const { k, vm } = bootLikeKvmtool();
    expect(k.ioctl(vm, I.KVM_CREATE_IRQCHIP, 0)).toBe(-Errno.EEXIST);
    expect(k.ioctl(vm, I.KVM_IRQ_LINE, new Uint8Array(4))).toBe(-Errno.EFAULT);
    expect(k.ioctl(99, I.KVM_GET_API_VERSION, 0)).toBe(-Errno.EBADF);
    expect(k.ioctl(vm, I._IO(I.KVMIO, 0xee), 0)).toBe(-Errno.ENOTTY);
    expect(k.ioctl(vm, I.KVM_CREATE_VCPU, 0)).toBe(-Errno.EEXIST);
  });

  it("KVM_IRQ_LINE_STATUS writes the status; irqfd via an eventfd reaches the IOAPIC", () => {
    const { k, vm, cpu } = bootLikeKvmtool();
    const lvl = new StructView(T.kvm_irq_level);
    lvl.set("irq", 50);
    lvl.set("level", 1);
    expect(k.ioctl(vm, I.KVM_IRQ_LINE_STATUS, lvl.bytes)).toBe(0);
    expect(lvl.num("status")).toBe(-1); // no route for GSI 50
    const efd = k.eventfd();
    const irqfd = new StructView(T.kvm_irqfd);
    irqfd.set("fd", efd);
    irqfd.set("gsi", 20);
    expect(k.ioctl(vm, I.KVM_IRQFD, irqfd.bytes)).toBe(0);
    expect(k.ioctl(vm, I.KVM_IRQFD, irqfd.bytes)).toBe(-Errno.EBUSY);
    // program IOAPIC pin 20 -> vector 0x44 to APIC 0; enable the LAPIC
    const chip = new StructView(T.kvm_irqchip);
    chip.set("chip_id", 2);
    expect(k.ioctl(vm, I.KVM_GET_IRQCHIP, chip.bytes)).toBe(0);
    chip.set("chip.ioapic.redirtbl", 0x44, 20);
    expect(k.ioctl(vm, I.KVM_SET_IRQCHIP, chip.bytes)).toBe(0);
    const lapic = new Uint8Array(1024);
    k.ioctl(cpu, I.KVM_GET_LAPIC, lapic);
    new DataView(lapic.buffer).setUint32(0xf0, 0x1ff, true);
    k.ioctl(cpu, I.KVM_SET_LAPIC, lapic);
    k.eventfdWrite(efd);
    const v = (k as unknown as { fds: Map<number, { vcpu?: import("../src/vcpu.js").Vcpu }> }).fds.get(cpu)!
      .vcpu!;
    expect(v.acknowledgeInterrupt()).toBe(0x44);
    irqfd.set("flags", 1);
    expect(k.ioctl(vm, I.KVM_IRQFD, irqfd.bytes)).toBe(0);
    expect(k.ioctl(vm, I.KVM_IRQFD, irqfd.bytes)).toBe(0); // as kvm_irqfd_deassign(): no error
  });

  it("ioeventfd counts guest writes on its eventfd; deassign by the same struct", () => {
    const { k, vm } = bootLikeKvmtool();
    const efd = k.eventfd();
    const ev = new StructView(T.kvm_ioeventfd);
    ev.set("addr", 0xd0000050);
    ev.set("len", 4);
    ev.set("fd", efd);
    expect(k.ioctl(vm, I.KVM_IOEVENTFD, ev.bytes)).toBe(0);
    const obj = (k as unknown as { fds: Map<number, { vm?: import("../src/vm.js").Vm }> }).fds.get(vm)!.vm!;
    obj.mmioWrite(0, 0xd0000050, 4, 7);
    obj.mmioWrite(0, 0xd0000050, 4, 8);
    expect(k.eventfdRead(efd)).toBe(2n);
    ev.set("flags", 4);
    expect(k.ioctl(vm, I.KVM_IOEVENTFD, ev.bytes)).toBe(0);
    expect(k.ioctl(vm, I.KVM_IOEVENTFD, ev.bytes)).toBe(-Errno.ENOENT);
  });

  it("KVM_GET_DIRTY_LOG copies the bitmap into the mapped userspace buffer", () => {
    const { k, vm } = bootLikeKvmtool();
    const obj = (k as unknown as { fds: Map<number, { vm?: import("../src/vm.js").Vm }> }).fds.get(vm)!.vm!;
    obj.memory.write(0x3000, Uint8Array.of(1));
    const bitmap = new ArrayBuffer(4096);
    const log = new StructView(T.kvm_dirty_log);
    log.set("slot", 0);
    log.set("dirty_bitmap", k.map(bitmap));
    expect(k.ioctl(vm, I.KVM_GET_DIRTY_LOG, log.bytes)).toBe(0);
    expect(new Uint8Array(bitmap)[0]).toBe(1 << 3);
  });

  it("PIT2 and clock state through the byte structs", () => {
    const { k, vm } = bootLikeKvmtool();
    const p = new StructView(T.kvm_pit_state2);
    expect(k.ioctl(vm, I.KVM_GET_PIT2, p.bytes)).toBe(0);
    p.set("channels[0].mode", 2);
    p.set("channels[0].count", 1193);
    expect(k.ioctl(vm, I.KVM_SET_PIT2, p.bytes)).toBe(0);
    const q = new StructView(T.kvm_pit_state2);
    k.ioctl(vm, I.KVM_GET_PIT2, q.bytes);
    expect(q.num("channels[0].count")).toBe(1193);
    const c = new StructView(T.kvm_clock_data);
    c.set("clock", 5_000_000_000n);
    expect(k.ioctl(vm, I.KVM_SET_CLOCK, c.bytes)).toBe(0);
    k.ioctl(vm, I.KVM_GET_CLOCK, c.bytes);
    expect(c.big("clock")).toBeGreaterThanOrEqual(5_000_000_000n);
  });

  it("KVM_RUN with immediate_exit: -EINTR and exit_reason KVM_EXIT_INTR in the mmap'ed kvm_run", () => {
    const { k, cpu } = bootLikeKvmtool();
    const run = k.mmapRun(cpu);
    const rv = new StructView(T.kvm_run, run);
    rv.set("immediate_exit", 1);
    expect(k.ioctl(cpu, I.KVM_RUN, 0)).toBe(-Errno.EINTR);
    expect(rv.num("exit_reason")).toBe(10);
  });

  it("KVM_RUN fills the IO exit: data at data_offset in the PIO page", () => {
    const { k, cpu } = bootLikeKvmtool();
    const v = (k as unknown as { fds: Map<number, { vcpu?: import("../src/vcpu.js").Vcpu }> }).fds.get(cpu)!
      .vcpu!;
    v.backend = {
      run: () => ({
        kind: "io",
        reason: 2,
        direction: 1,
        size: 1,
        port: 0x3f8,
        count: 2,
        data: Uint8Array.of(0x48, 0x69),
      }),
    };
    expect(k.ioctl(cpu, I.KVM_RUN, 0)).toBe(0);
    const run = k.mmapRun(cpu);
    const rv = new StructView(T.kvm_run, run);
    expect([rv.num("exit_reason"), rv.num("io.port"), rv.num("io.count"), rv.num("io.direction")]).toEqual([
      2, 0x3f8, 2, 1,
    ]);
    const off = Number(rv.big("io.data_offset"));
    expect([...run.subarray(off, off + 2)]).toEqual([0x48, 0x69]);
  });
});
