// KVM_GET_CPUID2 shows what kvm_update_cpuid_runtime() keeps current in the vCPU's stored entries
// (arch/x86/kvm/cpuid.c, 6.1): CPUID.1:ECX.OSXSAVE = CR4.OSXSAVE, CPUID.1:EDX.APIC =
// IA32_APIC_BASE.EN, CPUID.(7,0):ECX.OSPKE = CR4.PKE, CPUID.(0DH,0/1):EBX = the XSAVE sizes for XCR0;
// KVM_SET_CPUID2 after KVM_RUN compares tables with those updates applied to both (kvm_set_cpuid).
// The host's /dev/kvm (6.18, kvm_pvm) answered the same way, checked with a small C program: a table
// set with APIC clear, OSXSAVE set and CPUID.(0DH,0):EBX = 12345 reads back with APIC set, OSXSAVE
// clear and EBX = 576; KVM_SET_SREGS (CR4.OSXSAVE), KVM_SET_XCRS (XCR0 = 7: EBX 832) and KVM_SET_MSRS
// (APIC base) show in the next KVM_GET_CPUID2; after KVM_RUN the KVM_GET_CPUID2 table with OSXSAVE,
// APIC and both 0DH EBX changed is accepted, and one with CPUID.0:EAX changed, or one entry fewer,
// is refused with EINVAL (6.1 kvm_cpuid_check_equal returns -EINVAL too).
import { CPUID_7_ECX_PKU } from "@tskvm/cpu-x86";
import { describe, expect, it } from "vitest";
import { type CpuidEntry2, findCpuid } from "../src/cpuid.js";
import * as C from "../src/uapi/codec.js";
import * as I from "../src/uapi/ioctl.js";
import { KvmFds } from "../src/uapi/kvm-fd.js";
import { StructView } from "../src/uapi/layout.js";
import * as T from "../src/uapi/structs.js";
import { KVM_MP_STATE_HALTED } from "../src/vcpu-state.js";
import { errOf } from "./helpers.js";
import { flat32, describe as line, type Machine, machine } from "./run-helpers.js";

const OSXSAVE = 1 << 27;
const APIC = 1 << 9;
const OSPKE = 1 << 4;
const CR4_OSXSAVE = 1n << 18n;
const CR4_PKE = 1n << 22n;
const MSR_APIC_BASE = 0x1b;
/** SDM Vol. 1 13.4: legacy region (512) + XSAVE header (64), the size for x87 | SSE. */
const XSAVE_X87_SSE = 576;
/** Standard form with PKRU: CPUID.(0DH,9) gives offset 2688, size 8 (the cpu-x86 model, as Intel). */
const XSAVE_WITH_PKRU = 2688 + 8;
/** Compacted form with PKRU: the 8 bytes right after the header. */
const XSAVEC_WITH_PKRU = XSAVE_X87_SSE + 8;

/**
 * Flat 32-bit guest (nasm -f bin, bits 32), reporting what its own CPUID says at each step on ports
 * 0x10-0x12 (0x20/0x21 would go to the in-kernel PIC):
 *   mov eax, cr4 / bts eax, 18 / mov cr4, eax             ; CR4.OSXSAVE
 *   xor ecx, ecx / xor edx, edx / mov eax, 3 / xsetbv      ; XCR0 = x87 | SSE
 *   mov eax, 0xd / xor ecx, ecx / cpuid / mov eax, ebx / out 0x10, eax
 *   xor ecx, ecx / xor edx, edx / mov eax, 0x203 / xsetbv  ; XCR0 = x87 | SSE | PKRU
 *   mov eax, 0xd / xor ecx, ecx / cpuid / mov eax, ebx / out 0x11, eax
 *   mov ecx, 0x1b / rdmsr / btr eax, 11 / wrmsr            ; IA32_APIC_BASE.EN = 0
 *   mov eax, 1 / cpuid / mov eax, edx / out 0x12, eax / hlt
 */
const GUEST =
  "0f20e00fbae8120f22e031c931d2b8030000000f01d1b80d00000031c90fa289d8e71031c931d2b8030200000f01d1" +
  "b80d00000031c90fa289d8e711b91b0000000f320fbaf00b0f30b8010000000fa289d0e712f4";

function boot(irqchip = false): { m: Machine; set: CpuidEntry2[] } {
  const m = machine({ irqchip });
  const set = m.kvm.getSupportedCpuid();
  // The default cpu-x86 model offers PKU, so XCR0[9] is settable.
  expect(findCpuid(set, 7, 0)!.ecx & CPUID_7_ECX_PKU).toBe(CPUID_7_ECX_PKU);
  m.vcpu.setCpuid2(set);
  m.ram.set(
    Uint8Array.from(GUEST.match(/../g)!, (h) => Number.parseInt(h, 16)),
    0x1000,
  );
  flat32(m, 0x1000);
  return { m, set };
}

/** The value of the next OUT to `port` (KVM_EXIT_INTR skipped). */
function out(m: Machine, port: number): number {
  for (;;) {
    const e = m.vcpu.run();
    if (e.kind === "intr") continue;
    if (e.kind !== "io" || e.port !== port) throw new Error(`expected OUT ${port}, got ${line(e)}`);
    return new DataView(e.data.buffer, e.data.byteOffset).getUint32(0, true);
  }
}

/** The runtime-updated registers of KVM_GET_CPUID2: leaf 1 ECX/EDX bits, OSPKE, 0DH.0/0DH.1 EBX. */
function runtime(t: readonly CpuidEntry2[]) {
  const l1 = findCpuid(t, 1, 0)!;
  return {
    osxsave: (l1.ecx & OSXSAVE) !== 0,
    apic: (l1.edx & APIC) !== 0,
    ospke: (findCpuid(t, 7, 0)!.ecx & OSPKE) !== 0,
    d0: findCpuid(t, 0xd, 0)!.ebx,
    d1: findCpuid(t, 0xd, 1)!.ebx,
  };
}

describe("KVM_GET_CPUID2 after the guest changed CR4, XCR0 and IA32_APIC_BASE", () => {
  for (const irqchip of [false, true]) {
    it(`the entries follow, as the guest's own CPUID does (${irqchip ? "in-kernel" : "no"} LAPIC)`, () => {
      const { m, set } = boot(irqchip);
      // The supported table sizes every permitted component; the vCPU's XCR0 is x87 only.
      expect(findCpuid(set, 0xd, 0)!.ebx).toBe(XSAVE_WITH_PKRU);
      expect(runtime(m.vcpu.getCpuid2())).toEqual({
        osxsave: false,
        apic: true,
        ospke: false,
        d0: XSAVE_X87_SSE,
        d1: XSAVE_X87_SSE,
      });

      const d0x87sse = out(m, 0x10);
      expect(d0x87sse).toBe(XSAVE_X87_SSE);
      expect(m.vcpu.getXcrs()).toEqual([{ xcr: 0, value: 3n }]);
      expect(runtime(m.vcpu.getCpuid2())).toEqual({
        osxsave: true,
        apic: true,
        ospke: false,
        d0: d0x87sse,
        d1: XSAVE_X87_SSE,
      });

      const d0pkru = out(m, 0x11);
      expect(d0pkru).toBe(XSAVE_WITH_PKRU);
      expect(runtime(m.vcpu.getCpuid2())).toMatchObject({ osxsave: true, d0: d0pkru, d1: XSAVEC_WITH_PKRU });

      const edx = out(m, 0x12);
      expect(edx & APIC).toBe(0);
      expect(m.vcpu.getMsrs([{ index: MSR_APIC_BASE, data: 0n }])).toBe(1);
      expect(runtime(m.vcpu.getCpuid2()).apic).toBe(false);
      expect(findCpuid(m.vcpu.getCpuid2(), 1, 0)!.edx).toBe(edx);
      // With the in-kernel LAPIC, HLT stays in the kernel: the vCPU is halted, KVM_RUN is interrupted.
      if (irqchip) {
        expect(m.vcpu.run().kind).toBe("intr");
        expect(m.vcpu.getMpState()).toBe(KVM_MP_STATE_HALTED);
      } else {
        expect(line(m.vcpu.run())).toBe("hlt");
      }
    });
  }

  it("KVM_SET_CPUID2 after KVM_RUN: the table set first and the table read back pass, another is EINVAL", () => {
    const { m, set } = boot();
    out(m, 0x10);
    out(m, 0x11);
    out(m, 0x12);
    const got = m.vcpu.getCpuid2();
    expect(got).not.toEqual(set);
    m.vcpu.setCpuid2(set);
    m.vcpu.setCpuid2(got);
    // Only KVM-owned bits differ: OSXSAVE, APIC and both 0DH sizes are overwritten before comparing.
    const owned = got.map((e) => ({ ...e }));
    findCpuid(owned, 1, 0)!.ecx &= ~OSXSAVE;
    findCpuid(owned, 1, 0)!.edx |= APIC;
    findCpuid(owned, 0xd, 0)!.ebx = 1;
    findCpuid(owned, 0xd, 1)!.ebx = 2;
    m.vcpu.setCpuid2(owned);
    expect(runtime(m.vcpu.getCpuid2())).toEqual(runtime(got));
    // A different vCPU model is refused, with or without the runtime bits.
    for (const base of [set, got]) {
      const other = base.map((e) => ({ ...e }));
      findCpuid(other, 0, 0)!.eax -= 1;
      expect(errOf(() => m.vcpu.setCpuid2(other)).code).toBe("EINVAL");
      expect(errOf(() => m.vcpu.setCpuid2(base.slice(1))).code).toBe("EINVAL");
    }
    expect(line(m.vcpu.run())).toBe("hlt");
  });
});

describe("KVM_GET_CPUID2 after userspace changed the state (no KVM_RUN)", () => {
  it("KVM_SET_SREGS, KVM_SET_XCRS and KVM_SET_MSRS show in the next KVM_GET_CPUID2", () => {
    const m = machine();
    const t = m.kvm.getSupportedCpuid();
    // Set with the KVM-owned bits wrong: KVM overwrites them (as the host's KVM did).
    findCpuid(t, 1, 0)!.edx &= ~APIC;
    findCpuid(t, 1, 0)!.ecx |= OSXSAVE;
    findCpuid(t, 0xd, 0)!.ebx = 12345;
    m.vcpu.setCpuid2(t);
    expect(runtime(m.vcpu.getCpuid2())).toEqual({
      osxsave: false,
      apic: true,
      ospke: false,
      d0: XSAVE_X87_SSE,
      d1: XSAVE_X87_SSE,
    });
    const s = m.vcpu.getSregs();
    m.vcpu.setSregs({ ...s, cr4: s.cr4 | CR4_OSXSAVE | CR4_PKE });
    m.vcpu.setXcrs([{ xcr: 0, value: 0x203n }]);
    expect(m.vcpu.setMsrs([{ index: MSR_APIC_BASE, data: 0xfee00100n }])).toBe(1);
    expect(runtime(m.vcpu.getCpuid2())).toEqual({
      osxsave: true,
      apic: false,
      ospke: true,
      d0: XSAVE_WITH_PKRU,
      d1: XSAVEC_WITH_PKRU,
    });
    // Everything else is the table as set.
    const norm = (x: CpuidEntry2[]) =>
      x.filter((e) => e.function !== 1 && e.function !== 7 && e.function !== 0xd);
    expect(norm(m.vcpu.getCpuid2())).toEqual(norm(t));
  });

  it("through the fd: ioctl(KVM_GET_CPUID2) returns the updated entries", () => {
    const k = new KvmFds();
    const kvm = k.openKvm();
    const vm = k.ioctl(kvm, I.KVM_CREATE_VM, 0);
    expect(k.ioctl(vm, I.KVM_CREATE_IRQCHIP, 0)).toBe(0);
    const cpu = k.ioctl(vm, I.KVM_CREATE_VCPU, 0);
    const buf = new Uint8Array(8 + 256 * 40);
    new StructView(T.kvm_cpuid2, buf).set("nent", 256);
    expect(k.ioctl(kvm, I.KVM_GET_SUPPORTED_CPUID, buf)).toBe(0);
    const t = C.decodeCpuid2(buf);
    findCpuid(t, 1, 0)!.edx &= ~APIC;
    expect(k.ioctl(cpu, I.KVM_SET_CPUID2, C.encodeCpuid2(t))).toBe(0);
    const get = () => {
      const b = new Uint8Array(8 + 256 * 40);
      new StructView(T.kvm_cpuid2, b).set("nent", 256);
      expect(k.ioctl(cpu, I.KVM_GET_CPUID2, b)).toBe(0);
      return runtime(C.decodeCpuid2(b));
    };
    expect(get()).toMatchObject({ apic: true, d0: XSAVE_X87_SSE });
    const msrs = C.encodeMsrs([{ index: MSR_APIC_BASE, data: 0xfee00100n }]);
    expect(k.ioctl(cpu, I.KVM_SET_MSRS, msrs)).toBe(1);
    expect(get().apic).toBe(false);
  });
});
