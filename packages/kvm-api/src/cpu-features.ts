/**
 * What the @tskvm/cpu-x86 CPU reports about itself, as KVM_GET_SUPPORTED_CPUID and
 * KVM_GET_MSR_INDEX_LIST need it. Real KVM builds its table from the host CPU
 * (arch/x86/kvm/cpuid.c __do_cpuid_func); ours comes from the CPU model that executes CPUID,
 * so a guest is never told of a feature the emulated CPU does not implement.
 */
import { CpuidModel, type CpuidResult, Msr } from "@tskvm/cpu-x86";
import { type CpuFeatureSource, type CpuidEntry2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX } from "./cpuid.js";

/** Leaves whose answer depends on ECX (the sub-leaf): SDM Vol. 2 CPUID, leaves 07H and 0DH. */
const INDEXED_LEAVES: ReadonlyMap<number, readonly number[]> = new Map([
  [7, [0]],
  [0xd, [0, 1]],
]);

/** The CPUID table and MSR list of a cpu-x86 CPUID model (the default model when none is given). */
export function cpuX86Features(model: CpuidModel = new CpuidModel()): CpuFeatureSource {
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
    const subs = INDEXED_LEAVES.get(fn);
    if (subs) for (const s of subs) add(fn, s, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
    else add(fn, 0, 0);
  }
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
