// CPUID leaf 0DH as KVM reports and updates it, and the PKRU component of KVM_GET/SET_XSAVE
// (guests/programs/xsave-pkru.asm). Layout follows arch/x86/kvm/cpuid.c (__do_cpuid_func case 0xd,
// xstate_required_size, kvm_update_cpuid_runtime) over the CPU's own CPUID. Real KVM
// (kvm_pvm on an AMD host) as oracle for the layout: sub-leaves 0, 1 and one per permitted
// component, all with KVM_CPUID_FLAG_SIGNIFCANT_INDEX; 0.EBX = 0.ECX = the size of every permitted
// component; 1.EBX = 0 without XSAVEC/XSAVES; component ECX and EDX 0.
import { CPUID_7_ECX_PKU, CPUID_D1_EAX_XSAVES, CpuidModel } from "@tskvm/cpu-x86";
import { describe, expect, it } from "vitest";
import { cpuX86Features } from "../src/cpu-features.js";
import { findCpuid, KVM_CPUID_FLAG_SIGNIFCANT_INDEX } from "../src/cpuid.js";
import { Kvm, type KvmExit } from "../src/index.js";
import { assemble, flat32, hasTool, describe as line, machine } from "./run-helpers.js";

/** A CPU model with PKU (and, when asked, XSAVES) switched on. */
function pkuModel(xsaves = false): CpuidModel {
  const m = new CpuidModel();
  m.features7Ecx |= CPUID_7_ECX_PKU;
  if (xsaves) m.xsaveExtensions |= CPUID_D1_EAX_XSAVES;
  return m;
}

const leafD = (kvm: Kvm) =>
  kvm
    .getSupportedCpuid()
    .filter((e) => e.function === 0xd)
    .map((e) => [e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx]);

describe("KVM_GET_SUPPORTED_CPUID leaf 0DH", () => {
  it("x87 and SSE only (a CPU without PKU): sub-leaves 0 and 1, EBX = ECX = 576", () => {
    const F = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    const kvm = new Kvm({ cpu: cpuX86Features(new CpuidModel()) });
    expect(leafD(kvm)).toEqual([
      [0, F, 3, 576, 576, 0],
      // XSAVEOPT | XSAVEC: EBX is the compacted size of x87 | SSE.
      [1, F, 3, 576, 0, 0],
    ]);
    expect(kvm.xcr0Supported).toBe(3n);
  });

  it("by default PKU is offered (real KVM: when the host has it), with its PKRU component", () => {
    const kvm = new Kvm();
    expect(findCpuid(kvm.getSupportedCpuid(), 7, 0)!.ecx & CPUID_7_ECX_PKU).toBe(CPUID_7_ECX_PKU);
    expect(leafD(kvm).map((e) => e[0])).toEqual([0, 1, 9]);
    expect(kvm.xcr0Supported).toBe(0x203n);
  });

  it("with PKU: sub-leaf 9 = [8, 2688, 0, 0], sizes for every permitted component, XCR0[9] supported", () => {
    const kvm = new Kvm({ cpu: cpuX86Features(pkuModel(true)) });
    const F = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    expect(leafD(kvm)).toEqual([
      [0, F, 0x203, 2696, 2696, 0],
      // XSAVEOPT | XSAVEC | XSAVES; compacted: PKRU right after the header; IA32_XSS: no bit.
      [1, F, 0xb, 584, 0, 0],
      [9, F, 8, 2688, 0, 0],
    ]);
    expect(kvm.xcr0Supported).toBe(0x203n);
    const t = kvm.getSupportedCpuid();
    expect(findCpuid(t, 7, 0)!.ecx & CPUID_7_ECX_PKU).toBe(CPUID_7_ECX_PKU);
    // No sub-leaf for a component that does not exist (2..8 here).
    expect(findCpuid(t, 0xd, 2)).toBeUndefined();
  });
});

const haveNasm = hasTool("nasm");

/** The next exit that is not KVM_EXIT_INTR. */
function next(m: ReturnType<typeof machine>): KvmExit {
  for (;;) {
    const e = m.vcpu.run();
    if (e.kind !== "intr") return e;
  }
}

/** One `report` of the guest: CPUID.1:ECX, CPUID.(7,0):ECX, CPUID.(0DH,0):EBX, CPUID.(0DH,1):EBX. */
function report(m: ReturnType<typeof machine>): number[] {
  return [0x20, 0x21, 0x22, 0x23].map((port) => {
    const e = next(m);
    if (e.kind !== "io" || e.port !== port) throw new Error(`expected OUT ${port}, got ${line(e)}`);
    return new DataView(e.data.buffer, e.data.byteOffset).getUint32(0, true);
  });
}

function boot() {
  const m = machine({ kvm: { cpu: cpuX86Features(pkuModel()) } });
  m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
  m.ram.set(assemble("xsave-pkru"), 0x1000);
  flat32(m, 0x1000);
  return m;
}

describe.skipIf(!haveNasm)("a guest with PKU", () => {
  it("kvm_update_cpuid_runtime: OSXSAVE/OSPKE follow CR4, 0DH EBX follows XCR0", () => {
    const m = boot();
    const OSXSAVE = 1 << 27;
    const OSPKE = 1 << 4;
    const a = report(m);
    expect([a[0]! & OSXSAVE, a[1]! & (OSPKE | CPUID_7_ECX_PKU), a[2], a[3]]).toEqual([
      0,
      CPUID_7_ECX_PKU,
      576,
      576,
    ]);
    const b = report(m);
    expect([b[0]! & OSXSAVE, b[1]! & (OSPKE | CPUID_7_ECX_PKU), b[2], b[3]]).toEqual([
      OSXSAVE,
      OSPKE | CPUID_7_ECX_PKU,
      2696,
      584,
    ]);
    expect(m.vcpu.getXcrs()).toEqual([{ xcr: 0, value: 0x203n }]);
  });

  it("KVM_GET_XSAVE carries PKRU at offset 2688 with XSTATE_BV[9]; KVM_SET_XSAVE loads it", () => {
    const m = boot();
    report(m);
    report(m);
    expect(line(next(m))).toBe("io out 0x24 4 0c000000");
    const x = m.vcpu.getXsave();
    const dv = new DataView(x.buffer);
    expect(dv.getUint32(2688, true)).toBe(0xc);
    expect(dv.getUint32(512, true)).toBe(0x203);
    // Round trip, then a new PKRU the guest's RDPKRU must see.
    m.vcpu.setXsave(x);
    expect(new DataView(m.vcpu.getXsave().buffer).getUint32(2688, true)).toBe(0xc);
    dv.setUint32(2688, 0x30, true);
    m.vcpu.setXsave(x);
    expect(line(next(m))).toBe("io out 0x25 4 30000000");
  });

  it("KVM_SET_XSAVE with XSTATE_BV[9] clear puts PKRU in its initial state (0)", () => {
    const m = boot();
    report(m);
    report(m);
    next(m);
    const x = m.vcpu.getXsave();
    const dv = new DataView(x.buffer);
    dv.setUint32(512, 3, true);
    m.vcpu.setXsave(x);
    expect(line(next(m))).toBe("io out 0x25 4 00000000");
  });

  it("a guest CPUID without PKU: CR4.PKE is reserved (#GP) and the XSAVE image has no PKRU", () => {
    const m = machine({ kvm: { cpu: cpuX86Features(pkuModel()) } });
    const t = m.kvm.getSupportedCpuid();
    findCpuid(t, 7, 0)!.ecx &= ~CPUID_7_ECX_PKU;
    m.vcpu.setCpuid2(t);
    m.ram.set(assemble("xsave-pkru"), 0x1000);
    flat32(m, 0x1000);
    report(m);
    // MOV CR4 with PKE faults; no IDT: #GP -> #DF -> triple fault.
    expect(line(next(m))).toBe("shutdown");
    const dv = new DataView(m.vcpu.getXsave().buffer);
    expect([dv.getUint32(512, true), dv.getUint32(2688, true)]).toEqual([3, 0]);
  });
});

/**
 * A vCPU on a CPU with XSAVES whose CPUID offers it or not, running mov eax, cr4 / bts eax, 18 /
 * mov cr4, eax / xor edx, edx / mov eax, 3 / mov ebx, 0x60000 / xsaves [ebx] / hlt (nasm, bits 32).
 */
function xsavesGuest(guestHasXsaves: boolean) {
  const model = new CpuidModel();
  model.xsaveExtensions |= CPUID_D1_EAX_XSAVES;
  const m = machine({ kvm: { cpu: cpuX86Features(model) } });
  const t = m.kvm.getSupportedCpuid();
  if (!guestHasXsaves) findCpuid(t, 0xd, 1)!.eax &= ~CPUID_D1_EAX_XSAVES;
  m.vcpu.setCpuid2(t);
  const code = "0f20e00fbae8120f22e031d2b803000000bb000006000fc72bf4";
  m.ram.set(
    Uint8Array.from(code.match(/../g)!, (h) => Number.parseInt(h, 16)),
    0x1000,
  );
  flat32(m, 0x1000);
  return m;
}

describe("XSAVES in the vCPU's own code (L1)", () => {
  it("runs when the guest's CPUID has XSAVES: KVM's XSS-exiting bitmap is 0, nothing exits", () => {
    const m = xsavesGuest(true);
    expect(line(next(m))).toBe("hlt");
    // The compacted header XSAVES writes: XCOMP_BV = bit 63 | RFBM, RFBM = EDX:EAX & XCR0 = x87.
    expect(new DataView(m.ram.buffer).getBigUint64(0x60000 + 520, true)).toBe((1n << 63n) | 1n);
  });

  it("is #UD when the guest's CPUID lacks XSAVES, though the CPU has it", () => {
    // No IDT: #UD -> #DF -> triple fault.
    expect(line(next(xsavesGuest(false)))).toBe("shutdown");
  });
});
