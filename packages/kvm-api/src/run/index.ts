/**
 * The KVM_RUN engine: a vCPU backend that runs the guest on `@tskvm/cpu-x86` in VMX non-root
 * operation of `@tskvm/vmx`, with guest paging + EPT from `@tskvm/mmu-ept` (see engine.ts).
 */
export { attachVmxBackend, VmxBackend, type VmxBackendOptions } from "./engine.js";
export { EPT_RWX, EptMap } from "./ept-map.js";
export { EPT_BASE, HOST_BASE, HOST_PHYS_BITS, HostMemory } from "./host-memory.js";
export { type L1Features, type NestedState, nestedCaps } from "./nested.js";
export { CR0_HOST_OWNED, CR4_HOST_OWNED, PASSTHROUGH_MSRS } from "./vmcs-setup.js";
