/**
 * CR8 and the status fields of kvm_run (x86.c kvm_arch_vcpu_ioctl_run / post_kvm_run_save):
 * without an in-kernel LAPIC, kvm_run.cr8 is loaded as the guest's CR8 on every KVM_RUN and the
 * guest's CR8 is stored back on every exit, a lower CR8 exits with KVM_EXIT_SET_TPR (vmx.c
 * handle_cr); with one, CR8 is the LAPIC's TPR[7:4] and kvm_run.cr8 only reports it.
 * The same sequences were run on this host's /dev/kvm (kvm_pvm) with a throwaway C runner: the
 * same kvm_run.cr8 / kvm_sregs.cr8 values, EINVAL with kvm_run.cr8 rewritten, if_flag 0 and
 * ready_for_interrupt_injection 0 without and 1 with the irqchip, except KVM_EXIT_SET_TPR:
 * kvm_pvm runs ring-0 code in KVM's instruction emulator, which has no SET_TPR exit (only the
 * VMX and SVM CR8-write intercepts have it).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { Errno, KvmError } from "../src/errors.js";
import { KVM_EXIT_SET_TPR } from "../src/exits.js";
import { attachVmxBackend } from "../src/run/index.js";
import * as I from "../src/uapi/ioctl.js";
import { KvmFds } from "../src/uapi/kvm-fd.js";
import { StructView } from "../src/uapi/layout.js";
import * as T from "../src/uapi/structs.js";
import type { Vcpu } from "../src/vcpu.js";
import { assemble, hasTool, longMode, machine, runLog } from "./run-helpers.js";

const HAS_NASM = hasTool("nasm");
let bin: Uint8Array;

beforeAll(() => {
  if (HAS_NASM) bin = assemble("cr8-tpr");
});

/** The next exit that is not KVM_EXIT_INTR, as a runLog line. */
const next = (m: ReturnType<typeof machine>) => runLog(m, {}, 100, ["io", "set-tpr", "shutdown"])[0];

describe.skipIf(!HAS_NASM)("CR8 through kvm_run", () => {
  it("no in-kernel LAPIC: kvm_run.cr8 in on entry, CR8 out on every exit, SET_TPR when it drops", () => {
    const m = machine();
    m.ram.set(bin, 0x1000);
    longMode(m, 0x1000);
    const rf = m.vcpu.runFields;
    rf.cr8 = 5;
    expect(next(m)).toBe("io out 0x10 1 05"); // MOV RAX, CR8 reads what userspace wrote
    expect(rf.cr8).toBe(5);
    expect(next(m)).toBe("io out 0x11 1 09");
    expect(rf.cr8).toBe(9);
    expect(m.vcpu.getSregs().cr8).toBe(9n);
    expect(m.vcpu.run()).toEqual({ kind: "set-tpr", reason: KVM_EXIT_SET_TPR });
    expect(rf.cr8).toBe(3);
    // A userspace TPR (QEMU keeps its APIC's TPR here) is what the guest reads back.
    rf.cr8 = 7;
    expect(next(m)).toBe("io out 0x12 1 07");
    // MOV CR8 with bit 4: #GP, no IDT, triple fault; CR8 is unchanged.
    expect(next(m)).toBe("shutdown");
    expect(rf.cr8).toBe(7);
    // RFLAGS.IF = 0 throughout: no interrupt can be injected (kvm_vcpu_ready_for_interrupt_injection).
    expect(rf.ifFlag).toBe(false);
    expect(rf.readyForInterruptInjection).toBe(false);
  });

  it("no in-kernel LAPIC: KVM_SET_SREGS' cr8 is overridden by kvm_run.cr8 at the next KVM_RUN", () => {
    const m = machine();
    m.ram.set(bin, 0x1000);
    longMode(m, 0x1000);
    m.vcpu.setSregs({ ...m.vcpu.getSregs(), cr8: 6n });
    expect(m.vcpu.getSregs().cr8).toBe(6n);
    m.vcpu.runFields.cr8 = 2;
    expect(next(m)).toBe("io out 0x10 1 02");
    // __set_sregs_common ignores a CR8 with reserved bits.
    m.vcpu.setSregs({ ...m.vcpu.getSregs(), cr8: 0x12n });
    expect(m.vcpu.getSregs().cr8).toBe(2n);
  });

  it("no in-kernel LAPIC: reserved bits in kvm_run.cr8 fail KVM_RUN with EINVAL, CR8 unchanged", () => {
    const m = machine();
    m.ram.set(bin, 0x1000);
    longMode(m, 0x1000);
    m.vcpu.runFields.cr8 = 4;
    expect(next(m)).toBe("io out 0x10 1 04");
    m.vcpu.runFields.cr8 = 16;
    let err: unknown;
    try {
      m.vcpu.run();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvmError);
    expect((err as KvmError).code).toBe("EINVAL");
    expect(m.vcpu.runFields.cr8).toBe(4); // post_kvm_run_save on the error path too
    expect(m.vcpu.getSregs().cr8).toBe(4n);
    // immediate_exit: KVM_EXIT_INTR, after CR8 was loaded.
    m.vcpu.runFields.cr8 = 8;
    m.vcpu.runFields.immediateExit = true;
    expect(m.vcpu.run().kind).toBe("intr");
    expect(m.vcpu.getSregs().cr8).toBe(8n);
  });

  it("in-kernel LAPIC: CR8 is TPR[7:4], kvm_run.cr8 is output only, no SET_TPR, ready_for_interrupt_injection is 1", () => {
    const m = machine({ irqchip: true });
    m.ram.set(bin, 0x1000);
    longMode(m, 0x1000);
    const lapic = m.vcpu.getLapic();
    lapic[0x80] = 0x5c; // TPR: class 5, sub-class 0xc (CR8 only carries bits 7:4)
    m.vcpu.setLapic(lapic);
    const rf = m.vcpu.runFields;
    rf.cr8 = 0xf; // ignored with an in-kernel LAPIC
    expect(next(m)).toBe("io out 0x10 1 05");
    expect(rf.cr8).toBe(5);
    expect(next(m)).toBe("io out 0x11 1 09");
    expect(rf.cr8).toBe(9);
    expect(m.vcpu.getLapic()[0x80]).toBe(0x90);
    expect(next(m)).toBe("io out 0x12 1 03"); // lowering stays in the kernel
    expect(rf.cr8).toBe(3);
    expect(m.vcpu.getSregs().cr8).toBe(3n);
    // pic_in_kernel(): always 1, even with RFLAGS.IF = 0.
    expect(rf.ifFlag).toBe(false);
    expect(rf.readyForInterruptInjection).toBe(true);
  });

  it("KVM_RUN ioctl: the mmap'ed kvm_run.cr8 is read on entry and written on exit (EINVAL path too)", () => {
    const k = new KvmFds();
    const kvm = k.openKvm();
    const vmFd = k.ioctl(kvm, I.KVM_CREATE_VM, 0);
    const ram = new ArrayBuffer(4 << 20);
    const mem = new StructView(T.kvm_userspace_memory_region);
    mem.set("memory_size", ram.byteLength);
    mem.set("userspace_addr", k.map(ram));
    expect(k.ioctl(vmFd, I.KVM_SET_USER_MEMORY_REGION, mem.bytes)).toBe(0);
    const cpu = k.ioctl(vmFd, I.KVM_CREATE_VCPU, 0);
    const vcpu = (k as unknown as { fds: Map<number, { vcpu?: Vcpu }> }).fds.get(cpu)!.vcpu!;
    attachVmxBackend(vcpu);
    const m = { ...machine(), vcpu, ram: new Uint8Array(ram) };
    m.ram.set(bin, 0x1000);
    longMode(m, 0x1000);
    const rv = new StructView(T.kvm_run, k.mmapRun(cpu));
    rv.set("cr8", 2);
    expect(k.ioctl(cpu, I.KVM_RUN, 0)).toBe(0);
    expect([
      rv.num("exit_reason"),
      rv.num("io.port"),
      k.mmapRun(cpu)[Number(rv.big("io.data_offset"))],
    ]).toEqual([2, 0x10, 2]);
    expect(rv.big("cr8")).toBe(2n);
    expect(k.ioctl(cpu, I.KVM_RUN, 0)).toBe(0);
    expect([rv.num("exit_reason"), rv.num("io.port")]).toEqual([2, 0x11]);
    expect(rv.big("cr8")).toBe(9n);
    rv.set("cr8", 1n << 60n);
    expect(k.ioctl(cpu, I.KVM_RUN, 0)).toBe(-Errno.EINVAL);
    expect(rv.big("cr8")).toBe(9n);
    expect(k.ioctl(cpu, I.KVM_RUN, 0)).toBe(0);
    expect(rv.num("exit_reason")).toBe(KVM_EXIT_SET_TPR);
    expect([rv.big("cr8"), rv.num("if_flag"), rv.num("ready_for_interrupt_injection")]).toEqual([3n, 0, 0]);
  });
});
