/**
 * `/dev/kvm`: the system-level calls (api.rst 4.1-4.x). API version 12, the capabilities tskvm
 * implements, the supported CPUID table and the MSR index list.
 */
import { CAPABILITIES, KVM_API_VERSION } from "./caps.js";
import { cpuX86Features } from "./cpu-features.js";
import { type CpuFeatureSource, type CpuidEntry2, KVM_MAX_CPUID_ENTRIES, supportedCpuid } from "./cpuid.js";
import { fail } from "./errors.js";
import { KVM_API_MSRS } from "./vcpu.js";
import { Vm, type VmOptions } from "./vm.js";

export interface KvmOptions {
  /** The CPU's features and MSRs; by default those of the @tskvm/cpu-x86 CPU model that runs the guest. */
  cpu?: CpuFeatureSource;
  /**
   * XCR0 components the CPU can save/restore (KVM's supported_xcr0); by default those CPUID.(0DH,0)
   * of the CPU reports in EDX:EAX (x87 alone without that leaf).
   */
  xcr0Supported?: bigint;
  /**
   * Nested VMX (kvm_intel's `nested` module parameter): KVM_GET_SUPPORTED_CPUID reports
   * CPUID.1:ECX.VMX and vCPU backends let a guest whose CPUID has it run its own hypervisor.
   */
  nested?: boolean;
}

/**
 * Size of the `kvm_run` mapping (KVM_GET_VCPU_MMAP_SIZE): `struct kvm_run` in page 0, the PIO data
 * page at page 1 (KVM_PIO_PAGE_OFFSET), where `io.data_offset` points, and the VM's coalesced-MMIO
 * ring at page 2 (KVM_COALESCED_MMIO_PAGE_OFFSET).
 */
export const KVM_VCPU_MMAP_SIZE = 12288;

/**
 * The KVM system object.
 *
 * @example
 * ```ts
 * const kvm = new Kvm();
 * const vm = kvm.createVm({ clock: "deterministic" });
 * vm.createIrqchip();
 * vm.createPit2();
 * vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: 1 << 20, memory: new ArrayBuffer(1 << 20) });
 * const vcpu = vm.createVcpu(0);
 * ```
 */
export class Kvm {
  readonly xcr0Supported: bigint;
  /** The `nested` option: nested VMX offered to guests. */
  readonly nested: boolean;
  private readonly opts: KvmOptions;
  constructor(opts: KvmOptions = {}) {
    this.opts = { ...opts, cpu: opts.cpu ?? cpuX86Features() };
    const d0 = this.hostCpuid().find((e) => e.function === 0xd && e.index === 0);
    this.xcr0Supported =
      opts.xcr0Supported ?? (d0 ? (BigInt(d0.edx >>> 0) << 32n) | BigInt(d0.eax >>> 0) : 1n);
    this.nested = opts.nested ?? false;
  }

  /** KVM_GET_API_VERSION. */
  getApiVersion(): number {
    return KVM_API_VERSION;
  }

  /** KVM_CHECK_EXTENSION: 0 for anything not implemented. */
  checkExtension(cap: number): number {
    return CAPABILITIES.get(cap)?.value ?? 0;
  }

  /** KVM_GET_VCPU_MMAP_SIZE. */
  getVcpuMmapSize(): number {
    return KVM_VCPU_MMAP_SIZE;
  }

  /** KVM_CREATE_VM (type 0 only: the default x86 VM). */
  createVm(opts: VmOptions & { type?: number } = {}): Vm {
    if (opts.type) fail("EINVAL", "KVM_CREATE_VM", "UnknownType");
    return new Vm(this, opts);
  }

  /** KVM_GET_SUPPORTED_CPUID: E2BIG when `maxEntries` cannot hold the table. */
  getSupportedCpuid(maxEntries = KVM_MAX_CPUID_ENTRIES): CpuidEntry2[] {
    const t = supportedCpuid(this.opts.cpu, this.nested);
    if (t.length > maxEntries) fail("E2BIG", "KVM_GET_SUPPORTED_CPUID", "TooSmall", `need ${t.length}`);
    return t;
  }

  /**
   * The CPU's own CPUID leaves, the "host CPUID" KVM asks for XSAVE component sizes and offsets
   * (xstate_required_size); not a copy, not to be changed.
   */
  hostCpuid(): readonly CpuidEntry2[] {
    return this.opts.cpu?.supportedCpuid() ?? [];
  }

  /** MSRs of the CPU (not those kvm-api implements). */
  cpuMsrIndices(): readonly number[] {
    return this.opts.cpu?.msrIndexList() ?? [];
  }

  /** KVM_GET_MSR_INDEX_LIST: E2BIG when `maxEntries` cannot hold it. */
  getMsrIndexList(maxEntries = 1024): number[] {
    const list = [...new Set([...this.cpuMsrIndices(), ...KVM_API_MSRS])].sort((a, b) => a - b);
    if (list.length > maxEntries) fail("E2BIG", "KVM_GET_MSR_INDEX_LIST", "TooSmall", `need ${list.length}`);
    return list;
  }
}
