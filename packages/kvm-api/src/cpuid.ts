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

/** CPUID.(0DH,1):EAX: XSAVEC (bit 1) and XSAVES (bit 3), which make sub-leaf 1 EBX meaningful. */
export const CPUID_D1_EAX_XSAVEC_XSAVES = (1 << 1) | (1 << 3);
/** XSAVE legacy region plus header: the smallest XSAVE area (SDM Vol. 1 13.4). */
const XSAVE_LEGACY_AND_HEADER = 576;

/**
 * The sub-leaves of CPUID leaf 0DH that exist for the components `xcr0` | `xss` (32-bit masks: no
 * component above 31 exists here): 0 and 1, then one per component from 2 (SDM Vol. 1 13.2; KVM's
 * __do_cpuid_func lists exactly these).
 */
export function xsaveSubleaves(xcr0: number, xss: number): number[] {
  const out = [0, 1];
  const m = (xcr0 | xss) >>> 0;
  for (let i = 2; i < 32; i++) if ((m >>> i) & 1) out.push(i);
  return out;
}

/**
 * Bytes of an XSAVE area holding the components `xfeatures`, from the sizes, offsets and alignment
 * flags the table's leaf-0DH sub-leaves give (KVM xstate_required_size(), which asks the host's
 * CPUID the same way): standard form = the end of the furthest component; compacted = the
 * components packed in order after the header, 64-byte aligned where ECX[1] says so.
 */
export function xstateRequiredSize(
  table: readonly CpuidEntry2[],
  xfeatures: number,
  compacted: boolean,
): number {
  let size = XSAVE_LEGACY_AND_HEADER;
  for (let i = 2; i < 32; i++) {
    if (((xfeatures >>> i) & 1) === 0) continue;
    const e = table.find((x) => x.function === 0xd && x.index === i);
    if (!e) continue;
    const off = compacted ? (e.ecx & 2 ? (size + 63) & ~63 : size) : e.ebx >>> 0;
    size = Math.max(size, off + (e.eax >>> 0));
  }
  return size;
}

/**
 * Guest state that CPUID reflects (kvm_update_cpuid_runtime): CR4, XCR0, IA32_XSS, IA32_APIC_BASE
 * (low halves).
 */
export interface CpuidRuntime {
  cr4: number;
  xcr0: number;
  xss: number;
  apicBase: number;
}

const CR4_OSXSAVE = 1 << 18;
const CR4_PKE = 1 << 22;
/** IA32_APIC_BASE[11]: the xAPIC global enable (SDM Vol. 3A 10.4.4). */
const APIC_BASE_EN = 1 << 11;
const CPUID1_ECX_XSAVE = 1 << 26;
const CPUID1_ECX_OSXSAVE = 1 << 27;
const CPUID7_ECX_PKU = 1 << 3;
const CPUID7_ECX_OSPKE = 1 << 4;

const withBit = (v: number, bit: number, on: boolean): number => (on ? v | bit : v & ~bit) >>> 0;

/**
 * What kvm_update_cpuid_runtime() keeps current in a vCPU's CPUID, applied to `out` (EAX, EBX, ECX,
 * EDX), the registers of the table's entry for CPUID(fn, index) (the caller has one: KVM updates
 * only entries that exist). As 6.1's __kvm_update_cpuid_runtime():
 * - CPUID.1:ECX.OSXSAVE = CR4.OSXSAVE when the host has XSAVE (boot_cpu_has, not the guest's bit);
 * - CPUID.1:EDX.APIC = IA32_APIC_BASE.EN, set as well as cleared;
 * - CPUID.(7,0):ECX.OSPKE = CR4.PKE when the host has PKU;
 * - CPUID.(0DH,0):EBX = the standard-form XSAVE size for XCR0;
 * - CPUID.(0DH,1):EBX = the compacted size when the entry offers XSAVEC or XSAVES. 6.1 sizes XCR0
 *   alone, later kernels XCR0 | IA32_XSS; this uses the latter, the same while no IA32_XSS
 *   component is supported (cpu-x86 has none).
 * Not done: 6.1 also makes CPUID.1:ECX.MONITOR follow IA32_MISC_ENABLE[18], but only once userspace
 * disables KVM_X86_QUIRK_MISC_ENABLE_NO_MWAIT (KVM_CAP_DISABLE_QUIRKS2), which kvm-api does not
 * offer; with the quirk in force 6.1 leaves the bit as set. `host` is the supported table: the
 * host's features and the component sizes (KVM asks the host CPU).
 */
export function applyCpuidRuntime(
  host: readonly CpuidEntry2[],
  fn: number,
  index: number,
  out: Uint32Array,
  rt: CpuidRuntime,
): void {
  if (fn === 1) {
    if ((findCpuid(host, 1, 0)?.ecx ?? 0) & CPUID1_ECX_XSAVE)
      out[2] = withBit(out[2]!, CPUID1_ECX_OSXSAVE, (rt.cr4 & CR4_OSXSAVE) !== 0);
    out[3] = withBit(out[3]!, CPUID1_EDX_APIC, (rt.apicBase & APIC_BASE_EN) !== 0);
  } else if (fn === 7 && index === 0) {
    if ((findCpuid(host, 7, 0)?.ecx ?? 0) & CPUID7_ECX_PKU)
      out[2] = withBit(out[2]!, CPUID7_ECX_OSPKE, (rt.cr4 & CR4_PKE) !== 0);
  } else if (fn === 0xd && index === 0) {
    out[1] = xstateRequiredSize(host, rt.xcr0, false);
  } else if (fn === 0xd && index === 1 && out[0]! & CPUID_D1_EAX_XSAVEC_XSAVES) {
    out[1] = xstateRequiredSize(host, rt.xcr0 | rt.xss, true);
  }
}

/** The leaves __kvm_update_cpuid_runtime() updates, in its order. */
const RUNTIME_LEAVES = [
  [1, 0],
  [7, 0],
  [0xd, 0],
  [0xd, 1],
] as const;

/**
 * The entry of `table` that __kvm_update_cpuid_runtime() updates as (fn, index), the one
 * cpuid_entry2_find() picks: for leaf 1 (KVM_CPUID_INDEX_NOT_SIGNIFICANT) the first entry of
 * function 1 whatever its index, else the first findCpuid() gives.
 */
function runtimeEntry(table: readonly CpuidEntry2[], fn: number, index: number): CpuidEntry2 | undefined {
  return fn === 1 ? table.find((e) => e.function === 1) : findCpuid(table, fn, index);
}

/**
 * The runtime updates that land on `entry`, an entry of `table`, applied to `out` (its EAX, EBX, ECX,
 * EDX): what a CPUID exit answered from `entry` returns, as KVM answers from its stored, updated
 * entries (an Intel out-of-range leaf gets the updates of the leaf it is answered from).
 */
export function applyCpuidRuntimeToEntry(
  table: readonly CpuidEntry2[],
  entry: CpuidEntry2,
  host: readonly CpuidEntry2[],
  out: Uint32Array,
  rt: CpuidRuntime,
): void {
  for (const [fn, index] of RUNTIME_LEAVES) {
    if (entry.function === fn && runtimeEntry(table, fn, index) === entry)
      applyCpuidRuntime(host, fn, index, out, rt);
  }
}

/**
 * A copy of `table` as kvm_update_cpuid_runtime() leaves the vCPU's stored entries for the guest
 * state `rt`: what KVM_GET_CPUID2 copies out, and what KVM_SET_CPUID2 compares after KVM_RUN (6.1
 * kvm_set_cpuid() runs __kvm_update_cpuid_runtime() on the incoming entries, then
 * kvm_cpuid_check_equal() against the stored ones, which are kept updated).
 */
export function cpuidWithRuntime(
  table: readonly CpuidEntry2[],
  host: readonly CpuidEntry2[],
  rt: CpuidRuntime,
): CpuidEntry2[] {
  const out = table.map(copy);
  const r = new Uint32Array(4);
  for (const [fn, index] of RUNTIME_LEAVES) {
    const e = runtimeEntry(out, fn, index);
    if (!e) continue;
    r[0] = e.eax;
    r[1] = e.ebx;
    r[2] = e.ecx;
    r[3] = e.edx;
    applyCpuidRuntime(host, fn, index, r, rt);
    e.eax = r[0]!;
    e.ebx = r[1]!;
    e.ecx = r[2]!;
    e.edx = r[3]!;
  }
  return out;
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
 * except leaves 0xB/0x1F which echo ECX[7:0] and the EDX x2APIC id. Returns the entry answered
 * from, undefined when none was.
 */
export function cpuidLookup(
  table: readonly CpuidEntry2[],
  fn: number,
  index: number,
  out: Uint32Array,
): CpuidEntry2 | undefined {
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
    return e;
  }
  out.fill(0);
  if (fn === 0xb || fn === 0x1f) {
    const sub1 = findCpuid(table, fn, 1);
    if (sub1) {
      out[2] = index & 0xff;
      out[3] = sub1.edx;
    }
  }
  return undefined;
}
