/**
 * Misuse, differentially: test/fixtures/kvm-misuse.c makes the same wrong (and a few right)
 * calls against the host's /dev/kvm and prints the errno of each; the cases below mirror it
 * through KvmFds, and every errno must match. Needs gcc and an openable /dev/kvm.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as I from "../src/uapi/ioctl.js";
import { KvmFds } from "../src/uapi/kvm-fd.js";
import { type StructLayout, StructView } from "../src/uapi/layout.js";
import * as T from "../src/uapi/structs.js";

const here = dirname(fileURLToPath(import.meta.url));

function realErrnos(): string[] | undefined {
  try {
    execFileSync("gcc", ["--version"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  if (!existsSync("/usr/include/linux/kvm.h") || !existsSync("/dev/kvm")) return undefined;
  const exe = join(mkdtempSync(join(tmpdir(), "kvm-misuse-")), "misuse");
  execFileSync("gcc", ["-O0", "-o", exe, join(here, "fixtures/kvm-misuse.c")], { stdio: "pipe" });
  const r = spawnSync(exe, { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim().split("\n") : undefined;
}

function ours(): string[] {
  const out: string[] = [];
  const k = new KvmFds();
  const kvm = k.openKvm();
  const mem = new ArrayBuffer(1 << 24);
  const memAddr = k.map(mem);
  const R = (name: string, r: number) => out.push(`${name} ${r < 0 ? -r : 0}`);
  const newvm = (irqchip: boolean) => {
    const vm = k.ioctl(kvm, I.KVM_CREATE_VM, 0);
    if (irqchip) k.ioctl(vm, I.KVM_CREATE_IRQCHIP, 0);
    return vm;
  };
  const s = (layout: StructLayout, fields: Record<string, number | bigint> = {}) => {
    const v = new StructView(layout);
    for (const [f, x] of Object.entries(fields)) v.set(f, x);
    return v.bytes;
  };
  const region = (vm: number, slot: number, flags: number, gpa: number, size: number, off: number) =>
    k.ioctl(
      vm,
      I.KVM_SET_USER_MEMORY_REGION,
      s(T.kvm_userspace_memory_region, {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: memAddr + BigInt(off),
      }),
    );

  const vm = newvm(false);
  R("pit2-before-irqchip", k.ioctl(vm, I.KVM_CREATE_PIT2, s(T.kvm_pit_config)));
  R("irq-line-no-irqchip", k.ioctl(vm, I.KVM_IRQ_LINE, s(T.kvm_irq_level, { irq: 1, level: 1 })));
  R("get-irqchip-no-irqchip", k.ioctl(vm, I.KVM_GET_IRQCHIP, s(T.kvm_irqchip)));
  R("get-pit2-no-pit", k.ioctl(vm, I.KVM_GET_PIT2, s(T.kvm_pit_state2)));
  R("irqchip", k.ioctl(vm, I.KVM_CREATE_IRQCHIP, 0));
  R("irqchip-twice", k.ioctl(vm, I.KVM_CREATE_IRQCHIP, 0));
  R("pit2", k.ioctl(vm, I.KVM_CREATE_PIT2, s(T.kvm_pit_config)));
  R("pit2-twice", k.ioctl(vm, I.KVM_CREATE_PIT2, s(T.kvm_pit_config)));
  R("get-irqchip-3", k.ioctl(vm, I.KVM_GET_IRQCHIP, s(T.kvm_irqchip, { chip_id: 3 })));

  R("mem-size-unaligned", region(vm, 0, 0, 0, 4097, 0));
  R("mem-gpa-unaligned", region(vm, 0, 0, 0x800, 4096, 0));
  R("mem-uaddr-unaligned", region(vm, 0, 0, 0, 4096, 16));
  R("mem-flags-unknown", region(vm, 0, 8, 0, 4096, 0));
  R("mem-slot-too-big", region(vm, 32764, 0, 0, 4096, 0));
  R("mem-as-id-1", region(vm, 1 << 16, 0, 0, 4096, 0));
  R("mem-delete-missing", region(vm, 5, 0, 0, 0, 0));
  R("mem-create", region(vm, 0, 1, 0, 0x100000, 0));
  R("mem-overlap", region(vm, 1, 0, 0xff000, 0x2000, 0x200000));
  R("mem-adjacent", region(vm, 1, 0, 0x100000, 0x2000, 0x200000));
  R("mem-resize", region(vm, 0, 1, 0, 0x80000, 0));
  R("mem-rebind", region(vm, 0, 1, 0, 0x100000, 0x400000));
  R("mem-readonly-toggle", region(vm, 0, 3, 0, 0x100000, 0));
  R("mem-move-onto-other", region(vm, 0, 1, 0x100000, 0x100000, 0));
  R("mem-move", region(vm, 0, 1, 0x400000, 0x100000, 0));
  R("mem-flags-only", region(vm, 0, 0, 0x400000, 0x100000, 0));
  R("mem-same-again", region(vm, 0, 0, 0x400000, 0x100000, 0));
  const bitmap = memAddr + 0x800000n;
  R(
    "dirty-log-not-logging",
    k.ioctl(vm, I.KVM_GET_DIRTY_LOG, s(T.kvm_dirty_log, { slot: 0, dirty_bitmap: bitmap })),
  );
  R(
    "dirty-log-no-slot",
    k.ioctl(vm, I.KVM_GET_DIRTY_LOG, s(T.kvm_dirty_log, { slot: 9, dirty_bitmap: bitmap })),
  );
  R("mem-delete", region(vm, 1, 0, 0, 0, 0));

  const routing = (entries: Record<string, number>[]) => {
    const b = new Uint8Array(8 + 2 * 48);
    new StructView(T.kvm_irq_routing, b).set("nr", entries.length);
    entries.forEach((e, i) => {
      const v = new StructView(T.kvm_irq_routing_entry, b.subarray(8 + i * 48));
      for (const [f, x] of Object.entries(e)) v.set(f, x);
    });
    return k.ioctl(vm, I.KVM_SET_GSI_ROUTING, b);
  };
  const chip = (irqchip: number, pin: number, extra: Record<string, number> = {}) => ({
    gsi: 1,
    type: 1,
    "u.irqchip.irqchip": irqchip,
    "u.irqchip.pin": pin,
    ...extra,
  });
  R("routing-pin-24", routing([chip(2, 24)]));
  R("routing-pic-pin-8", routing([chip(0, 8)]));
  R("routing-dup-chip", routing([chip(2, 1), chip(2, 2)]));
  R("routing-bad-type", routing([chip(2, 1, { type: 99 })]));
  R("routing-flags", routing([chip(2, 1, { flags: 1 })]));
  R("enable-cap-unknown", k.ioctl(vm, I.KVM_ENABLE_CAP, s(T.kvm_enable_cap, { cap: 9999 })));

  const efd = k.eventfd();
  const ioev = (f: Record<string, number>) =>
    k.ioctl(vm, I.KVM_IOEVENTFD, s(T.kvm_ioeventfd, { fd: efd, ...f }));
  R("ioeventfd-len-3", ioev({ addr: 0xd0000000, len: 3 }));
  R("ioeventfd-deassign-missing", ioev({ addr: 0xd0000000, len: 4, flags: 4 }));
  R("ioeventfd", ioev({ addr: 0xd0000000, len: 4 }));
  R("ioeventfd-dup", ioev({ addr: 0xd0000000, len: 4 }));
  R("ioeventfd-len0-datamatch", ioev({ addr: 0xd0001000, len: 0, flags: 1 }));
  const irqfd = (f: Record<string, number>) => k.ioctl(vm, I.KVM_IRQFD, s(T.kvm_irqfd, { fd: efd, ...f }));
  R("irqfd", irqfd({ gsi: 5 }));
  R("irqfd-busy", irqfd({ gsi: 5 }));
  R("irqfd-deassign", irqfd({ gsi: 5, flags: 1 }));
  R("irqfd-deassign-missing", irqfd({ gsi: 6, flags: 1 }));
  const msi = (flags: number) =>
    k.ioctl(vm, I.KVM_SIGNAL_MSI, s(T.kvm_msi, { address_lo: 0xfee00000, data: 0x30, flags }));
  R("msi-devid-nobody", msi(1));
  R("msi-flags-2", msi(2));
  R("irq-line-status-masked", k.ioctl(vm, I.KVM_IRQ_LINE_STATUS, s(T.kvm_irq_level, { irq: 20, level: 1 })));

  const cpu = k.ioctl(vm, I.KVM_CREATE_VCPU, 0);
  R("vcpu-dup", k.ioctl(vm, I.KVM_CREATE_VCPU, 0));
  {
    const v2 = newvm(false);
    k.ioctl(v2, I.KVM_CREATE_VCPU, 0);
    R("irqchip-after-vcpu", k.ioctl(v2, I.KVM_CREATE_IRQCHIP, 0));
    const addr = new Uint8Array(8);
    new DataView(addr.buffer).setBigUint64(0, 0xfffbc000n, true);
    R("identity-map-after-vcpu", k.ioctl(v2, I.KVM_SET_IDENTITY_MAP_ADDR, addr));
  }
  {
    const c = new Uint8Array(8 + 40);
    new StructView(T.kvm_cpuid2, c).set("nent", 257);
    R("cpuid-257", k.ioctl(cpu, I.KVM_SET_CPUID2, c));
  }
  R("interrupt-with-irqchip", k.ioctl(cpu, I.KVM_INTERRUPT, s(T.kvm_interrupt, { irq: 0x20 })));
  R("mp-state-9", k.ioctl(cpu, I.KVM_SET_MP_STATE, s(T.kvm_mp_state, { mp_state: 9 })));
  {
    const v3 = newvm(false);
    const c3 = k.ioctl(v3, I.KVM_CREATE_VCPU, 0);
    R("mp-state-halted-no-irqchip", k.ioctl(c3, I.KVM_SET_MP_STATE, s(T.kvm_mp_state, { mp_state: 3 })));
    R("get-lapic-no-irqchip", k.ioctl(c3, I.KVM_GET_LAPIC, new Uint8Array(1024)));
    R("interrupt-no-irqchip", k.ioctl(c3, I.KVM_INTERRUPT, s(T.kvm_interrupt, { irq: 0x20 })));
    R("interrupt-256", k.ioctl(c3, I.KVM_INTERRUPT, s(T.kvm_interrupt, { irq: 256 })));
  }
  R("mp-state-halted", k.ioctl(cpu, I.KVM_SET_MP_STATE, s(T.kvm_mp_state, { mp_state: 3 })));
  {
    const e = new StructView(T.kvm_vcpu_events);
    k.ioctl(cpu, I.KVM_GET_VCPU_EVENTS, e.bytes);
    e.set("flags", 0);
    e.set("exception.injected", 1);
    e.set("exception.nr", 2);
    R("events-nmi-vector", k.ioctl(cpu, I.KVM_SET_VCPU_EVENTS, e.bytes));
    e.set("exception.nr", 32);
    R("events-vector-32", k.ioctl(cpu, I.KVM_SET_VCPU_EVENTS, e.bytes));
    e.set("exception.injected", 0);
    e.set("flags", 0x80);
    R("events-flags", k.ioctl(cpu, I.KVM_SET_VCPU_EVENTS, e.bytes));
  }
  {
    const d = new StructView(T.kvm_debugregs);
    k.ioctl(cpu, I.KVM_GET_DEBUGREGS, d.bytes);
    d.set("flags", 1);
    R("debugregs-flags", k.ioctl(cpu, I.KVM_SET_DEBUGREGS, d.bytes));
    d.set("flags", 0);
    d.set("dr7", 1n << 32n);
    R("debugregs-dr7", k.ioctl(cpu, I.KVM_SET_DEBUGREGS, d.bytes));
  }
  {
    const sr = new StructView(T.kvm_sregs);
    k.ioctl(cpu, I.KVM_GET_SREGS, sr.bytes);
    sr.set("efer", sr.big("efer") | (1n << 10n));
    R("sregs-lma-no-paging", k.ioctl(cpu, I.KVM_SET_SREGS, sr.bytes));
    sr.set("efer", sr.big("efer") & ~(1n << 10n));
    sr.set("cr0", 0x80000000);
    R("sregs-pg-no-pe", k.ioctl(cpu, I.KVM_SET_SREGS, sr.bytes));
    sr.set("cr0", 0x20000011);
    R("sregs-nw-no-cd", k.ioctl(cpu, I.KVM_SET_SREGS, sr.bytes));
  }
  R(
    "xcr0-no-x87",
    k.ioctl(cpu, I.KVM_SET_XCRS, s(T.kvm_xcrs, { nr_xcrs: 1, "xcrs[0].xcr": 0, "xcrs[0].value": 2 })),
  );
  R("kvmclock-ctrl-inactive", k.ioctl(cpu, I.KVM_KVMCLOCK_CTRL, 0));
  R("create-vm-type-1", k.ioctl(kvm, I.KVM_CREATE_VM, 1));
  return out;
}

const real = realErrnos();

describe.skipIf(!real)("differential: misuse errnos vs the host's KVM", () => {
  it("every case gives the errno real KVM gives", () => {
    const mine = ours();
    const theirs = new Map(real!.map((l) => [l.slice(0, l.lastIndexOf(" ")), l]));
    expect(mine.length).toBe(real!.length);
    for (const line of mine) expect(line).toBe(theirs.get(line.slice(0, line.lastIndexOf(" "))));
  });
});
