/**
 * IA32_BIOS_SIGN_ID through KVM_RUN: Linux's intel_get_microcode_revision() writes 0 to MSR 0x8b,
 * runs CPUID(1) and reads the revision back from EDX (SDM Vol. 3A 10.11.7.1). On KVM both MSR
 * accesses are handled in the kernel (kvm_{get,set}_msr_common); a #GP here shows up in the boot
 * log as "unchecked MSR access error".
 */
import { describe, expect, it } from "vitest";
import { machine, realMode, runLog } from "./run-helpers.js";

describe("KVM_RUN: MSR 0x8b (IA32_BIOS_SIGN_ID)", () => {
  it("WRMSR 0 is accepted, CPUID, RDMSR gives the revision in EDX", () => {
    const m = machine();
    // prettier-ignore
    const code = [
      0x66,
      0xb9,
      0x8b,
      0x00,
      0x00,
      0x00, // mov ecx, 0x8b
      0x66,
      0x31,
      0xc0, // xor eax, eax
      0x66,
      0x31,
      0xd2, // xor edx, edx
      0x0f,
      0x30, // wrmsr
      0x66,
      0xb8,
      0x01,
      0x00,
      0x00,
      0x00, // mov eax, 1
      0x0f,
      0xa2, // cpuid
      0x66,
      0xb9,
      0x8b,
      0x00,
      0x00,
      0x00, // mov ecx, 0x8b
      0x0f,
      0x32, // rdmsr
      0x66,
      0x89,
      0xd0, // mov eax, edx
      0x66,
      0xe7,
      0x10, // out 0x10, eax
      0xf4, // hlt
    ];
    m.ram.set(code, 0x1000);
    realMode(m, 0x1000);
    expect(runLog(m)).toEqual(["io out 0x10 4 01000000", "hlt"]);
  });
});
