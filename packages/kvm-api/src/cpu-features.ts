/**
 * What the @tskvm/cpu-x86 CPU reports about itself, as KVM_GET_SUPPORTED_CPUID and
 * KVM_GET_MSR_INDEX_LIST need it. Real KVM builds its table from the host CPU
 * (arch/x86/kvm/cpuid.c __do_cpuid_func); ours comes from the CPU model that executes CPUID,
 * so a guest is never told of a feature the emulated CPU does not implement.
 */
import {
  CPUID_7_ECX_PKU,
  CPUID_D1_EAX_XSAVES,
  CpuidModel,
  type CpuidResult,
  Msr,
  XSS_SUPPORTED,
} from "@tskvm/cpu-x86";
import {
  CPUID_D1_EAX_XSAVEC_XSAVES,
  type CpuFeatureSource,
  type CpuidEntry2,
  KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
  xsaveSubleaves,
  xstateRequiredSize,
} from "./cpuid.js";

/** Leaves whose answer depends on ECX (the sub-leaf): SDM Vol. 2 CPUID, leaf 07H (0DH: xsaveLeaf). */
const INDEXED_LEAVES: ReadonlyMap<number, readonly number[]> = new Map([[7, [0]]]);

/**
 * The cpu-x86 CPU as KVM would see it as a host: its default model plus protection keys, which it
 * implements but leaves off by default (real KVM offers PKU when the host has it; a vCPU runs it only
 * when its CPUID has it, `applyGuestCpuid`). XSAVES stays off: no supervisor state component exists.
 */
export function hostCpuModel(): CpuidModel {
  const m = new CpuidModel();
  m.features7Ecx |= CPUID_7_ECX_PKU;
  return m;
}

/** The CPUID table and MSR list of a cpu-x86 CPUID model (`hostCpuModel()` when none is given). */
export function cpuX86Features(model: CpuidModel = hostCpuModel()): CpuFeatureSource {
  const r: CpuidResult = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  const entries: CpuidEntry2[] = [];
  const add = (fn: number, index: number, flags: number) => {
    model.query(fn, index, r, false);
    entries.push({
      function: fn,
      index,
      flags,
      eax: r.eax >>> 0,
      ebx: r.ebx >>> 0,
      ecx: r.ecx >>> 0,
      edx: r.edx >>> 0,
    });
  };
  model.query(0, 0, r, false);
  const maxBasic = r.eax >>> 0;
  for (let fn = 0; fn <= maxBasic; fn++) {
    const subs = fn === 0xd ? xsaveSubleaves(model.xcr0Mask, XSS_SUPPORTED) : INDEXED_LEAVES.get(fn);
    if (subs) for (const s of subs) add(fn, s, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
    else add(fn, 0, 0);
  }
  xsaveLeaf(entries, model.xcr0Mask, XSS_SUPPORTED);
  model.query(0x80000000, 0, r, false);
  const maxExt = r.eax >>> 0;
  for (let fn = 0x80000000; fn <= maxExt; fn++) add(fn, 0, 0);
  // cpu-x86 documents Msr as exactly the MSRs it implements (any other index raises #GP(0)).
  const msrs = Object.values(Msr).map((m) => m >>> 0);
  return {
    supportedCpuid: () => entries,
    msrIndexList: () => msrs,
  };
}

/**
 * Leaf 0DH as __do_cpuid_func() reports it (arch/x86/kvm/cpuid.c, case 0xd): sub-leaf 0 EBX = ECX =
 * the standard-form size of every permitted component; sub-leaf 1 EBX = the compacted size of
 * permitted XCR0 | IA32_XSS when XSAVEC or XSAVES is offered (else 0), ECX:EDX = the permitted
 * IA32_XSS bits; a component sub-leaf without a size is dropped, and its EDX is 0. The CPU answered
 * EBX for XCR0 = x87 | SSE; KVM's table is independent of any XCR0 (kvm_update_cpuid_runtime fixes
 * EBX per vCPU).
 */
function xsaveLeaf(entries: CpuidEntry2[], xcr0: number, xss: number): void {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.function === 0xd && e.index >= 2 && e.eax === 0) entries.splice(i, 1);
    else if (e.function === 0xd && e.index >= 2) e.edx = 0;
  }
  const s0 = entries.find((e) => e.function === 0xd && e.index === 0);
  const s1 = entries.find((e) => e.function === 0xd && e.index === 1);
  if (s0) s0.ebx = s0.ecx = xstateRequiredSize(entries, xcr0, false);
  if (s1) {
    s1.ebx = s1.eax & CPUID_D1_EAX_XSAVEC_XSAVES ? xstateRequiredSize(entries, xcr0 | xss, true) : 0;
    s1.ecx = xss >>> 0;
    s1.edx = 0;
  }
}

/**
 * kvm_vcpu_after_set_cpuid() for the CPU's opt-in features: `model` (the CPU's own) runs PKU
 * (CPUID.(7,0):ECX[3]: CR4.PKE, RDPKRU/WRPKRU, XCR0[9]) and XSAVES/XRSTORS with IA32_XSS
 * (CPUID.(0DH,1):EAX[3]) exactly when the guest's CPUID offers them and the host's (`host`, the
 * CPU's supported table) has them, as KVM makes CR4.PKE reserved without guest PKU and clears
 * "enable XSAVES/XRSTORS" without guest XSAVES (vmx_secondary_exec_control).
 */
export function applyGuestCpuid(
  model: CpuidModel,
  guest: readonly CpuidEntry2[],
  host: readonly CpuidEntry2[],
): void {
  const both = (fn: number, index: number, reg: "eax" | "ecx", bit: number) =>
    [guest, host].every((t) => t.some((e) => e.function === fn && e.index === index && e[reg] & bit));
  const pku = both(7, 0, "ecx", CPUID_7_ECX_PKU);
  model.features7Ecx = pku ? model.features7Ecx | CPUID_7_ECX_PKU : model.features7Ecx & ~CPUID_7_ECX_PKU;
  const xsaves = both(0xd, 1, "eax", CPUID_D1_EAX_XSAVES);
  model.xsaveExtensions = xsaves
    ? model.xsaveExtensions | CPUID_D1_EAX_XSAVES
    : model.xsaveExtensions & ~CPUID_D1_EAX_XSAVES;
}
