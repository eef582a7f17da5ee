/**
 * CPUID as KVM exposes it: `struct kvm_cpuid_entry2` tables (KVM_GET_SUPPORTED_CPUID,
 * KVM_SET_CPUID2), the KVM leaves 0x40000000/0x40000001 (Documentation/virt/kvm/x86/cpuid.rst),
 * the lookup a CPUID exit uses (arch/x86/kvm/cpuid.c kvm_cpuid(), Intel out-of-range rule),
 * and the checks KVM_SET_CPUID2 makes.
 */
import { fail } from "./errors.js";

export interface CpuidEntry2 {
  function: number;
  index: number;
  /** KVM_CPUID_FLAG_SIGNIFCANT_INDEX (sic, as in the uapi header) = 1. */
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;
/** KVM_MAX_CPUID_ENTRIES. */
export const KVM_MAX_CPUID_ENTRIES = 256;

export const KVM_CPUID_SIGNATURE = 0x40000000;
export const KVM_CPUID_FEATURES = 0x40000001;
/** "KVMKVMKVM\0\0\0" in EBX, ECX, EDX. */
export const KVM_SIGNATURE = { ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x0000004d } as const;

/** KVM_CPUID_FEATURES EAX bits (arch/x86/include/uapi/asm/kvm_para.h). */
export const KVM_FEATURE_CLOCKSOURCE = 0;
export const KVM_FEATURE_NOP_IO_DELAY = 1;
export const KVM_FEATURE_CLOCKSOURCE2 = 3;
export const KVM_FEATURE_CLOCKSOURCE_STABLE_BIT = 24;

/**
 * The KVM feature bits tskvm offers, each tied to the code that implements it (a test checks
 * the list): CLOCKSOURCE/CLOCKSOURCE2 = kvmclock MSRs 0x11/0x12 and 0x4b564d00/01
 * (devices/kvmclock.ts); NOP_IO_DELAY = port I/O has no timing to honour here (the hint is
 * true by construction); CLOCKSOURCE_STABLE_BIT = PVCLOCK_TSC_STABLE_BIT is set because TSC and
 * kvmclock derive from one VM clock.
 */
export const KVM_FEATURES_OFFERED =
  (1 << KVM_FEATURE_CLOCKSOURCE) |
  (1 << KVM_FEATURE_NOP_IO_DELAY) |
  (1 << KVM_FEATURE_CLOCKSOURCE2) |
  (1 << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT);

/** CPUID.1 bits owned by kvm-api (the in-kernel APIC and the hypervisor). */
export const CPUID1_EDX_APIC = 1 << 9;
export const CPUID1_ECX_X2APIC = 1 << 21;
export const CPUID1_ECX_TSC_DEADLINE = 1 << 24;
export const CPUID1_ECX_HYPERVISOR = 1 << 31;
/** CPUID.1:ECX.VMX: offered when nested VMX is on (KVM: kvm_cpu_cap VMX with `nested`). */
export const CPUID1_ECX_VMX = 1 << 5;

/** What the CPU package will report about itself; until it lands, nothing is claimed for it. */
export interface CpuFeatureSource {
  /** CPUID leaves the CPU implements (vendor, family, features, caches, address sizes...). */
  supportedCpuid(): readonly CpuidEntry2[];
  /** MSRs the CPU implements (EFER, STAR, LSTAR, PAT, SYSENTER_*, ...). */
  msrIndexList(): readonly number[];
}

function copy(e: CpuidEntry2): CpuidEntry2 {
  return { ...e };
}

/**
 * KVM_GET_SUPPORTED_CPUID: the CPU's leaves plus the kvm-api ones (APIC, x2APIC, TSC-deadline,
 * hypervisor bits in leaf 1; the KVM leaves). Without a CPU source only these are present.
 */
export function supportedCpuid(cpu: CpuFeatureSource | undefined, nested = false): CpuidEntry2[] {
  const out = (cpu?.supportedCpuid() ?? []).map(copy);
  let leaf1 = out.find((e) => e.function === 1);
  if (!leaf1) {
    if (!out.some((e) => e.function === 0))
      out.push({ function: 0, index: 0, flags: 0, eax: 1, ebx: 0, ecx: 0, edx: 0 });
    leaf1 = { function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
    out.push(leaf1);
  }
  leaf1.edx = (leaf1.edx | CPUID1_EDX_APIC) >>> 0;
  leaf1.ecx = (leaf1.ecx | CPUID1_ECX_X2APIC | CPUID1_ECX_TSC_DEADLINE | CPUID1_ECX_HYPERVISOR) >>> 0;
  if (nested) leaf1.ecx = (leaf1.ecx | CPUID1_ECX_VMX) >>> 0;
  else leaf1.ecx = (leaf1.ecx & ~CPUID1_ECX_VMX) >>> 0;
  out.push({ function: KVM_CPUID_SIGNATURE, index: 0, flags: 0, eax: KVM_CPUID_FEATURES, ...KVM_SIGNATURE });
  out.push({
    function: KVM_CPUID_FEATURES,
    index: 0,
    flags: 0,
    eax: KVM_FEATURES_OFFERED,
    ebx: 0,
    ecx: 0,
    edx: 0,
  });
  return out;
}

/** KVM_SET_CPUID2 checks (arch/x86/kvm/cpuid.c kvm_vcpu_ioctl_set_cpuid2, kvm_check_cpuid). */
export function validateCpuid2(entries: readonly CpuidEntry2[]): CpuidEntry2[] {
  const step = "KVM_SET_CPUID2";
  if (entries.length > KVM_MAX_CPUID_ENTRIES)
    fail("E2BIG", step, "TooManyEntries", `${entries.length} > 256`);
  for (const e of entries) {
    for (const k of ["function", "index", "flags", "eax", "ebx", "ecx", "edx"] as const) {
      if (!Number.isInteger(e[k]) || e[k] < -(2 ** 31) || e[k] > 0xffffffff)
        fail("EINVAL", step, "BadField", k);
    }
  }
  // kvm_check_cpuid: canonical checks assume 48- or 57-bit linear addresses.
  const ext8 = findCpuid(entries, 0x80000008, 0);
  if (ext8) {
    const vaddr = (ext8.eax >>> 8) & 0xff;
    if (vaddr !== 0 && vaddr !== 48 && vaddr !== 57)
      fail("EINVAL", step, "BadLinearAddressWidth", `${vaddr}`);
  }
  return entries.map((e) => ({
    ...e,
    eax: e.eax >>> 0,
    ebx: e.ebx >>> 0,
    ecx: e.ecx >>> 0,
    edx: e.edx >>> 0,
    flags: e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
  }));
}

/** True when two tables are the same (KVM allows an identical KVM_SET_CPUID2 after KVM_RUN). */
export function cpuidEqual(a: readonly CpuidEntry2[], b: readonly CpuidEntry2[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((e, i) => {
    const f = b[i]!;
    return (
      e.function === f.function &&
      e.index === f.index &&
      e.flags === f.flags &&
      e.eax >>> 0 === f.eax >>> 0 &&
      e.ebx >>> 0 === f.ebx >>> 0 &&
      e.ecx >>> 0 === f.ecx >>> 0 &&
      e.edx >>> 0 === f.edx >>> 0
    );
  });
}

/** The entry for (function, index): the index matters only when the entry says so. */
export function findCpuid(table: readonly CpuidEntry2[], fn: number, index: number): CpuidEntry2 | undefined {
  return table.find(
    (e) => e.function === fn && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index === index),
  );
}

/**
 * What CPUID(fn, index) returns in the guest, as kvm_cpuid(): the matching entry; else, on
 * Intel, a leaf above its class's maximum returns the highest basic leaf (SDM CPUID
 * "If a value entered for CPUID.EAX is higher than the maximum input value..."); else zeros,
 * except leaves 0xB/0x1F which echo ECX[7:0] and the EDX x2APIC id.
 */
export function cpuidLookup(
  table: readonly CpuidEntry2[],
  fn: number,
  index: number,
  out: Uint32Array,
): void {
  fn >>>= 0;
  let e = findCpuid(table, fn, index);
  if (!e) {
    const basic = findCpuid(table, 0, 0);
    if (basic) {
      let classBase: number;
      if (fn >= 0x40000000 && fn <= 0x4fffffff) classBase = fn & 0xffffff00;
      else if (fn >= 0xc0000000) classBase = 0xc0000000;
      else classBase = fn & 0x80000000;
      const cls = findCpuid(table, classBase >>> 0, 0);
      if (!(cls && fn <= cls.eax >>> 0)) e = findCpuid(table, basic.eax >>> 0, index);
    }
  }
  if (e) {
    out[0] = e.eax;
    out[1] = e.ebx;
    out[2] = e.ecx;
    out[3] = e.edx;
    return;
  }
  out.fill(0);
  if (fn === 0xb || fn === 0x1f) {
    const sub1 = findCpuid(table, fn, 1);
    if (sub1) {
      out[2] = index & 0xff;
      out[3] = sub1.edx;
    }
  }
}
