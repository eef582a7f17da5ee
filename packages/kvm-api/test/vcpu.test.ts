import { describe, expect, it } from "vitest";
import { Kvm } from "../src/kvm.js";
import {
  KVM_MP_STATE_INIT_RECEIVED,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_UNINITIALIZED,
} from "../src/vcpu-state.js";
import { errOf, linuxApicSetup } from "./helpers.js";

function setup(irqchip = true) {
  const vm = new Kvm({ xcr0Supported: 7n }).createVm({ clock: "deterministic" });
  if (irqchip) vm.createIrqchip();
  return vm;
}

describe("Vcpu: reset state (SDM Table 10-1)", () => {
  it("RIP 0xfff0, CS 0xf000 base 0xffff0000, RFLAGS 2, CR0 0x60000010, EDX 0x600", () => {
    const v = setup().createVcpu(0);
    const r = v.getRegs();
    const s = v.getSregs();
    expect([r.rip, r.rflags, r.rdx]).toEqual([0xfff0n, 2n, 0x600n]);
    expect([s.cs.selector, s.cs.base, s.cs.limit]).toEqual([0xf000, 0xffff0000n, 0xffff]);
    expect(s.cr0).toBe(0x60000010n);
    expect(s.apicBase).toBe(0xfee00900n);
  });
  it("MP state: BSP runnable, APs uninitialized with an irqchip; all runnable without", () => {
    const vm = setup();
    expect(vm.createVcpu(0).getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
    expect(vm.createVcpu(1).getMpState()).toBe(KVM_MP_STATE_UNINITIALIZED);
    expect(setup(false).createVcpu(1).getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
  });
});

describe("Vcpu: INIT/SIPI (kvm_apic_accept_events)", () => {
  it("an AP goes INIT_RECEIVED on INIT and starts at vector<<12 on SIPI", () => {
    const vm = setup();
    const bsp = vm.createVcpu(0);
    const ap = vm.createVcpu(1);
    linuxApicSetup(bsp.lapic!, 0);
    vm.mmioWrite(0, 0xfee00310, 4, 1 << 24);
    vm.mmioWrite(0, 0xfee00300, 4, 0xc500); // INIT
    expect(ap.getMpState()).toBe(KVM_MP_STATE_INIT_RECEIVED);
    vm.mmioWrite(0, 0xfee00300, 4, 0x0600 | 0x9a); // SIPI
    expect(ap.getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
    const s = ap.getSregs();
    expect([s.cs.selector, s.cs.base, ap.getRegs().rip]).toEqual([0x9a00, 0x9a000n, 0n]);
  });
  it("a SIPI to a running AP is ignored", () => {
    const vm = setup();
    const bsp = vm.createVcpu(0);
    const ap = vm.createVcpu(1);
    ap.setMpState(KVM_MP_STATE_RUNNABLE);
    linuxApicSetup(bsp.lapic!, 0);
    ap.setRegs({ ...ap.getRegs(), rip: 0x1234n });
    vm.mmioWrite(0, 0xfee00310, 4, 1 << 24);
    vm.mmioWrite(0, 0xfee00300, 4, 0x0610);
    ap.getMpState();
    expect(ap.getRegs().rip).toBe(0x1234n);
  });
  it("KVM_SET_MP_STATE: any value as in KVM (no range check), -1 EINVAL; non-RUNNABLE without an in-kernel LAPIC EINVAL; SIPI_RECEIVED", () => {
    const vm = setup();
    const ap = vm.createVcpu(1);
    ap.setMpState(9); // KVM_MP_STATE_AP_RESET_HOLD
    expect(errOf(() => ap.setMpState(-1)).code).toBe("EINVAL");
    ap.setMpState(4);
    ap.lapic!.sipiVector = 0x10;
    expect(ap.getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
    expect(ap.getSregs().cs.selector).toBe(0x1000);
    expect(errOf(() => setup(false).createVcpu(0).setMpState(3)).code).toBe("EINVAL");
  });
});

describe("Vcpu: register ioctls", () => {
  it("KVM_SET_SREGS: long mode without PAE or LMA is EINVAL; a valid long-mode set round trips", () => {
    const v = setup().createVcpu(0);
    const s = v.getSregs();
    const lm = { ...s, cr0: 0x80000011n, cr4: 0x20n, efer: 0x500n, cs: { ...s.cs, l: 1, db: 0 } };
    expect(errOf(() => v.setSregs({ ...lm, cr4: 0n })).reason).toBe("LongModeInconsistent");
    expect(errOf(() => v.setSregs({ ...lm, efer: 0x100n })).reason).toBe("LongModeInconsistent");
    expect(errOf(() => v.setSregs({ ...s, cs: { ...s.cs, l: 1 } })).reason).toBe("LmaWithoutPaging");
    expect(errOf(() => v.setSregs({ ...s, cr0: 0x80000000n })).reason).toBe("Cr0PgWithoutPe");
    expect(errOf(() => v.setSregs({ ...s, cr0: 0x20000001n })).reason).toBe("Cr0NwWithoutCd");
    expect(errOf(() => v.setSregs({ ...s, cr4: 1n << 40n })).reason).toBe("Cr4Reserved");
    v.setSregs(lm);
    expect(v.getSregs()).toEqual(lm);
  });
  it("KVM_SET_SREGS apic_base goes through the APIC base rules (EINVAL on reserved bits)", () => {
    const v = setup().createVcpu(0);
    const s = v.getSregs();
    expect(errOf(() => v.setSregs({ ...s, apicBase: 0xfee00901n })).reason).toBe("BadApicBase");
    v.setSregs({ ...s, apicBase: 0xfee00d00n });
    expect(v.lapic!.x2apicMode).toBe(true);
  });
  it("KVM_SET_REGS rejects values outside 64 bits", () => {
    const v = setup().createVcpu(0);
    expect(errOf(() => v.setRegs({ ...v.getRegs(), rax: 1n << 64n })).code).toBe("EINVAL");
    v.setRegs({ ...v.getRegs(), rax: 0xffffffffffffffffn });
    expect(v.getRegs().rax).toBe(0xffffffffffffffffn);
  });
  it("KVM_SET_VCPU_EVENTS: NMI vector or >31 exception EINVAL; unknown flags EINVAL; NMI pending reaches the LAPIC", () => {
    const v = setup().createVcpu(0);
    const e = v.getVcpuEvents();
    expect(
      errOf(() => v.setVcpuEvents({ ...e, exception: { ...e.exception, injected: 1, nr: 2 } })).reason,
    ).toBe("BadExceptionVector");
    expect(
      errOf(() => v.setVcpuEvents({ ...e, exception: { ...e.exception, injected: 1, nr: 32 } })).code,
    ).toBe("EINVAL");
    expect(errOf(() => v.setVcpuEvents({ ...e, flags: 0x8 })).reason).toBe("UnknownFlags");
    v.setVcpuEvents({ ...e, nmi: { ...e.nmi, pending: 1 }, flags: 1 });
    expect(v.lapic!.nmiPending).toBe(1);
    expect(v.getVcpuEvents().nmi.pending).toBe(1);
  });
  it("KVM_SET_DEBUGREGS: flags and DR6/DR7 high bits EINVAL", () => {
    const v = setup().createVcpu(0);
    const d = v.getDebugRegs();
    expect(errOf(() => v.setDebugRegs({ ...d, flags: 1 })).code).toBe("EINVAL");
    expect(errOf(() => v.setDebugRegs({ ...d, dr7: 1n << 32n })).reason).toBe("Dr7Reserved");
    v.setDebugRegs({ ...d, db: [1n, 2n, 3n, 4n] });
    expect(v.getDebugRegs().db).toEqual([1n, 2n, 3n, 4n]);
  });
  it("KVM_SET_XCRS: XCR0 needs x87, AVX needs SSE, only supported components", () => {
    const v = setup().createVcpu(0);
    expect(errOf(() => v.setXcrs([{ xcr: 0, value: 2n }])).reason).toBe("X87Clear");
    expect(errOf(() => v.setXcrs([{ xcr: 0, value: 5n }])).reason).toBe("AvxWithoutSse");
    expect(errOf(() => v.setXcrs([{ xcr: 0, value: 0x1fn }])).reason).toBe("UnsupportedComponent");
    v.setXcrs([{ xcr: 0, value: 7n }]);
    expect(v.getXcrs()).toEqual([{ xcr: 0, value: 7n }]);
  });
  it("KVM_SET_XSAVE: 4 KiB; XSTATE_BV within the supported set; compacted format refused", () => {
    const v = setup().createVcpu(0);
    const x = v.getXsave();
    x[512] = 0x8;
    expect(errOf(() => v.setXsave(x)).reason).toBe("XstateBvUnsupported");
    x[512] = 0x3;
    x[527] = 0x80;
    expect(errOf(() => v.setXsave(x)).reason).toBe("CompactedFormat");
    x[527] = 0;
    x[100] = 0x42;
    v.setXsave(x);
    expect(v.getXsave()[100]).toBe(0x42);
  });
  it("KVM_SET_FPU round trip", () => {
    const v = setup().createVcpu(0);
    const f = v.getFpu();
    f.xmm[17] = 5;
    f.fcw = 0x27f;
    v.setFpu(f);
    expect(v.getFpu()).toEqual(f);
  });
});

describe("Vcpu: MSRs, CPUID, LAPIC state, interrupts", () => {
  it("KVM_SET_MSRS/GET_MSRS stop at the first unknown MSR and return the count done", () => {
    const v = setup().createVcpu(0);
    expect(
      v.setMsrs([
        { index: 0x4b564d00, data: 0n },
        { index: 0x1234, data: 0n },
        { index: 0x10, data: 5n },
      ]),
    ).toBe(1);
    const entries = [
      { index: 0x1b, data: 0n },
      { index: 0x9999, data: 0n },
    ];
    expect(v.getMsrs(entries)).toBe(1);
    expect(entries[0]!.data).toBe(0xfee00900n);
  });
  it("IA32_BIOS_SIGN_ID (0x8b): KVM's microcode revision 1 in bits 63:32; guest writes ignored, KVM_SET_MSRS sets it", () => {
    const v = setup().createVcpu(0);
    expect(v.hasMsr(0x8b)).toBe(true);
    expect(v.vm.kvm.getMsrIndexList()).toContain(0x8b);
    expect(v.readMsr(0x8b)).toBe(0x100000000n);
    expect(v.writeMsr(0x8b, 0n)).toBe(true); // Linux's intel_get_microcode_revision() writes 0 first
    expect(v.readMsr(0x8b)).toBe(0x100000000n);
    expect(v.setMsrs([{ index: 0x8b, data: 0x2a00000000n }])).toBe(1);
    const e = [{ index: 0x8b, data: 0n }];
    expect(v.getMsrs(e)).toBe(1);
    expect(e[0]!.data).toBe(0x2a00000000n);
  });
  it("x2APIC MSRs reach the LAPIC via KVM_SET_MSRS in x2APIC mode", () => {
    const v = setup().createVcpu(0);
    expect(
      v.setMsrs([
        { index: 0x1b, data: 0xfee00d00n },
        { index: 0x808, data: 0x20n },
      ]),
    ).toBe(2);
    expect(v.vm.mmioRead(0, 0xfee00080, 4)).toBeUndefined(); // MMIO is off in x2APIC mode
    expect(v.readMsr(0x808)).toBe(0x20n);
  });
  it("KVM_SET_CPUID2: >256 entries E2BIG, bad linear width EINVAL, changes after KVM_RUN EINVAL", () => {
    const v = setup().createVcpu(0);
    const e = { function: 0, index: 0, flags: 0, eax: 1, ebx: 0, ecx: 0, edx: 0 };
    expect(errOf(() => v.setCpuid2(new Array(257).fill(e))).code).toBe("E2BIG");
    expect(errOf(() => v.setCpuid2([{ ...e, function: 0x80000008, eax: 0x2a28 }])).reason).toBe(
      "BadLinearAddressWidth",
    );
    v.setCpuid2([e]);
    v.hasRun = true;
    v.setCpuid2([e]); // identical: allowed
    // 6.1 kvm_cpuid_check_equal: -EINVAL.
    expect(errOf(() => v.setCpuid2([{ ...e, eax: 2 }])).code).toBe("EINVAL");
  });
  it("CPUID exit lookup: Intel out-of-range leaves return the highest basic leaf; APIC bit follows APIC base", () => {
    const v = setup().createVcpu(0);
    v.setCpuid2([
      { function: 0, index: 0, flags: 0, eax: 1, ebx: 2, ecx: 3, edx: 4 },
      { function: 1, index: 0, flags: 0, eax: 0x11, ebx: 0, ecx: 0, edx: 1 << 9 },
      { function: 0x80000000, index: 0, flags: 0, eax: 0x80000000, ebx: 0, ecx: 0, edx: 0 },
    ]);
    const out = new Uint32Array(4);
    v.cpuid(5, 0, out);
    expect(out[0]).toBe(0x11);
    v.cpuid(0x80000001, 0, out);
    expect(out[0]).toBe(0x11);
    v.cpuid(1, 0, out, v.cpuidRuntime());
    expect(out[3]).toBe(1 << 9);
    v.writeMsr(0x1b, 0xfee00100n);
    v.cpuid(1, 0, out, v.cpuidRuntime());
    expect(out[3]).toBe(0);
    // Answered from leaf 1, so KVM's updated leaf-1 entry: the APIC bit follows there too.
    v.cpuid(5, 0, out, v.cpuidRuntime());
    expect(out[3]).toBe(0);
    // Without the guest state: the table as set.
    v.cpuid(1, 0, out);
    expect(out[3]).toBe(1 << 9);
  });
  it("KVM_GET_LAPIC/SET_LAPIC round trip the 1 KiB page; EINVAL without irqchip", () => {
    const vm = setup();
    const v = vm.createVcpu(0);
    linuxApicSetup(v.lapic!, 0);
    const page = v.getLapic();
    expect(page.length).toBe(1024);
    const v2 = setup().createVcpu(0);
    v2.setLapic(page);
    expect(v2.getLapic()).toEqual(page);
    expect(errOf(() => setup(false).createVcpu(0).getLapic()).code).toBe("EINVAL");
    expect(errOf(() => v2.setLapic(new Uint8Array(10))).code).toBe("EINVAL");
  });
  it("NMIs: KVM_NMI and LAPIC NMI IPIs queue, the CPU takes them one by one", () => {
    const vm = setup();
    const v = vm.createVcpu(0);
    v.nmi();
    vm.mmioWrite(0, 0xfee00300, 4, 0x40400); // NMI to self
    expect(v.hasNmi()).toBe(true);
    v.acknowledgeNmi();
    v.acknowledgeNmi();
    expect(v.hasNmi()).toBe(false);
  });

  it("KVM_INTERRUPT only without an in-kernel irqchip (ENXIO), vector < 256", () => {
    expect(errOf(() => setup().createVcpu(0).interrupt(0x20)).code).toBe("ENXIO");
    const v = setup(false).createVcpu(0);
    expect(errOf(() => v.interrupt(256)).code).toBe("EINVAL");
    v.interrupt(0x20);
    expect(v.hasInterrupt()).toBe(true);
    expect(v.acknowledgeInterrupt()).toBe(0x20);
  });
  it("KVM_SET_TSC_KHZ keeps the TSC value and changes its rate", () => {
    const vm = setup();
    const v = vm.createVcpu(0);
    (vm.clock as import("../src/clock.js").DeterministicClock).advance(1_000_000);
    const before = v.tsc();
    v.setTscKhz(1_000_000);
    expect(v.tsc()).toBe(before);
    (vm.clock as import("../src/clock.js").DeterministicClock).advance(1000);
    expect(v.tsc()).toBe(before + 1000);
    expect(errOf(() => v.setTscKhz(0)).code).toBe("EINVAL");
  });
  it("KVM_RUN: immediate_exit returns KVM_EXIT_INTR; without a CPU backend EOPNOTSUPP; a backend's exit passes through", () => {
    const v = setup().createVcpu(0);
    v.runFields.immediateExit = true;
    expect(v.run()).toEqual({ kind: "intr", reason: 10 });
    v.runFields.immediateExit = false;
    expect(errOf(() => v.run()).code).toBe("EOPNOTSUPP");
    v.backend = { run: () => ({ kind: "hlt", reason: 5 }) };
    expect(v.run().kind).toBe("hlt");
    expect(v.runFields.apicBase).toBe(0xfee00900);
  });
});
