import { CPUID_7_ECX_PKU, Msr } from "@tskvm/cpu-x86";
import { describe, expect, it } from "vitest";
import * as C from "../src/caps.js";
import { hostCpuModel } from "../src/cpu-features.js";
import { findCpuid, KVM_FEATURES_OFFERED } from "../src/cpuid.js";
import { Kvm } from "../src/kvm.js";
import { errOf } from "./helpers.js";

describe("Kvm (system ioctls)", () => {
  it("KVM_GET_API_VERSION is 12", () => {
    expect(new Kvm().getApiVersion()).toBe(12);
  });

  it("checkExtension answers 0 for what is not implemented", () => {
    const kvm = new Kvm();
    expect(kvm.checkExtension(44)).toBe(0); // HYPERV
    expect(kvm.checkExtension(117)).toBe(0); // X86_SMM
    expect(kvm.checkExtension(9999)).toBe(0);
  });

  // Each claimed capability, exercised through the API it names.
  const claims: Record<number, (kvm: Kvm) => void> = {
    [C.KVM_CAP_IRQCHIP]: (kvm) => kvm.createVm().createIrqchip(),
    [C.KVM_CAP_USER_MEMORY]: (kvm) =>
      kvm.createVm().setUserMemoryRegion({
        slot: 0,
        flags: 0,
        guestPhysAddr: 0,
        memorySize: 4096,
        memory: new ArrayBuffer(4096),
      }),
    [C.KVM_CAP_SET_TSS_ADDR]: (kvm) => {
      const vm = kvm.createVm();
      vm.setTssAddr(0xfffbd000);
      expect(() => vm.setTssAddr(0xffffe000)).toThrow(/EINVAL/);
    },
    [C.KVM_CAP_SET_IDENTITY_MAP_ADDR]: (kvm) => {
      const vm = kvm.createVm();
      vm.setIdentityMapAddr(0xfffbc000);
      vm.createVcpu(0);
      expect(() => vm.setIdentityMapAddr(0xfffbc000)).toThrow(/EINVAL/);
    },
    [C.KVM_CAP_EXT_CPUID]: (kvm) => expect(kvm.getSupportedCpuid().length).toBeGreaterThan(0),
    [C.KVM_CAP_CLOCKSOURCE]: (kvm) =>
      expect(kvm.createVm().createVcpu(0).writeMsr(0x4b564d01, 0n)).toBe(true),
    [C.KVM_CAP_NR_VCPUS]: (kvm) => kvm.createVm().createVcpu(kvm.checkExtension(C.KVM_CAP_NR_VCPUS) - 1),
    [C.KVM_CAP_MAX_VCPUS]: (kvm) => kvm.createVm().createVcpu(kvm.checkExtension(C.KVM_CAP_MAX_VCPUS) - 1),
    [C.KVM_CAP_MAX_VCPU_ID]: (kvm) =>
      kvm.createVm().createVcpu(kvm.checkExtension(C.KVM_CAP_MAX_VCPU_ID) - 1),
    [C.KVM_CAP_NR_MEMSLOTS]: (kvm) =>
      kvm.createVm().setUserMemoryRegion({
        slot: kvm.checkExtension(C.KVM_CAP_NR_MEMSLOTS) - 1,
        flags: 0,
        guestPhysAddr: 0,
        memorySize: 4096,
        memory: new ArrayBuffer(4096),
      }),
    [C.KVM_CAP_NOP_IO_DELAY]: (kvm) =>
      expect(findCpuid(kvm.getSupportedCpuid(), 0x40000001, 0)!.eax & 2).toBe(2),
    [C.KVM_CAP_MP_STATE]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      vm.createVcpu(1).setMpState(3);
    },
    [C.KVM_CAP_SYNC_MMU]: (kvm) => {
      const vm = kvm.createVm();
      const buf = new ArrayBuffer(4096);
      vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 4096, memory: buf });
      new Uint8Array(buf)[5] = 9;
      expect(vm.memory.slotAt(0)!.bytes[5]).toBe(9);
    },
    [C.KVM_CAP_IRQ_ROUTING]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      vm.setGsiRouting([{ gsi: 30, type: 2, addressLo: 0xfee00000, addressHi: 0, data: 0x40 }]);
    },
    [C.KVM_CAP_IRQ_INJECT_STATUS]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      expect(vm.irqLine(100, true)).toBe(-1);
    },
    [C.KVM_CAP_IRQFD]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      vm.irqfd(5).signal();
    },
    [C.KVM_CAP_IRQFD_RESAMPLE]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      vm.irqfd(5, () => {}).signal();
    },
    [C.KVM_CAP_PIT2]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      vm.createPit2();
    },
    [C.KVM_CAP_PIT_STATE2]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      vm.createPit2();
      vm.setPit2(vm.getPit2());
    },
    [C.KVM_CAP_COALESCED_MMIO]: (kvm) => {
      const vm = kvm.createVm();
      vm.registerCoalescedMmio({ addr: 0xd0000000, size: 0x1000 });
      expect(vm.mmioWrite(0, 0xd0000010, 4, 0x11223344)).toBe(true);
    },
    [C.KVM_CAP_COALESCED_PIO]: (kvm) => {
      const vm = kvm.createVm();
      vm.registerCoalescedMmio({ addr: 0x70, size: 1, pio: true });
      expect(vm.ioOut(0x70, 1, 0x8f)).toBe(true);
    },
    [C.KVM_CAP_IOEVENTFD]: (kvm) =>
      kvm.createVm().ioeventfd({ addr: 0x1000, len: 4, pio: false, notify: () => {} }),
    [C.KVM_CAP_IOEVENTFD_ANY_LENGTH]: (kvm) =>
      kvm.createVm().ioeventfd({ addr: 0x1000, len: 0, pio: false, notify: () => {} }),
    [C.KVM_CAP_ADJUST_CLOCK]: (kvm) => {
      const vm = kvm.createVm();
      vm.setClock(vm.getClock());
    },
    [C.KVM_CAP_VCPU_EVENTS]: (kvm) => {
      const v = kvm.createVm().createVcpu(0);
      v.setVcpuEvents(v.getVcpuEvents());
    },
    [C.KVM_CAP_DEBUGREGS]: (kvm) => {
      const v = kvm.createVm().createVcpu(0);
      v.setDebugRegs(v.getDebugRegs());
    },
    [C.KVM_CAP_SET_GUEST_DEBUG]: (kvm) => {
      const v = kvm.createVm().createVcpu(0);
      v.setGuestDebug({ control: 1 | 2, debugreg: [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n] }); // ENABLE | SINGLESTEP
      expect(v.getGuestDebug().control).toBe(3);
    },
    [C.KVM_CAP_IMMEDIATE_EXIT]: (kvm) => {
      const v = kvm.createVm().createVcpu(0);
      v.runFields.immediateExit = true;
      expect(v.run()).toMatchObject({ kind: "intr" }); // -EINTR before entering, backend or not
    },
    [C.KVM_CAP_XSAVE]: (kvm) => {
      const v = kvm.createVm().createVcpu(0);
      v.setXsave(v.getXsave());
    },
    [C.KVM_CAP_XCRS]: (kvm) => {
      const v = kvm.createVm().createVcpu(0);
      v.setXcrs(v.getXcrs());
    },
    [C.KVM_CAP_GET_TSC_KHZ]: (kvm) => expect(kvm.createVm().createVcpu(0).getTscKhz()).toBeGreaterThan(0),
    [C.KVM_CAP_TSC_DEADLINE_TIMER]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      expect(vm.createVcpu(0).writeMsr(0x6e0, 5n)).toBe(true);
    },
    [C.KVM_CAP_KVMCLOCK_CTRL]: (kvm) => {
      const vm = kvm.createVm();
      vm.setUserMemoryRegion({
        slot: 0,
        flags: 0,
        guestPhysAddr: 0,
        memorySize: 4096,
        memory: new ArrayBuffer(4096),
      });
      const v = vm.createVcpu(0);
      v.writeMsr(0x4b564d01, 1n);
      v.kvmclockCtrl();
    },
    [C.KVM_CAP_SIGNAL_MSI]: (kvm) => {
      const vm = kvm.createVm();
      vm.createIrqchip();
      vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x30 });
    },
    [C.KVM_CAP_READONLY_MEM]: (kvm) =>
      kvm.createVm().setUserMemoryRegion({
        slot: 0,
        flags: 2,
        guestPhysAddr: 0,
        memorySize: 4096,
        memory: new ArrayBuffer(4096),
      }),
    [C.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2]: (kvm) =>
      kvm.createVm().enableCap(C.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, [1]),
  };

  it("every claimed capability has an exercise here, and every exercise is claimed", () => {
    expect([...C.CAPABILITIES.keys()].sort((a, b) => a - b)).toEqual(
      Object.keys(claims)
        .map(Number)
        .sort((a, b) => a - b),
    );
  });
  for (const [cap, info] of C.CAPABILITIES) {
    it(`capability ${cap} (${info.implementedBy}) works`, () => {
      const kvm = new Kvm();
      expect(kvm.checkExtension(cap)).toBe(info.value);
      claims[cap]!(kvm);
    });
  }

  it("supported CPUID: KVM leaves with the KVMKVMKVM signature and only implemented feature bits", () => {
    const t = new Kvm().getSupportedCpuid();
    const sig = findCpuid(t, 0x40000000, 0)!;
    const bytes = new Uint8Array(new Uint32Array([sig.ebx, sig.ecx, sig.edx]).buffer);
    expect(new TextDecoder().decode(bytes)).toBe("KVMKVMKVM\0\0\0");
    expect(sig.eax).toBe(0x40000001);
    expect(findCpuid(t, 0x40000001, 0)!.eax).toBe(KVM_FEATURES_OFFERED);
    expect(KVM_FEATURES_OFFERED).toBe((1 << 0) | (1 << 1) | (1 << 3) | (1 << 24));
    // Leaf 1: the cpu-x86 model's own bits plus the ones kvm-api implements (APIC, x2APIC,
    // TSC-deadline, hypervisor).
    const leaf1 = findCpuid(t, 1, 0)!;
    const model = hostCpuModel();
    expect(leaf1.edx >>> 0).toBe((model.features1Edx | (1 << 9)) >>> 0);
    expect(leaf1.ecx >>> 0).toBe((model.features1Ecx | (1 << 21) | (1 << 24) | (1 << 31)) >>> 0);
  });

  it("the default CPU source is the cpu-x86 model: what an x86-64 Linux requires, as the CPU answers CPUID", () => {
    const t = new Kvm().getSupportedCpuid();
    const leaf1 = findCpuid(t, 1, 0)!;
    // arch/x86/include/asm/required-features.h for CONFIG_X86_64: FPU, PAE, CX8, CMOV, FXSR, SSE, SSE2, LM, NX...
    for (const bit of [0, 6, 8, 15, 24, 25, 26])
      expect((leaf1.edx >>> bit) & 1, `CPUID.1:EDX[${bit}]`).toBe(1);
    const ext = findCpuid(t, 0x80000001, 0)!;
    expect((ext.edx >>> 29) & 1).toBe(1); // LM
    expect((ext.edx >>> 20) & 1).toBe(1); // NX
    // Every leaf in the table is what the CPU itself (with PKU, which it has but leaves off by
    // default) answers to CPUID; leaf 0DH's sizes as for every supported component enabled (KVM's
    // table does not depend on any XCR0).
    const model = hostCpuModel();
    expect(model.features7Ecx & CPUID_7_ECX_PKU).toBe(CPUID_7_ECX_PKU);
    const r = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
    for (const e of t.filter((x) => x.function < 0x40000000 || x.function >= 0x80000000)) {
      if (e.function === 1) continue; // kvm-api adds its own bits there (checked above)
      model.query(e.function, e.index, r, false, false, model.xcr0Mask);
      expect([e.eax, e.ebx, e.ecx, e.edx], `leaf ${e.function.toString(16)}.${e.index}`).toEqual([
        r.eax >>> 0,
        r.ebx >>> 0,
        r.ecx >>> 0,
        r.edx >>> 0,
      ]);
    }
    const msrs = new Kvm().getMsrIndexList();
    for (const m of Object.values(Msr)) expect(msrs).toContain(m >>> 0);
  });

  it("a CPU feature source extends the table and the MSR index list", () => {
    const kvm = new Kvm({
      cpu: {
        supportedCpuid: () => [
          { function: 0, index: 0, flags: 0, eax: 0xd, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 },
          { function: 1, index: 0, flags: 0, eax: 0x906a0, ebx: 0, ecx: 1, edx: 1 },
        ],
        msrIndexList: () => [0xc0000080],
      },
    });
    const leaf1 = findCpuid(kvm.getSupportedCpuid(), 1, 0)!;
    expect(leaf1.edx).toBe(1 | (1 << 9));
    expect(kvm.getMsrIndexList()).toContain(0xc0000080);
    expect(kvm.getMsrIndexList()).toContain(0x4b564d01);
    expect(errOf(() => kvm.getSupportedCpuid(2)).code).toBe("E2BIG");
    expect(errOf(() => kvm.getMsrIndexList(1)).code).toBe("E2BIG");
  });

  it("KVM_CREATE_VM rejects unknown machine types", () => {
    expect(errOf(() => new Kvm().createVm({ type: 1 })).code).toBe("EINVAL");
  });
});
