import { beforeAll, describe, expect, it } from "vitest";
import { KVM_MP_STATE_RUNNABLE, Kvm } from "../src/index.js";
import { attachVmxBackend } from "../src/run/index.js";
import { assemble, flat32, hasTool, describe as line, machine, realMode, runLog } from "./run-helpers.js";

const NASM = hasTool("nasm");
if (!NASM) console.warn("run-system: nasm is not installed (Debian: apt-get install nasm); skipped");

describe.skipIf(!NASM)("KVM_RUN through VMX: CPUID, MSRs, INIT/SIPI", () => {
  const bins: Record<string, Uint8Array> = {};
  beforeAll(() => {
    for (const n of ["cpuid-msr", "smp-init-sipi", "events-userspace"]) bins[n] = assemble(n);
  });

  it("CPUID from the CPUID2 table (KVM leaves), kvmclock MSR in kernel, #GP for an unknown MSR", () => {
    const m = machine({ irqchip: true });
    m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
    m.ram.set(bins["cpuid-msr"]!, 0x1000);
    realMode(m, 0x1000);
    const log = runLog(m, {}, 50, ["io out 0x12 1 0d"]);
    expect(log).toEqual(["io out 0x10 4 4b564d4b", "io out 0x11 4 01300000", "io out 0x12 1 0d"]);
    expect(m.vcpu.readMsr(0x4b564d01)).toBe(0x3001n);
  });

  it("SDM 10.4.4.1: INIT then SIPI from the BSP's LAPIC starts the AP in real mode at vector << 12", () => {
    const kvm = new Kvm();
    const vm = kvm.createVm({ clock: "deterministic" });
    const buf = new ArrayBuffer(4 << 20);
    vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: buf.byteLength, memory: buf });
    vm.createIrqchip();
    const bsp = vm.createVcpu(0);
    const ap = vm.createVcpu(1);
    const bspB = attachVmxBackend(bsp);
    attachVmxBackend(ap);
    new Uint8Array(buf).set(bins["smp-init-sipi"]!, 0x1000);
    flat32({ kvm, vm, vcpu: bsp, ram: new Uint8Array(buf), backend: bspB }, 0x1000);
    // The AP waits for SIPI: KVM_RUN gives nothing but KVM_EXIT_INTR.
    expect(ap.run().kind).toBe("intr");
    expect(line(bsp.run())).toBe("io out 0x10 1 01");
    expect(ap.run().kind).toBe("intr"); // takes the INIT: wait-for-SIPI
    expect(ap.getMpState()).toBe(2); // KVM_MP_STATE_INIT_RECEIVED
    expect(line(bsp.run())).toBe("io out 0x10 1 b5");
    expect(ap.getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
    expect(line(ap.run())).toBe("io out 0x10 1 a9");
    const s = ap.getSregs();
    expect(s.cs.selector).toBe(0x0800);
    expect(s.cs.base).toBe(0x8000n);
    expect(ap.getRegs().rip).toBe(2n);
  });

  it("KVM_SET_FPU's XMM registers and MXCSR reach the CPU and come back from KVM_GET_FPU", () => {
    const m = machine();
    m.ram.set([0xf4, 0xeb, 0xfd], 0x1000); // hlt; jmp back to the hlt
    realMode(m, 0x1000);
    const f = m.vcpu.getFpu();
    f.xmm[0] = 0x78;
    f.xmm[255] = 0x9a;
    f.mxcsr = 0x1fa0;
    m.vcpu.setFpu(f);
    expect(runLog(m)).toEqual(["hlt"]);
    expect(m.backend.cpu.xmm[0]).toBe(0x78);
    expect(m.backend.cpu.mxcsr).toBe(0x1fa0);
    m.backend.cpu.xmm[1] = 0x11223344; // as if the guest wrote XMM0 bits 63:32
    expect(runLog(m)).toEqual(["hlt"]);
    const g = m.vcpu.getFpu();
    expect(Array.from(g.xmm.subarray(4, 8))).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(g.xmm[255]).toBe(0x9a);
  });

  it("userspace irqchip: IRQ_WINDOW_OPEN after the STI shadow, KVM_INTERRUPT, KVM_NMI, REP OUTSB", () => {
    const m = machine();
    m.ram.set(bins["events-userspace"]!, 0x1000);
    realMode(m, 0x1000);
    expect(runLog(m, {}, 10, ["io out 0x10 1 01"])).toEqual(["io out 0x10 1 01"]);
    m.vcpu.runFields.requestInterruptWindow = true;
    expect(runLog(m, {}, 10, ["irq-window-open"])).toEqual(["io out 0x10 1 02", "irq-window-open"]);
    expect(m.vcpu.runFields.readyForInterruptInjection).toBe(true);
    m.vcpu.runFields.requestInterruptWindow = false;
    m.vcpu.interrupt(0x30);
    expect(runLog(m)).toEqual(["io out 0x30 1 30", "io out 0x10 1 03", "hlt"]);
    m.vcpu.nmi();
    expect(runLog(m)).toEqual([
      "io out 0x22 1 22",
      "io out 0x10 1 04",
      "io out 0xe9 1 41",
      "io out 0xe9 1 42",
      "io out 0xe9 1 43",
      "hlt",
    ]);
    expect(m.vcpu.getRegs().rcx & 0xffffn).toBe(0n);
  });
});
